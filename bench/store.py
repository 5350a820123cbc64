#!/usr/bin/env python3
"""Call-centre store: screen-pop lookups per second with 1,000,000 customers and 5,000,000 call records.

Builds (once; reused while its row counts match, so delete the file after changing the
generator) a database with the real schema (``Store.open``
runs the migrations): 1M customers (30% with a second number), 5M call records over 90 days (90%
from known customers' numbers, 10% from unknown ones, 10 queues, 200 agents) and 200k work orders.
Rows are generated with ``executemany`` in big transactions, journal off, on a plain sqlite3
connection; the file is switched back to WAL afterwards.

Then measures, through the real API (``CallCentre`` over aiosqlite, synchronous=FULL):
  screen pop, known caller     sequential awaits and 32 concurrent callers
  screen pop, unknown caller   (stub with the derived region)
  screen pop, raw              the same queries on a plain sqlite3 connection (no asyncio, no thread hop)
  screen pop under writes      32 poppers while 32 writers record calls (group commit)
  searches and reports         a name-prefix search page, a caller's calls, one day's and one month's queue report

Usage: bench/store.py [--path FILE] [--customers N] [--calls N] [--seconds S] [--no-write]
(writes bench/STORE.md unless --no-write or the sizes differ from the defaults).
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store.crm import CallCentre, _CALL_COLS  # noqa: E402
from store.db import Store  # noqa: E402
from store.migrations import MIGRATIONS  # noqa: E402
from store.numbers import NumberPlan  # noqa: E402

CUSTOMERS = 1_000_000
CALLS = 5_000_000
ORDERS = 200_000
DAY = 86400.0
T0 = 1_714_521_600.0  # 2024-05-01 00:00 UTC
AREAS = ["30", "40", "69", "89", "221", "211", "511", "711", "341", "351"]
REGIONS = {"+4930": "Berlin", "+4940": "Hamburg", "+4969": "Frankfurt", "+4989": "Munich", "+49221": "Cologne",
           "+49211": "Duesseldorf", "+49511": "Hanover", "+49711": "Stuttgart", "+49341": "Leipzig",
           "+49351": "Dresden"}
FIRST = ["Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hans", "Ida", "Jonas", "Karl", "Lena",
         "Max", "Nina", "Otto", "Paula", "Rolf", "Sara", "Tom", "Ute"]
LAST = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schulz", "Hoffmann",
        "Koch", "Richter", "Klein", "Wolf", "Schröder", "Neumann", "Schwarz", "Braun", "Zimmermann", "Krüger"]
DISPOSITIONS = ["answered"] * 80 + ["abandoned"] * 12 + ["voicemail"] * 5 + ["transferred"] * 3


def number(i: int) -> str:
    return f"+49{AREAS[i % len(AREAS)]}{i:08d}"


def build(path: Path, customers: int, calls: int) -> float:
    t = time.perf_counter()

    async def create() -> None:
        store = await Store.open(path, backup=False)
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -4000000")  # 4 GB: index inserts stay in memory
    rnd = random.Random(42)
    chunk = 200_000

    def batches(gen, size=chunk):
        buf = []
        for row in gen:
            buf.append(row)
            if len(buf) >= size:
                yield buf
                buf = []
        if buf:
            yield buf

    second = customers  # second numbers get ids from here on
    phones_of: list[str] = []

    def customer_rows():
        for cid in range(1, customers + 1):
            name = f"{rnd.choice(LAST)} {rnd.choice(FIRST)} {cid}"
            area = AREAS[cid % len(AREAS)]
            yield (cid, name, name.casefold(), f"Street {cid % 500} No. {cid % 97}", REGIONS[f"+49{area}"],
                   1 if cid % 50 == 0 else 0, "", T0 - DAY, T0 - DAY)

    def phone_rows():
        nonlocal second
        for cid in range(1, customers + 1):
            n = number(cid)
            phones_of.append(n)
            yield (n, cid, "", T0 - DAY)
            if cid % 10 < 3:
                second += 1
                n2 = number(second)
                phones_of.append(n2)
                yield (n2, cid, "mobile", T0 - DAY)

    for rows in batches(customer_rows()):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO customers (id, name, name_key, address, region, vip_level, notes, created_at, "
                         "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    for rows in batches(phone_rows()):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO customer_phones (number, customer_id, label, added_at) VALUES (?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    unknown_base = second + 1

    span = 90 * DAY / calls

    def call_rows():
        for i in range(1, calls + 1):
            caller = rnd.choice(phones_of) if rnd.random() < 0.9 else number(unknown_base + rnd.randrange(500_000))
            arrived = T0 + (i + rnd.random()) * span  # records are appended as calls arrive
            disp = rnd.choice(DISPOSITIONS)
            wait = rnd.expovariate(1 / 25)
            if disp in ("answered", "transferred"):
                answered, talk = arrived + wait, rnd.expovariate(1 / 240)
                ended, agent = answered + talk, f"agent{rnd.randrange(200):03d}"
            else:
                answered, talk, ended, agent = None, None, arrived + wait, None
            yield (i, caller, "+49301000", f"q{rnd.randrange(10)}", agent, "1>2", arrived, answered, ended,
                   (answered or ended) - arrived, talk, 15.0 if answered else None, disp,
                   rnd.randrange(1, 6) if answered and i % 7 == 0 else None, 0.1, 4.0, 0.0, 2.5)

    for rows in batches(call_rows()):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO call_records (id, caller, callee, queue, agent, ivr_path, arrived_at, "
                         "answered_at, ended_at, wait_s, talk_s, wrap_s, disposition, survey_score, caller_loss_pct, "
                         "caller_jitter_ms, agent_loss_pct, agent_jitter_ms) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")

    kinds = ["pickup", "delivery", "repair", "complaint", "consultation", "appointment"]
    statuses = ["open", "assigned", "in_progress", "resolved", "closed", "closed", "closed"]

    def order_rows():
        for i in range(1, ORDERS + 1):
            cid = rnd.randrange(1, customers + 1)
            st = rnd.choice(statuses)
            yield (i, rnd.choice(kinds), st, cid, REGIONS[f"+49{AREAS[cid % len(AREAS)]}"], "sp", "bench",
                   T0, T0, T0 if st == "closed" else None)

    for rows in batches(order_rows()):
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO work_orders (id, kind, status, customer_id, region, service_point, created_by, "
                         "created_at, updated_at, closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    conn.execute("CREATE TABLE bench_meta (schema TEXT NOT NULL)")
    conn.execute("INSERT INTO bench_meta VALUES (?)", (schema_hash(),))
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return time.perf_counter() - t


def schema_hash() -> str:
    return hashlib.sha256("".join(m.sql for m in MIGRATIONS).encode()).hexdigest()[:16]


def counts(path: Path) -> tuple[int, int, str]:
    """Row counts and the schema the file was built with (rebuilt when the migrations change)."""
    if not path.exists():
        return (0, 0, "")
    conn = sqlite3.connect(path)
    try:
        return (conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0],
                conn.execute("SELECT COUNT(*) FROM call_records").fetchone()[0],
                conn.execute("SELECT schema FROM bench_meta").fetchone()[0])
    except sqlite3.Error:
        return (0, 0, "")
    finally:
        conn.close()


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


async def measure(path: Path, customers: int, calls: int, seconds: float) -> dict[str, str]:
    rnd = random.Random(7)
    out: dict[str, str] = {}
    store = await Store.open(path, backup=False)
    try:
        cc = CallCentre(store, plan=NumberPlan(country_code="49"), regions=REGIONS)
        known = [number(rnd.randrange(1, customers + 1)) for _ in range(200_000)]
        unknown = [f"+4989{9_000_000_000 + i}" for i in range(200_000)]
        for n in known[:2000]:  # warm the page cache a little, as a running switch would be
            await cc.screen_pop(n)

        async def sequential(numbers: list[str], label: str) -> None:
            lat: list[float] = []
            n_calls = n_orders = 0
            t_end = time.perf_counter() + seconds
            i = 0
            start = time.perf_counter()
            while time.perf_counter() < t_end:
                t = time.perf_counter()
                pop = await cc.screen_pop(numbers[i % len(numbers)])
                lat.append(time.perf_counter() - t)
                n_calls += len(pop.calls)
                n_orders += len(pop.orders)
                i += 1
            rate = i / (time.perf_counter() - start)
            out[label] = (f"{rate:,.0f}/s | {statistics.median(lat) * 1e3:.3f} ms | {pct(lat, 0.99) * 1e3:.3f} ms | "
                          f"{n_calls / i:.1f} calls, {n_orders / i:.2f} open orders")
            print(f"{label:40s} {out[label]}", flush=True)

        async def concurrent(numbers: list[str], label: str, writers: int = 0) -> None:
            lat: list[float] = []
            stop = time.perf_counter() + seconds
            idx = [0]
            written = [0]

            async def popper() -> None:
                while time.perf_counter() < stop:
                    i = idx[0]
                    idx[0] += 1
                    t = time.perf_counter()
                    await cc.screen_pop(numbers[i % len(numbers)])
                    lat.append(time.perf_counter() - t)

            async def writer(w: int) -> None:
                k = 0
                while time.perf_counter() < stop:
                    now = time.time()
                    await cc.add_call(caller=known[(w * 1000 + k) % len(known)], arrived_at=now, answered_at=now + 3,
                                      ended_at=now + 60, disposition="answered", queue="q1", agent=f"agent{w:03d}")
                    written[0] += 1
                    k += 1

            start = time.perf_counter()
            await asyncio.gather(*(popper() for _ in range(32)), *(writer(w) for w in range(writers)))
            el = time.perf_counter() - start
            extra = f"{written[0] / el:,.0f} call records/s written" if writers else "32 concurrent"
            out[label] = (f"{len(lat) / el:,.0f}/s | {statistics.median(lat) * 1e3:.3f} ms | "
                          f"{pct(lat, 0.99) * 1e3:.3f} ms | {extra}")
            print(f"{label:40s} {out[label]}", flush=True)

        await sequential(known, "screen pop, known caller, sequential")
        await sequential(unknown, "screen pop, unknown caller, sequential")
        await concurrent(known, "screen pop, known caller, 32 concurrent")
        before = store.commits
        await concurrent(known, "screen pop while 32 writers record calls", writers=32)
        out["commits"] = str(store.commits - before)

        async def timed(label: str, coro_fn, reps: int = 20) -> None:
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                await coro_fn()
                ts.append(time.perf_counter() - t)
            out[label] = f"{statistics.median(ts) * 1e3:.2f} ms"
            print(f"{label:40s} {out[label]}", flush=True)

        await timed("search customers by name prefix (50)", lambda: cc.search_customers(name_prefix="schmidt anna 1", limit=50))
        await timed("search calls of an agent, one day (50)",
                    lambda: cc.search_calls(agent="agent042", since=T0 + 10 * DAY, until=T0 + 11 * DAY, limit=50))
        await timed("search orders open + region (50)", lambda: cc.search_orders(status="open", region="Munich", limit=50))
        await timed("queue report, one day, 10 queues", lambda: cc.queue_report(since=T0 + 5 * DAY, until=T0 + 6 * DAY))
        await timed("queue report, 30 days by day", lambda: cc.queue_report(since=T0, until=T0 + 30 * DAY), reps=3)
        await timed("queue report, 90 days by month", lambda: cc.queue_report(period="month", since=T0, until=T0 + 90 * DAY),
                    reps=3)
        await cc.close()
        # leave the database as built (the writers added call records), so the next run reuses it
        await store.write_sync(lambda conn: conn.execute("DELETE FROM call_records WHERE id > ?", (calls,)))
    finally:
        # always close: an open store's worker thread would keep the process alive after an error
        await store.close()

    # the same screen-pop queries on a plain connection: the cost of SQLite itself
    conn = sqlite3.connect(path)
    lat = []
    t_end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        n = known[i % len(known)]
        row = conn.execute("SELECT customer_id FROM customer_phones WHERE number = ?", (n,)).fetchone()
        conn.execute("SELECT * FROM customers WHERE id = ?", (row[0],)).fetchone()
        phones = [r[0] for r in conn.execute("SELECT number FROM customer_phones WHERE customer_id = ?", (row[0],))]
        for p in phones:
            conn.execute(f"SELECT {_CALL_COLS} FROM call_records WHERE caller = ? ORDER BY arrived_at DESC LIMIT 10",
                         (p,)).fetchall()
        conn.execute("SELECT * FROM work_orders WHERE customer_id = ? AND status IN ('open', 'assigned', "
                     "'in_progress') ORDER BY id DESC", (row[0],)).fetchall()
        lat.append(time.perf_counter() - t)
        i += 1
    conn.close()
    out["screen pop, raw sqlite3 (same queries)"] = (f"{i / seconds:,.0f}/s | {statistics.median(lat) * 1e3:.3f} ms | "
                                                     f"{pct(lat, 0.99) * 1e3:.3f} ms | no asyncio, no thread hop")
    print(f"{'screen pop, raw sqlite3 (same queries)':40s} {out['screen pop, raw sqlite3 (same queries)']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--path", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "softswitch-store-bench.db")
    ap.add_argument("--customers", type=int, default=CUSTOMERS)
    ap.add_argument("--calls", type=int, default=CALLS)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    build_s = None
    if counts(args.path) != (args.customers, args.calls, schema_hash()):
        for suffix in ("", "-wal", "-shm"):
            Path(str(args.path) + suffix).unlink(missing_ok=True)
        print(f"building {args.path}: {args.customers:,} customers, {args.calls:,} call records...", flush=True)
        build_s = build(args.path, args.customers, args.calls)
        print(f"built in {build_s:.0f} s", flush=True)
    size_mb = args.path.stat().st_size / 1e6
    out = asyncio.run(measure(args.path, args.customers, args.calls, args.seconds))
    if args.no_write or (args.customers, args.calls) != (CUSTOMERS, CALLS):
        return
    import aiosqlite
    rows = [k for k in out if k.startswith("screen pop")]
    lines = [
        "# Call-centre store: screen pop and queries",
        "",
        f"`bench/store.py` ({args.customers:,} customers, 30% with two numbers; {args.calls:,} call records over 90 "
        f"days; {ORDERS:,} work orders; database {size_mb:,.0f} MB; Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, aiosqlite {aiosqlite.__version__}; 2 cores; "
        + (f"generated in {build_s:.0f} s" if build_s else "database reused from an earlier run") + ").",
        "",
        "A screen pop is one `CallCentre.screen_pop(number)`: the number's customer with all its numbers, its last",
        "10 call records from any of them, its open work orders and the block/warning list entries, in one",
        "read transaction in the database thread. A known caller has on average 5 call records per number.",
        "",
        "| screen pop | rate | median | p99 | notes |",
        "|---|---:|---:|---:|---|",
        *[f"| {k.removeprefix('screen pop').strip(', ') or k} | {out[k].replace(' | ', ' | ')} |" for k in rows],
        "",
        f"The run with writers committed {out['commits']} transactions (group commit, synchronous=FULL).",
        "",
        "| query (median of repeats) | time |",
        "|---|---:|",
        *[f"| {k} | {out[k]} |" for k in out if not k.startswith("screen pop") and k != "commits"],
        "",
        "Reading: every screen-pop query is an index lookup (tests/test_store_crm.py asserts the plans with",
        "EXPLAIN QUERY PLAN), so its cost does not grow with the table sizes. Most of the time of an API",
        "screen pop is the hop to aiosqlite's thread and back, not SQLite (compare the raw row); concurrent",
        "callers share one connection and take turns, and writers' commits (fsync) hold the connection too.",
        "Reports read the arrival-time index range and evaluate every call in it, about a million calls a",
        "second (a covering index was tried and made no difference: the cost is evaluating the rows, not",
        "reading them); a month of a 55,000-calls-a-day centre takes seconds. They are for a supervisor's",
        "report page, not the call path; a daily roll-up table would make long ranges cheap if needed.",
        "The machine is shared with other jobs: the rates vary by a factor of about two between runs.",
        "",
    ]
    (ROOT / "bench" / "STORE.md").write_text("\n".join(lines))
    print("wrote bench/STORE.md")


if __name__ == "__main__":
    main()
