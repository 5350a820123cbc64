"""Routing strategies, call priority, queue weight and sticky routing, with a fake clock."""
from __future__ import annotations

from collections import Counter

import numpy as np

from acd.actions import CancelRing
from acd.events import (
    AgentLogout, AgentNotReady, AgentReady, CallArrived, CallEnded, OfferAnswered, OfferRejected,
)
from acd.routing import AgentMatrix, AgentState, QueueRule, Router, WaitingCalls

from .test_acd_engine import Rig, config, of, one_queue, rings

AGENTS3 = {"2001": {"sales": 5}, "2002": {"sales": 5}, "2003": {"sales": 5}}


def serve(rig: Rig, cid: str, talk: float = 60.0, caller: str = "") -> str:
    """One call in, answered by whoever is offered it, ended; returns that agent."""
    out = rig.do(CallArrived(cid, "sales", caller), 1)
    [(_, agent)] = rings(out)
    rig.do(OfferAnswered(cid, agent), 1)
    rig.do(CallEnded(cid), talk)
    return agent


# ---------------------------------------------------------------------------- strategies

def test_longest_idle():
    rig = Rig(config(AGENTS3, one_queue(wrapup_time=0)))
    rig.login("2002", "2003", "2001")  # ready in this order
    assert [serve(rig, f"c{i}") for i in range(4)] == ["2002", "2003", "2001", "2002"]


def test_longest_idle_counts_from_when_the_agent_became_ready():
    rig = Rig(config(AGENTS3, one_queue(wrapup_time=0)))
    rig.login("2001", "2002", "2003")
    rig.do(AgentNotReady("2001", "coffee"), 1)
    rig.do(AgentReady("2001"), 60)
    assert serve(rig, "c1") == "2002"


def test_round_robin_with_memory():
    rig = Rig(config(AGENTS3, one_queue(strategy="round-robin", wrapup_time=0)))
    rig.login("2003", "2001", "2002")
    got = [serve(rig, f"c{i}") for i in range(5)]
    assert got == ["2001", "2002", "2003", "2001", "2002"]
    # memory: with 2003 away, the turn after 2002 skips to 2001 and continues from there
    rig.do(AgentNotReady("2003"), 1)
    assert [serve(rig, "d1"), serve(rig, "d2")] == ["2001", "2002"]


def test_fewest_calls():
    rig = Rig(config(AGENTS3, one_queue(strategy="fewest-calls", wrapup_time=0)))
    rig.login("2001")
    serve(rig, "a1")
    serve(rig, "a2")
    rig.login("2002")
    serve(rig, "b1")  # 2002 has 0 calls, 2001 has 2
    rig.login("2003")
    # 2003: 0 calls, 2002: 1, 2001: 2
    assert [serve(rig, "x"), serve(rig, "y")] == ["2003", "2002"]


def test_least_talk_time():
    rig = Rig(config(AGENTS3, one_queue(strategy="least-talk-time", wrapup_time=0)))
    rig.login("2001", "2002", "2003")
    rig.do(AgentNotReady("2002"))
    rig.do(AgentNotReady("2003"))
    serve(rig, "a", talk=300)  # 2001: 300 s
    rig.do(AgentReady("2002"))
    rig.do(AgentNotReady("2001"))
    serve(rig, "b", talk=100)  # 2002: 100 s
    rig.do(AgentReady("2001"))
    rig.do(AgentReady("2003"))
    assert serve(rig, "c", talk=500) == "2003"  # 0 s
    assert serve(rig, "d") == "2002"  # 100 s < 300 s


def test_ring_all_rings_everyone_and_first_answer_wins():
    rig = Rig(config(AGENTS3, one_queue(strategy="ring-all")))
    rig.login("2001", "2002", "2003")
    out = rig.do(CallArrived("c1", "sales"), 1)
    assert sorted(a for _, a in rings(out)) == ["2001", "2002", "2003"]
    out = rig.do(CallArrived("c2", "sales"), 1)
    assert rings(out) == []  # everyone is ringing for c1
    out = rig.do(OfferAnswered("c1", "2002"), 3)
    assert sorted(c.agent_id for c in of(out, CancelRing)) == ["2001", "2003"]
    # the two others are free again and, ring-all, both ring for c2 at once
    assert sorted(a for c, a in rings(out) if c == "c2") == ["2001", "2003"]
    assert sum(1 for line in rig.log if "RINGCANCELED" in line) == 0  # Asterisk: only when the caller gives up


