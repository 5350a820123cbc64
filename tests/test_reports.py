"""Reports checked against hand-computed figures on a scripted day (``store.reports``): calls, agent states and
work orders written to a real store with known times; the day's and the week's figures per queue, per agent
and per campaign, the work-order sections, the CSV and XLSX exports and the charts all show the numbers
worked out by hand below; the nightly export writes its files once."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest

from softswitch.reports.charts import CHARTS, chart
from softswitch.reports.export import to_csv, to_xlsx
from softswitch.reports.nightly import NightlyExport, due, next_run
from store.crm import CallCentre
from store.db import Store
from store.reports import build_report

D = 1_772_409_600.0          # 2026-03-02 00:00 UTC, a Monday
H = 3600.0


def at(hours: float, day: int = 0) -> float:
    return D + day * 86400 + hours * H


# calls put on hold: call index -> (hold seconds, holds). c0 (2001) held twice, 30 s in all; c3 (2001) once, 45 s;
# Tuesday's c8 (2001) once, 10 s. Nobody else held.
HOLDS = {0: (30.0, 2), 3: (45.0, 1), 8: (10.0, 1)}


async def scripted_day(path: Path) -> tuple[Store, CallCentre, list[float]]:
    clock = [at(8)]
    store = await Store.open(path)
    centre = CallCentre(store, clock=lambda: clock[0])
    # support (threshold 20 s) and sales (30 s). (queue, agent, arrived, wait, talk, wrap, disposition, score)
    calls = [
        ("support", "2001", at(9), 10, 120, 30, "answered", 5),
        ("support", "2002", at(9.05), 30, 60, 20, "answered", 3),       # answered after the threshold
        ("support", None, at(9.1), 40, None, None, "abandoned", None),
        ("support", "2001", at(9.2), 5, 200, 10, "transferred", 4),
        ("support", None, at(10), 8, None, None, "abandoned", None),
        ("support", None, at(10.5), 60, None, None, "voicemail", None),
        ("sales", "2002", at(11), 25, 100, 0, "answered", 5),
        ("sales", None, at(11.5), 90, None, None, "timeout", None),
        ("support", "2001", at(9, day=1), 12, 50, 10, "answered", None),   # Tuesday: in the week, not the day
    ]
    for i, (queue, agent, arrived, wait, talk, wrap, disp, score) in enumerate(calls):
        fields: dict[str, Any] = {"call_ref": f"c{i}", "caller": f"13800138{i:03d}", "queue": queue, "arrived_at": arrived,
                  "queued_at": arrived, "disposition": disp}
        if talk is not None:
            fields.update(agent=agent, answered_at=arrived + wait, ended_at=arrived + wait + talk, wrap_s=wrap,
                          talk_ended_at=arrived + wait + talk)
        else:
            fields.update(ended_at=arrived + wait)
        if score is not None:
            fields["survey_score"] = score
        if i == 1:
            fields["transfers"] = 1          # 2002 transferred the caller on (the call stays "answered")
        if i in HOLDS:
            fields["hold_seconds"], fields["holds"] = HOLDS[i]   # within the talk: talk_s stays the connected time
        await centre.add_call(**fields)
    # queue billing (threshold 20 s): agent 2003 answers after 10 s, talks 60 s and blind-transfers the caller to
    # agent 2004 at her extension, who talks 90 s; 2003's wrap-up is 15 s. The record is the one the switch writes:
    # the queue's call, answered by 2003, its talk the queue agent's part (60 s), one transfer; the parts say who
    # did what (softswitch.agentparts).
    t = at(14)
    await centre.add_call(call_ref="c-billing", caller="13800138555", queue="billing", agent="2003", arrived_at=t,
                          queued_at=t, answered_at=t + 10, talk_ended_at=t + 70, ended_at=t + 160, wrap_s=15,
                          transfers=1, disposition="answered", survey_score=2,
                          parts=[{"agent": "2003", "queue": "billing", "answered_at": t + 10, "ended_at": t + 70,
                                  "transferred": True, "wrap_s": 15.0},
                                 {"agent": "2004", "answered_at": t + 70, "ended_at": t + 160}])
    # agent 2001: ready 8-9, on a call 9-9:30, wrap-up 9:30-9:40, ready to 12, lunch 12-13, ready to 17, out
    for state, hours in (("ready", 8), ("on-call", 9), ("wrap-up", 9.5), ("ready", 9 + 40 / 60), ("not-ready", 12),
                         ("ready", 13), ("logged-out", 17)):
        await centre.set_agent_state("2001", state, at=at(hours))
    # agent 2002: ready 22:00 Monday to 02:00 Tuesday (cut at midnight)
    await centre.set_agent_state("2002", "ready", at=at(22))
    await centre.set_agent_state("2002", "logged-out", at=at(2, day=1))
    # work orders created on Monday
    cust = await centre.create_customer(name="C", phones=["13800138999"], region="north")
    await centre.create_order(kind="repair", customer_id=cust.id, created_by="2001", region="north")
    late = await centre.create_order(kind="delivery", customer_id=cust.id, created_by="2001", due_at=at(12))
    await centre.create_order(kind="delivery", customer_id=cust.id, created_by="2001", due_at=at(0, day=5))
    complaint = await centre.create_order(kind="complaint", customer_id=cust.id, created_by="2002", region="south")
    clock[0] = at(14)
    await centre.assign(complaint.id, "boss", actor="2002")
    await centre.escalate(complaint.id, actor="boss")
    await centre.escalate(complaint.id, actor="boss")
    # an outbound campaign's attempts: one reached (call c0's record), one busy
    await store.writer.run(lambda conn: conn.executemany(
        "INSERT INTO outbound_contacts (id, campaign, kind, number, state, created_at, updated_at) VALUES (?, "
        "'renewals', 'campaign', ?, 'done', ?, ?)", [(1, "13800138000", at(8), at(8)), (2, "13800138111", at(8), at(8))]))
    await store.writer.run(lambda conn: conn.executemany(
        "INSERT INTO outbound_attempts (contact_id, campaign, number, agent, call_ref, started_at, ended_at, result) "
        "VALUES (?, 'renewals', ?, ?, ?, ?, ?, ?)",
        [(1, "13800138000", "2001", "c0", at(9), at(9.1), "completed"),
         (2, "13800138111", "", "", at(9.5), at(9.51), "busy")]))
    await centre.close()
    return store, centre, [late.id]


@pytest.fixture
def day(tmp_path):
    loop = asyncio.new_event_loop()
    store, centre, ids = loop.run_until_complete(scripted_day(tmp_path / "r.db"))

    def report(period: str, since: float, until: float) -> dict:
        return loop.run_until_complete(store.read_sync(lambda conn: build_report(
            conn, period=period, since=since, until=until, now=at(0, day=2),
            thresholds={"support": 20, "sales": 30})))
    yield report, ids, loop, store
    loop.run_until_complete(store.close())
    loop.close()


def row(rows: list[dict], **match) -> dict:
    [r] = [r for r in rows if all(r[k] == v for k, v in match.items())]
    return r


def test_the_days_queue_figures_are_the_hand_computed_ones(day):
    report, *_ = day
    r = report("day", D, D + 86400)
    s = row(r["queues"], queue="support")
    # offered 6; answered 3 (10 s, 30 s, 5 s); 2 within 20 s; abandoned 2 (after 40 s and 8 s)
    assert (s["period"], s["offered"], s["answered"], s["abandoned"], s["answered_within"]) == ("2026-03-02", 6, 3, 2, 2)
    assert s["service_level_pct"] == 40.0                   # 2 / (3 + 2)
    assert s["asa_s"] == 15.0                               # (10 + 30 + 5) / 3
    assert s["aht_s"] == 146.67                             # (120 + 60 + 200 + 30 + 20 + 10) / 3
    # the same AHT, as talk (without hold) + hold + wrap-up: (305 + 75 + 60) / 3
    assert (s["talk_s"], s["hold_s"], s["wrap_s"]) == (305.0, 75.0, 60.0)  # talk: (120-30) + 60 + (200-45)
    assert (s["avg_hold_s"], s["holds"]) == (25.0, 3)       # 75 / 3 answered; 2 + 1 holds
    assert s["abandoned_wait_s"] == 24.0                    # (40 + 8) / 2
    assert (s["transferred"], s["voicemail"], s["overflow"], s["timed_out"]) == (2, 1, 0, 0)   # c1 and c3
    assert s["dispositions"] == {"answered": 2, "abandoned": 2, "voicemail": 1, "transferred": 1}
    assert s["satisfaction"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1} and s["satisfaction_avg"] == 4.0
    sales = row(r["queues"], queue="sales")
    assert (sales["offered"], sales["answered"], sales["abandoned"], sales["timed_out"]) == (2, 1, 0, 1)
    assert (sales["service_level_pct"], sales["asa_s"], sales["aht_s"], sales["sl_threshold_s"]) == (100.0, 25.0, 100.0, 30.0)
    assert (sales["talk_s"], sales["hold_s"], sales["avg_hold_s"], sales["holds"]) == (100.0, 0.0, 0.0, 0)   # never held


def test_the_week_adds_tuesday(day):
    report, *_ = day
    w = row(report("week", D, D + 7 * 86400)["queues"], queue="support")
    assert (w["period"], w["offered"], w["answered"], w["answered_within"]) == ("2026-03-02", 7, 4, 3)
    assert w["service_level_pct"] == 50.0                   # 3 / (4 + 2)
    assert w["asa_s"] == 14.25                              # (45 + 12) / 4
    assert w["aht_s"] == 125.0                              # (440 + 60) / 4
    assert (w["talk_s"], w["hold_s"], w["avg_hold_s"], w["holds"]) == (345.0, 85.0, 21.25, 4)   # + c8: 40 talk, 10 hold
    days = report("day", D, D + 2 * 86400)["queues"]
    assert [(x["period"], x["queue"]) for x in days] == [("2026-03-02", "billing"), ("2026-03-02", "sales"),
                                                         ("2026-03-02", "support"), ("2026-03-03", "support")]


def test_agent_figures_occupancy_and_state_time(day):
    report, *_ = day
    r = report("day", D, D + 86400)
    a = row(r["agents"], agent="2001")
    # talk without hold (120 - 30) + (200 - 45); hold 30 + 45 in 3 holds; AHT (245 + 75 + 40) / 2, as before holds
    assert (a["handled"], a["talk_s"], a["wrap_s"], a["aht_s"], a["transferred"]) == (2, 245.0, 40.0, 180.0, 1)
    assert (a["hold_s"], a["avg_hold_s"], a["holds"]) == (75.0, 37.5, 3)
    assert a["satisfaction_avg"] == 4.5
    assert a["state_s"] == {"logged-out": 25200.0, "not-ready": 3600.0, "on-call": 1800.0, "ready": 26400.0,
                            "wrap-up": 600.0}
    assert a["logged_in_s"] == 32400.0                      # 8:00-17:00
    assert a["occupancy_pct"] == 8.33                       # (1800 + 600) / (26400 + 1800 + 600)
    b = row(r["agents"], agent="2002")
    assert (b["handled"], b["aht_s"], b["transferred"], b["state_s"]) == (2, 90.0, 1, {"ready": 7200.0})  # 22-24 h
    assert (b["talk_s"], b["hold_s"], b["holds"]) == (160.0, 0.0, 0)
    tuesday = row(report("day", D + 86400, D + 2 * 86400)["agents"], agent="2002")
    assert tuesday["state_s"] == {"logged-out": 79200.0, "ready": 7200.0}


def test_a_transfer_is_credited_to_each_agents_own_part(day):
    """Agent 2003 answers, talks 60 s (wrap-up 15 s) and blind-transfers the caller to 2004, who talks 90 s: 2003
    handled one call and transferred it (talk 60 s, AHT 75 s); 2004 answered one (talk 90 s, not transferred) and
    the survey's score (the caller was with her at the end); the queue counts the call once, as before."""
    report, *_ = day
    r = report("day", D, D + 86400)
    a, b = row(r["agents"], agent="2003"), row(r["agents"], agent="2004")
    assert (a["handled"], a["transferred"], a["talk_s"], a["hold_s"], a["wrap_s"], a["aht_s"]) == (
        1, 1, 60.0, 0.0, 15.0, 75.0)
    assert a["satisfaction_avg"] is None
    assert (b["handled"], b["transferred"], b["talk_s"], b["hold_s"], b["wrap_s"], b["aht_s"]) == (
        1, 0, 90.0, 0.0, 0.0, 90.0)
    assert b["satisfaction"]["2"] == 1
    q = row(r["queues"], queue="billing")      # the queue's totals: the call record's, one call
    assert (q["offered"], q["answered"], q["abandoned"], q["transferred"], q["asa_s"], q["service_level_pct"]) == (
        1, 1, 0, 1, 10.0, 100.0)
    assert (q["talk_s"], q["wrap_s"], q["aht_s"]) == (60.0, 15.0, 75.0)
    # 2001 and 2002 (no parts recorded: calls of before the parts) keep their record-based figures
    assert row(r["agents"], agent="2001")["handled"] == 2 and row(r["agents"], agent="2002")["transferred"] == 1


