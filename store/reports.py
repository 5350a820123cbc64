"""The call centre's reports from the store: per queue, per agent and per campaign, by day, week or month;
and the work orders' figures. One function, ``build_report``, returns plain rows (JSON, CSV and XLSX
exports and the charts all read the same rows, so they cannot disagree).

Definitions are those of ``base.figures`` and docs/reports.md (the live wallboard uses the same):

* service level = answered within the queue's threshold ÷ (answered + abandoned);
* ASA = Σ wait of answered calls ÷ answered; abandoned wait = Σ wait of abandoned calls ÷ abandoned;
* transferred = calls an agent (or a phone) handed on, blind or attended (``transfers`` > 0), and calls
  whose disposition is ``transferred`` (a caller who chose to be called back keeps his place);
* AHT = (Σ talk + Σ hold + Σ wrap-up) ÷ answered, as commercial ACDs report it, each shown on its own:
  ``hold_s`` is the call records' ``hold_seconds`` (desk or phone hold), ``talk_s`` the talk *without* hold
  (the records' ``talk_s`` is the connected time, hold included, so talk + hold = Σ talk_s and AHT is the
  live wallboard's (connected time + wrap-up) ÷ handled); ``avg_hold_s`` = Σ hold ÷ answered, ``holds`` the
  number of holds;
* per agent, each agent's own part of a call (``call_agent_parts``: an agent who transferred the caller on
  has a handled and transferred call with her talk, hold and wrap-up; the agent who took the caller next a
  handled one with hers); calls recorded without parts (before migration 10) count for their record's agent;
* occupancy = time on calls and in wrap-up ÷ time available (ready, ringing, on a call, in wrap-up), from the
  agent state history, cut at period boundaries.

A call counts in the period its arrival falls in; a state interval is cut at the local day boundaries
(``utc_offset_s`` moves them to local time). Calls are summed per day in SQL (a handful of rows per day
and queue/agent/disposition/score), then folded per period here.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from collections import defaultdict
from typing import Any, Mapping

from base.figures import average_handle_time, average_speed_of_answer, service_level

__all__ = ["PERIODS", "SECTIONS", "build_report", "period_key", "queue_totals"]

PERIODS = ("day", "week", "month")
SECTIONS = ("queues", "agents", "campaigns", "orders", "order_regions", "overdue")
DISPOSITIONS = ("answered", "abandoned", "voicemail", "busy", "no_answer", "failed", "transferred", "overflow",
                "blocked", "timeout", "no_agents")
WORKING = ("on-call", "wrap-up")                         # occupied
AVAILABLE = ("ready", "ringing", "on-call", "wrap-up")   # logged in and not paused
CLOSED = ("resolved", "closed")


def period_key(day: int, period: str) -> str:
    """The period (ISO date of its first day) of local day number ``day`` (days since 1970-01-01)."""
    d = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    if period == "week":
        d -= dt.timedelta(days=d.weekday())           # Monday
    elif period == "month":
        d = d.replace(day=1)
    return d.isoformat()


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


def build_report(conn: sqlite3.Connection, *, period: str, since: float, until: float, now: float,
                 thresholds: Mapping[str, float] | None = None, default_threshold: float = 20.0,
                 utc_offset_s: int = 0) -> dict[str, Any]:
    """Every section over [since, until) (Unix seconds), per ``period`` ("day", "week", "month")."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    thresholds = dict(thresholds or {})
    off = int(utc_offset_s)
    return {
        "period": period, "since": since, "until": until, "utc_offset_s": off, "generated_at": now,
        "queues": _queues(conn, period, since, until, off, thresholds, default_threshold),
        "agents": _agents(conn, period, since, until, off, now),
        "campaigns": _campaigns(conn, period, since, until, off),
        **_orders(conn, period, since, until, off, now),
    }


