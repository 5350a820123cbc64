"""Which extensions are on a call that the ACD does not see (plain calls, transfers).

The ACD never offers a queue call to a phone that is talking: plain calls mark their caller and
callee busy here, and the marks go when the call ends or the party leaves it. A phone in two such
calls stays busy until both are over; the ACD hears only the first mark and the last unmark.
"""
from __future__ import annotations

from collections import Counter
from typing import Callable


class Presence:
    def __init__(self, on_busy: Callable[[str, float], None], on_free: Callable[[str, float], None]):
        self._on_busy = on_busy
        self._on_free = on_free
        self._marks: dict[str, list[str]] = {}   # call id -> extensions marked busy for it
        self._count: Counter[str] = Counter()

    def mark(self, call_id: str, number: str, now: float) -> None:
        marks = self._marks.setdefault(call_id, [])
        if number in marks:
            return
        marks.append(number)
        self._count[number] += 1
        if self._count[number] == 1:
            self._on_busy(number, now)

    def unmark(self, call_id: str, number: str, now: float) -> bool:
        """Remove the mark; True if there was one."""
        marks = self._marks.get(call_id)
        if not marks or number not in marks:
            return False
        marks.remove(number)
        if not marks:
            del self._marks[call_id]
        self._count[number] -= 1
        if self._count[number] <= 0:
            del self._count[number]
            self._on_free(number, now)
        return True

    def release(self, call_id: str, now: float) -> None:
        for number in list(self._marks.get(call_id, ())):
            self.unmark(call_id, number, now)

    def has(self, call_id: str, number: str) -> bool:
        return number in self._marks.get(call_id, ())

    def busy(self, number: str) -> bool:
        return self._count[number] > 0