def test_campaigns_and_work_orders(day):
    report, ids, *_ = day
    r = report("day", D, D + 86400)
    [c] = r["campaigns"]
    assert (c["campaign"], c["attempts"], c["answered"], c["contact_rate_pct"], c["aht_s"]) == ("renewals", 2, 1, 50.0, 150.0)
    assert c["results"] == {"busy": 1, "completed": 1}
    assert row(r["orders"], kind="delivery")["created"] == 2
    complaint = row(r["orders"], kind="complaint")
    assert (complaint["created"], complaint["assigned"], complaint["escalations"]) == (1, 1, 2)
    assert {(x["region"], x["created"]) for x in r["order_regions"]} == {("north", 3), ("south", 1)}
    assert [o["id"] for o in r["overdue"]] == ids           # due Monday 12:00, not resolved; the other is due Friday
    assert r["overdue"][0]["overdue_s"] == 36 * 3600


def test_a_blind_transfer_is_counted_in_the_call_record():
    from .callcentre_harness import DOMAIN as DOM, plain_call, setup
    core, net, ph = setup(acd=False)
    _, b = plain_call(net, ph["1001"], ph["1002"])
    call = next(iter(core.b2bua.calls.values()))
    b.req("REFER", extra=[f"Refer-To: <sip:1003@{DOM}>", f"Referred-By: <sip:1002@{DOM}>"])
    rec = core.router._record(call, net.now)
    assert rec.transfers == 1 and rec.as_dict()["transfers"] == 1


