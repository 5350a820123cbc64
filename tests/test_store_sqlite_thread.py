"""``store.sqlite_thread``: synchronous bodies reach aiosqlite's database thread through its public API,
and the store uses no private aiosqlite attribute (an aiosqlite upgrade must not break the store).

Plain functions around ``asyncio.run`` (no pytest-asyncio), like ``test_store``.
"""
from __future__ import annotations

import ast
import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from store.db import Store
from store.sqlite_thread import ThreadConnection, connect, run_in_thread

ROOT = Path(__file__).resolve().parents[1]


def test_body_runs_in_the_database_thread_in_one_call(tmp_path):
    async def main():
        conn = await connect(str(tmp_path / "t.db"), isolation_level=None)
        try:
            await conn.execute("CREATE TABLE t (x INTEGER)")
            loop_thread = threading.get_ident()

            def body(raw: sqlite3.Connection) -> tuple[int, int, type]:
                raw.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
                (total,), = raw.execute("SELECT SUM(x) FROM t").fetchall()
                return threading.get_ident(), total, type(raw)

            thread, total, cls = await run_in_thread(conn, body)
            assert thread != loop_thread
            assert total == 6
            assert cls is ThreadConnection
            # ordinary SQL with parameters still goes through the same execute
            assert await conn.execute_fetchall("SELECT x FROM t WHERE x > ?", (1,)) == [(2,), (3,)]
        finally:
            await conn.close()

    asyncio.run(main())


def test_body_error_is_raised_and_the_connection_stays_usable(tmp_path):
    async def main():
        conn = await connect(str(tmp_path / "t.db"), isolation_level=None)
        try:
            def body(raw: sqlite3.Connection) -> None:
                raw.execute("SELECT * FROM no_such_table")

            with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
                await run_in_thread(conn, body)
            assert await run_in_thread(conn, lambda raw: raw.execute("SELECT 41 + 1").fetchone()) == (42,)
        finally:
            await conn.close()

    asyncio.run(main())


def test_store_sync_bodies_commit_and_roll_back(tmp_path):
    async def main():
        store = await Store.open(tmp_path / "s.db")
        try:
            await store.write_sync(lambda raw: raw.execute("CREATE TABLE t (x INTEGER)"))
            await store.write_sync(lambda raw: raw.execute("INSERT INTO t VALUES (1)"))

            def failing(raw: sqlite3.Connection) -> None:
                raw.execute("INSERT INTO t VALUES (2)")
                raise ValueError("no")

            with pytest.raises(ValueError):
                await store.write_sync(failing)
            assert await store.read_sync(lambda raw: raw.execute("SELECT x FROM t").fetchall()) == [(1,)]
            assert await store.fetchall("SELECT x FROM t") == [(1,)]
        finally:
            await store.close()

    asyncio.run(main())


PRIVATE = {"_conn", "_execute", "_connection", "_tx", "_running", "_thread", "_connector", "_cursor",
           "_execute_fetchall", "_execute_insert"}


def test_store_uses_no_private_aiosqlite_attributes():
    found = []
    for path in sorted((ROOT / "store").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert not found, found
