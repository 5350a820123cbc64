#!/usr/bin/env python3
"""The table of one ``bench/media_compare.sh OUT_DIR`` run: the switch (fast path) beside Kamailio + rtpengine,
step by step, and the switch's full path, from the JSON files in OUT_DIR.

CPU per call is the window's CPU over the calls that were up (SIPp's successful calls): a call that failed set-up
carried no media. Memory per call is the switch's resident memory in the window over its idle size, per call up.

Usage: bench/media_compare_table.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def _load(path: Path) -> dict[int, dict]:
    return {r["conc"]: r for r in json.loads(path.read_text())} if path.exists() else {}


def _opt(r: dict) -> str:
    o = r.get("options") or {}
    if not o.get("sent"):
        return ""
    return f"{o['p50_ms']:.1f} / {o['max_ms']:.0f} ms, {o['over_50ms']} of {o['sent']} > 50 ms"


def _switch(r: dict | None) -> list[str]:
    if not r:
        return [""] * 6
    cpu = r["cpu"]["switch"] + r["cpu"].get("workers", 0.0)
    up = max(1, r["ok"])
    rss = (r["rss_kib"] - r["rss_idle_kib"]) / up if r.get("rss_kib") else 0.0
    return [f"{r['ok']} / {r['failed']}", f"{cpu:.0f} %", f"**{cpu / up:.3f} %**", f"{r['sink']['jitter_ms']:.1f} ms",
            _opt(r), f"{rss:.0f} KiB"]


def main() -> None:
    d = Path(sys.argv[1])
    plain, anchor, full = _load(d / "switch_plain.json"), _load(d / "anchor.json"), _load(d / "switch_full.json")
    print("| calls | switch ok / failed | switch CPU | switch %/call | switch: sink jitter | switch: OPTIONS p50 / max "
          "| switch memory/call | anchor ok / failed | rtpengine CPU | rtpengine %/call | anchor: sink jitter | others |")
    print("|" + "---|" * 12)
    for conc in sorted(set(plain) | set(anchor)):
        p, a = plain.get(conc), anchor.get(conc)
        cells = [str(conc), *_switch(p)]
        if a:
            rt = a["cpu"]["rtpengine"]
            cells += [f"{a['ok']} / {a['failed']}", f"{rt:.0f} %", f"**{rt / max(1, a['ok']):.3f} %**",
                      f"{a['sink']['jitter_ms']:.1f} ms"]
        else:
            cells += [""] * 4
        others = []
        for r in (p, a):
            if r:
                c = r["cpu"]
                others.append(f"{c['machine'] - sum(v for k, v in c.items() if k != 'machine'):.0f} %")
        cells.append(" / ".join(others))
        print("| " + " | ".join(cells) + " |")
    if full:
        print("\nFull path (every call recorded, in-band DTMF searched, no relay):\n")
        print("| calls | ok / failed | switch CPU | %/call | sink jitter | OPTIONS p50 / max | memory/call |")
        print("|" + "---|" * 7)
        for conc, r in sorted(full.items()):
            print("| " + " | ".join([str(conc), *_switch(r)]) + " |")


if __name__ == "__main__":
    main()
