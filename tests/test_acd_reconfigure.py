"""A config reload while calls are in progress (``acd.reconfigure``), with a fake clock: live state moves to
the new engine by agent id and queue name; the next decision follows the new rules; removed agents and
queues are kept until they are idle."""
from __future__ import annotations

from acd.actions import AgentStateChanged, Connect, RingAgent
from acd.events import AgentLogin, CallArrived, CallEnded, OfferAnswered
from acd.reconfigure import reconfigured

from .test_acd_engine import Rig, config

AGENTS = {"2001": {"sales": 5}, "2002": {"sales": 9}}


def reload(rig: Rig, cfg) -> list:
    rig.acd, out = reconfigured(rig.acd, cfg, rig.t)
    rig.actions += out
    return out


def rings(out: list) -> list[str]:
    return [a.agent_id for a in out if isinstance(a, RingAgent)]


def test_a_connected_call_survives_and_the_next_call_follows_the_new_strategy():
    rig = Rig(config(AGENTS, [{"name": "q", "strategy": "longest-idle", "wrapup_time": 0}]))
    rig.do(AgentLogin("2001"))
    rig.do(AgentLogin("2002"), 1)
    out = rig.do(CallArrived("c1", "q", "555"), 1)
    assert rings(out) == ["2001"]                          # idle longest
    rig.do(OfferAnswered("c1", "2001", "leg"), 1)
    # reload: a third agent, and the queue now routes by skill level first (2002 has 9)
    cfg = config({**AGENTS, "2003": {"sales": 7}},
                 [{"name": "q", "strategy": "longest-idle", "skill_level_first": True, "wrapup_time": 0}])
    reload(rig, cfg)
    assert rig.acd.agent_state("2001")[0] == "on-call" and rig.acd.agent_state("2003")[0] == "logged-out"
    rig.do(AgentLogin("2003"), 1)
    out = rig.do(CallArrived("c2", "q", "556"), 1)
    assert rings(out) == ["2002"]                          # the new rule: highest level among the free
    out = rig.do(CallEnded("c1", by_agent=False), 5)       # the old call ends on the new engine
    assert rig.acd.agent_state("2001")[0] == "ready"
    assert rig.acd.queue_stats("q", rig.t).answered == 1   # counters carried over


def test_a_waiting_call_keeps_its_place_and_is_offered_to_a_new_agent():
    rig = Rig(config({"2001": {"sales": 5}}, [{"name": "q", "wrapup_time": 0}]))
    out = rig.do(CallArrived("c1", "q", "555"), 1)         # nobody logged in: waits (on_no_agents = wait)
    assert rings(out) == [] and rig.acd.queue_stats("q", rig.t).waiting == 1
    reload(rig, config({"2001": {"sales": 5}, "2005": {"sales": 1}}, [{"name": "q", "wrapup_time": 0}]))
    assert rig.acd.queue_stats("q", rig.t).waiting == 1
    out = rig.do(AgentLogin("2005"), 1)
    assert rings(out) == ["2005"]


def test_a_removed_agent_finishes_its_call_then_is_logged_out_and_an_idle_one_at_once():
    rig = Rig(config(AGENTS, [{"name": "q", "wrapup_time": 0}]))
    rig.do(AgentLogin("2001"))
    rig.do(AgentLogin("2002"), 1)
    rig.do(CallArrived("c1", "q", "555"), 1)
    rig.do(OfferAnswered("c1", "2001", "leg"), 1)
    out = reload(rig, config({}, [{"name": "q", "wrapup_time": 0}]))
    assert [(a.agent_id, a.state) for a in out if isinstance(a, AgentStateChanged)] == [("2002", "logged-out")]
    assert rig.acd.agent_state("2001")[0] == "on-call"
    out = rig.do(CallArrived("c2", "q", "556"), 1)
    assert rings(out) == []                                # a removed agent takes no new call
    out = rig.do(CallEnded("c1", by_agent=True), 1)
    assert ("2001", "logged-out") in [(a.agent_id, a.state) for a in out if isinstance(a, AgentStateChanged)]
    reload(rig, config({}, [{"name": "q", "wrapup_time": 0}]))
    assert "2001" not in rig.acd.agent_index               # gone at the next reload


def test_a_removed_queue_keeps_its_calls_until_they_end():
    rig = Rig(config(AGENTS, [{"name": "q"}, {"name": "old", "wrapup_time": 0}]))
    rig.do(AgentLogin("2001"))
    rig.do(CallArrived("c1", "old", "555"), 1)
    rig.do(OfferAnswered("c1", "2001", "leg"), 1)
    reload(rig, config(AGENTS, [{"name": "q"}]))
    assert "old" in rig.acd.queue_index and rig.acd.queue_for_number("old") is None
    rig.do(CallEnded("c1", by_agent=False), 3)
    assert rig.acd.agent_state("2001")[0] == "ready"
    reload(rig, config(AGENTS, [{"name": "q"}]))
    assert "old" not in rig.acd.queue_index


def test_a_phone_locked_out_of_pin_logins_stays_locked():
    rig = Rig(config(AGENTS, [{"name": "q"}]))
    pins = rig.acd.pins
    reload(rig, config(AGENTS, [{"name": "q"}]))
    assert rig.acd.pins is pins


def test_a_ringing_offer_and_its_timer_survive_a_reload():
    rig = Rig(config(AGENTS, [{"name": "q", "ring_time": 10, "wrapup_time": 0}]))
    rig.do(AgentLogin("2001"))
    out = rig.do(CallArrived("c1", "q", "555"), 1)
    assert rings(out) == ["2001"]
    reload(rig, config(AGENTS, [{"name": "q", "ring_time": 10, "wrapup_time": 0}]))
    out = rig.do(OfferAnswered("c1", "2001", "leg"), 2)
    assert any(isinstance(a, Connect) and a.agent_id == "2001" for a in out)
