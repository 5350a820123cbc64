"""How many calls one extension may place: at once (``[[extensions]] max_calls``) and per minute
(``invite_rate``). Sans-IO: told the current time and the calls the extension has up, it answers.

Why (issue 11, docs/security.md): one extension — or whoever has its password — could place calls until
every RTP port was taken and the hotline went silent. Over either limit the INVITE gets
``503 Service Unavailable`` with ``Retry-After`` and a ``Warning`` naming the limit, and a log line says
which. Calls to the extension are not limited here (``busy_limit`` does that), nor calls from trunks
(``[[trunks]] max_channels``). The media port reserve (``[media] reserve_ports``) backs this up.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

WINDOW = 60.0           # s: invite_rate counts calls placed in any 60 s


class Limited(Protocol):
    @property
    def number(self) -> str: ...
    @property
    def max_calls(self) -> int: ...
    @property
    def invite_rate(self) -> int: ...


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str          # the status line's reason phrase
    warning: str         # why, for the Warning header and the log
    retry_after: int     # seconds


@dataclass
class CallLimits:
    _placed: dict[str, deque[float]] = field(default_factory=dict)   # number -> start times within WINDOW

    def check(self, ext: Limited, calls_up: int, now: float) -> Refusal | None:
        """May ``ext`` place one more call now, with ``calls_up`` calls of its own up? None: yes (and the call
        is counted toward the rate); else the answer to give."""
        if ext.max_calls and calls_up >= ext.max_calls:
            return Refusal(503, "Too Many Calls", f"extension {ext.number} has {calls_up} calls up "
                           f"(max_calls = {ext.max_calls})", 5)
        if ext.invite_rate:
            times = self._placed.setdefault(ext.number, deque())
            while times and times[0] <= now - WINDOW:
                times.popleft()
            if len(times) >= ext.invite_rate:
                wait = max(1, int(times[0] + WINDOW - now + 0.999))
                return Refusal(503, "Too Many Calls", f"extension {ext.number} placed {len(times)} calls in "
                               f"{WINDOW:.0f} s (invite_rate = {ext.invite_rate})", wait)
            times.append(now)
        return None

    def forget_idle(self, now: float) -> None:
        """Drop numbers with no call in the window (bounded memory: one entry per active extension)."""
        for number in [n for n, t in self._placed.items() if not t or t[-1] <= now - WINDOW]:
            del self._placed[number]