def _calls(conn: sqlite3.Connection, since: float, until: float, off: int, thresholds: Mapping[str, float],
           default: float, without_parts: bool = False) -> list[tuple]:
    params: dict[str, Any] = {"since": since, "until": until, "off": off, "t": default}
    cases = []
    for i, (name, t) in enumerate(thresholds.items()):
        params[f"q{i}"], params[f"t{i}"] = name, float(t)
        cases.append(f"WHEN :q{i} THEN :t{i}")
    threshold = f"CASE queue {' '.join(cases)} ELSE :t END" if cases else ":t"
    return conn.execute(f"""
        SELECT CAST((arrived_at + :off) / 86400 AS INTEGER) AS d, queue, agent, disposition, survey_score,
               COUNT(*),
               SUM(answered_at IS NOT NULL),
               SUM(answered_at IS NOT NULL AND wait_s <= {threshold}),
               TOTAL(CASE WHEN answered_at IS NOT NULL THEN wait_s END),
               TOTAL(CASE WHEN answered_at IS NOT NULL THEN talk_s END),
               TOTAL(CASE WHEN answered_at IS NOT NULL THEN wrap_s END),
               TOTAL(CASE WHEN disposition = 'abandoned' THEN wait_s END),
               SUM(transfers > 0 OR disposition = 'transferred'),
               TOTAL(CASE WHEN answered_at IS NOT NULL THEN MIN(hold_seconds, COALESCE(talk_s, 0.0)) END),
               TOTAL(CASE WHEN answered_at IS NOT NULL THEN holds END)
        FROM call_records WHERE arrived_at >= :since AND arrived_at < :until{_WITHOUT_PARTS if without_parts else ""}
        GROUP BY d, queue, agent, disposition, survey_score""", params).fetchall()


# calls recorded with their agents' parts are credited per part (``_parts``); the others to their record's agent
_WITHOUT_PARTS = """
          AND NOT EXISTS (SELECT 1 FROM call_agent_parts p WHERE p.call_ref = call_records.call_ref)"""


def _parts(conn: sqlite3.Connection, since: float, until: float, off: int) -> list[tuple]:
    """Each agent's parts of the calls that arrived in the range, in ``_calls``' row shape (so ``_fold`` sums
    them): one answered call per part, her talk (connected, hold inside), hold, wrap-up, and ``transferred``
    when her part ended by handing the caller on. The survey score goes to the agent whose part was not
    transferred (the one the caller was with at the end). Wait and service level are the queue's, not here."""
    return conn.execute("""
        SELECT CAST((c.arrived_at + :off) / 86400 AS INTEGER) AS d, p.queue, p.agent, 'answered' AS disp,
               CASE WHEN p.transferred THEN NULL ELSE c.survey_score END AS score,
               COUNT(*), COUNT(*), 0, 0.0, TOTAL(p.talk_s), TOTAL(p.wrap_s), 0.0, SUM(p.transferred),
               TOTAL(MIN(p.hold_seconds, p.talk_s)), TOTAL(p.holds)
        FROM call_agent_parts p JOIN call_records c ON c.call_ref = p.call_ref
        WHERE c.arrived_at >= :since AND c.arrived_at < :until
        GROUP BY d, p.queue, p.agent, score""", {"since": since, "until": until, "off": off}).fetchall()


def _empty() -> dict[str, Any]:
    return {"offered": 0, "answered": 0, "within": 0, "wait": 0.0, "talk": 0.0, "hold": 0.0, "holds": 0, "wrap": 0.0,
            "abandoned": 0, "abandon_wait": 0.0, "transferred": 0, "dispositions": defaultdict(int),
            "scores": defaultdict(int)}


def _fold(acc: dict[str, Any], row: tuple) -> None:
    _, _, _, disp, score, n, answered, within, wait, talk, wrap, abandon_wait, transferred, hold, holds = row
    acc["offered"] += n
    acc["answered"] += answered
    acc["within"] += within
    acc["wait"] += wait
    acc["talk"] += talk - hold          # talk without hold (a record's hold is within its talk_s)
    acc["hold"] += hold
    acc["holds"] += int(holds)
    acc["wrap"] += wrap
    acc["transferred"] += transferred
    if disp == "abandoned":
        acc["abandoned"] += n
        acc["abandon_wait"] += abandon_wait
    acc["dispositions"][disp] += n
    if score is not None:
        acc["scores"][int(score)] += n


def queue_totals(conn: sqlite3.Connection, *, since: float, until: float,
                 thresholds: Mapping[str, float] | None = None, default_threshold: float = 20.0
                 ) -> dict[str, dict[str, Any]]:
    """Each queue's raw sums over [since, until), unrounded, as the queue report folds them (the same query
    and fold): offered, answered, within, wait, talk (without hold), hold, holds, wrap, abandoned,
    abandon_wait, transferred, dispositions. The wallboard seeds today's figures with them at start
    (``softswitch.wallboard.TodaySeed``), so the live board and the report count the same calls alike."""
    acc: dict[str, dict[str, Any]] = defaultdict(_empty)
    for row in _calls(conn, since, until, 0, dict(thresholds or {}), default_threshold):
        if row[1] is not None:
            _fold(acc[row[1]], row)
    return {q: {**a, "dispositions": dict(a["dispositions"]), "scores": dict(a["scores"])} for q, a in acc.items()}


