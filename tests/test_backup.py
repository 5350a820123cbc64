"""``softswitch backup`` while the store takes a burst of concurrent writes (call records and registrations
through its group commit), run as its own process like an operator's: the copy passes ``PRAGMA
integrity_check`` and holds every write acknowledged before the backup started. ``softswitch restore``:
refused while the database is open, then puts the backup back and keeps the replaced database."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from base.bindings import Binding
from store.crm import CallCentre
from store.db import Store

from .conftest import ROOT

pytestmark = pytest.mark.timeout(120)


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "softswitch.cli", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def binding(i: int) -> Binding:
    now = time.time()
    return Binding(aor=f"{1000 + i % 50}", contact_uri=f"sip:{1000 + i % 50}@10.{i // 62500 % 250}.{i // 250 % 250}."
                   f"{i % 250}:5060", expires_at=now + 3600, call_id=f"c{i}", cseq=1, received="udp:10.0.0.1:5060",
                   updated_at=now)


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_backup_during_a_burst_of_writes_holds_everything_acknowledged(tmp_path):
    db, dest = tmp_path / "var" / "softswitch.db", tmp_path / "backup.db"

    async def run() -> tuple[set[int], set[tuple[str, str]], int, int, str]:
        store = await Store.open(db)
        centre = CallCentre(store)
        calls: list[int] = []
        contacts: list[tuple[str, str]] = []
        stop = asyncio.Event()

        async def call_writer(w: int) -> None:
            n = 0
            while not stop.is_set():
                t = time.time()
                calls.append(await centre.add_call(caller=f"+86138{w:02d}{n:06d}", arrived_at=t - 30,
                                                   answered_at=t - 20, ended_at=t, disposition="answered",
                                                   queue="support", agent="2001"))
                n += 1

        async def registrar(w: int) -> None:
            i = w * 100_000
            while not stop.is_set():
                b = binding(i)
                await store.save_bindings([("put", b)])
                contacts.append((b.aor, b.contact_uri))
                i += 1

        writers = [asyncio.ensure_future(call_writer(w)) for w in range(12)]
        writers += [asyncio.ensure_future(registrar(w)) for w in range(4)]
        while len(calls) < 300:                 # a burst under way
            await asyncio.sleep(0.01)
        acked_calls, acked_contacts = set(calls), set(contacts)   # acknowledged before the backup starts
        rc, out = await cli("backup", str(dest), "--db", str(db))
        during = len(calls) - len(acked_calls)
        stop.set()
        await asyncio.gather(*writers)
        total = len(calls)
        await centre.close()
        await store.close()
        assert rc == 0, out
        return acked_calls, acked_contacts, during, total, out

    acked_calls, acked_contacts, during, total, out = asyncio.run(run())
    assert "backed up to" in out, out
    assert during > 0, "no write was acknowledged while the backup ran: not a backup under load"
    assert rows(dest, "PRAGMA integrity_check") == [("ok",)]
    assert rows(dest, "PRAGMA journal_mode") == [("delete",)]      # one self-contained file
    assert not Path(str(dest) + "-wal").exists()
    in_backup = {r[0] for r in rows(dest, "SELECT id FROM call_records")}
    assert acked_calls <= in_backup, f"{len(acked_calls - in_backup)} acknowledged call records missing"
    contacts = set(rows(dest, "SELECT aor, contact_uri FROM registrations"))
    assert acked_contacts <= contacts, f"{len(acked_contacts - contacts)} acknowledged registrations missing"
    assert len(in_backup) < total          # the copy is one instant; the writes went on after it
    assert not list(tmp_path.glob(".backup.db.*.tmp"))


def test_backup_refuses_to_overwrite_and_reports_a_missing_database(tmp_path):
    (tmp_path / "exists.db").write_bytes(b"x")

    async def run() -> None:
        rc, out = await cli("backup", str(tmp_path / "exists.db"), "--db", str(tmp_path / "nope.db"))
        assert rc == 2 and "exists" in out, out
        rc, out = await cli("backup", str(tmp_path / "new.db"), "--db", str(tmp_path / "nope.db"))
        assert rc == 2 and "no database" in out, out

    asyncio.run(run())


def test_restore_refused_while_open_then_restores(tmp_path):
    db, dest = tmp_path / "var" / "softswitch.db", tmp_path / "backup.db"

    async def run() -> None:
        store = await Store.open(db)
        centre = CallCentre(store)
        kept = [await centre.add_call(caller=f"+8613800{i:04d}", arrived_at=time.time(), disposition="abandoned")
                for i in range(20)]
        rc, out = await cli("backup", str(dest), "--db", str(db))
        assert rc == 0, out
        later = await centre.add_call(caller="+8613900000000", arrived_at=time.time(), disposition="abandoned")
        rc, out = await cli("restore", str(dest), "--db", str(db))   # the "switch" still has it open
        assert rc == 1 and "in use" in out and "stop the switch" in out, out
        await centre.close()
        await store.close()
        rc, out = await cli("restore", str(dest), "--db", str(db))
        assert rc == 0 and "restored" in out, out
        ids = {r[0] for r in rows(db, "SELECT id FROM call_records")}
        assert set(kept) <= ids and later not in ids
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]
        saved = list(db.parent.glob("softswitch.db.before-restore-*"))
        assert len(saved) == 1 and later in {r[0] for r in rows(saved[0], "SELECT id FROM call_records")}
        store = await Store.open(db)                   # the switch opens the restored database
        assert len(await store.fetchall("SELECT id FROM call_records")) == len(kept)
        await store.close()
        (tmp_path / "junk.db").write_bytes(b"not a database at all" * 100)
        rc, out = await cli("restore", str(tmp_path / "junk.db"), "--db", str(db))
        assert rc == 2, out

    asyncio.run(run())
