"""Login throttling for the HTTP API, sans-IO (the time is passed in).

A password guesser is slowed where it stands: by its source address (an IPv6 /64 counts as one),
never by the account it attacks, so nobody can lock the supervisor out by failing on purpose, and
the right password from another address always gets through. Two tables:

- per (address, user): after ``free`` failures each further failure doubles a back-off (1 s, 2 s,
  4 s ... up to ``cap``) during which that address may not try that user at all;
- per address, across users (a spray over many accounts): the same with a larger ``free``.

Only time forgets failures (a success does not: an attacker holding one valid login cannot reset
the count between guesses). Both tables are bounded LRUs: when full, the least recently seen entry
goes, one at a time (never the whole table at once, which would let a flood of fresh addresses wipe
a guesser's record).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from ..security import source_key

__all__ = ["Backoff", "BackoffPolicy", "LoginThrottle"]


@dataclass(frozen=True)
class BackoffPolicy:
    free: int = 5            # failures within ``window`` before any waiting
    base: float = 1.0        # the first wait, seconds; doubled per further failure
    cap: float = 300.0       # the longest wait
    window: float = 900.0    # a failure is forgotten this long after it happened


@dataclass(slots=True)
class _Record:
    failures: list[float] = field(default_factory=list)
    until: float = 0.0


class Backoff:
    """Failures per key with exponential back-off, in a bounded LRU table."""

    def __init__(self, policy: BackoffPolicy, max_entries: int = 10_000):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.policy = policy
        self.max_entries = max_entries
        self._table: OrderedDict[object, _Record] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def wait(self, key: object, now: float) -> float:
        """Seconds ``key`` must still wait before it may try again (0: go ahead)."""
        rec = self._table.get(key)
        return max(0.0, rec.until - now) if rec is not None else 0.0

    def failed(self, key: object, now: float) -> float:
        """Count a failure; returns the wait it now owes."""
        p = self.policy
        rec = self._table.get(key)
        if rec is None:
            rec = self._table[key] = _Record()
            while len(self._table) > self.max_entries:
                self._table.popitem(last=False)  # the least recently seen, one at a time
        else:
            self._table.move_to_end(key)
        rec.failures = [t for t in rec.failures if now - t < p.window][-64:]
        rec.failures.append(now)
        over = len(rec.failures) - p.free
        if over > 0:
            rec.until = max(rec.until, now + min(p.cap, p.base * 2 ** min(over - 1, 32)))
        return max(0.0, rec.until - now)


class LoginThrottle:
    """Who may try a password now: ``wait(ip, user, now)`` > 0 means answer 429 without checking it."""

    def __init__(self, per_user: BackoffPolicy = BackoffPolicy(),
                 per_address: BackoffPolicy = BackoffPolicy(free=30), max_entries: int = 10_000):
        self.per_user = Backoff(per_user, max_entries)
        self.per_address = Backoff(per_address, max_entries)

    def wait(self, ip: str, user: str, now: float) -> float:
        src = source_key(ip)
        return max(self.per_user.wait((src, user), now), self.per_address.wait(src, now))

    def failed(self, ip: str, user: str, now: float) -> float:
        src = source_key(ip)
        return max(self.per_user.failed((src, user[:200]), now), self.per_address.failed(src, now))
