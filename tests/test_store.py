"""The SQLite store: migrations, registrar bindings, group commit and crash durability.

Plain functions around ``asyncio.run`` (no pytest-asyncio); every database lives in ``tmp_path``.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from store.bindings import Binding
from store.db import Store
from store.migrations import (LATEST_VERSION, MIGRATIONS, Migration, MigrationError, SchemaTooNewError,
                              split_sql)

ROOT = Path(__file__).resolve().parents[1]
FAR = 4_000_000_000.0  # an expiry far in the future


def run(coro):
    return asyncio.run(coro)


def b(aor: str = "1001", uri: str = "sip:1001@192.0.2.10:5060", expires_at: float = FAR, **kw) -> Binding:
    kw.setdefault("call_id", "call-1")
    kw.setdefault("cseq", 1)
    return Binding(aor=aor, contact_uri=uri, expires_at=expires_at, **kw)


def raw_rows(path: Path, sql: str) -> list[tuple]:
    """Read with plain sqlite3, independent of the code under test."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------- open + migrations

def test_open_creates_directory_and_sets_pragmas(tmp_path):
    path = tmp_path / "var" / "sub" / "switch.db"

    async def main():
        store = await Store.open(path)
        try:
            assert store.version == LATEST_VERSION
            assert await store.fetchall("PRAGMA journal_mode") == [("wal",)]
            assert await store.fetchall("PRAGMA synchronous") == [(2,)]  # FULL
            assert await store.fetchall("PRAGMA foreign_keys") == [(1,)]
            assert (await store.fetchall("PRAGMA busy_timeout"))[0][0] >= 1000
        finally:
            await store.close()
        await store.close()  # idempotent

    run(main())
    assert path.exists()


def test_empty_file_migrates_to_latest_and_reopen_does_not_reapply(tmp_path):
    path = tmp_path / "s.db"
    path.touch()  # an empty file is a valid, empty SQLite database

    async def main():
        store = await Store.open(path)
        assert store.version == LATEST_VERSION
        await store.save_bindings([("put", b())])
        await store.close()
        first = raw_rows(path, "SELECT version, applied_at, description FROM schema_version")
        assert [(v, d) for v, _, d in first] == [(m.version, m.description) for m in MIGRATIONS]
        assert first[0][2] == "registrar bindings"

        store = await Store.open(path)
        assert store.version == LATEST_VERSION
        assert [x.contact_uri for x in await store.load_bindings(time.time())] == ["sip:1001@192.0.2.10:5060"]
        await store.close()
        assert raw_rows(path, "SELECT version, applied_at, description FROM schema_version") == first

    run(main())
    cols = [r[1] for r in raw_rows(path, "PRAGMA table_info(registrations)")]
    assert cols == ["aor", "contact_uri", "expires_at", "call_id", "cseq", "q", "received", "user_agent",
                    "instance_id", "path", "updated_at"]
    assert ("registrations_expires_at",) in raw_rows(path, "SELECT name FROM sqlite_master WHERE type = 'index'")
    assert not list(tmp_path.glob("*.bak"))  # nothing to back up on a fresh database


def test_database_from_newer_release_is_refused_untouched(tmp_path):
    path = tmp_path / "s.db"

    async def setup():
        store = await Store.open(path)
        await store.save_bindings([("put", b())])
        await store.close()

    run(setup())
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 0, 'from the future')", (LATEST_VERSION + 1,))
    conn.commit()
    conn.close()
    threads_before = set(threading.enumerate())

    with pytest.raises(SchemaTooNewError) as err:
        run(Store.open(path))
    msg = str(err.value)
    assert str(path) in msg and f"version {LATEST_VERSION + 1}" in msg and "newer" in msg
    # the failed open closed its connection: its worker thread ends (it may take a moment to exit)
    for t in set(threading.enumerate()) - threads_before:
        t.join(2)
        assert not t.is_alive(), f"{t} left running"
    assert raw_rows(path, "SELECT COUNT(*) FROM registrations") == [(1,)]
    assert raw_rows(path, "SELECT MAX(version) FROM schema_version") == [(LATEST_VERSION + 1,)]