def test_ring_all_no_answer_sets_all_not_ready():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue(strategy="ring-all", ring_time=5)))
    rig.login("2001", "2002")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(OfferRejected("c1", "2001"), 1)
    assert rig.state("2002") == "ringing"  # one refusal does not withdraw the others
    rig.advance(5)
    assert rig.state("2001") == rig.state("2002") == "not-ready"
    assert "c1" in rig.acd.waiting


def test_random_is_seeded_and_spreads():
    agents = {f"2{i:03d}": {"sales": 5} for i in range(1, 5)}

    def run(seed: int) -> list[str]:
        rig = Rig(config(agents, one_queue(strategy="random", wrapup_time=0)), seed=seed)
        rig.login(*agents)
        return [serve(rig, f"c{i}") for i in range(200)]

    first = run(3)
    assert first == run(3)
    counts = Counter(first)
    assert set(counts) == set(agents) and min(counts.values()) > 25


def test_skill_level_first_then_strategy_breaks_ties():
    agents = {"2001": {"sales": 3}, "2002": {"sales": 9}, "2003": {"sales": 9}, "2004": {"sales": 5}}
    rig = Rig(config(agents, one_queue(skill_level_first=True, wrapup_time=0)))
    rig.login("2001", "2004", "2003", "2002")  # 2001 idle longest, but lowest level
    got = [serve(rig, f"c{i}") for i in range(3)]
    # level 9s first, longest idle among them (2003 logged in before 2002), then the 9 again
    assert got == ["2003", "2002", "2003"]
    rig.do(AgentNotReady("2002"))
    rig.do(AgentNotReady("2003"))
    assert serve(rig, "d") == "2004"


def test_skill_level_first_with_round_robin_tie_break():
    agents = {"2001": {"sales": 9}, "2002": {"sales": 2}, "2003": {"sales": 9}}
    rig = Rig(config(agents, one_queue(skill_level_first=True, strategy="round-robin", wrapup_time=0)))
    rig.login("2001", "2002", "2003")
    assert [serve(rig, f"c{i}") for i in range(4)] == ["2001", "2003", "2001", "2003"]


# ---------------------------------------------------------------------------- priority

def test_vip_callers_are_served_first():
    rig = Rig(config({"2001": {"sales": 5}},
                     one_queue(priority_rules=[{"numbers": ["+4930555*", "0800123"], "priority": 10}])))
    rig.login("2001")
    rig.do(AgentNotReady("2001"))
    rig.do(CallArrived("plain1", "sales", "+4989111"), 1)
    rig.do(CallArrived("plain2", "sales", "+4989222"), 1)
    rig.do(CallArrived("vip", "sales", "+49305551234"), 1)
    assert rings(rig.do(AgentReady("2001"), 1)) == [("vip", "2001")]


def test_oldest_first_within_a_priority_and_event_priority():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(wrapup_time=0)))
    rig.login("2001")
    rig.do(AgentNotReady("2001"))
    rig.do(CallArrived("old", "sales"), 1)
    rig.do(CallArrived("new", "sales"), 1)
    rig.do(CallArrived("ivr-gold", "sales", priority=5), 1)
    rig.do(CallArrived("ivr-gold2", "sales", priority=5), 1)
    order = []
    out = rig.do(AgentReady("2001"), 1)
    for _ in range(4):
        [(cid, _)] = rings(out)
        order.append(cid)
        rig.do(OfferAnswered(cid, "2001"))
        out = rig.do(CallEnded(cid), 10)
    assert order == ["ivr-gold", "ivr-gold2", "old", "new"]


def test_queue_weight_across_queues_for_a_shared_agent():
    rig = Rig(config({"2001": {"sales": 5, "support": 5}},
                     [{"name": "sales"}, {"name": "support", "skill": "support", "weight": 10}]))
    rig.login("2001")
    rig.do(AgentNotReady("2001"))
    rig.do(CallArrived("s1", "sales"), 1)
    rig.do(CallArrived("p1", "support"), 1)
    assert rings(rig.do(AgentReady("2001"), 1)) == [("p1", "2001")]