def _handle(a: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of the handle time: talk without hold, hold (total, per answered call, how many holds), wrap-up."""
    return {"talk_s": _r(a["talk"]), "hold_s": _r(a["hold"]),
            "avg_hold_s": _r(a["hold"] / a["answered"]) if a["answered"] else None, "holds": a["holds"],
            "wrap_s": _r(a["wrap"])}


def _satisfaction(scores: Mapping[int, int]) -> tuple[dict[str, int], float | None]:
    dist = {str(s): int(scores.get(s, 0)) for s in range(1, 6)}
    n = sum(dist.values())
    return dist, (round(sum(int(k) * v for k, v in dist.items()) / n, 2) if n else None)


def _queues(conn: sqlite3.Connection, period: str, since: float, until: float, off: int,
            thresholds: Mapping[str, float], default: float) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty)
    for row in _calls(conn, since, until, off, thresholds, default):
        if row[1] is not None:
            _fold(acc[(period_key(row[0], period), row[1])], row)
    out = []
    for (p, q), a in sorted(acc.items()):
        sl = service_level(a["within"], a["answered"], a["abandoned"])
        dist, avg = _satisfaction(a["scores"])
        disp = a["dispositions"]
        out.append({
            "period": p, "queue": q, "offered": a["offered"], "answered": a["answered"], "abandoned": a["abandoned"],
            "abandoned_wait_s": _r(a["abandon_wait"] / a["abandoned"]) if a["abandoned"] else None,
            "answered_within": a["within"], "sl_threshold_s": float(thresholds.get(q, default)),
            "service_level_pct": _r(None if sl is None else 100.0 * sl),
            "asa_s": _r(average_speed_of_answer(a["wait"], a["answered"])),
            "aht_s": _r(average_handle_time(a["talk"], a["wrap"], a["answered"], a["hold"])),
            **_handle(a), "transferred": a["transferred"], "overflow": disp.get("overflow", 0),
            "voicemail": disp.get("voicemail", 0), "timed_out": disp.get("timeout", 0),
            "no_agents": disp.get("no_agents", 0),
            "dispositions": {d: disp[d] for d in DISPOSITIONS if disp.get(d)},
            "satisfaction": dist, "satisfaction_avg": avg,
        })
    return out


def _day_of(t: float, off: int) -> int:
    return int((t + off) // 86400)


def _state_time(conn: sqlite3.Connection, period: str, since: float, until: float, off: int,
                now: float) -> dict[tuple[str, str], dict[str, float]]:
    """(period, agent) -> state -> seconds, each interval cut at the range and at local midnights."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    rows = conn.execute("SELECT agent, state, started_at, COALESCE(ended_at, :now) FROM agent_states "
                        "WHERE started_at < :until AND COALESCE(ended_at, :now) > :since",
                        {"since": since, "until": until, "now": min(now, until)}).fetchall()
    for agent, state, start, end in rows:
        t, end = max(start, since), min(end, until)
        while t < end:
            day = _day_of(t, off)
            cut = min(end, (day + 1) * 86400 - off)
            out[(period_key(day, period), agent)][state] += cut - t
            t = cut
    return out


def _agents(conn: sqlite3.Connection, period: str, since: float, until: float, off: int,
            now: float) -> list[dict[str, Any]]:
    acc: dict[tuple[str, str], dict[str, Any]] = defaultdict(_empty)
    for row in _calls(conn, since, until, off, {}, 0.0, without_parts=True) + _parts(conn, since, until, off):
        if row[2] is not None:
            _fold(acc[(period_key(row[0], period), row[2])], row)
    states = _state_time(conn, period, since, until, off, now)
    out = []
    for key in sorted(set(acc) | set(states)):
        p, agent = key
        a = acc.get(key) or _empty()
        st = {s: round(v, 2) for s, v in sorted(states.get(key, {}).items())}
        available = sum(st.get(s, 0.0) for s in AVAILABLE)
        working = sum(st.get(s, 0.0) for s in WORKING)
        dist, avg = _satisfaction(a["scores"])
        out.append({
            "period": p, "agent": agent, "handled": a["answered"], **_handle(a),
            "aht_s": _r(average_handle_time(a["talk"], a["wrap"], a["answered"], a["hold"])),
            "transferred": a["transferred"],
            "logged_in_s": _r(sum(v for s, v in st.items() if s not in ("logged-out", "unknown"))),
            "occupancy_pct": _r(100.0 * working / available) if available else None,
            "state_s": st, "satisfaction": dist, "satisfaction_avg": avg,
        })
    return out