def test_exports_and_charts_carry_the_same_figures(day):
    report, *_ = day
    r = report("day", D, D + 86400)
    rows = list(csv.DictReader(io.StringIO(to_csv(r, "queues"))))
    s = next(x for x in rows if x["queue"] == "support")
    assert (s["service_level_pct"], s["aht_s"], s["satisfaction.5"], s["dispositions.transferred"]) == (
        "40.0", "146.67", "1", "1")
    assert (s["talk_s"], s["hold_s"], s["avg_hold_s"], s["holds"], s["wrap_s"]) == ("305.0", "75.0", "25.0", "3", "60.0")
    agents = list(csv.DictReader(io.StringIO(to_csv(r, "agents"))))
    assert next(x for x in agents if x["agent"] == "2001")["hold_s"] == "75.0"
    book = zipfile.ZipFile(io.BytesIO(to_xlsx(r)))
    sheets = book.read("xl/workbook.xml").decode()
    assert all(f'name="{n}"' in sheets for n in ("queues", "agents", "campaigns", "orders", "overdue"))
    openpyxl = pytest.importorskip("openpyxl", reason="reading the workbook back needs openpyxl")
    wb = openpyxl.load_workbook(io.BytesIO(to_xlsx(r)))
    header = [c.value for c in wb["queues"][1]]
    support = next(rw for rw in wb["queues"].iter_rows(min_row=2, values_only=True) if rw[header.index("queue")] == "support")
    assert support[header.index("aht_s")] == 146.67
    assert (support[header.index("hold_s")], support[header.index("avg_hold_s")], support[header.index("holds")]) == (
        75.0, 25.0, 3)


