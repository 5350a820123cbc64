"""Registrar bindings in the store (their SQL), and the group commit that makes persisting them cheap.
The records themselves (``Binding``, ``Change``) are ``base.bindings``, shared with the registrar.

A 200 OK to a REGISTER promises the binding survives a restart, so it may only be sent once the
binding is committed (fsynced). One fsync per REGISTER would cap the switch at a few hundred
registrations per second; instead the REGISTERs of a few milliseconds share one transaction:
``Store.save_bindings`` takes a whole batch, and ``BindingWriter`` forms the batches.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from dataclasses import astuple, fields
from typing import Iterable, Protocol

import aiosqlite

from base.bindings import Binding, Change

__all__ = ["Binding", "Change", "BindingStore", "BindingWriter", "apply_changes", "delete_expired", "load_unexpired",
           "validate_changes"]


class BindingStore(Protocol):
    """What ``BindingWriter`` commits to: ``store.db.Store`` (named by behaviour, not imported, so the
    SQL here and the store that runs it do not import each other)."""

    async def save_bindings(self, changes: list[Change]) -> None: ...


_COLUMNS = tuple(f.name for f in fields(Binding))
_UPSERT = (f"INSERT INTO registrations ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           f"ON CONFLICT (aor, contact_uri) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("aor", "contact_uri")))
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM registrations"
_SQL = {
    "put": _UPSERT,
    "del": "DELETE FROM registrations WHERE aor = ? AND contact_uri = ?",
    "del_aor": "DELETE FROM registrations WHERE aor = ?",
}


def validate_changes(changes: Iterable[Change]) -> list[tuple[str, tuple]]:
    """Check every change BEFORE the transaction starts (a bad one rejects the whole batch) and
    turn it into (op, SQL parameters)."""
    out: list[tuple[str, tuple]] = []
    for change in changes:
        try:
            op, item = change
        except (TypeError, ValueError):
            raise ValueError(f"binding change must be (op, item), got {change!r}") from None
        if op == "put":
            if not isinstance(item, Binding):
                raise ValueError(f"'put' needs a Binding, got {item!r}")
            out.append((op, astuple(item)))
        elif op in ("del", "del_aor"):
            if not (isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item)):
                raise ValueError(f"{op!r} needs (aor, contact_uri) strings, got {item!r}")
            out.append((op, item if op == "del" else (item[0],)))
        else:
            raise ValueError(f"unknown binding change {op!r} (expected 'put', 'del' or 'del_aor')")
    return out


def apply_changes(conn: sqlite3.Connection, ops: list[tuple[str, tuple]]) -> None:
    """Run validated changes in order inside the caller's transaction, in the database thread
    (``Store.write_sync``); consecutive changes of one kind go to SQLite as one ``executemany``."""
    i = 0
    while i < len(ops):
        op = ops[i][0]
        j = i
        while j < len(ops) and ops[j][0] == op:
            j += 1
        conn.executemany(_SQL[op], [params for _, params in ops[i:j]])
        i = j


async def load_unexpired(conn: aiosqlite.Connection, now: float) -> list[Binding]:
    """Delete expired rows, return the rest (inside the caller's transaction)."""
    await conn.execute("DELETE FROM registrations WHERE expires_at <= ?", (now,))
    rows = await conn.execute_fetchall(_SELECT + " ORDER BY aor, contact_uri")
    return [Binding(*row) for row in rows]


async def delete_expired(conn: aiosqlite.Connection, now: float) -> int:
    cursor = await conn.execute("DELETE FROM registrations WHERE expires_at <= ?", (now,))
    return cursor.rowcount


class BindingWriter:
    """Group commit: ``submit`` returns once the change is committed, and every change that arrives
    while one commit is in progress goes into the next one, so N concurrent REGISTERs cost about
    one fsync, not N.

    The batching needs no timer: a drain task is started by the first submit and runs while there
    is work. Each round takes what is queued (at most ``max_batch`` changes, never splitting one
    ``submit_many`` group), commits it with ``Store.save_bindings`` and resolves the waiters; a
    failure is raised in every waiter of that batch and the writer carries on with the next one.
    Changes are committed in submission order.
    """

    def __init__(self, store: BindingStore, max_batch: int = 500):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self._queue: deque[tuple[list[Change], asyncio.Future[None]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # transactions this writer committed or attempted (for metrics and tests)

    async def submit(self, change: Change) -> None:
        """Queue one change and wait until it is committed (or raise the commit's error)."""
        await self.submit_many([change])

    async def submit_many(self, changes: Iterable[Change]) -> None:
        """Queue changes that must commit together (e.g. all of one REGISTER) and wait for the commit."""
        if self._closed:
            raise RuntimeError("BindingWriter is closed")
        group = list(changes)
        validate_changes(group)  # a bad change fails its own submitter, not the whole batch
        if not group:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((group, fut))
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())
        # If the caller is cancelled the change is still committed (the in-memory registrar
        # already holds it); only the wait is abandoned.
        await fut

    async def close(self) -> None:
        """Refuse new changes and wait until everything already submitted is committed."""
        self._closed = True
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        batch: list[tuple[list[Change], asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch, size = [], 0
                while self._queue and (not batch or size + len(self._queue[0][0]) <= self.max_batch):
                    group, fut = self._queue.popleft()
                    batch.append((group, fut))
                    size += len(group)
                self.batches += 1
                try:
                    await self.store.save_bindings([c for group, _ in batch for c in group])
                except Exception as e:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                else:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_result(None)
                batch = []
        finally:
            # Only reached with work left if this task itself was cancelled (e.g. loop shutdown):
            # never leave a submitter waiting forever.
            for _, fut in [*batch, *self._queue]:
                if not fut.done():
                    fut.set_exception(RuntimeError(
                        "BindingWriter stopped; the change may or may not have been committed"))
            self._queue.clear()
            self._task = None
