#!/usr/bin/env bash
# The switch beside the industry anchor in one run (bench/MEDIA.md, "Fast path beside rtpengine"):
#   1. the switch, plain two-party calls (fast path), bench/media_load.py --features plain
#   2. Kamailio + rtpengine (userspace), with the driver the anchor's patch was made for (the project's
#      bench/media_load.py at ANCHOR_DRIVER_REV, patched with ../shared/bench/kamailio-rtpengine/media_load.anchor.patch):
#      the same SIPp callers, callee UAS and echoing sink
#   3. the switch, every call on the full path (recording + in-band DTMF search), --features full
# Usage: [WORKERS=N] bench/media_compare.sh OUT_DIR [STEPS] [FULL_STEPS]   (JSON per run in OUT_DIR; needs rtpengine-daemon)
#   WORKERS: the switch's [media] workers for both of its runs (default -1: "auto", as shipped; 0: the tick in
#   the switch's process)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?OUT_DIR}
steps=${2:-100,200,300,400,500}
full_steps=${3:-50,100,200}
workers=${WORKERS:--1}
anchor=${ANCHOR:-$here/../shared/bench/kamailio-rtpengine}
rev=${ANCHOR_DRIVER_REV:-2b1f9a7}
py=$here/.venv/bin/python
mkdir -p "$out"
uptime | tee "$out/load.txt"
cd "$here"
"$py" bench/media_load.py --steps "$steps" --features plain --workers "$workers" --json "$out/switch_plain.json" | tee "$out/switch_plain.txt"
uptime | tee -a "$out/load.txt"
a=$(mktemp -d)
git -C "$here" show "$rev:bench/media_load.py" > "$a/media_load.py"
cp -r "$here/bench/sipp_media" "$a/"
patch -s -d "$a" -p2 < "$anchor/media_load.anchor.patch"
(cd "$a" && "$py" media_load.py --target kamailio --anchor "$anchor/run.sh" --steps "$steps" \
    --json "$out/anchor.json" | tee "$out/anchor.txt")
uptime | tee -a "$out/load.txt"
"$py" bench/media_load.py --steps "$full_steps" --features full --workers "$workers" --json "$out/switch_full.json" | tee "$out/switch_full.txt"
uptime | tee -a "$out/load.txt"