def test_charts_render_the_reports_figures(day):
    report, *_ = day
    r = report("day", D, D + 86400)
    for name in CHARTS:
        svg = chart(name, r).decode()
        assert svg.startswith("<?xml") and "<svg" in svg and "<script" not in svg, name
    assert "Service level" in chart("service_level", r).decode()
    assert "average hold" in chart("handle_time", r).decode()
    assert "support" in chart("calls", r).decode() and "2001" in chart("agent_states", r).decode()


def test_the_nightly_export_writes_once(day, tmp_path):
    report, ids, loop, store = day
    assert [p for p, *_ in due(dt.date(2026, 3, 3))] == ["day"]
    assert [p for p, *_ in due(dt.date(2026, 3, 2))] == ["day", "week"]
    assert [p for p, *_ in due(dt.date(2026, 3, 1))] == ["day", "month"]
    assert next_run(dt.datetime(2026, 3, 2, 0, 30), "00:15") == dt.datetime(2026, 3, 3, 0, 15)
    assert next_run(dt.datetime(2026, 3, 2, 0, 10), "00:15") == dt.datetime(2026, 3, 2, 0, 15)

    async def build(period: str, since: float, until: float) -> dict:
        return await store.read_sync(lambda conn: build_report(
            conn, period=period, since=since, until=until, now=at(0, day=2), thresholds={"support": 20}))

    out = tmp_path / "exports"
    nightly = NightlyExport(out, "00:15", ["csv", "xlsx"], build)
    files = loop.run_until_complete(nightly.run(dt.date(2026, 3, 3)))   # writes Monday's day report
    names = sorted(p.name for p in files)
    assert "report-day-2026-03-02.xlsx" in names and "report-day-2026-03-02-queues.csv" in names
    assert loop.run_until_complete(nightly.run(dt.date(2026, 3, 3))) == []   # already there: not again


