"""The wallboard's sans-IO model (``softswitch.wallboard.Floor``) and the trunk alarm's source: today's figures
are the ACD's counters less their value at midnight; thresholds turn queues and agents amber and red at the
moment ``next_deadline`` names; a trunk whose OPTIONS go unanswered raises a ``trunk_state`` event (the
trunks' runtime, through the sans-IO core) and a red alarm until it answers again."""
from __future__ import annotations

from softswitch.events import TrunkStateChanged
from softswitch.wallboard import Floor, TodaySeed, WallboardConfig
from store.reports import queue_totals

from .core_harness import answer, requests
from .test_call_records import Recorder
from .test_reports import D, day  # noqa: F401  (the scripted day's store)
from .test_trunks_core import CARRIER, make

CFG = WallboardConfig(longest_wait_warning=30, longest_wait_alarm=60, service_level_target=80,
                      service_level_min_calls=2, not_ready_limit=600)
DAY = 86400.0


def counters(**kw: float) -> dict[str, float]:
    base = dict.fromkeys(("offered", "answered", "answered_within", "abandoned", "timed_out", "exited_empty",
                          "hold_total", "talk_total", "talk_count", "wrap_total", "wrap_count"), 0.0)
    base.update(kw)
    return base


def queue(waiting: int = 0, longest: float = 0.0, **kw: float) -> dict:
    return {"queue": "support", "waiting": waiting, "longest_wait": longest, "agents": {}, "counters": counters(**kw),
            "sl_threshold": 20}


def test_todays_figures_restart_at_midnight_and_the_service_level_alarm():
    floor = Floor(CFG, day_start=lambda t: t - t % DAY)
    s = floor.snapshot([queue(offered=4, answered=3, answered_within=1, abandoned=1, hold_total=60, talk_total=300,
                              talk_count=3, wrap_total=30)], [], 10 * DAY + 3600)
    [q] = s["queues"]
    assert (q["offered"], q["answered"], q["abandoned"], q["service_level"], q["asa"], q["aht"]) == (
        4, 3, 1, 25.0, 20.0, 110.0)
    assert [a["kind"] for a in s["alarms"]] == ["service_level"]          # 25 % < 80 % with 4 calls
    floor.on_event({"type": "queue_left", "queue": "support", "reason": "transferred"}, 10 * DAY + 3700)
    last = dict(offered=4, answered=3, answered_within=1, abandoned=1)   # the last counters of the day
    assert floor.snapshot([queue(**last)], [], 10 * DAY + 3800)["queues"][0]["transferred"] == 1
    s = floor.snapshot([queue(offered=6, answered=4, answered_within=2, abandoned=1)], [], 11 * DAY + 10)
    [q] = s["queues"]
    assert (q["offered"], q["answered"], q["transferred"], q["service_level"]) == (2, 1, 0, 100.0)   # the new day


def test_thresholds_and_the_moment_they_are_passed():
    floor = Floor(CFG, day_start=lambda t: 0.0)
    agents = [{"id": "2001", "name": "Alice", "state": "not-ready", "reason": "lunch"}]
    floor.on_event({"type": "agent_state", "agent": "2001", "state": "not-ready", "at": 1000.0}, 1000.0)
    s = floor.snapshot([queue(waiting=1, longest=20.0)], agents, 1100.0)
    assert s["queues"][0]["longest_wait_level"] == "ok" and s["alarms"] == []
    assert floor.next_deadline(s) == 1110.0                               # the wait reaches 30 s
    s = floor.snapshot([queue(waiting=1, longest=30.0)], agents, 1110.0)
    assert s["queues"][0]["longest_wait_level"] == "warning" and floor.next_deadline(s) == 1140.0
    s = floor.snapshot([queue(waiting=1, longest=60.0)], agents, 1600.0)
    assert s["queues"][0]["longest_wait_level"] == "alarm"
    assert {a["kind"] for a in s["alarms"]} == {"longest_wait", "agent_state"}   # lunch for 600 s
    assert s["agents"][0]["level"] == "alarm" and s["agents"][0]["since"] == 1000.0


