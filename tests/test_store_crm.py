"""The call-centre store (store.crm) on a real SQLite file: customers, numbers and regions, call
records, screen pop (with its query plans), search and pagination, work-order workflow and
escalation history, voicemail, recordings, block/warning lists, agent states, queue reports and
input validation. Plain functions around ``asyncio.run``; every database lives in ``tmp_path``."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TypeVar

import pytest

from store.crm import TRANSITIONS, CallCentre
from store.db import Store
from store.numbers import NumberPlan, PrefixTable
from store.validation import NotFoundError, TransitionError, UnknownFieldError, ValidationError

T0 = 1_714_953_600.0  # Monday 2024-05-06 00:00 UTC
T = TypeVar("T")
REGIONS = {"030": "Berlin", "+4989": "Munich", "+49891": "Munich North", "0049221": "Cologne"}
SERVICE_POINTS = {"Berlin": "SP Berlin-Mitte", "Munich": "SP Munich"}


def some(value: T | None) -> T:
    """``value``, which the test expects to be there (a lookup that must find something)."""
    assert value is not None
    return value


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        self.t += 1.0  # every event a second apart: orderings are deterministic
        return self.t


def run(coro):
    return asyncio.run(coro)


def with_centre(tmp_path: Path, fn, **kw):
    async def main():
        store = await Store.open(tmp_path / "cc.db")
        cc = CallCentre(store, plan=NumberPlan(country_code="49"), regions=REGIONS, service_points=SERVICE_POINTS,
                        default_service_point="SP Central", clock=Clock(), **kw)
        try:
            return await fn(cc, store)
        finally:
            await cc.close()
            await store.close()

    return run(main())


def raw(path: Path, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------- numbers

def test_number_normalisation_and_longest_prefix():
    plan = NumberPlan(country_code="49")
    for raw_number in ("030 1234-567", "+49 (30) 1234567", "0049301234567", "sip:+49301234567@pbx;user=phone",
                       "tel:030/1234567", " 030.1234567 "):
        assert plan.normalise(raw_number) == "+49301234567", raw_number
    assert plan.normalise("1001") == "1001"  # an extension is never rewritten
    assert NumberPlan().normalise("030 1234") == "0301234"  # no country: separators only
    for bad in ("", "abc", "030-CALL-NOW", "+", "++49", "12" * 20, 301234, None):
        with pytest.raises(ValidationError):
            plan.normalise(bad)
    table = PrefixTable(REGIONS, plan)
    assert table.lookup("+49301234567") == "Berlin"
    assert table.lookup("+4989723") == "Munich"
    assert table.lookup("+49891234") == "Munich North"  # longest prefix wins
    assert table.lookup("+49221555") == "Cologne"
    assert table.lookup("+44207") is None
    with pytest.raises(ValidationError):
        PrefixTable({"*": "everything"}, plan)


# ------------------------------------------------------------------------------- customers

def test_customers_numbers_and_first_call_creates_stub(tmp_path):
    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="Erika Mustermann", phones=["030 1234567", "+49 170 5550001"],
                                     address="Heidestr. 17, Köln", vip_level=2, notes="prefers mornings",
                                     labels={"0170 5550001": "mobile"})
        assert c.id and c.region == "Berlin"  # from the first number
        assert set(c.phones) == {"+491705550001", "+49301234567"}
        assert some(await cc.find_customer("0049 30 1234567")).id == c.id
        assert some(await cc.find_customer("+491705550001")).id == c.id
        with pytest.raises(ValidationError, match="already belongs to customer"):
            await cc.create_customer(name="Someone else", phones=["0301234567"])
        updated = await cc.update_customer(some(c.id), vip_level=5, notes="x")
        assert (updated.vip_level, updated.notes, updated.name) == (5, "x", "Erika Mustermann")
        await cc.add_phone(some(c.id), "089 1111111", label="office")
        assert "+49891111111" in some(await cc.get_customer(some(c.id))).phones
        assert await cc.remove_phone("089 1111111") is True
        assert await cc.remove_phone("089 1111111") is False
        with pytest.raises(NotFoundError):
            await cc.update_customer(999, name="ghost")
        with pytest.raises(NotFoundError):
            await cc.add_phone(999, "0891000")

        # the first call from an unknown number creates a customer with just the number and region
        before = raw(tmp_path / "cc.db", "SELECT COUNT(*) FROM customers")[0][0]
        call_id = await cc.add_call(caller="089 1234 5678", callee="0800 100", arrived_at=T0, answered_at=T0 + 12,
                                    ended_at=T0 + 100, disposition="answered", queue="sales", agent="alice")
        stub = await cc.find_customer("+498912345678")
        assert stub is not None and (stub.name, stub.region, stub.phones) == ("", "Munich North", ["+498912345678"])
        assert raw(tmp_path / "cc.db", "SELECT COUNT(*) FROM customers")[0][0] == before + 1
        call = some(await cc.get_call(call_id))
        assert (call.caller, call.callee, call.wait_s, call.talk_s) == ("+498912345678", "+49800100", 12.0, 88.0)
        # a second call from it does not create another customer
        await cc.add_call(caller="+498912345678", arrived_at=T0 + 500, disposition="abandoned", ended_at=T0 + 530)
        assert raw(tmp_path / "cc.db", "SELECT COUNT(*) FROM customers")[0][0] == before + 1
        again = await cc.ensure_customer("0891 2345678")
        assert again.id == stub.id
        # later facts about a call; times re-derived
        call = await cc.update_call(call_id, survey_score=4, recording="rec/1.wav", caller_loss_pct=0.5,
                                    caller_jitter_ms=3.2, agent_loss_pct=0.0, agent_jitter_ms=1.1, ended_at=T0 + 130)
        assert (call.survey_score, call.talk_s, call.caller_jitter_ms) == (4, 118.0, 3.2)
        with pytest.raises(ValidationError, match="cannot change"):
            await cc.update_call(call_id, caller="0301000")

    with_centre(tmp_path, body)


# ------------------------------------------------------------------------------- validation

def test_bad_input_raises_valueerror_and_changes_nothing(tmp_path):
    path = tmp_path / "cc.db"

    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="A", phones=["0301000"])
        snapshot = raw(path, "SELECT * FROM customers") + raw(path, "SELECT * FROM customer_phones")
        commits = store.commits
        bad_calls = [
            lambda: cc.create_customer(name="x", phones=["0302000"], favourite_colour="red"),   # unknown field
            lambda: cc.create_customer(name=42, phones=["0302000"]),                            # wrong type
            lambda: cc.create_customer(name="x" * 201, phones=["0302000"]),                     # too long
            lambda: cc.create_customer(name="x", phones=["0302000"], vip_level=10),             # out of range
            lambda: cc.create_customer(name="x", phones=["0302000"], vip_level=True),           # bool is not an int
            lambda: cc.create_customer(name="x", phones=["not a number"]),
            lambda: cc.create_customer(name="nul\x00", phones=["0302000"]),
            lambda: cc.update_customer(some(c.id), id=5),
            lambda: cc.update_customer(some(c.id)),
            lambda: cc.add_call(caller="0301000", arrived_at=T0, disposition="teleported"),
            lambda: cc.add_call(caller="0301000", arrived_at="yesterday", disposition="answered"),
            lambda: cc.add_call(caller="0301000", arrived_at=T0, answered_at=T0 - 5, disposition="answered"),
            lambda: cc.add_call(caller="0301000", arrived_at=float("nan"), disposition="answered"),
            lambda: cc.add_call(caller="0301000", disposition="answered"),                     # missing arrived_at
            lambda: cc.add_call(caller="0301000", arrived_at=T0, disposition="answered", survey_score=9),
            lambda: cc.create_order(kind="teleport", customer_id=c.id, created_by="a"),
            lambda: cc.create_order(kind="repair", customer_id="1", created_by="a"),
            lambda: cc.create_order(kind="repair", customer_id=c.id, created_by=""),
            lambda: cc.create_order(kind="repair", customer_id=c.id, created_by="a", priority=1),
            lambda: cc.search_customers(name_prefix="a", limit=0),
            lambda: cc.search_customers(name_prefix="a", after="garbage!"),
            lambda: cc.search_calls(after="eyJ4IjoxfQ"),
            lambda: cc.add_to_list("grey", "0301000", added_by="a"),
            lambda: cc.add_to_list("block", "*", added_by="a"),
            lambda: cc.set_agent_state("", "ready"),
            lambda: cc.queue_report(period="year", since=0, until=1),
        ]
        for make in bad_calls:
            with pytest.raises(ValueError) as err:
                await make()
            assert isinstance(err.value, ValidationError), err.value
            assert str(err.value)
        with pytest.raises(UnknownFieldError, match="favourite_colour"):
            await bad_calls[0]()
        with pytest.raises(NotFoundError):  # a ValidationError (ValueError) and a LookupError
            await cc.create_order(kind="repair", customer_id=12345, created_by="a")
        assert raw(path, "SELECT * FROM customers") + raw(path, "SELECT * FROM customer_phones") == snapshot
        assert raw(path, "SELECT COUNT(*) FROM call_records") == [(0,)]
        assert raw(path, "SELECT COUNT(*) FROM work_orders") == [(0,)]
        assert store.commits - commits <= 1  # only the NotFound order attempt reached a (rolled-back) batch

        # SQL metacharacters are data, stored and found verbatim
        nasty = "Robert'); DROP TABLE customers;-- \" % _ \\ ;"
        n = await cc.create_customer(name=nasty, phones=["0303000"], notes="' OR 1=1 --", address="%")
        assert some(await cc.get_customer(some(n.id))).name == nasty
        assert raw(path, "SELECT name, notes, address FROM customers WHERE id = ?", (n.id,)) == \
            [(nasty, "' OR 1=1 --", "%")]
        assert [x.id for x in (await cc.search_customers(name_prefix="robert'); drop")).items] == [n.id]
        assert (await cc.search_customers(name_prefix="%")).items == []  # LIKE wildcards are not wildcards
        assert (await cc.search_customers(name_prefix="_")).items == []
        await cc.add_call(caller="0303000", arrived_at=T0, disposition="answered", agent="x' OR '1'='1", queue="q;--")
        assert [c.agent for c in (await cc.search_calls(agent="x' OR '1'='1")).items] == ["x' OR '1'='1"]
        assert (await cc.search_calls(agent="' OR 1=1 --")).items == []

    with_centre(tmp_path, body)


# ------------------------------------------------------------------------------- screen pop

def test_screen_pop_and_its_query_plans(tmp_path):
    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="Max", phones=["030 1110", "0170 2220"], vip_level=3)
        other = await cc.create_customer(name="Other", phones=["030 9990"])
        for i in range(8):  # alternate between the customer's two numbers
            await cc.add_call(caller="0301110" if i % 2 else "01702220", arrived_at=T0 + i * 60, disposition="answered",
                              answered_at=T0 + i * 60 + 5, ended_at=T0 + i * 60 + 50, queue="sales", agent="bob")
        await cc.add_call(caller="0309990", arrived_at=T0 + 1000, disposition="abandoned", ended_at=T0 + 1010)
        o1 = await cc.create_order(kind="repair", customer_id=c.id, created_by="bob", summary="boiler")
        o2 = await cc.create_order(kind="delivery", customer_id=c.id, created_by="bob")
        o3 = await cc.create_order(kind="pickup", customer_id=c.id, created_by="bob")
        await cc.create_order(kind="pickup", customer_id=other.id, created_by="bob")
        await cc.assign(o3.id, "tech", actor="bob")
        await cc.set_status(o3.id, "in_progress", actor="tech")
        await cc.set_status(o3.id, "resolved", actor="tech")  # no longer open
        await cc.assign(o2.id, "tech", actor="bob")
        await cc.add_to_list("warn", "0170*", reason="mobile prefix test", added_by="sup")
        await cc.add_to_list("block", "01702220", reason="abusive", added_by="sup", expires_at=T0 - 1)  # expired

        pop = await cc.screen_pop("+49 170 2220", calls=5)
        assert pop.customer.id == c.id and pop.customer.vip_level == 3 and not pop.is_new
        assert [x.arrived_at for x in pop.calls] == [T0 + i * 60 for i in (7, 6, 5, 4, 3)]  # both numbers, newest first
        assert {x.caller for x in pop.calls} == {"+49301110", "+491702220"}
        assert [o.id for o in pop.orders] == [o2.id, o1.id]
        assert [(w.list, w.pattern) for w in pop.warnings] == [("warn", "+49170*")]

        new = await cc.screen_pop("089 555 0000")
        assert new.is_new and new.customer.region == "Munich" and new.customer.phones == ["+49895550000"]
        assert new.calls == [] and new.orders == [] and new.warnings == []
        assert await cc.find_customer("0895550000") is None  # the screen pop itself creates nothing

        # every statement the screen pop runs is an index search: no table scan, no sort
        statements: list[str] = []
        await store.read_sync(lambda conn: conn.set_trace_callback(statements.append))
        await cc.screen_pop("0301110")
        await store.read_sync(lambda conn: conn.set_trace_callback(None))
        return [s for s in statements if s.lstrip().upper().startswith("SELECT")]

    selects = with_centre(tmp_path, body)
    assert len(selects) >= 6
    plans = {}
    conn = sqlite3.connect(tmp_path / "cc.db")
    for sql in selects:
        plan = " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
        plans[sql] = plan
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (sql, plan)
        assert "SEARCH" in plan, (sql, plan)
    conn.close()
    joined = "\n".join(plans.values())
    assert "USING INDEX call_records_caller (caller=?)" in joined
    assert "USING INDEX work_orders_open_by_customer (customer_id=?)" in joined
    assert "USING PRIMARY KEY (number=?)" in joined  # customer_phones
    assert "USING COVERING INDEX customer_phones_customer (customer_id=?)" in joined
    assert "USING INDEX number_lists_digits (digits=?)" in joined


# ------------------------------------------------------------------------------- search

def test_search_and_keyset_pagination(tmp_path):
    async def body(cc: CallCentre, store: Store):
        ids = []
        for i in range(25):
            c = await cc.create_customer(name=f"Schmidt {chr(65 + i % 5)}{i:02d}", phones=[f"030 555{i:03d}"])
            ids.append(c.id)
        await cc.create_customer(name="Schmitz", phones=["089 7000"])
        await cc.create_customer(name="SCHMIDT upper", phones=["089 2000"])

        async def all_pages(search, **kw):
            pages, after = [], None
            while True:
                page = await search(after=after, **kw)
                pages.append([x.id if hasattr(x, "id") else x for x in page.items])
                after = page.next
                if after is None:
                    return pages

        pages = await all_pages(cc.search_customers, name_prefix="schmidt", limit=10)
        assert [len(p) for p in pages] == [10, 10, 6]
        flat = [i for p in pages for i in p]
        assert len(flat) == len(set(flat)) == 26  # Schmitz excluded, case-insensitive, no repeats
        page = await cc.search_customers(name_prefix="Schmidt A", limit=100)
        assert {x.name for x in page.items} == {f"Schmidt A{i:02d}" for i in range(0, 25, 5)}
        by_number = await all_pages(cc.search_customers, number_prefix="030 55500", limit=4)
        assert [i for p in by_number for i in p] == ids[:10]  # ordered by number
        assert (await cc.search_customers(number_prefix="+4930555", limit=100)).items[0].id == ids[0]

        # calls: by agent, caller, time range, minimum talk time; newest first, keyset pages
        for i in range(30):
            await cc.add_call(caller=f"030 555{i % 3:03d}", arrived_at=T0 + i * 100, answered_at=T0 + i * 100 + 10,
                              ended_at=T0 + i * 100 + 10 + i * 5, disposition="answered", queue="sales",
                              agent="ann" if i % 2 else "ben")
        await cc.add_call(caller="030555000", arrived_at=T0 + 1450, disposition="abandoned", ended_at=T0 + 1460,
                          queue="sales")  # same caller, between two of ann's calls
        ann = await all_pages(cc.search_calls, agent="ann", limit=4)
        got = [some(c).arrived_at for p in ann for c in (await asyncio.gather(*(cc.get_call(i) for i in p)))]
        assert got == [T0 + i * 100 for i in range(29, 0, -2)]
        calls = await cc.search_calls(caller="+4930555000", since=T0 + 1000, until=T0 + 2000, limit=50)
        assert [c.arrived_at for c in calls.items] == [T0 + 1800, T0 + 1500, T0 + 1450, T0 + 1200]
        calls = await cc.search_calls(min_talk_s=120, limit=50)  # talk = i * 5 >= 120 -> i >= 24
        assert sorted(some(c.talk_s) for c in calls.items) == [i * 5.0 for i in range(24, 30)]
        calls = await cc.search_calls(agent="ben", min_talk_s=100, since=T0, until=T0 + 2500, limit=50)
        assert [c.arrived_at for c in calls.items] == [T0 + i * 100 for i in (24, 22, 20)]
        # equal arrival times are paged by id, nothing lost or repeated
        for _ in range(5):
            await cc.add_call(caller="0309000", arrived_at=T0 + 9999, disposition="busy")
        pages = await all_pages(cc.search_calls, caller="0309000", limit=2)
        assert [len(p) for p in pages] == [2, 2, 1] and len({i for p in pages for i in p}) == 5

        # work orders by status / kind / region / customer
        berlin = ids[0]
        munich = some(await cc.find_customer("0897000")).id
        made = []
        for i, kind in enumerate(["repair", "complaint", "delivery", "repair", "pickup", "repair"]):
            made.append((await cc.create_order(kind=kind, customer_id=berlin if i % 2 == 0 else munich,
                                               created_by="a")).id)
        await cc.assign(made[0], "t", actor="a")
        res = await cc.search_orders(kind="repair")
        assert [o.id for o in res.items] == [made[5], made[3], made[0]]
        assert [o.id for o in (await cc.search_orders(kind="repair", status="open")).items] == [made[5], made[3]]
        assert [o.id for o in (await cc.search_orders(region="Munich")).items] == [made[5], made[3], made[1]]
        assert [o.id for o in (await cc.search_orders(customer_id=berlin, status=["open", "assigned"])).items] == \
            [made[4], made[2], made[0]]
        pages = await all_pages(cc.search_orders, limit=4)
        assert [i for p in pages for i in p] == made[::-1]
        assert [o.service_point for o in (await cc.search_orders(customer_id=berlin)).items] == ["SP Berlin-Mitte"] * 3

    with_centre(tmp_path, body)
    conn = sqlite3.connect(tmp_path / "cc.db")
    plan = lambda sql, p: " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, p))  # noqa: E731
    assert "customers_name_key" in plan(
        "SELECT id FROM customers c INDEXED BY customers_name_key WHERE c.name_key >= ? AND c.name_key < ? "
        "AND (c.name_key > ? OR c.id > ?) ORDER BY c.name_key, c.id LIMIT 10", ("a", "b", "a", 0))
    p = plan("SELECT id FROM call_records WHERE agent = ? AND arrived_at >= ? AND arrived_at < ? "
             "ORDER BY arrived_at DESC, id DESC LIMIT 10", ("ann", 0, 1e10))
    assert "call_records_agent" in p, p
    conn.close()


# ------------------------------------------------------------------------------- work orders

def test_work_order_transitions_are_enforced(tmp_path):
    path = tmp_path / "cc.db"

    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="C", phones=["0301000"])
        o = await cc.create_order(kind="repair", customer_id=c.id, created_by="ann", summary="washing machine",
                                  due_at=T0 + 86400)
        assert (o.status, o.region, o.service_point) == ("open", "Berlin", "SP Berlin-Mitte")
        # every (from, to) pair is either allowed by TRANSITIONS or refused, from every status
        statuses = list(TRANSITIONS)
        path_to = {"open": [], "assigned": ["assigned"], "in_progress": ["assigned", "in_progress"],
                   "resolved": ["assigned", "in_progress", "resolved"],
                   "closed": ["assigned", "in_progress", "resolved", "closed"]}
        for start in statuses:
            for target in statuses:
                if target == start:
                    continue
                order = await cc.create_order(kind="repair", customer_id=c.id, created_by="ann")
                for step in path_to[start]:
                    order = await cc.set_status(order.id, step, actor="ann")
                assert order.status == start
                if target in TRANSITIONS[start]:
                    order = await cc.set_status(order.id, target, actor="ann", note="ok")
                    assert order.status == target
                else:
                    with pytest.raises(TransitionError, match=f"{start} -> {target} is not allowed"):
                        await cc.set_status(order.id, target, actor="ann")
                    assert some(await cc.get_order(order.id)).status == start
        # the whole path, with who did what
        o = await cc.assign(o.id, "tech-7", actor="disp")
        o = await cc.set_status(o.id, "in_progress", actor="tech-7", expect="assigned")
        with pytest.raises(TransitionError, match="not assigned"):
            await cc.set_status(o.id, "resolved", actor="tech-7", expect="assigned")  # a stale screen
        o = await cc.set_status(o.id, "resolved", actor="tech-7", note="replaced pump")
        with pytest.raises(TransitionError, match="cannot be assigned"):
            await cc.assign(o.id, "x", actor="disp")
        o = await cc.set_status(o.id, "closed", actor="ann")
        assert o.closed_at is not None
        with pytest.raises(TransitionError):
            await cc.update_order(o.id, actor="ann", summary="too late")
        hist = await cc.order_history(o.id)
        assert [(e.action, e.actor, e.from_status, e.to_status) for e in hist] == [
            ("created", "ann", None, "open"), ("assigned", "disp", "open", "assigned"),
            ("status", "tech-7", "assigned", "in_progress"), ("status", "tech-7", "in_progress", "resolved"),
            ("status", "ann", "resolved", "closed")]
        assert hist[3].note == "replaced pump" and hist[1].note == "to tech-7"
        with pytest.raises(NotFoundError):
            await cc.set_status(99999, "assigned", actor="ann")
        return o.id

    oid = with_centre(tmp_path, body)
    # the database refuses a forbidden change even from a plain connection (an operator's shell)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="not allowed"):
        conn.execute("UPDATE work_orders SET status = 'open' WHERE id = ?", (oid,))
    conn.close()


def test_complaint_escalation_history(tmp_path):
    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="Angry", phones=["0897 234"])
        comp = await cc.create_order(kind="complaint", customer_id=c.id, created_by="ann", summary="late delivery")
        assert (comp.region, comp.service_point, comp.escalation) == ("Munich", "SP Munich", 0)
        comp = await cc.escalate(comp.id, actor="ann", note="customer called again")
        comp = await cc.escalate(comp.id, actor="sup-1", note="to team lead")
        with pytest.raises(TransitionError, match="already at level 2"):
            await cc.escalate(comp.id, actor="sup-1", level=2)
        comp = await cc.escalate(comp.id, actor="manager", level=4, note="legal threatened")
        comp = await cc.escalate(comp.id, actor="manager")
        with pytest.raises(TransitionError, match="highest level"):
            await cc.escalate(comp.id, actor="ceo")
        await cc.add_order_note(comp.id, actor="ann", note="voucher sent")
        assert comp.escalation == 5
        hist = await cc.order_history(comp.id)
        assert [(e.action, e.actor, e.escalation, e.note) for e in hist] == [
            ("created", "ann", None, "late delivery"),
            ("escalated", "ann", 1, "customer called again"),
            ("escalated", "sup-1", 2, "to team lead"),
            ("escalated", "manager", 4, "legal threatened"),
            ("escalated", "manager", 5, ""),
            ("note", "ann", None, "voucher sent")]
        assert [e.at for e in hist] == sorted(e.at for e in hist)
        repair = await cc.create_order(kind="repair", customer_id=c.id, created_by="ann", region="Atlantis")
        assert repair.service_point == "SP Central"  # no dispatch entry: the default service point
        with pytest.raises(TransitionError, match="only complaints"):
            await cc.escalate(repair.id, actor="ann")
        updated = await cc.update_order(repair.id, actor="ann", due_at=T0 + 7200, details="bring ladder")
        assert (updated.due_at, updated.details) == (T0 + 7200, "bring ladder")
        assert [e.action for e in await cc.order_history(repair.id)] == ["created", "due"]

    with_centre(tmp_path, body)


# ------------------------------------------------------------------- voicemail, recordings, lists, agents

def test_voicemail_recordings_lists_and_agent_states(tmp_path):
    async def body(cc: CallCentre, store: Store):
        call = await cc.add_call(caller="0301000", arrived_at=T0, disposition="voicemail", ended_at=T0 + 40, queue="q")
        v1 = await cc.add_voicemail(file="vm/1.wav", caller="0301000", callback_number="0170 1000", duration_s=21.5,
                                    call_id=call, queue="q", created_at=T0 + 40)
        v2 = await cc.add_voicemail(file="vm/2.wav", caller="0302000", duration_s=3, created_at=T0 + 50)
        page = await cc.unhandled_voicemails()
        assert [(v.id, v.callback_number) for v in page.items] == [(v1, "+491701000"), (v2, None)]
        done = await cc.handle_voicemail(v1, by="ann")
        assert done.handled_by == "ann" and done.handled_at is not None
        with pytest.raises(TransitionError, match="already handled by ann"):
            await cc.handle_voicemail(v1, by="ben")
        assert [v.id for v in (await cc.unhandled_voicemails()).items] == [v2]

        r = await cc.add_recording(file="rec/a.wav", call_id=call, parties=["+49301", "ann"], started_at=T0 + 5,
                                   duration_s=35)
        await cc.add_recording(file="rec/b.wav", parties=["+49302"], started_at=T0 + 500, duration_s=1)
        assert [(x.id, x.parties) for x in await cc.recordings(call_id=call)] == [(r, ["+49301", "ann"])]
        assert [x.file for x in await cc.recordings(since=T0, until=T0 + 1000)] == ["rec/b.wav", "rec/a.wav"]
        with pytest.raises(sqlite3.IntegrityError):  # one index entry per file
            await cc.add_recording(file="rec/a.wav", started_at=T0, duration_s=1)

        b1 = await cc.add_to_list("block", "0900*", reason="premium", added_by="sup")
        await cc.add_to_list("warn", "0301000", reason="threatened staff", added_by="sup", expires_at=T0 + 3600)
        again = await cc.add_to_list("block", "0900*", reason="premium rate", added_by="sup2")
        assert again == b1  # re-adding updates the entry
        hits = await cc.check_number("0900 123 456", at=T0)
        assert [(h.list, h.pattern, h.reason, h.added_by) for h in hits] == [("block", "+49900*", "premium rate", "sup2")]
        assert [h.list for h in await cc.check_number("0301000", at=T0)] == ["warn"]
        assert await cc.check_number("0301000", at=T0 + 3600) == []  # expired
        assert await cc.check_number("0301 0001", at=T0) == []  # an exact entry is not a prefix
        assert [e.pattern for e in await cc.list_entries("block")] == ["+49900*"]
        assert await cc.remove_from_list(b1) and await cc.check_number("0900123", at=T0) == []

        await cc.set_agent_state("ann", "ready", at=T0)
        await cc.set_agent_state("ann", "busy", at=T0 + 60)
        await cc.set_agent_state("ann", "not_ready", reason="lunch", at=T0 + 300)
        await cc.set_agent_state("ben", "ready", at=T0 + 10)
        with pytest.raises(ValidationError, match="started later"):
            await cc.set_agent_state("ann", "ready", at=T0 + 100)
        hist = await cc.agent_history("ann")
        assert [(s.state, s.reason, s.started_at, s.ended_at) for s in hist] == [
            ("ready", "", T0, T0 + 60), ("busy", "", T0 + 60, T0 + 300), ("not_ready", "lunch", T0 + 300, None)]
        assert [s.state for s in await cc.agent_history("ann", since=T0 + 100, until=T0 + 200)] == ["busy"]
        assert [(s.agent, s.state) for s in await cc.current_agent_states()] == [("ann", "not_ready"),
                                                                                   ("ben", "ready")]

    with_centre(tmp_path, body)


# ------------------------------------------------------------------------------- reports

def test_queue_report_figures_against_hand_computed_values(tmp_path):
    D = 86400.0

    async def body(cc: CallCentre, store: Store):
        async def call(queue, at, wait, talk=None, wrap=None, abandoned=False):
            if abandoned:
                await cc.add_call(caller="0301000", arrived_at=at, ended_at=at + wait, disposition="abandoned",
                                  queue=queue)
            else:
                await cc.add_call(caller="0301000", arrived_at=at, answered_at=at + wait, ended_at=at + wait + talk,
                                  wrap_s=wrap, disposition="answered", queue=queue, agent="ann")

        # Monday 2024-05-06
        await call("sales", T0 + 3600, wait=10, talk=100, wrap=20)     # within 20 s
        await call("sales", T0 + 7200, wait=30, talk=200)              # too slow
        await call("sales", T0 + 9000, wait=50, abandoned=True)
        await call("sales", T0 + 10000, wait=20, talk=60, wrap=0)     # exactly the threshold: within
        await call("support", T0 + 5000, wait=5, talk=50)
        await cc.add_call(caller="0301000", arrived_at=T0 + 100, disposition="answered")  # no queue: not counted
        await call("sales", T0 + D + 100, wait=5, abandoned=True)      # Tuesday
        await call("sales", T0 + 7 * D + 100, wait=40, talk=100)       # next Monday
        await call("sales", T0 - 3 * D, wait=1, talk=1)               # Friday 3 May (previous week, same month)
        await call("late", T0 + 23.5 * 3600, wait=1, talk=1)          # 23:30 UTC = 00:30 next day at UTC+1

        days = await cc.queue_report(period="day", since=T0, until=T0 + 30 * D, sl_threshold_s=20)
        got = {(s.period, s.queue): (s.offered, s.answered, s.abandoned, s.answered_within, s.service_level_pct,
                                     s.asa_s, s.aht_s) for s in days}
        assert got == {
            ("2024-05-06", "sales"): (4, 3, 1, 2, 50.0, 20.0, 126.67),  # ASA (10+30+20)/3; AHT (120+200+60)/3
            ("2024-05-06", "support"): (1, 1, 0, 1, 100.0, 5.0, 50.0),
            ("2024-05-06", "late"): (1, 1, 0, 1, 100.0, 1.0, 1.0),
            ("2024-05-07", "sales"): (1, 0, 1, 0, 0.0, None, None),
            ("2024-05-13", "sales"): (1, 1, 0, 0, 0.0, 40.0, 100.0),
        }
        assert [(s.period, s.queue) for s in days] == sorted(got)  # ordered by period, then queue

        weeks = await cc.queue_report(period="week", since=T0 - 7 * D, until=T0 + 30 * D, queue="sales")
        assert [(s.period, s.offered, s.answered, s.abandoned, s.answered_within, s.service_level_pct, s.asa_s,
                 s.aht_s) for s in weeks] == [
            ("2024-04-29", 1, 1, 0, 1, 100.0, 1.0, 1.0),          # Friday 3 May belongs to the week of Mon 29 Apr
            ("2024-05-06", 5, 3, 2, 2, 40.0, 20.0, 126.67),
            ("2024-05-13", 1, 1, 0, 0, 0.0, 40.0, 100.0)]

        months = await cc.queue_report(period="month", since=0, until=T0 + 60 * D, queue="sales", sl_threshold_s=30)
        # answered waits 10, 30, 20, 40, 1: within 30 s -> 4 of 7 offered
        assert [(s.period, s.offered, s.answered, s.abandoned, s.answered_within, s.service_level_pct, s.asa_s,
                 s.aht_s) for s in months] == [("2024-05-01", 7, 5, 2, 4, 57.14, 20.2, 96.2)]

        local = await cc.queue_report(period="day", since=T0, until=T0 + D, queue="late", utc_offset_s=3600)
        assert [(s.period, s.offered) for s in local] == [("2024-05-07", 1)]
        # the time range is [since, until): a call exactly at `until` is not in it
        assert await cc.queue_report(since=T0 + 3600, until=T0 + 3601, queue="sales") != []
        assert await cc.queue_report(since=T0, until=T0 + 3600, queue="sales") == []

    with_centre(tmp_path, body)


def test_queue_report_service_level_per_queue_threshold_time_outs_apart(tmp_path):
    """Service level = answered within the queue's own threshold / (answered + abandoned): time-outs and
    no-agents exits are counted apart and are in neither; the wait counts from the queue entry; the talk
    ends when the agent's part did; wrap-ups added by call_ref."""
    async def body(cc: CallCentre, store: Store):
        async def answered(queue, at, wait, ref):
            await cc.add_call(call_ref=ref, caller="0301000", arrived_at=at, queued_at=at + 30, answered_at=at + 30 + wait,
                              talk_ended_at=at + 30 + wait + 100, ended_at=at + 30 + wait + 130, disposition="answered",
                              queue=queue, agent="ann")

        await answered("sales", T0 + 100, 25, "s1")    # 25 s in the queue (after 30 s in the IVR)
        await answered("sales", T0 + 200, 35, "s2")
        await answered("support", T0 + 300, 25, "p1")
        await cc.add_call(caller="0301000", arrived_at=T0 + 400, ended_at=T0 + 410, disposition="abandoned",
                          queue="sales")
        for d in ("timeout", "no_agents", "timeout"):
            await cc.add_call(caller="0301000", arrived_at=T0 + 500, queued_at=T0 + 510, ended_at=T0 + 570,
                              disposition=d, queue="sales")
        rec = await cc.add_wrap_up("s1", 12.0)
        assert (rec.wait_s, rec.talk_s, rec.wrap_s) == (25.0, 100.0, 12.0)
        assert (await cc.add_wrap_up("s1", 3.0)).wrap_s == 15.0
        with pytest.raises(NotFoundError):
            await cc.add_wrap_up("no-such-call", 1.0)
        with pytest.raises(ValidationError, match="queued_at"):
            await cc.add_call(caller="0301000", arrived_at=T0, queued_at=T0 - 1, disposition="abandoned")

        rows = {r.queue: r for r in await cc.queue_report(since=T0, until=T0 + 86400, sl_threshold_s=20,
                                                            thresholds={"sales": 30})}
        s, p = rows["sales"], rows["support"]
        assert (s.offered, s.answered, s.abandoned, s.timed_out, s.no_agents) == (6, 2, 1, 2, 1)
        assert (s.answered_within, s.service_level_pct, s.sl_threshold_s) == (1, 33.33, 30.0)   # 1 / (2 + 1)
        assert (s.asa_s, s.aht_s) == (30.0, 107.5)                                               # (200 + 15) / 2
        assert (p.answered_within, p.service_level_pct, p.sl_threshold_s) == (0, 0.0, 20.0)     # the default
        [only] = await cc.queue_report(since=T0, until=T0 + 86400, queue="sales", sl_threshold_s=40)
        assert (only.answered_within, only.service_level_pct) == (2, 66.67)

    with_centre(tmp_path, body)


# ------------------------------------------------------------------------------- group commit

def test_concurrent_writes_share_commits_and_a_failing_one_fails_alone(tmp_path):
    async def body(cc: CallCentre, store: Store):
        c = await cc.create_customer(name="C", phones=["0301000"])
        before = store.commits
        results = await asyncio.gather(
            *(cc.create_order(kind="repair", customer_id=c.id, created_by=f"agent{i}") for i in range(200)),
            cc.create_order(kind="repair", customer_id=424242, created_by="x"),  # fails inside the batch
            return_exceptions=True)
        orders = [r for r in results if not isinstance(r, BaseException)]
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(orders) == 200 and len({o.id for o in orders}) == 200
        assert len(errors) == 1 and isinstance(errors[0], NotFoundError)
        # 200 writes + their read-backs: far fewer write transactions than writes
        assert store.commits - before <= 20, store.commits - before
        assert cc.writer.batches <= 20 + 1
        events = await store.fetchall("SELECT COUNT(*) FROM order_events")
        assert events == [(200,)]  # the failed body left nothing behind

    with_centre(tmp_path, body)