def test_the_switch_records_each_agents_part_of_a_transferred_call(tmp_path):
    """The same case through the sans-IO core (fake clock) and the records service into a real store: the
    queue call rings agent 2001 (at 1002), she answers at once, holds the caller 10..20 s, and at 60 s her phone
    blind-transfers (REFER) the caller to 1003, agent 2002's extension, which answers; the caller hangs up at
    150 s; 2001's wrap-up (5 s) ends at 65 s. The call's parts, the stored rows and the per-agent report credit
    2001 with a transferred call (talk 50 s without hold, hold 10 s, wrap-up 5 s) and 2002 with an answered
    one (talk 90 s); the queue's figures are the call record's, as before."""
    from softswitch.control import Control
    from softswitch.events import CallEnded

    from .callcentre_harness import DOMAIN as DOM, answer as sip_answer, reqs_to
    from .test_call_holds import Edge, connected
    from .test_report_figures import ACD, Rig, with_records

    acd = {**ACD, "agents": ACD["agents"] + [{"id": "2002", "name": "B", "extension": "1003",
                                               "skills": {"support": 5}}]}

    async def script(records: Any, centre: CallCentre) -> None:
        rig = Rig(records, acd=acd)
        desk = Control(Edge(rig.core, rig.net))
        caller, leg, call = connected(rig)              # t=0: 2001 answers
        rig.at(10)
        desk.hold(call.id, True)
        rig.at(20)
        desk.hold(call.id, False)
        rig.at(60)
        leg.req("REFER", extra=[f"Refer-To: <sip:1003@{DOM}>", f"Referred-By: <sip:1002@{DOM}>"])
        b = rig.phones["1003"]
        inv = reqs_to(rig.net.sent, b.peer, "INVITE")[-1]
        b.send(sip_answer(inv, 200, to_tag="b1", contact="<sip:1003@10.0.0.3>", body=TALK_SDP_B))
        rig.at(150)
        caller.req("BYE")
        rig.at(160)
        await records.flush()
        [rec] = [e for e in rig.net.events if isinstance(e, CallEnded)]
        start = rec.answered
        assert rec.transfers == 1 and rec.agent == "2001" and start is not None
        assert [(p.agent, p.queue, round(p.answered - start, 3), round(p.ended - start, 3), p.hold_seconds, p.holds,
                 p.transferred) for p in rec.parts] == [("2001", "support", 0.0, 60.0, 10.0, 1, True),
                                                        ("2002", "", 60.0, 150.0, 0.0, 0, False)]
        r = await centre.store.read_sync(lambda conn: build_report(
            conn, period="day", since=0, until=start + 86400, now=start + 200, thresholds={"support": 15}))
        a, bb = row(r["agents"], agent="2001"), row(r["agents"], agent="2002")
        assert (a["handled"], a["transferred"], a["talk_s"], a["hold_s"], a["holds"], a["wrap_s"]) == (
            1, 1, 50.0, 10.0, 1, 5.0)
        assert (bb["handled"], bb["transferred"], bb["talk_s"], bb["hold_s"], bb["wrap_s"]) == (1, 0, 90.0, 0.0, 0.0)
        q = row(r["queues"], queue="support")
        assert (q["offered"], q["answered"], q["transferred"], q["talk_s"], q["hold_s"], q["wrap_s"]) == (
            1, 1, 1, 50.0, 10.0, 5.0)

    with_records(tmp_path, script)


