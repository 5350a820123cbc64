"""Run a synchronous function of the raw ``sqlite3.Connection`` in aiosqlite's database thread, in one
hop, through aiosqlite's public API only.

Why one hop: the store's hot paths (the group commit of REGISTER bindings, the call-centre queries of
``store.crm``) are several statements each. Sent one by one through aiosqlite, every statement costs
a future, a queue hand-off to the database thread and an event-loop wake-up; at a thousand REGISTERs a
second that was a fifth of the switch's CPU. Run as one function in the database thread they cost one.

Why this way: aiosqlite has no public "run this function in your thread" call (only the private
``Connection._execute``, and the raw connection only as the private ``_conn``), but its public API is
the sqlite3 API carried into that thread, and ``aiosqlite.connect`` passes keyword arguments on to
``sqlite3.connect``, whose documented ``factory`` chooses the connection class. So ``connect`` opens
the database with ``ThreadConnection``, whose ``execute`` runs a ``ThreadCall`` it is handed instead
of SQL (any other argument is SQL, executed as usual), and ``run_in_thread`` hands one over with the
public ``aiosqlite.Connection.execute``. The call runs in the thread that owns the connection, so
sqlite3's same-thread check holds; its exception, if any, is raised by ``run_in_thread``.
"""
from __future__ import annotations

import os
import sqlite3
from typing import Any, Callable, Generic, TypeVar

import aiosqlite

__all__ = ["ThreadCall", "ThreadConnection", "connect", "run_in_thread"]

T = TypeVar("T")


class ThreadCall(Generic[T]):
    """A function of the raw connection, to be run in the database thread; holds its result."""

    __slots__ = ("fn", "result")

    def __init__(self, fn: Callable[[sqlite3.Connection], T]):
        self.fn = fn
        self.result: T | None = None


class ThreadConnection(sqlite3.Connection):
    """A sqlite3 connection whose ``execute`` also accepts a ``ThreadCall`` (runs it, returns an
    unused cursor); SQL is executed exactly as by ``sqlite3.Connection``."""

    def execute(self, sql: Any, parameters: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        if type(sql) is ThreadCall:
            sql.result = sql.fn(self)
            return self.cursor()
        return super().execute(sql, parameters)


def connect(database: str | os.PathLike[str], **kwargs: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect`` with ``ThreadConnection`` as the connection class (``run_in_thread``
    needs it; a plain connection refuses the call with a TypeError)."""
    return aiosqlite.connect(os.fspath(database), factory=ThreadConnection, **kwargs)


async def run_in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(raw_connection)`` run in ``conn``'s database thread; returns its result or raises its error.
    ``conn`` must come from ``connect``. Like every aiosqlite call it is queued behind the calls before
    it; transactions are the caller's business."""
    call: ThreadCall[T] = ThreadCall(fn)
    await conn.execute(call)  # type: ignore[arg-type]
    return call.result  # type: ignore[return-value]
