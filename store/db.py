"""The SQLite store: one database file, one aiosqlite connection, migrated when it opens.

Settings and why:

* WAL journal: readers never block the writer and a commit is one sequential append.
* ``synchronous=FULL``: the WAL is fsynced at every commit, so "committed" means "survives a power
  cut", which is what a 200 OK to a REGISTER promises (``NORMAL`` in WAL mode may lose the last
  commits on power loss). Group commit (see ``store.bindings``) keeps the fsync count low.
* ``busy_timeout``: another process (an operator's ``sqlite3`` shell, a backup) holding the lock
  makes us wait a little instead of failing at once.
* ``foreign_keys=ON``: later tables reference each other; SQLite only enforces that when asked.
* Autocommit mode (``isolation_level=None``): Python's sqlite3 starts no hidden transactions; every
  write is an explicit ``BEGIN IMMEDIATE ... COMMIT`` run by ``Store.write``.

Only aiosqlite's public API is used; synchronous bodies reach the database thread through
``store.sqlite_thread``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TypeVar, cast

import aiosqlite

from base.bindings import Binding, Change

from .bindings import apply_changes, delete_expired, load_unexpired, validate_changes
from .group import GroupWriter
from .migrations import (LATEST_VERSION, Migration, MigrationError, SchemaTooNewError, StoreError,
                         migrate as _migrate)
from .sqlite_thread import connect, run_in_thread

__all__ = ["Store", "StoreError", "SchemaTooNewError", "MigrationError", "LATEST_VERSION"]

log = logging.getLogger("softswitch.store")

T = TypeVar("T")


class Store:
    """The database. Create it with ``await Store.open(path)``; ``await close()`` when done (the
    aiosqlite worker thread is not a daemon: an unclosed store keeps the process alive)."""

    def __init__(self, conn: aiosqlite.Connection, path: str | os.PathLike[str],
                 migrations: list[Migration] | None = None, backup: bool = True):
        self.path = path
        self.version = 0
        self.commits = 0  # write transactions committed (metrics; tests count group commits with it)
        self._db: aiosqlite.Connection | None = conn
        self._migrations = migrations
        self._backup = backup
        # One connection = one transaction at a time: writers take turns (reads too, so they never
        # see another coroutine's uncommitted half-transaction).
        self._lock = asyncio.Lock()
        self._inflight: set[asyncio.Task[Any]] = set()
        self.writer = GroupWriter(self)  # the one group commit: bindings, call records, work orders...

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(cls, path: str | os.PathLike[str], *, migrations: list[Migration] | None = None,
                   backup: bool = True, busy_timeout_ms: int = 5000) -> "Store":
        """Open (creating the file and its directory if needed) and migrate to the latest schema.

        Raises ``SchemaTooNewError`` for a database written by a newer release and
        ``MigrationError`` when a migration fails (the database is then left unchanged).
        ``migrations`` replaces the built-in list (tests); ``backup=False`` skips the copy made
        before a schema upgrade.
        """
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await connect(str(path), isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            (mode,), = await conn.execute_fetchall("PRAGMA journal_mode = WAL")
            if mode.lower() != "wal" and not memory:
                log.warning("store %s: WAL journal unavailable (journal_mode=%s); using it anyway", path, mode)
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
            store = cls(conn, path, migrations, backup)
            await store.migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def migrate(self) -> int:
        """Apply pending migrations (see ``store.migrations``); run by ``open``."""
        conn = self._require()
        async with self._lock:
            backup = self._backup and str(self.path) != ":memory:"
            self.version = await _migrate(conn, self._migrations, name=str(self.path),
                                          backup_file=self.path if backup else None)
        return self.version

    async def close(self) -> None:
        """Finish the writes in progress, then close. Safe to call twice."""
        if self._db is None:
            return
        await self.writer.close()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        async with self._lock:
            conn, self._db = self._db, None
            if conn is not None:
                await conn.close()

    @property
    def closed(self) -> bool:
        return self._db is None

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError(f"store {self.path} is closed")
        return self._db

    # ------------------------------------------------------------------------- primitives
    async def write(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        """Run ``body(conn)`` in one ``BEGIN IMMEDIATE`` transaction; return its result once committed.

        The transaction runs in its own task, shielded from the caller: cancelling the caller
        (a timeout, shutdown) cannot stop it between BEGIN and COMMIT and leave the shared
        connection inside a dangling transaction. It commits or rolls back on its own.
        ``body`` must use the ``conn`` it is given (not other ``Store`` methods: the lock is held).
        """
        self._require()
        task = asyncio.ensure_future(self._transaction(body))
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._inflight.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: no "exception never retrieved" noise when the caller left

    async def _transaction(self, body: Callable[[aiosqlite.Connection], Awaitable[T]]) -> T:
        async with self._lock:
            conn = self._require()
            await conn.execute("BEGIN IMMEDIATE")
            try:
                result = await body(conn)
                await conn.execute("COMMIT")
            except BaseException:
                await conn.rollback()  # no-op if COMMIT already ended the transaction
                raise
            self.commits += 1
            return result

    async def write_sync(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """``write`` for a synchronous ``body``: BEGIN, body, COMMIT run in the database thread in one
        hop, instead of one thread round trip per statement (each costs a future, a queue hand-off
        and a loop wake-up; at a thousand REGISTERs a second that was a fifth of the switch's CPU).
        See ``store.sqlite_thread`` for how the body reaches that thread."""
        self._require()
        task = asyncio.ensure_future(self._transaction_sync(body))
        self._inflight.add(task)
        task.add_done_callback(self._forget)
        return await asyncio.shield(task)

    async def _transaction_sync(self, body: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            conn = self._require()

            def run(raw: sqlite3.Connection) -> T:
                raw.execute("BEGIN IMMEDIATE")
                try:
                    result = body(raw)
                    raw.execute("COMMIT")
                except BaseException:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK")
                    raise
                return result

            result = await run_in_thread(conn, run)
            self.commits += 1
            return result

    async def read_sync(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run a synchronous read-only ``body(raw_conn)`` in the database thread in one hop, inside
        one read transaction (so its several queries see one snapshot, even while another process
        writes). Used by the call-centre queries (``store.crm``), e.g. the screen pop."""
        async with self._lock:
            conn = self._require()

            def run(raw: sqlite3.Connection) -> T:
                raw.execute("BEGIN")
                try:
                    return body(raw)
                finally:
                    if raw.in_transaction:
                        raw.execute("ROLLBACK")  # read-only: nothing to keep, and cheaper than COMMIT

            return await run_in_thread(conn, run)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query and return its rows."""
        async with self._lock:
            rows = await self._require().execute_fetchall(sql, tuple(params))
        return cast("list[tuple[Any, ...]]", list(rows))  # plain tuples: no row_factory is set

    # ---------------------------------------------------------------------------- bindings
    async def load_bindings(self, now: float) -> list[Binding]:
        """Unexpired bindings (the registrar's table at start-up); expired rows are deleted."""
        return await self.write(lambda conn: load_unexpired(conn, now))

    async def save_bindings(self, changes: list[Change]) -> None:
        """Apply ("put", Binding) / ("del", (aor, contact_uri)) / ("del_aor", (aor, "")) changes, in
        order, atomically, committed (fsynced) before returning. Invalid input raises ``ValueError``
        and writes nothing. Concurrent calls (a burst of REGISTERs) share one transaction: the
        store's group-commit writer batches them."""
        ops = validate_changes(changes)
        if not ops:
            return
        await self.writer.run(lambda conn: apply_changes(conn, ops))

    async def purge_expired(self, now: float) -> int:
        """Delete bindings with ``expires_at <= now``; returns how many."""
        return await self.write(lambda conn: delete_expired(conn, now))