def test_upgrade_keeps_data_and_saves_a_copy_first(tmp_path):
    path = tmp_path / "s.db"
    v2 = Migration(2, "contact notes", """
        ALTER TABLE registrations ADD COLUMN note TEXT NOT NULL DEFAULT '';  -- a ';' in a comment
        CREATE TABLE audit (id INTEGER PRIMARY KEY, what TEXT NOT NULL DEFAULT 'a;b');
        CREATE TRIGGER registrations_audit AFTER INSERT ON registrations BEGIN
            INSERT INTO audit (what) VALUES ('put;' || NEW.aor);
        END;
    """)

    async def main():
        store = await Store.open(path, migrations=MIGRATIONS[:1])
        await store.save_bindings([("put", b(uri="sip:old@192.0.2.1"))])
        await store.close()

        store = await Store.open(path, migrations=[MIGRATIONS[0], v2])
        assert store.version == 2
        assert [x.contact_uri for x in await store.load_bindings(0)] == ["sip:old@192.0.2.1"]
        await store.save_bindings([("put", b(aor="1002"))])  # still works with the new column
        assert await store.fetchall("SELECT what FROM audit") == [("put;1002",)]
        assert await store.fetchall("SELECT aor, note FROM registrations ORDER BY aor") == [("1001", ""),
                                                                                           ("1002", "")]
        await store.close()

    run(main())
    assert [v for v, *_ in raw_rows(path, "SELECT * FROM schema_version ORDER BY version")] == [1, 2]
    backup = tmp_path / "s.db.v1.bak"
    assert raw_rows(backup, "SELECT MAX(version) FROM schema_version") == [(1,)]
    assert raw_rows(backup, "SELECT contact_uri FROM registrations") == [("sip:old@192.0.2.1",)]


def test_failed_migration_changes_nothing(tmp_path):
    path = tmp_path / "s.db"
    bad = Migration(2, "broken", "CREATE TABLE half_done (x); INSERT INTO no_such_table VALUES (1);")

    async def main():
        store = await Store.open(path, migrations=MIGRATIONS[:1])
        await store.save_bindings([("put", b())])
        await store.close()
        with pytest.raises(MigrationError, match=r"migration 2 \(broken\).*no_such_table.*version 1"):
            await Store.open(path, migrations=[MIGRATIONS[0], bad])
        store = await Store.open(path, migrations=MIGRATIONS[:1])  # the release it came from still opens it
        assert store.version == 1
        assert len(await store.load_bindings(0)) == 1
        assert await store.fetchall("SELECT name FROM sqlite_master WHERE name = 'half_done'") == []
        await store.close()

    run(main())


def test_migration_list_must_be_numbered_from_one(tmp_path):
    with pytest.raises(ValueError, match="numbered"):
        run(Store.open(tmp_path / "s.db", migrations=[MIGRATIONS[0], Migration(3, "gap", "SELECT 1")]))


def test_split_sql():
    script = """
        -- leading comment; with a semicolon
        CREATE TABLE t (a TEXT DEFAULT 'x;y');
        /* block; comment */
        CREATE TRIGGER tr AFTER INSERT ON t BEGIN
            UPDATE t SET a = 'z;' WHERE rowid = NEW.rowid;
            SELECT 1;
        END;
        INSERT INTO t VALUES ('no trailing semicolon')
        -- trailing comment
    """
    parts = split_sql(script)
    assert len(parts) == 3
    assert parts[0].endswith("CREATE TABLE t (a TEXT DEFAULT 'x;y');")
    assert "SELECT 1;" in parts[1] and parts[1].endswith("END;")
    assert parts[2].startswith("INSERT INTO t")
    with pytest.raises(ValueError, match="incomplete"):
        split_sql("CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1;")


# ---------------------------------------------------------------------------------------- bindings

