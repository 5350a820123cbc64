"""IVR benchmark: flow-engine cost per event and prompt build time per prompt.

    .venv/bin/python bench/ivr.py [--calls N] [--write]

1. Sessions of the shipped example flow (ivr/README.md) driven through typical caller paths with a fake
   clock: µs per session start and per handled event (no I/O: what one call costs the switch's CPU).
2. ``build_prompts`` of every shipped prompt (3 languages) with each available speech engine, forced,
   then the cached rebuild: ms per prompt.
3. ``parse_ivr_config`` of the example (check-config cost).
``--write`` puts the tables into bench/IVR.md between the result markers.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ivr.events import DigitReceived, PlaybackFinished, TimerFired  # noqa: E402
from ivr.config import parse_ivr_config  # noqa: E402
from ivr.engine import IvrSession  # noqa: E402
from ivr.prompts import LANGUAGES, load_prompt_texts  # noqa: E402
from ivr.prompts_build import _pyttsx3_available, build_prompts  # noqa: E402
from ivr.testing import MON_10_SHANGHAI, PROMPTS, ROOT as _R, example_raw  # noqa: E402

MARK = "<!-- bench/ivr.py results -->"


def _played(out):
    return [a.id for a in out if type(a).__name__ == "Play"]


def drive(cfg, path: str, n: int) -> tuple[float, float, int]:
    """(seconds in start(), seconds in handle(), events) for n calls along ``path``."""
    flow = cfg.flows["main"]
    t_start = t_events = 0.0
    events = 0
    for i in range(n):
        now = MON_10_SHANGHAI + i
        t0 = time.perf_counter()
        s = IvrSession(flow, cfg, f"+86138{i:08d}", now, call_id=str(i))
        out = s.start(now)
        t_start += time.perf_counter() - t0
        play = _played(out)[-1]
        script: list = []
        if path == "order":  # language key, barge-in, menu 1, menu 1, 7 digits + #, closing prompt
            script = ["3", "1", "1", "1", *"2026112", "#", "PLAYED"]
        elif path == "silent":  # listens to everything, stays on the line
            script = ["PLAYED", "TIMER", "PLAYED", "PLAYED", "TIMER", "PLAYED"]
        elif path == "invalid":  # wrong keys until the fallback
            script = ["3", "1", "9", "9", "9", "PLAYED"]
        for step in script:
            ev: PlaybackFinished | TimerFired | DigitReceived
            if step == "PLAYED":
                ev = PlaybackFinished(play)
            elif step == "TIMER":
                now = s.next_deadline() or now
                ev = TimerFired()
            else:
                ev = DigitReceived(step)
            t0 = time.perf_counter()
            out = s.handle(ev, now)
            t_events += time.perf_counter() - t0
            events += 1
            play = (_played(out) or [play])[-1]
        assert s.done, (path, s.result)
    return t_start, t_events, events


def bench_engine(n: int) -> list[str]:
    cfg = parse_ivr_config(example_raw(), "config.toml", _R, prompts_dir=PROMPTS)
    rows = ["| caller path | calls | events/call | µs per start | µs per event | µs per call |", "|---|---|---|---|---|---|"]
    for path, what in (("order", "language, menus, 7-digit order number → queue"),
                       ("silent", "no keys: prompts + time-outs → queue"),
                       ("invalid", "invalid keys until the fallback → queue")):
        drive(cfg, path, min(n, 200))  # warm-up
        ts, te, ev = drive(cfg, path, n)
        rows.append(f"| {what} | {n:,} | {ev // n} | {ts / n * 1e6:.1f} | {te / ev * 1e6:.1f} | "
                    f"{(ts + te) / n * 1e6:.0f} |")
    t0 = time.perf_counter()
    for _ in range(20):
        parse_ivr_config(example_raw(), "config.toml", _R, prompts_dir=PROMPTS)
    rows.append("")
    rows.append(f"`parse_ivr_config` of the example (19 + 2 nodes, prompt files of 3 languages read): "
                f"{(time.perf_counter() - t0) / 20 * 1e3:.1f} ms.")
    return rows


def bench_build() -> list[str]:
    count = sum(len(load_prompt_texts(PROMPTS, l)) for l in LANGUAGES)
    speech = sum(1 for l in LANGUAGES for p in load_prompt_texts(PROMPTS, l).values() if p.text)
    rows = [f"{count} prompts ({speech} spoken, {count - speech} tones) in {len(LANGUAGES)} languages.", "",
            "| engine | full build s | ms per prompt | cached rebuild ms | ms per prompt (cached) |", "|---|---|---|---|---|"]
    engines = (["pyttsx3"] if _pyttsx3_available() else []) + (["espeak-ng"] if shutil.which("espeak-ng") else [])
    for eng in engines:
        with tempfile.TemporaryDirectory() as tmp:
            r = build_prompts(PROMPTS, tmp, LANGUAGES, engine=eng, force=True)
            assert not r.failed and r.engine == eng, r.failed
            r2 = build_prompts(PROMPTS, tmp, LANGUAGES, engine=eng)
            assert not r2.built
        rows.append(f"| {eng} | {r.seconds:.2f} | {r.seconds / count * 1e3:.1f} | {r2.seconds * 1e3:.1f} | "
                    f"{r2.seconds / count * 1e3:.2f} |")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = (f"Measured {datetime.date.today()}, {cpu}, Python {platform.python_version()} "
            "(shared VM; other suites may run at the same time):")
    body = "\n".join([head, "", "**Flow engine** (`IvrSession`, example flow `main`):", "", *bench_engine(a.calls), "",
                      "**Prompt build** (`build_prompts`, all shipped prompts, forced, then unchanged):", "",
                      *bench_build()])
    print(body)
    if a.write:
        md = ROOT / "bench" / "IVR.md"
        text = md.read_text(encoding="utf-8")
        text = re.sub(f"{re.escape(MARK)}.*?{re.escape(MARK)}", lambda _: f"{MARK}\n{body}\n{MARK}", text, flags=re.S)
        md.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