def test_a_trunk_that_stops_answering_raises_an_alarm_until_it_answers():
    net = make(carrier={"options_interval": 5, "options_failures": 2})
    rec = Recorder(net.core)
    rec.now = net.now
    out = rec.advance(0.1)
    [(_, ping)] = requests(out, "OPTIONS")
    rec.deliver(answer(ping, 200), CARRIER)                                # up
    out = rec.advance(20)                                                  # pings unanswered
    downs = [e for e in rec.events if isinstance(e, TrunkStateChanged)]
    assert [(e.trunk, e.up) for e in downs] == [("carrier", False)] and "unanswered" in downs[0].reason
    floor = Floor(CFG)
    floor.on_event(downs[0].as_dict(), downs[0].at)
    s = floor.snapshot([], [], downs[0].at + 1)
    assert [(a["kind"], a["subject"], a["level"]) for a in s["alarms"]] == [("trunk_down", "carrier", "alarm")]
    ping = requests(rec.advance(5), "OPTIONS")[-1][1]
    rec.deliver(answer(ping, 200), CARRIER)
    up = [e for e in rec.events if isinstance(e, TrunkStateChanged)][-1]
    assert up.up and up.trunk == "carrier"
    floor.on_event(up.as_dict(), up.at)
    assert floor.snapshot([], [], up.at + 1)["alarms"] == []


def test_a_seed_from_the_days_call_records_shows_the_reports_figures_then_counts_on_live(day):  # noqa: F811
    """A switch restarted at 20:00 on the scripted day of test_reports: the floor seeded with the queue
    report's sums over the calls before the start (``queue_totals``) shows what the day's report shows, the
    calls after the start (the ACD's live counters) add to them, and midnight starts the next day from zero."""
    report, _, loop, store = day
    start = D + 20 * 3600
    thresholds = {"support": 20, "sales": 30}
    totals = loop.run_until_complete(store.read_sync(
        lambda conn: queue_totals(conn, since=D, until=start, thresholds=thresholds)))
    by_queue = {r["queue"]: r for r in report("day", D, D + DAY)["queues"]}
    floor = Floor(CFG, day_start=lambda t: t - (t - D) % DAY)
    assert floor.seed(TodaySeed.from_report(D, start, totals))
    assert not floor.seed(TodaySeed.from_report(D, start, totals))           # once a day: never counted twice
    live = [dict(queue(), queue=name, sl_threshold=thresholds[name]) for name in ("support", "sales")]
    snap = floor.snapshot(live, [], start + 1)
    for q in snap["queues"]:
        r = by_queue[q["queue"]]
        assert (q["offered"], q["answered"], q["abandoned"], q["transferred"], q["voicemail"], q["timed_out"],
                q["no_agents"]) == (r["offered"], r["answered"], r["abandoned"], r["transferred"], r["voicemail"],
                                    r["timed_out"], r["no_agents"]), q["queue"]
        assert q["service_level"] == round(r["service_level_pct"], 1)
        assert q["asa"] == round(r["asa_s"], 1) and q["aht"] == round(r["aht_s"], 1), q["queue"]
    support = snap["queues"][0]
    assert (support["offered"], support["service_level"], support["asa"], support["aht"]) == (6, 40.0, 15.0, 146.7)
    # after the start, one more support call answered in 10 s, talk 100 s (no wrap-up), and one transferred
    live[0] = dict(live[0], counters=counters(offered=1, answered=1, answered_within=1, hold_total=10, talk_total=100,
                                              talk_count=1))
    floor.on_event({"type": "queue_left", "queue": "support", "reason": "transferred"}, start + 50)
    support = floor.snapshot(live, [], start + 60)["queues"][0]
    assert (support["offered"], support["answered"], support["abandoned"], support["transferred"]) == (7, 4, 2, 3)
    assert (support["service_level"], support["asa"], support["aht"]) == (50.0, 13.8, 135.0)  # 3/6; 55/4; 540/4
    assert [a["kind"] for a in floor.snapshot(live, [], start + 60)["alarms"]] == ["service_level"]
    tomorrow = floor.snapshot(live, [], D + DAY + 10)["queues"][0]                     # midnight: from zero again
    assert (tomorrow["offered"], tomorrow["answered"], tomorrow["transferred"], tomorrow["aht"]) == (0, 0, 0, None)
    assert not floor.seed(TodaySeed.from_report(D, start, totals))           # yesterday's seed comes too late
