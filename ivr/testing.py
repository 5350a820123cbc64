"""Test helpers for the IVR (like media.testing): the example [ivr] from ivr/README.md, small flows, and
a session driven by a fake clock."""
from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from ivr.actions import Action, Play
from ivr.config import IvrConfig, parse_ivr_config
from ivr.engine import IvrSession
from ivr.events import Event, PlaybackFinished, TimerFired

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "prompts"
QUEUES = ("sales", "support", "vip")
# Monday 2026-11-23 10:00 in Shanghai (UTC+8) = 02:00 UTC
MON_10_SHANGHAI = 1795399200.0


def example_raw() -> dict[str, Any]:
    text = (ROOT / "ivr" / "README.md").read_text(encoding="utf-8")
    m = re.search(r"```toml\n(.*?)```", text.split("## Example", 1)[1], re.S)
    assert m is not None, "ivr/README.md: no toml block under ## Example"
    block = m.group(1)
    raw: dict[str, Any] = tomllib.loads(block)["ivr"]
    return raw


def config(raw: dict[str, Any] | None = None, **over: Any) -> IvrConfig:
    raw = copy.deepcopy(raw if raw is not None else example_raw())
    raw.update(over)
    return parse_ivr_config(raw, "config.toml", ROOT, prompts_dir=PROMPTS)


def one_flow(nodes: dict[str, Any], start: str | None = None, **ivr: Any) -> IvrConfig:
    raw = {"languages": ["en", "zh", "yue"], "default_language": "en", "sounds_dir": "/s",
           "flows": {"f": {"start": start or next(iter(nodes)), "nodes": nodes}}, **ivr}
    return parse_ivr_config(raw, "config.toml", ROOT, prompts_dir=PROMPTS)


class Call:
    """A session with a fake clock and the last Play remembered."""

    def __init__(self, cfg: IvrConfig, flow: str = "f", caller: str = "+8613800000000", now: float = MON_10_SHANGHAI,
                 speech: bool = False):
        self.now = now
        self.s = IvrSession(cfg.flows[flow], cfg, caller, now, call_id="c1", speech=speech)
        self.log: list[Action] = []
        self.out = self._note(self.s.start(now))

    def _note(self, out: list[Action]) -> list[Action]:
        self.log += out
        return out

    def send(self, ev: Event) -> list[Action]:
        return self._note(self.s.handle(ev, self.now))

    def last_play(self) -> Play:
        return [a for a in self.log if isinstance(a, Play)][-1]

    def finish_play(self) -> list[Action]:
        return self.send(PlaybackFinished(self.last_play().id))

    def advance(self, dt: float) -> list[Action]:
        """Move the clock, firing the timer if its deadline passed (as the edge would)."""
        self.now += dt
        d = self.s.next_deadline()
        if d is not None and d <= self.now:
            return self.send(TimerFired())
        return []

    def played_names(self, play: Play | None = None) -> list[str]:
        p = play or self.last_play()
        return [f.rsplit("/", 2)[-2] + "/" + f.rsplit("/", 1)[-1][:-4] for f in p.prompt_files]