def test_save_and_load_bindings(tmp_path):
    path = tmp_path / "s.db"
    now = 1_700_000_000.0

    async def main():
        store = await Store.open(path)
        full = b("1001", "sip:1001@10.0.0.5:5060;transport=tcp", now + 3600, call_id="abc@host", cseq=7, q=0.5,
                 received="tcp:203.0.113.5:40312", user_agent="Yealink T46U",
                 instance_id="<urn:uuid:00000000-0000-1000-8000-000000000001>", path="<sip:edge;lr>",
                 updated_at=now)
        await store.save_bindings([
            ("put", full),
            ("put", b("1001", "sip:other@10.0.0.6", now + 60)),
            ("put", b("1002", "sip:1002@10.0.0.7", now + 60)),
            ("put", b("1002", "sip:1002b@10.0.0.7", now + 60)),
            ("put", b("1003", "sip:gone@10.0.0.8", now - 1)),   # already expired
            ("put", b("1003", "sip:edge@10.0.0.8", now)),       # expires exactly now: expired
        ])
        # order inside one batch matters: put-then-del deletes, del-then-put keeps
        await store.save_bindings([
            ("put", b("1004", "sip:temp@10.0.0.9")), ("del", ("1004", "sip:temp@10.0.0.9")),
            ("del", ("1005", "sip:x@10.0.0.9")), ("put", b("1005", "sip:x@10.0.0.9")),
            ("del_aor", ("1002", "")),
            ("del", ("1001", "sip:no-such-contact")),  # deleting nothing is fine
        ])
        # an upsert replaces every column
        await store.save_bindings([("put", b("1001", "sip:other@10.0.0.6", now + 120, call_id="new", cseq=9,
                                             q=0.1, received="udp:198.51.100.1:5060", updated_at=now + 1))])
        loaded = {(x.aor, x.contact_uri): x for x in await store.load_bindings(now)}
        assert set(loaded) == {("1001", "sip:1001@10.0.0.5:5060;transport=tcp"), ("1001", "sip:other@10.0.0.6"),
                               ("1005", "sip:x@10.0.0.9")}
        assert loaded["1001", "sip:1001@10.0.0.5:5060;transport=tcp"] == full
        other = loaded["1001", "sip:other@10.0.0.6"]
        assert (other.expires_at, other.call_id, other.cseq, other.q, other.received, other.updated_at) == \
            (now + 120, "new", 9, 0.1, "udp:198.51.100.1:5060", now + 1)
        # load_bindings deleted the expired rows from the file
        assert await store.fetchall("SELECT COUNT(*) FROM registrations WHERE aor = '1003'") == [(0,)]

        await store.save_bindings([("put", b("1006", "sip:a@1", now + 10)), ("put", b("1006", "sip:b@1", now + 20))])
        assert await store.purge_expired(now + 15) == 1
        assert await store.purge_expired(now + 15) == 0
        commits = store.commits
        await store.save_bindings([])  # nothing to do: no transaction, no fsync
        assert store.commits == commits
        await store.close()

    run(main())


def test_bad_batch_writes_nothing(tmp_path):
    async def main():
        store = await Store.open(tmp_path / "s.db")
        commits = store.commits
        for bad in (("bogus", b()), ("put", ("1001", "x")), ("del", b()), ("del", ("1001",)), "put"):
            with pytest.raises(ValueError):
                await store.save_bindings([("put", b(uri="sip:first@1")), bad])  # type: ignore[list-item]
        assert store.commits == commits
        # a failure inside SQLite (NOT NULL) rolls back the earlier changes of the batch too
        with pytest.raises(sqlite3.IntegrityError):
            await store.save_bindings([("put", b(uri="sip:first@1")), ("put", b(uri="sip:second@1", call_id=None))])
        assert await store.load_bindings(0) == []
        await store.save_bindings([("put", b(uri="sip:first@1"))])  # the connection is still usable
        assert len(await store.load_bindings(0)) == 1
        await store.close()

    run(main())


def test_concurrent_and_cancelled_writers_leave_no_dangling_transaction(tmp_path):
    async def main():
        store = await Store.open(tmp_path / "s.db")
        # direct concurrent callers share one connection: their transactions must not interleave
        await asyncio.gather(*(store.save_bindings([("put", b(str(i), f"sip:{i}@1"))]) for i in range(30)))
        # a caller cancelled mid-commit: the transaction still completes on its own
        task = asyncio.ensure_future(store.save_bindings([("put", b("cancelled", "sip:c@1"))]))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await store.save_bindings([("put", b("after", "sip:a@1"))])
        aors = {x.aor for x in await store.load_bindings(0)}
        assert aors == {str(i) for i in range(30)} | {"cancelled", "after"}
        await store.close()  # waits for anything still in flight
        with pytest.raises(Exception, match="closed"):
            await store.save_bindings([("put", b())])

    run(main())


# ---------------------------------------------------------------------------------- group commit

def test_concurrent_registrations_share_commits(tmp_path):
    """1,000 REGISTERs saved at once cost a handful of transactions (the store's one group-commit writer)."""
    async def main():
        store = await Store.open(tmp_path / "s.db")
        before, batches = store.commits, store.writer.batches
        await asyncio.gather(*(store.save_bindings([("put", b(str(1000 + i % 50), f"sip:{i}@10.0.0.1"))])
                               for i in range(1000)))
        transactions = store.commits - before
        assert transactions == store.writer.batches - batches
        assert 2 <= transactions <= 20, transactions  # far fewer than 1000
        rows = await store.load_bindings(0)
        assert {x.contact_uri for x in rows} == {f"sip:{i}@10.0.0.1" for i in range(1000)}
        await store.close()

    run(main())


