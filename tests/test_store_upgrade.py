"""Call-centre schema upgrades (from an empty file and from every earlier version, registrations
kept) and crash durability of acknowledged work-order writes (the writer is killed with SIGKILL)."""
from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from store.bindings import Binding
from store.crm import CallCentre
from store.db import Store
from store.migrations import LATEST_VERSION, MIGRATIONS

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"registrations", "schema_version", "customers", "customer_phones", "call_records", "work_orders",
          "work_order_transitions", "order_events", "voicemails", "recordings", "number_lists", "agent_states"}


def run(coro):
    return asyncio.run(coro)


def raw(path: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def dump(path: Path, table: str) -> list[tuple]:
    return raw(path, f"SELECT * FROM {table} ORDER BY 1, 2")


def test_empty_file_migrates_to_latest(tmp_path):
    path = tmp_path / "s.db"
    path.touch()

    async def main():
        store = await Store.open(path)
        assert store.version == LATEST_VERSION >= 2
        await store.close()

    run(main())
    names = {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert TABLES <= names
    assert [v for v, in raw(path, "SELECT version FROM schema_version ORDER BY version")] == \
        list(range(1, LATEST_VERSION + 1))
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    assert raw(path, "PRAGMA foreign_key_check") == []
    assert not list(tmp_path.glob("*.bak"))


def _old_call_centre_rows(path: Path, now: float) -> None:
    """What a release at schema version 2 wrote: customers, call records of every disposition it knew,
    and the work orders, voicemails and recordings pointing at call records (raw SQL: today's
    ``CallCentre`` writes columns a version-2 table does not have)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN")
    conn.execute("INSERT INTO customers (id, name, name_key, vip_level, created_at, updated_at) "
                 "VALUES (1, 'Old Customer', 'old customer', 3, ?, ?)", (now, now))
    conn.execute("INSERT INTO customer_phones VALUES ('+4930111', 1, 'office', ?)", (now,))
    dispositions = ["answered", "abandoned", "voicemail", "busy", "no_answer", "failed", "transferred", "overflow",
                    "blocked"]
    for i, d in enumerate(dispositions, start=1):
        answered = now + i + 5 if d == "answered" else None
        conn.execute("INSERT INTO call_records (id, call_ref, caller, callee, queue, agent, arrived_at, answered_at, "
                     "ended_at, wait_s, talk_s, wrap_s, disposition, survey_score) "
                     "VALUES (?, ?, '+4930111', '500', 'support', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (i, f"call-{i}", "2001" if answered else None, now + i, answered, now + i + 60,
                      5.0 if answered else 60.0, 55.0 if answered else None, 7.0 if answered else None, d,
                      4 if answered else None))
    conn.execute("INSERT INTO work_orders (id, kind, customer_id, call_id, created_by, created_at, updated_at) "
                 "VALUES (1, 'repair', 1, 1, 'ann', ?, ?)", (now, now))
    conn.execute("INSERT INTO order_events (order_id, at, actor, action) VALUES (1, ?, 'ann', 'created')", (now,))
    conn.execute("INSERT INTO voicemails (file, caller, call_id, duration_s, created_at) "
                 "VALUES ('/vm/1.wav', '+4930111', 3, 12.5, ?)", (now,))
    conn.execute("INSERT INTO recordings (file, call_id, parties, started_at, duration_s) "
                 "VALUES ('/rec/1.wav', 1, '[\"+4930111\", \"2001\"]', ?, 55)", (now,))
    conn.execute("INSERT INTO number_lists (list, digits, is_prefix, added_by, added_at) "
                 "VALUES ('warn', '+49900', 1, 'sup', ?)", (now,))
    conn.execute("INSERT INTO agent_states (agent, state, started_at) VALUES ('2001', 'ready', ?)", (now,))
    conn.execute("COMMIT")
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()


def columns(path: Path, table: str) -> list[str]:
    return [r[1] for r in raw(path, f"PRAGMA table_info({table})")]


@pytest.mark.parametrize("start", range(1, LATEST_VERSION))
def test_upgrade_from_each_earlier_version_keeps_everything(tmp_path, start):
    """A database written by release ``start`` (its migrations only), with data in every table it
    has, is upgraded to the latest schema: the rows are all still there (rebuilt tables included,
    and the rows pointing at them), a copy was saved first, and the new schema works."""
    path = tmp_path / "s.db"
    now = time.time()

    async def old_release():
        store = await Store.open(path, migrations=MIGRATIONS[:start])
        assert store.version == start
        await store.save_bindings([("put", Binding(aor=str(1000 + i), contact_uri=f"sip:{1000 + i}@10.0.0.{i}:5060",
                                                   expires_at=now + 3600, call_id=f"c{i}", cseq=i,
                                                   received=f"udp:203.0.113.{i}:5060", updated_at=now))
                                   for i in range(1, 21)])
        await store.close()

    run(old_release())
    if start >= 2:
        _old_call_centre_rows(path, now)
    conn = sqlite3.connect(path)
    old_tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    conn.close()
    old_columns = {t: columns(path, t) for t in old_tables}
    before = {t: raw(path, f"SELECT {', '.join(old_columns[t])} FROM {t} ORDER BY 1, 2") for t in old_tables}
    assert len(before["registrations"]) == 20
    assert start < 2 or len(before["call_records"]) == 9

    async def upgrade():
        store = await Store.open(path)
        assert store.version == LATEST_VERSION
        await store.close()

    run(upgrade())
    for table, rows in before.items():
        if table == "schema_version":
            assert dump(path, table)[:start] == rows
        else:  # every old column of every old row, as it was (rebuilt tables only gained columns)
            assert set(old_columns[table]) <= set(columns(path, table)), table
            assert raw(path, f"SELECT {', '.join(old_columns[table])} FROM {table} ORDER BY 1, 2") == rows, table
    assert TABLES <= {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert raw(path, "PRAGMA integrity_check") == [("ok",)]
    assert raw(path, "PRAGMA foreign_key_check") == []
    indexes = {r[0] for r in raw(path, "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'call_records'")}
    assert {"call_records_caller", "call_records_agent", "call_records_queue", "call_records_arrived"} <= indexes
    backup = tmp_path / f"s.db.v{start}.bak"
    assert raw(backup, "SELECT MAX(version) FROM schema_version") == [(start,)]
    assert dump(backup, "registrations") == before["registrations"]

    async def new_release():
        store = await Store.open(path)
        bindings = await store.load_bindings(now)
        assert len(bindings) == 20 and bindings[0].received == "udp:203.0.113.1:5060"
        cc = CallCentre(store)
        c = await cc.create_customer(name="after upgrade", phones=["+4930123456"])
        await cc.create_order(kind="repair", customer_id=c.id, created_by="ann")
        for d in ("timeout", "no_agents"):  # the dispositions of version 3
            await cc.add_call(caller="+4930123456", arrived_at=now, queued_at=now + 10, ended_at=now + 70,
                              disposition=d, queue="support")
        if start >= 2:  # an old call record gets a wrap-up; the rows pointing at call records still join
            old_call = await cc.add_wrap_up("call-1", 3.0)
            assert old_call.wrap_s == 10.0
            assert (old_call.hold_seconds, old_call.holds) == (0.0, 0)   # recorded before hold time: none
            assert (await cc.get_order(1)).call_id == 1
            with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced again after the upgrade
                await store.read_sync(lambda conn: conn.execute("DELETE FROM call_records WHERE id = 1"))
        await cc.close()
        await store.close()

    run(new_release())
    assert raw(path, "SELECT disposition, wait_s FROM call_records WHERE disposition IN ('timeout', 'no_agents') "
                     "ORDER BY 1") == [("no_agents", 60.0), ("timeout", 60.0)]


def test_a_migration_that_breaks_a_foreign_key_changes_nothing(tmp_path):
    """Migrations run with foreign keys off (a table rebuild needs it); one that leaves a child row
    pointing nowhere is refused at the end and rolled back whole."""
    from store.migrations import Migration, MigrationError
    path = tmp_path / "s.db"
    now = time.time()

    async def v2():
        store = await Store.open(path, migrations=MIGRATIONS[:2])
        await store.close()

    run(v2())
    _old_call_centre_rows(path, now)
    bad = Migration(3, "loses a parent row", "DELETE FROM call_records WHERE id = 1;")

    async def upgrade():
        with pytest.raises(MigrationError, match="broken foreign key"):
            await Store.open(path, migrations=[*MIGRATIONS[:2], bad])

    run(upgrade())
    assert raw(path, "SELECT MAX(version) FROM schema_version") == [(2,)]
    assert raw(path, "SELECT COUNT(*) FROM call_records") == [(9,)]


def test_upgrade_of_a_version_1_switch_database_in_place(tmp_path):
    """The database a running switch of issue 1-5 has: version 1 plus live registrations, and the WAL
    still holding the last commits (the switch was stopped without a checkpoint)."""
    path = tmp_path / "switch.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    from store.migrations import split_sql
    conn.execute("BEGIN")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL, "
                 "description TEXT NOT NULL)")
    for statement in split_sql(MIGRATIONS[0].sql):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 1.0, 'registrar bindings')")
    conn.execute("COMMIT")
    conn.executemany("INSERT INTO registrations (aor, contact_uri, expires_at, call_id, cseq, updated_at) "
                     "VALUES (?, ?, 4e9, 'c', 1, 0)", [(str(1000 + i), f"sip:{i}@h") for i in range(50)])
    assert Path(str(path) + "-wal").stat().st_size > 0
    # the old process still has the file open (it is stopping) and nothing was checkpointed
    saved = raw(path, "SELECT * FROM registrations ORDER BY aor")

    async def main():
        store = await Store.open(path)
        assert store.version == LATEST_VERSION
        assert len(await store.load_bindings(0)) == 50
        await store.close()

    run(main())
    conn.close()
    assert raw(path, "SELECT * FROM registrations ORDER BY aor") == saved
    assert raw(tmp_path / "switch.db.v1.bak", "SELECT COUNT(*) FROM registrations") == [(50,)]


# ---------------------------------------------------------------------------------- durability

WRITER = textwrap.dedent("""
    import asyncio, sys
    from store.db import Store
    from store.crm import CallCentre

    async def main(path):
        store = await Store.open(path)
        cc = CallCentre(store)
        customer = await cc.create_customer(name="Crash Test", phones=["+4930999000"])
        print("ready", customer.id, flush=True)

        async def agent(n):
            i = 0
            while True:
                order = await cc.create_order(kind="repair", customer_id=customer.id, created_by=f"agent{n}",
                                              summary=f"{n}-{i}")
                sys.stdout.write(f"order {order.id} {n}-{i}\\n")
                sys.stdout.flush()
                if i % 3 == 0:
                    await cc.assign(order.id, f"tech{n}", actor=f"agent{n}")
                    sys.stdout.write(f"assigned {order.id} tech{n}\\n")
                    sys.stdout.flush()
                i += 1

        await asyncio.gather(*(agent(n) for n in range(24)))

    asyncio.run(main(sys.argv[1]))
""")


def test_acknowledged_work_orders_survive_sigkill(tmp_path):
    path = tmp_path / "var" / "cc.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    err_path = tmp_path / "writer.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, stderr=err,
                                env=env, cwd=ROOT, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()
            assert first.startswith("ready "), err_path.read_text()
            acked: list[str] = []
            deadline = time.monotonic() + 10
            while len(acked) < 600 and time.monotonic() < deadline:
                line = proc.stdout.readline()
                assert line, f"writer died: {err_path.read_text()}"
                acked.append(line)
            proc.send_signal(signal.SIGKILL)  # mid-burst: 24 agents are still writing
            acked += proc.stdout.readlines()  # acknowledgements already in the pipe count too
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    complete = [line.split() for line in acked if line.endswith("\n")]
    orders = {int(w[1]): w[2] for w in complete if w[0] == "order"}
    assigned = {int(w[1]): w[2] for w in complete if w[0] == "assigned"}
    assert len(orders) >= 100 and assigned

    async def check():
        store = await Store.open(path)
        try:
            assert await store.fetchall("PRAGMA integrity_check") == [("ok",)]
            assert await store.fetchall("PRAGMA foreign_key_check") == []
            rows = {r[0]: r[1:] for r in await store.fetchall(
                "SELECT id, summary, status, assignee FROM work_orders")}
            events = {(r[0], r[1]) for r in await store.fetchall("SELECT order_id, action FROM order_events")}
        finally:
            await store.close()
        missing = [oid for oid in orders if oid not in rows or rows[oid][0] != orders[oid]]
        assert not missing, f"{len(missing)} acknowledged work order(s) lost, e.g. {missing[:5]}"
        lost = [oid for oid, tech in assigned.items() if rows[oid][1:] != ("assigned", tech)]
        assert not lost, f"acknowledged assignments lost: {lost[:5]}"
        assert all((oid, "created") in events for oid in orders)
        assert all((oid, "assigned") in events for oid in assigned)
        # nothing half-done: every stored order has its creation event
        assert all((oid, "created") in events for oid in rows)

    run(check())


def test_every_foreign_key_column_is_indexed(tmp_path):
    """Deleting a parent row (a retention purge of old calls) checks each child table through an
    index on the referencing column; without one it scans the child table once per deleted row."""
    path = tmp_path / "s.db"

    async def main():
        store = await Store.open(path)
        await store.close()

    run(main())
    conn = sqlite3.connect(path)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    missing = []
    for table in tables:
        leading = set()
        for _, index, _unique, _origin, partial in conn.execute(f"PRAGMA index_list({table})"):
            cols = [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]
            if cols and not partial:
                leading.add(cols[0])
        pk = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[5] == 1]
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})"):
            column = fk[3]
            if column not in leading and pk[:1] != [column]:
                missing.append(f"{table}.{column}")
    conn.close()
    assert not missing, f"foreign key columns without an index: {missing}"
