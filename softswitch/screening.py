"""The one place that says whether a caller is refused, blocked or flagged.

Three lists used to be matched in three places; they are one service now:

- ``[security] blacklist``: refused at the SIP level (403), before any call exists;
- ``[ivr] blacklist`` and the store's ``block`` list (the nuisance callers agents maintain): the IVR's
  screen node plays its refusal prompt and hangs up;
- ``[ivr] warning_list`` and the store's ``warn`` list: the call goes on, flagged for the agent.

Patterns are whole numbers or prefixes written ``123*``. The store's entries (normalised numbers, with
an optional expiry in wall-clock time) are loaded by the edge at start and refreshed periodically;
matching is in memory, never a query per call.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable


@dataclass(frozen=True)
class Entry:
    pattern: str                 # "0900*" or "13800138000"
    expires_at: float | None = None   # wall clock

    def matches(self, number: str) -> bool:
        p = self.pattern
        return number.startswith(p[:-1]) if p.endswith("*") else number == p


@dataclass(frozen=True)
class Verdict:
    refused: bool = False        # [security] blacklist: no call at all
    blocked: bool = False        # refusal prompt, then hang-up
    warned: bool = False         # flagged for the agent


def _entries(patterns: Iterable[str]) -> tuple[Entry, ...]:
    return tuple(Entry(p) for p in patterns)


class CallerLists:
    def __init__(self, refuse: Iterable[str] = (), block: Iterable[str] = (), warn: Iterable[str] = ()):
        self._refuse = _entries(refuse)
        self._block = _entries(block)
        self._warn = _entries(warn)
        self._store_block: tuple[Entry, ...] = ()
        self._store_warn: tuple[Entry, ...] = ()
        self.normalise: Callable[[str], str] = lambda n: n   # the store's number plan (set by the edge)

    @classmethod
    def from_config(cls, config: Any) -> "CallerLists":
        ivr = config.ivr
        return cls(refuse=config.security.blacklist, block=ivr.blacklist if ivr is not None else (),
                   warn=ivr.warning_list if ivr is not None else ())

    def set_store_entries(self, block: Iterable[tuple[str, float | None]], warn: Iterable[tuple[str, float | None]]) -> None:
        """The store's block and warning lists, as (pattern, expiry) pairs (the edge loads them)."""
        self._store_block = tuple(Entry(p, e) for p, e in block)
        self._store_warn = tuple(Entry(p, e) for p, e in warn)

    def check(self, number: str, wall: float, *, block: Iterable[str] = (), warn: Iterable[str] = ()) -> Verdict:
        """The verdict on ``number`` at wall-clock time ``wall``; ``block``/``warn``: extra patterns of the
        asking place (an IVR screen node's own lists)."""
        def hit(entries: Iterable[Entry], n: str = number) -> bool:
            return any(e.matches(n) and (e.expires_at is None or e.expires_at > wall) for e in entries)
        try:
            stored = self.normalise(number)     # the store keeps its numbers in one form
        except ValueError:
            stored = number
        return Verdict(refused=hit(self._refuse),
                       blocked=hit(self._block) or hit(_entries(block)) or hit(self._store_block, stored),
                       warned=hit(self._warn) or hit(_entries(warn)) or hit(self._store_warn, stored))

    def refused(self, number: str, wall: float) -> bool:
        return self.check(number, wall).refused