def test_a_transfer_back_into_the_queue_credits_the_agent_who_transferred_not_the_last_one(tmp_path):
    """Agent 2001 answers a queue call, talks 30 s and transfers the caller back into the queue (REFER to 500);
    agent 2002 (at 1003) takes it and talks 90 s. The record names the last agent (2002) and one transfer; the
    report used to give 2002 the transfer and all the talk. Now: 2001 handled one and transferred it (30 s),
    2002 handled one, not transferred (90 s)."""
    from softswitch.events import CallEnded

    from .callcentre_harness import DOMAIN as DOM, answer as sip_answer, in_dialog, login, reqs_to
    from .test_call_holds import connected
    from .test_report_figures import ACD, Rig, with_records

    acd = {**ACD, "agents": ACD["agents"] + [{"id": "2002", "name": "B", "extension": "1003",
                                               "skills": {"support": 5}}]}

    async def script(records: Any, centre: CallCentre) -> None:
        rig = Rig(records, acd=acd)
        caller, leg, call = connected(rig)              # t=0: 2001 answers
        login(rig.core, rig.net, "2002")                # 2002 ready at 1003 (no call waits: nothing rings)
        rig.at(30)
        leg.req("REFER", extra=[f"Refer-To: <sip:500@{DOM}>", f"Referred-By: <sip:1002@{DOM}>"])
        b = rig.phones["1003"]
        inv = reqs_to(rig.net.sent, b.peer, "INVITE")[-1]
        b.send(sip_answer(inv, 200, to_tag="b2", contact="<sip:1003@10.0.0.3>", body=TALK_SDP_B))
        b.send(in_dialog("ACK", ruri="sip:1003@10.0.0.3", from_=inv.headers.get("From"),
                         to=inv.headers.get("To") + ";tag=b2", call_id=inv.call_id, cseq=inv.cseq.number,
                         via_host="127.0.0.1", via_port=5060))
        rig.at(120)
        caller.req("BYE")
        rig.at(130)
        await records.flush()
        [rec] = [e for e in rig.net.events if isinstance(e, CallEnded)]
        start = rec.answered
        assert rec.transfers == 1 and rec.agent == "2002" and start is not None
        parts = [(p.agent, p.queue, p.transferred, round(p.ended - p.answered, 3)) for p in rec.parts]
        assert parts[0] == ("2001", "support", True, 30.0)
        assert parts[1][:3] == ("2002", "support", False) and 89.0 < parts[1][3] <= 90.0   # from her answer
        r = await centre.store.read_sync(lambda conn: build_report(
            conn, period="day", since=0, until=start + 86400, now=start + 200))
        a, bb = row(r["agents"], agent="2001"), row(r["agents"], agent="2002")
        assert (a["handled"], a["transferred"], a["talk_s"]) == (1, 1, 30.0)
        assert (bb["handled"], bb["transferred"]) == (1, 0) and bb["talk_s"] == round(parts[1][3], 2)

    with_records(tmp_path, script)


TALK_SDP_B = (b"v=0\r\no=- 1 1 IN IP4 10.0.0.3\r\ns=-\r\nc=IN IP4 10.0.0.3\r\nt=0 0\r\n"
              b"m=audio 5002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


def test_agent_parts_are_checked_and_take_their_agents_wrap_up(tmp_path):
    """The store refuses parts it could not credit (no call_ref, a part ending before it began, no agent);
    a wrap-up named for an agent goes to her last part of the call as well as to the record."""
    from store.validation import ValidationError

    async def main() -> None:
        store = await Store.open(tmp_path / "p.db")
        centre = CallCentre(store, clock=lambda: D)
        call: dict[str, Any] = {"caller": "13800138777", "queue": "support", "arrived_at": D, "answered_at": D + 5, "ended_at": D + 100,
                "disposition": "answered"}
        a: dict[str, Any] = {"agent": "2001", "queue": "support", "answered_at": D + 5, "ended_at": D + 40, "transferred": True}
        for bad, parts in (("call_ref", [a]),
                           ("ended_at", [{**a, "ended_at": D + 1}]),
                           ("agent", [{**a, "agent": " "}])):
            fields = call if bad == "call_ref" else {**call, "call_ref": f"x-{bad}"}
            with pytest.raises(ValidationError, match=bad):
                await centre.add_call(parts=parts, **fields)
        await centre.add_call(call_ref="ok", parts=[a, {"agent": "2002", "answered_at": D + 40, "ended_at": D + 100},
                                                    {**a, "answered_at": D + 100, "ended_at": D + 100}], **call)
        rec = await centre.add_wrap_up("ok", 7.0, agent="2001")
        assert rec.wrap_s == 7.0
        rows = await store.read_sync(lambda conn: conn.execute(
            "SELECT seq, agent, talk_s, wrap_s, transferred FROM call_agent_parts ORDER BY seq").fetchall())
        assert rows == [(0, "2001", 35.0, None, 1), (1, "2002", 60.0, None, 0), (2, "2001", 0.0, 7.0, 1)]
        await centre.close()
        await store.close()

    asyncio.run(main())
