"""Group commit for any write: many concurrent callers, one transaction (one fsync) per burst.

``GroupWriter.run(body)`` returns ``body``'s result once the transaction that ran it is committed,
so an agent's "saved" or a caller's "your order number is 4711" is only ever said about data that
survives a crash. Bodies that arrive while a commit is in progress form the next batch. Each body
runs inside its own SAVEPOINT: a body that raises is rolled back alone and its caller gets the
error; the rest of the batch still commits. Bodies are synchronous functions of the raw
``sqlite3.Connection`` and run in the database thread (``Store.write_sync``), one hop per batch.
"""
from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections import deque
from typing import Any, Awaitable, Callable, Protocol, TypeVar

__all__ = ["GroupWriter"]

T = TypeVar("T")
Body = Callable[[sqlite3.Connection], Any]


class SyncWriter(Protocol):
    """What the writer commits through: ``store.db.Store`` (named by behaviour, not imported)."""

    def write_sync(self, body: Callable[[sqlite3.Connection], Any]) -> Awaitable[Any]: ...


class GroupWriter:
    """The store's one group-commit writer: registrations, call records, work orders... all share it,
    so a burst of any mix of writes costs one transaction (one fsync)."""

    def __init__(self, store: SyncWriter, max_batch: int = 256):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self._queue: deque[tuple[Body, asyncio.Future[Any]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # transactions attempted (metrics, tests)
        # told (seconds, writes in the batch, committed?) after each batch: the switch's metrics
        self.observer: Callable[[float, int, bool], None] | None = None

    async def run(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``body`` and wait until its transaction is committed; return its result or raise its
        error (or the commit's). If the caller is cancelled the body still runs and commits."""
        if self._closed:
            raise RuntimeError("GroupWriter is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)  # a cancelled caller's error is not "never retrieved"
        self._queue.append((body, fut))
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())
        return await asyncio.shield(fut)

    async def flush(self) -> None:
        """Wait until everything queued so far is committed (the writer stays open)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Refuse new bodies; wait until the queued ones are committed."""
        self._closed = True
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        batch: list[tuple[Body, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self.batches += 1
                bodies = [body for body, _ in batch]
                t0 = time.perf_counter()
                try:
                    outcomes = await self.store.write_sync(functools.partial(_run_batch, bodies=bodies))
                except Exception as e:
                    self._observe(t0, len(bodies), False)
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                else:
                    self._observe(t0, len(bodies), True)
                    for (_, fut), (ok, value) in zip(batch, outcomes):
                        if fut.done():
                            continue
                        if ok:
                            fut.set_result(value)
                        else:
                            fut.set_exception(value)
                batch = []
        finally:
            for _, fut in [*batch, *self._queue]:
                if not fut.done():
                    fut.set_exception(RuntimeError("GroupWriter stopped; the write may or may not have been committed"))
            self._queue.clear()
            self._task = None

    def _observe(self, t0: float, n: int, ok: bool) -> None:
        if self.observer is not None:
            try:
                self.observer(time.perf_counter() - t0, n, ok)
            except Exception:  # a metrics bug must not lose a commit's results
                pass


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _run_batch(conn: sqlite3.Connection, bodies: list[Body]) -> list[tuple[bool, Any]]:
    outcomes: list[tuple[bool, Any]] = []
    for body in bodies:
        conn.execute("SAVEPOINT body")
        try:
            value = body(conn)
        except Exception as e:  # this body's own failure: undo it alone
            conn.execute("ROLLBACK TO body")
            conn.execute("RELEASE body")
            outcomes.append((False, e))
        else:
            conn.execute("RELEASE body")
            outcomes.append((True, value))
    return outcomes
