"""Registrar bindings in the store: their SQL. The records themselves (``Binding``, ``Change``) are
``base.bindings``, shared with the registrar.

A 200 OK to a REGISTER promises the binding survives a restart, so it may only be sent once the
binding is committed (fsynced). One fsync per REGISTER would cap the switch at a few hundred
registrations per second; instead the REGISTERs of a few milliseconds share one transaction: the
store's one group-commit writer (``store.group.GroupWriter``) batches ``Store.save_bindings`` calls
with every other write.
"""
from __future__ import annotations

import sqlite3
from dataclasses import astuple, fields
from typing import Iterable

import aiosqlite

from base.bindings import Binding, Change

__all__ = ["Binding", "Change", "apply_changes", "delete_expired", "load_unexpired",
           "validate_changes"]


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