# ---------------------------------------------------------------------------- sticky routing

def sticky_rig(**q):
    return Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}},
                      one_queue(sticky_window=3600, sticky_wait=20, wrapup_time=0, **q)))


def test_sticky_caller_goes_back_to_the_same_agent():
    rig = sticky_rig()
    rig.login("2002", "2001")  # 2002 idle longest
    assert serve(rig, "c1", caller="0301") == "2002"
    # 2001 has been ready since before 2002 finished c1: longest-idle alone would pick 2001
    assert serve(rig, "c2", caller="0301") == "2002"
    assert serve(rig, "c3", caller="0777") == "2001"


def test_sticky_caller_waits_for_the_agent_up_to_the_limit():
    rig = sticky_rig()
    rig.login("2001", "2002")
    serve(rig, "c1", caller="0301")  # → 2001
    rig.do(AgentNotReady("2001", "notes"))
    out = rig.do(CallArrived("c2", "sales", "0301"), 1)
    assert rings(out) == []  # 2002 is free, but the caller waits for 2001 first
    assert rings(rig.advance(19.5)) == []
    assert rings(rig.advance(0.5)) == [("c2", "2002")]


def test_sticky_agent_free_within_the_wait_gets_the_call():
    rig = sticky_rig()
    rig.login("2001", "2002")
    serve(rig, "c1", caller="0301")
    rig.do(AgentNotReady("2001", "notes"))
    rig.do(CallArrived("c2", "sales", "0301"), 1)
    assert rings(rig.do(AgentReady("2001"), 10)) == [("c2", "2001")]


def test_sticky_window_expired_routes_normally():
    rig = sticky_rig()
    rig.login("2001", "2002")
    serve(rig, "c1", caller="0301")
    rig.do(AgentNotReady("2001"))
    rig.t += 3601
    assert rings(rig.do(CallArrived("c2", "sales", "0301"), 1)) == [("c2", "2002")]


def test_sticky_agent_logged_out_no_wait():
    rig = sticky_rig()
    rig.login("2001", "2002")
    serve(rig, "c1", caller="0301")
    rig.do(AgentLogout("2001"), 1)
    assert rings(rig.do(CallArrived("c2", "sales", "0301"), 1)) == [("c2", "2002")]


# ---------------------------------------------------------------------------- the numpy router directly

def test_router_assigns_many_calls_in_one_pass_without_double_booking():
    n = 50
    level = np.zeros((n, 2), np.int8)
    level[:, 0] = np.arange(n) % 10 + 1
    level[::2, 1] = 5
    m = AgentMatrix(level)
    m.state[:] = AgentState.READY
    m.ready_since[:] = np.arange(n)[::-1]
    router = Router(m, [QueueRule(0, 6, "longest-idle"), QueueRule(1, 1, "fewest-calls", weight=1)])
    rows = [(j % 2, 0, False, float(j), j, -1, 0.0) for j in range(40)]
    got = router.assign(WaitingCalls.build(rows), now=100.0)
    agents = [a for x in got for a in x.agents]
    assert len(agents) == len(set(agents))
    for x in got:
        q = rows[x.call][0]
        assert all(router.member[q, a] for a in x.agents)
    # queue 1 (weight 1) calls are served first; queue 0 agents come longest-idle first
    first_q0 = [x for x in got if rows[x.call][0] == 0][0]
    eligible0 = np.flatnonzero(router.member[0])
    assert first_q0.agents[0] in eligible0


def test_router_ranking_is_vectorised_lexsort():
    level = np.array([[3], [9], [9], [5]], np.int8)
    m = AgentMatrix(level)
    m.state[:] = AgentState.READY
    m.ready_since[:] = [1.0, 5.0, 4.0, 2.0]
    r = Router(m, [QueueRule(0, 1, "longest-idle", skill_level_first=True)])
    assert list(r.rank(0, np.ones(4, bool))) == [2, 1, 3, 0]
    m.phone_busy[2] = True
    assert list(r.rank(0, m.available())) == [1, 3, 0]
