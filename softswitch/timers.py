"""A heap of (deadline, key) for the sans-IO parts: they report ``next_deadline()`` and are called back
with the current time; nothing here reads a clock."""
from __future__ import annotations

import heapq
import itertools
from typing import Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)


class Timers(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def schedule(self, when: float, key: K) -> None:
        heapq.heappush(self._heap, (when, next(self._seq), key))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[K]:
        """Keys whose deadline has come, earliest first (a key may fire after its owner forgot it:
        the owner checks)."""
        out: list[K] = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out