def _campaigns(conn: sqlite3.Connection, period: str, since: float, until: float, off: int) -> list[dict[str, Any]]:
    try:
        rows = conn.execute("""
            SELECT CAST((a.started_at + :off) / 86400 AS INTEGER), a.campaign, a.result, COUNT(*),
                   SUM(c.answered_at IS NOT NULL), TOTAL(c.talk_s), TOTAL(c.wrap_s)
            FROM outbound_attempts a LEFT JOIN call_records c ON a.call_ref <> '' AND c.call_ref = a.call_ref
            WHERE a.started_at >= :since AND a.started_at < :until
            GROUP BY 1, 2, 3""", {"since": since, "until": until, "off": off}).fetchall()
    except sqlite3.OperationalError:   # a store without the outbound tables
        return []
    acc: dict[tuple[str, str], dict[str, Any]] = {}
    for day, campaign, result, n, answered, talk, wrap in rows:
        a = acc.setdefault((period_key(day, period), campaign),
                           {"attempts": 0, "answered": 0, "talk": 0.0, "wrap": 0.0, "results": defaultdict(int)})
        a["attempts"] += n
        a["answered"] += answered
        a["talk"] += talk
        a["wrap"] += wrap
        a["results"][result or "in_progress"] += n
    return [{"period": p, "campaign": c, "attempts": a["attempts"], "answered": a["answered"],
             "contact_rate_pct": _r(100.0 * a["answered"] / a["attempts"]) if a["attempts"] else None,
             "aht_s": _r(average_handle_time(a["talk"], a["wrap"], a["answered"])),
             "results": dict(sorted(a["results"].items()))} for (p, c), a in sorted(acc.items())]


def _orders(conn: sqlite3.Connection, period: str, since: float, until: float, off: int,
            now: float) -> dict[str, Any]:
    """Work orders created in the range by kind and status, and by region; complaint escalations in the
    range; the orders overdue now (past ``due_at``, not resolved or closed)."""
    p = {"since": since, "until": until, "off": off}
    by: dict[tuple[str, str, str], int] = defaultdict(int)
    regions: dict[tuple[str, str], int] = defaultdict(int)
    for day, kind, status, region, n in conn.execute(
            "SELECT CAST((created_at + :off) / 86400 AS INTEGER), kind, status, COALESCE(region, ''), COUNT(*) "
            "FROM work_orders WHERE created_at >= :since AND created_at < :until GROUP BY 1, 2, 3, 4", p):
        by[(period_key(day, period), kind, status)] += n
        regions[(period_key(day, period), region)] += n
    esc: dict[str, int] = defaultdict(int)
    for day, n in conn.execute(
            "SELECT CAST((e.at + :off) / 86400 AS INTEGER), COUNT(*) FROM order_events e "
            "JOIN work_orders o ON o.id = e.order_id "
            "WHERE e.action = 'escalated' AND o.kind = 'complaint' AND e.at >= :since AND e.at < :until GROUP BY 1", p):
        esc[period_key(day, period)] += n
    orders: dict[tuple[str, str], dict[str, Any]] = {}
    for (per, kind, status), n in sorted(by.items()):
        row = orders.setdefault((per, kind), {"period": per, "kind": kind, "created": 0,
                                              **{s: 0 for s in ("open", "assigned", "in_progress", "resolved",
                                                                "closed")}})
        row["created"] += n
        row[status] += n
    for per in sorted({k[0] for k in orders} | set(esc)):
        complaint = orders.get((per, "complaint"))
        if complaint is not None:
            complaint["escalations"] = esc.get(per, 0)
        elif esc.get(per):
            orders[(per, "complaint")] = {"period": per, "kind": "complaint", "created": 0, "escalations": esc[per]}
    overdue = [{"id": i, "kind": k, "status": s, "region": r, "assignee": a, "due_at": d, "overdue_s": round(now - d),
                "escalation": e}
               for i, k, s, r, a, d, e in conn.execute(
                   "SELECT id, kind, status, region, assignee, due_at, escalation FROM work_orders "
                   "WHERE due_at IS NOT NULL AND due_at < ? AND status NOT IN ('resolved', 'closed') "
                   "ORDER BY due_at LIMIT 1000", (now,))]
    return {"orders": [orders[k] for k in sorted(orders)],
            "order_regions": [{"period": per, "region": reg, "created": n} for (per, reg), n in sorted(regions.items())],
            "overdue": overdue}
