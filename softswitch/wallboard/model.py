"""The floor as the wallboard shows it, sans-IO: today's figures per queue, agents with time in state,
and the alarms the ``[wallboard]`` thresholds raise.

``Floor`` is fed the switch's events (``on_event``, the JSON dicts of ``softswitch.events``) and asked for
a ``snapshot`` given the live queue and agent tables and the wall-clock time; ``next_deadline`` says when
the picture would change with no event at all (a waiting call passing a threshold, an agent stuck in a
state, midnight), so the edge pushes then and never polls. No clock, socket or file here.

"Today" is since local midnight: the ACD's counters run since the switch started, so the floor keeps
each queue's counters as they were at the day's start (its baseline: the last counters observed the day
before; the edge observes them at every queue event) and shows the difference. A switch started during
the day is told what happened earlier that day by a ``TodaySeed`` — the day's calls from the store, summed
by the queue report's own query (``store.reports.queue_totals``) and read by the edge at start — which
is added to the live difference until midnight; the next day starts from zero as before.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from base.figures import average_handle_time, average_speed_of_answer, service_level

from .config import WallboardConfig

__all__ = ["Alarm", "Floor", "TodaySeed", "local_midnight"]

COUNTERS = ("offered", "answered", "answered_within", "abandoned", "timed_out", "exited_empty", "hold_total",
            "talk_total", "talk_count", "wrap_total", "wrap_count")


def local_midnight(wall: float) -> float:
    """The start of the local day containing ``wall`` (Unix seconds)."""
    t = time.localtime(wall)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


@dataclass(frozen=True)
class Alarm:
    kind: str        # longest_wait | service_level | agent_state | trunk_down | overdue_orders | <a hook's own>
    subject: str     # the queue, agent or trunk
    level: str       # "warning" (amber) | "alarm" (red)
    message: str
    since: float = 0.0   # wall clock: when the condition began (0: unknown)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TodaySeed:
    """The day's figures before the switch started: per queue, the ACD's counters as if it had run since
    midnight (``counters``), and the calls transferred and sent to voicemail. ``day`` is the local midnight
    they belong to (a seed for another day is ignored); ``until`` the wall time they were counted up to
    (the switch's start: later calls are counted live, never twice)."""
    day: float
    until: float
    counters: Mapping[str, Mapping[str, float]]
    transferred: Mapping[str, int]
    voicemail: Mapping[str, int]

    @classmethod
    def from_report(cls, day: float, until: float, totals: Mapping[str, Mapping[str, Any]]) -> TodaySeed:
        """From ``store.reports.queue_totals`` (the queue report's sums). The report's talk is without hold
        and the ACD's is the connected time (hold inside): talk + hold, so AHT is the same number; every
        answered call of the report has ended, so it is a handled call (talk_count) and had its wrap-up."""
        counters: dict[str, dict[str, float]] = {}
        for q, a in totals.items():
            disp = a.get("dispositions", {})
            counters[q] = {
                "offered": a["offered"], "answered": a["answered"], "answered_within": a["within"],
                "abandoned": a["abandoned"], "timed_out": disp.get("timeout", 0), "exited_empty": disp.get("no_agents", 0),
                "hold_total": a["wait"], "talk_total": a["talk"] + a["hold"], "talk_count": a["answered"],
                "wrap_total": a["wrap"], "wrap_count": a["answered"]}
        return cls(day=day, until=until, counters=counters,
                   transferred={q: int(a["transferred"]) for q, a in totals.items()},
                   voicemail={q: int(a.get("dispositions", {}).get("voicemail", 0)) for q, a in totals.items()})


@dataclass
class _Today:
    day: float = -1.0
    base: dict[str, dict[str, float]] = field(default_factory=dict)      # queue -> counters at the day's start
    seed: dict[str, dict[str, float]] = field(default_factory=dict)      # queue -> counted before the start
    seeded: bool = False
    transferred: dict[str, int] = field(default_factory=dict)            # queue -> transferred today
    voicemail: dict[str, int] = field(default_factory=dict)


class Floor:
    def __init__(self, config: WallboardConfig, day_start: Callable[[float], float] = local_midnight):
        self.config = config
        self.day_start = day_start
        self.today = _Today()
        self._last: dict[str, dict[str, float]] = {}             # the counters at the last observation
        self.since: dict[str, tuple[str, float]] = {}          # agent -> (state, since, wall clock)
        self.trunks: dict[str, tuple[bool, float, str]] = {}  # trunk -> (up, since, reason)
        self.external: dict[str, list[Alarm]] = {}             # alarms raised by hooks (work orders, campaigns)

    # ------------------------------------------------------------------------------ input
    def on_event(self, ev: dict[str, Any], wall: float) -> bool:
        """One switch event; True when the wallboard should be pushed."""
        t = ev.get("type")
        if t == "agent_state":
            self.since[ev["agent"]] = (ev["state"], float(ev.get("at") or wall))
            return True
        if t == "queue_left" and ev.get("reason") == "transferred":   # an agent transferred the caller on
            q = ev.get("queue") or ""
            self.today.transferred[q] = self.today.transferred.get(q, 0) + 1
            return True
        if t == "call_end":
            q, disp = ev.get("queue") or "", ev.get("disposition")
            if q and not ev.get("service") and disp == "voicemail":
                self.today.voicemail[q] = self.today.voicemail.get(q, 0) + 1
            return bool(q)
        if t == "trunk_state":   # from the trunks module when it exists: {"trunk", "up", "reason", "at"}
            self.trunks[str(ev.get("trunk"))] = (bool(ev.get("up")), float(ev.get("at") or wall),
                                                 str(ev.get("reason") or ""))
            return True
        return t in ("offer", "connected", "queue_entered", "queue_left", "wrapup_end", "voicemail", "campaign")

    def set_external(self, source: str, alarms: list[Alarm]) -> None:
        """Alarms a hook computes itself (overdue work orders, a campaign's dialler): replaced per source."""
        self.external[source] = list(alarms)

    def seed(self, seed: TodaySeed) -> bool:
        """Today's calls before the switch started (see ``TodaySeed``); True when taken (False: a seed of
        another day — midnight passed while the store was read — or a second seed for the same day)."""
        if self.today.day < 0:
            self.today.day = seed.day      # before the first observation: its base is empty as then
        if seed.day != self.today.day or self.today.seeded:
            return False
        self.today.seeded = True
        self.today.seed = {q: dict(c) for q, c in seed.counters.items()}
        for q, n in seed.transferred.items():
            self.today.transferred[q] = self.today.transferred.get(q, 0) + n
        for q, n in seed.voicemail.items():
            self.today.voicemail[q] = self.today.voicemail.get(q, 0) + n
        return True

    def observe(self, counters: dict[str, dict[str, float]], wall: float) -> None:
        """The ACD's counters now (after every change: the edge calls this on each queue event, pushed or
        not). The first observation of a new day takes the last one of the day before as its baseline, so
        calls after midnight count today even when nobody watched the wallboard at midnight."""
        day = self.day_start(wall)
        if day != self.today.day:
            first = self.today.day < 0
            self.today = _Today(day=day, base={} if first else {q: dict(c) for q, c in self._last.items()})
        self._last = {q: dict(c) for q, c in counters.items()}

    # ------------------------------------------------------------------------------ output
    def snapshot(self, queues: list[dict[str, Any]], agents: list[dict[str, Any]], wall: float,
                 extras: dict[str, Any] | None = None) -> dict[str, Any]:
        """The wallboard's message: ``queues`` rows carry the ACD's live stats (``waiting``, ``longest_wait``,
        ``agents``) and raw ``counters`` and the queue's ``sl_threshold``; ``agents`` as ``Control.agents``."""
        self.observe({q["queue"]: q["counters"] for q in queues}, wall)
        cfg = self.config
        rows, alarms = [], []
        for q in queues:
            name = q["queue"]
            c = q["counters"]
            base, seed = self.today.base.get(name, {}), self.today.seed.get(name, {})
            d = {k: seed.get(k, 0) + c.get(k, 0) - base.get(k, 0) for k in COUNTERS}
            sl = service_level(int(d["answered_within"]), int(d["answered"]), int(d["abandoned"]))
            wait = float(q.get("longest_wait") or 0.0)
            level = ("alarm" if cfg.longest_wait_alarm and wait >= cfg.longest_wait_alarm else
                     "warning" if cfg.longest_wait_warning and wait >= cfg.longest_wait_warning else "ok")
            sl_level = "ok"
            if (sl is not None and d["answered"] + d["abandoned"] >= cfg.service_level_min_calls
                    and sl * 100 < cfg.service_level_target):
                sl_level = "alarm"
                alarms.append(Alarm("service_level", name, "alarm",
                                    f"{name}: service level today {sl * 100:.0f}% under the target "
                                    f"{cfg.service_level_target:g}%"))
            if level != "ok":
                limit = cfg.longest_wait_alarm if level == "alarm" else cfg.longest_wait_warning
                alarms.append(Alarm("longest_wait", name, level,
                                    f"{name}: a caller has waited {wait:.0f} s (limit {limit} s)", wall - wait))
            rows.append({
                "queue": name, "waiting": int(q.get("waiting") or 0), "longest_wait": round(wait, 1),
                "longest_wait_level": level, "agents": q.get("agents", {}),
                "offered": int(d["offered"]), "answered": int(d["answered"]), "abandoned": int(d["abandoned"]),
                "transferred": self.today.transferred.get(name, 0), "voicemail": self.today.voicemail.get(name, 0),
                "timed_out": int(d["timed_out"]), "no_agents": int(d["exited_empty"]),
                "service_level": None if sl is None else round(sl * 100, 1), "service_level_level": sl_level,
                "sl_threshold": q.get("sl_threshold"),
                "asa": _round(average_speed_of_answer(d["hold_total"], int(d["answered"]))),
                # the ACD's talk is the connected time, hold inside: talk + hold + wrap-up, as in the reports
                "aht": _round(average_handle_time(d["talk_total"], d["wrap_total"], int(d["talk_count"]))),
            })
        out_agents = []
        for a in agents:
            state = a["state"]
            known = self.since.get(a["id"])
            if known is None or known[0] != _acd_state(state):
                known = (_acd_state(state), wall)      # first seen in this state (e.g. since the start)
                self.since[a["id"]] = known
            in_state = max(0.0, wall - known[1])
            limit = self._limit(state)
            level = "alarm" if limit and in_state >= limit else "ok"
            if level == "alarm":
                alarms.append(Alarm("agent_state", a["id"], "alarm",
                                    f"{a.get('name') or a['id']} {state} for {_dur(in_state)} (limit {_dur(limit)})",
                                    known[1] + limit))
            out_agents.append({"id": a["id"], "name": a.get("name", ""), "extension": a.get("extension"),
                               "state": state, "reason": a.get("reason", ""), "since": known[1],
                               "call": a.get("call"), "level": level})
        for trunk, (up, since, reason) in sorted(self.trunks.items()):
            if not up:
                alarms.append(Alarm("trunk_down", trunk, "alarm",
                                    f"trunk {trunk} down{': ' + reason if reason else ''}", since))
        for source in sorted(self.external):
            alarms += self.external[source]
        return {"type": "floor", "at": wall, "day": self.today.day, "queues": rows, "agents": out_agents,
                "alarms": [x.as_dict() for x in alarms],
                "trunks": [{"trunk": t, "up": u, "since": s, "reason": r} for t, (u, s, r) in sorted(self.trunks.items())],
                "thresholds": asdict(cfg), **(extras or {})}

    def _limit(self, state: str) -> int:
        c = self.config
        return {"not-ready": c.not_ready_limit, "wrap-up": c.wrapup_limit, "ringing": c.ringing_limit,
                "on-call": c.on_call_limit}.get(state, 0)

    def next_deadline(self, snapshot: dict[str, Any]) -> float | None:
        """When the last snapshot's picture changes by time alone (wall clock), or None."""
        wall = snapshot["at"]
        cfg = self.config
        cands = [self.day_start(wall) + 86400 + 1]   # midnight: today's figures start again
        for q in snapshot["queues"]:
            if q["waiting"]:
                for limit in (cfg.longest_wait_warning, cfg.longest_wait_alarm):
                    if limit and q["longest_wait"] < limit:
                        cands.append(wall + limit - q["longest_wait"])
        for a in snapshot["agents"]:
            limit = self._limit(a["state"])
            if limit and a["level"] == "ok":
                cands.append(a["since"] + limit)
        return min(cands)


def _acd_state(state: str) -> str:
    return "ready" if state == "unregistered" else state


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def _dur(s: float) -> str:
    s = int(s)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"