def test_a_failed_commit_reaches_every_waiter_of_the_batch_and_the_writer_recovers(tmp_path):
    async def main():
        store = await Store.open(tmp_path / "s.db")
        original = store.write_sync
        fail = [True]

        async def flaky(body):
            if fail[0]:
                fail[0] = False
                raise OSError("disk on fire")
            return await original(body)

        store.write_sync = flaky  # type: ignore[method-assign]
        results = await asyncio.gather(*(store.save_bindings([("put", b(uri=f"sip:{i}@1"))]) for i in range(10)),
                                       return_exceptions=True)
        assert all(isinstance(r, OSError) and "disk on fire" in str(r) for r in results), results
        with pytest.raises(ValueError):
            await store.save_bindings([("nope", b())])  # type: ignore[list-item]  # fails its caller only
        await store.save_bindings([("put", b(uri="sip:later@1"))])
        assert [x.contact_uri for x in await store.load_bindings(0)] == ["sip:later@1"]
        await store.close()

    run(main())


def test_one_registrations_changes_commit_together_and_close_flushes(tmp_path):
    async def main():
        store = await Store.open(tmp_path / "s.db")
        bad = ("put", b("x", "sip:bad@1", call_id=None))  # violates NOT NULL inside the transaction
        tasks = [asyncio.ensure_future(store.save_bindings([("put", b(str(i), f"sip:{i}-{k}@1")) for k in range(3)]))
                 for i in range(5)]
        tasks.append(asyncio.ensure_future(store.save_bindings([("put", b("y", "sip:y@1")), bad])))
        await asyncio.sleep(0)
        await store.close()  # everything submitted before close is committed (or refused as a whole)
        assert all(t.done() for t in tasks)
        assert all(t.exception() is None for t in tasks[:5]) and tasks[5].exception() is not None
        store = await Store.open(tmp_path / "s.db")
        rows = await store.load_bindings(0)
        assert len(rows) == 15 and not any(x.aor == "y" for x in rows)  # "y" went with its bad partner
        await store.close()

    run(main())


# ---------------------------------------------------------------------------------- durability

CHILD = textwrap.dedent("""
    import asyncio, sys
    from store.bindings import Binding
    from store.db import Store

    async def main(path):
        store = await Store.open(path)
        print("ready", flush=True)

        async def phone(n):
            i = 0
            while True:
                uri = f"sip:{n}-{i}@10.1.0.{n}:5060"
                await store.save_bindings([("put", Binding(aor=str(n), contact_uri=uri, expires_at=4e9,
                                                           call_id=f"c{n}", cseq=i, received=f"udp:10.1.0.{n}:5060"))])
                sys.stdout.write(f"{n} {uri}\\n")
                sys.stdout.flush()
                i += 1

        await asyncio.gather(*(phone(n) for n in range(1, 33)))

    asyncio.run(main(sys.argv[1]))
""")


def test_acknowledged_bindings_survive_sigkill(tmp_path):
    path = tmp_path / "var" / "s.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(tmp_path / "child.err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=ROOT, text=True)
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n", (tmp_path / "child.err").read_text()
            acked: list[str] = []
            deadline = time.monotonic() + 8
            while len(acked) < 400 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                assert line, f"child died: {(tmp_path / 'child.err').read_text()}"
                acked.append(line)
            proc.send_signal(signal.SIGKILL)  # mid-burst: 32 phones are still registering
            acked += proc.stdout.readlines()  # acknowledgements already in the pipe count too
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    complete = [line.split() for line in acked if line.endswith("\n")]
    assert len(complete) >= 50

    async def check():
        store = await Store.open(path)
        try:
            assert await store.fetchall("PRAGMA integrity_check") == [("ok",)]
            present = {(x.aor, x.contact_uri) for x in await store.load_bindings(time.time())}
        finally:
            await store.close()
        missing = [tuple(c) for c in complete if tuple(c) not in present]
        assert not missing, f"{len(missing)} acknowledged binding(s) lost, e.g. {missing[:3]}"

    run(check())
