"""The ACD engine with a fake clock: offers, ring-no-answer, busy phones, wrap-up, time-outs, empty
queues, abandon, statistics and the queue_log lines. Strategies and priorities: test_acd_strategies."""
from __future__ import annotations

import dataclasses

from typing import Any

import pytest

from acd import Acd, parse_acd_config
from acd.actions import (
    AgentStateChanged, Announce, CancelRing, Connect, FeatureCodeReply, HangupWithPrompt, Overflow, QueueLogLine,
    RingAgent, SendToVoicemail, StartMusic,
)
from acd.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, CallAbandoned, CallArrived, CallEnded, CallTransferred,
    FeatureCodeDialled, OfferAnswered, OfferRejected, PhoneBusy, PhoneFree, WrapUpEnd,
)

T0 = 1_700_000_000.0


def config(agents: dict[str, dict[str, int]], queues: list[dict[str, Any]], **extra: Any):
    """Agents "2001".. on extensions "1001"..; skills named after what the queues and agents use."""
    skills = sorted({s for a in agents.values() for s in a} | {q.get("skill", "sales") for q in queues})
    raw = {
        "skills": [{"name": s} for s in skills],
        "agents": [{"id": aid, "name": f"Agent {aid}", "extension": "1" + aid[1:], "skills": sk}
                   for aid, sk in agents.items()],
        "queues": [{"skill": "sales", **q} for q in queues],
        **extra,
    }
    return parse_acd_config(raw, "test.toml")


class Rig:
    """An Acd plus a fake clock; collects every action and queue_log line."""

    def __init__(self, cfg, seed: int = 7):
        self.acd = Acd(cfg, seed=seed)
        self.t = T0
        self.actions: list = []

    @property
    def log(self) -> list[str]:
        return [a.line for a in self.actions if isinstance(a, QueueLogLine)]

    def do(self, event, dt: float = 0.0) -> list:
        self.t += dt
        out = self.acd.handle(event, self.t)
        self.actions += out
        return out

    def advance(self, dt: float) -> list:
        """Move the clock, firing every timer due on the way at its own time."""
        end, out = self.t + dt, []
        while (d := self.acd.next_deadline()) is not None and d <= end:
            self.t = max(self.t, d)
            out += self.acd.on_timer(self.t)
        self.t = end
        self.actions += out
        return out

    def login(self, *ids: str, gap: float = 1.0) -> None:
        for aid in ids:
            self.do(AgentLogin(aid), gap)

    def state(self, aid: str) -> str:
        return self.acd.agent_state(aid)[0]


def rings(out: list) -> list[tuple[str, str]]:
    return [(a.call_id, a.agent_id) for a in out if isinstance(a, RingAgent)]


def of(out: list, cls: type) -> list:
    return [a for a in out if isinstance(a, cls)]


def one_queue(**q: Any) -> list[dict[str, Any]]:
    return [{"name": "sales", **q}]


# ---------------------------------------------------------------------------- offers and answers

def test_call_rings_free_agent_then_connects_with_announcement_and_whisper():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(whisper=True)))
    rig.login("2001")
    out = rig.do(CallArrived("c1", "sales", "0301234"), 1)
    assert StartMusic("c1", "default") in out
    assert of(out, RingAgent) == [RingAgent("c1", "2001", "1001", 15, "sales", "0301234")]
    assert rig.state("2001") == "ringing"
    out = rig.do(OfferAnswered("c1", "2001", "leg-9"), 4)
    assert of(out, Connect) == [Connect("c1", "2001", "1001", announce_agent="2001", whisper="sales")]
    assert rig.state("2001") == "on-call"
    assert rig.log[-1] == f"{int(rig.t)}|c1|sales|Agent/2001|CONNECT|4|leg-9|4"


def test_no_agent_ready_call_waits_and_is_offered_when_agent_logs_in():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    assert rings(rig.do(CallArrived("c1", "sales"))) == []
    assert rings(rig.do(AgentLogin("2001"), 5)) == [("c1", "2001")]


def test_agent_below_min_level_or_without_skill_is_never_offered():
    rig = Rig(config({"2001": {"sales": 2}, "2002": {"support": 9}, "2003": {"sales": 6}},
                     one_queue(min_level=5) + [{"name": "support", "skill": "support"}]))
    rig.login("2001", "2002")
    assert rings(rig.do(CallArrived("c1", "sales"), 1)) == []
    assert rings(rig.do(AgentLogin("2003"), 1)) == [("c1", "2003")]


# ---------------------------------------------------------------------------- ring-no-answer

def test_ring_no_answer_sets_not_ready_and_requeues_at_head():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue(ring_time=10, wrapup_time=0)))
    rig.login("2001")
    assert rings(rig.do(CallArrived("c1", "sales"), 1)) == [("c1", "2001")]
    rig.do(CallArrived("c2", "sales"), 1)
    out = rig.advance(10)
    assert of(out, CancelRing) == [CancelRing("c1", "2001", "1001")]
    assert rig.acd.agent_state("2001") == ("not-ready", "ring-no-answer")
    assert any(line.endswith("|c1|sales|Agent/2001|RINGNOANSWER|10000") for line in rig.log)
    assert any(line.endswith("|NONE|NONE|Agent/2001|PAUSEALL|ring-no-answer") for line in rig.log)
    # c1 had its turn first and goes back to the head: the next free agent gets c1, not c2
    assert rings(rig.do(AgentLogin("2002"), 1)) == [("c1", "2002")]


def test_head_of_queue_beats_an_older_call_of_the_same_priority():
    from acd.routing import WaitingCalls
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    calls = WaitingCalls.build([(0, 0, False, 10.0, 1, -1, 0.0), (0, 0, True, 20.0, 2, -1, 0.0)])
    assert list(rig.acd.router.order(calls)) == [1, 0]


def test_offer_rejected_is_ring_no_answer_and_next_agent_gets_the_call():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue()))
    rig.login("2001", "2002")  # 2001 has been ready longest
    assert rings(rig.do(CallArrived("c1", "sales"), 1)) == [("c1", "2001")]
    out = rig.do(OfferRejected("c1", "2001"), 2)
    assert rig.state("2001") == "not-ready"
    assert rings(out) == [("c1", "2002")]


def test_not_ready_agent_becomes_ready_again_with_feature_code():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(ring_time=5)))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.advance(5)
    out = rig.do(FeatureCodeDialled("1001", "*14"), 3)
    assert FeatureCodeReply("1001", True, "ready") in out
    assert rings(out) == [("c1", "2001")]
    assert any(line.endswith("|Agent/2001|UNPAUSEALL|ring-no-answer") for line in rig.log)


# ---------------------------------------------------------------------------- real phone state

def test_busy_phone_is_never_offered_a_call():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    rig.login("2001")
    rig.do(PhoneBusy("1001"), 1)  # the agent picked up the handset and dialled someone directly
    assert rings(rig.do(CallArrived("c1", "sales"), 1)) == []
    assert rig.state("2001") == "ready"
    assert rig.acd.queue_stats("sales", rig.t).agents["phone-busy"] == 1
    assert rings(rig.do(PhoneFree("1001"), 30)) == [("c1", "2001")]


def test_busy_before_login_is_remembered():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    rig.do(PhoneBusy("1001"))
    rig.do(CallArrived("c1", "sales"), 1)
    assert rings(rig.do(AgentLogin("2001"), 1)) == []
    assert rings(rig.do(PhoneFree("1001"), 1)) == [("c1", "2001")]


# ---------------------------------------------------------------------------- wrap-up

def test_wrap_up_timer_holds_agent_then_next_call_is_offered():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(wrapup_time=30)))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(OfferAnswered("c1", "2001"), 2)
    rig.do(CallArrived("c2", "sales"), 10)
    out = rig.do(CallEnded("c1", by_agent=True), 50)
    assert rig.state("2001") == "wrap-up" and rings(out) == []
    assert rig.log[-1].endswith("|c1|sales|Agent/2001|COMPLETEAGENT|2|60|1")
    assert rings(rig.advance(29.9)) == []
    out = rig.advance(0.1)
    assert rings(out) == [("c2", "2001")]


def test_wrap_up_ended_early_by_the_agent():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(wrapup_time=120)))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(OfferAnswered("c1", "2001"), 2)
    rig.do(CallArrived("c2", "sales"), 1)
    rig.do(CallEnded("c1"), 60)
    assert rings(rig.do(WrapUpEnd("2001"), 5)) == [("c2", "2001")]


def test_not_ready_and_logout_asked_during_a_call_apply_after_it():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue(wrapup_time=0)))
    rig.login("2001", "2002")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(CallArrived("c2", "sales"), 0)
    rig.do(OfferAnswered("c1", "2001"), 1)
    rig.do(OfferAnswered("c2", "2002"), 0)
    rig.do(AgentNotReady("2001", "lunch"), 5)
    rig.do(AgentLogout("2002"), 0)
    assert rig.state("2001") == "on-call" and rig.state("2002") == "on-call"
    rig.do(CallEnded("c1"), 60)
    rig.do(CallEnded("c2"), 0)
    assert rig.acd.agent_state("2001") == ("not-ready", "lunch")
    assert rig.state("2002") == "logged-out"
    assert rig.log[-1].startswith(f"{int(rig.t)}|NONE|NONE|Agent/2002|AGENTLOGOFF|SIP/1002|")


def test_agent_going_not_ready_while_ringing_puts_call_back_without_blame():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue()))
    rig.login("2001", "2002")
    rig.do(CallArrived("c1", "sales"), 1)
    out = rig.do(AgentNotReady("2001", "break"), 1)
    assert CancelRing("c1", "2001", "1001") in out
    assert rig.acd.agent_state("2001") == ("not-ready", "break")
    assert rings(out) == [("c1", "2002")]
    assert not any("RINGNOANSWER" in line for line in rig.log)


# ---------------------------------------------------------------------------- time-outs and empty queues

def test_overflow_on_max_wait():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"support": 5}},
                     [{"name": "sales", "max_wait": 60, "on_timeout": {"action": "overflow", "queue": "support"}},
                      {"name": "support", "skill": "support", "music_class": "calm"}]))
    rig.login("2001", "2002")
    rig.do(AgentNotReady("2001", "meeting"))
    rig.do(AgentNotReady("2002", "meeting"))
    rig.do(CallArrived("c1", "sales", "0301"), 1)
    assert rig.advance(59.5) == []
    rig.do(AgentReady("2002"))  # support frees up; still not eligible for the sales call
    out = rig.advance(1)
    assert Overflow("c1", "sales", "support") in out
    assert StartMusic("c1", "calm") in out
    assert rings(out) == [("c1", "2002")]
    t = int(rig.t)
    assert f"{t}|c1|sales|NONE|EXITWITHTIMEOUT|1|1|60" in rig.log
    assert f"{t}|c1|support|NONE|ENTERQUEUE||0301" in rig.log
    assert rig.acd.queue_stats("sales", rig.t).timed_out == 1
    assert rig.acd.queue_stats("support", rig.t).offered == 1


@pytest.mark.parametrize("fallback, expected", [
    ({"action": "voicemail", "mailbox": "800"}, SendToVoicemail("c1", "800")),
    ({"action": "hangup", "prompt": "closed"}, HangupWithPrompt("c1", "closed")),
])
def test_max_wait_to_voicemail_or_hangup_prompt_cancels_a_ringing_offer(fallback, expected):
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(max_wait=20, ring_time=30, on_timeout=fallback)))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    out = rig.advance(20)
    assert CancelRing("c1", "2001", "1001") in out and expected in out
    assert rig.state("2001") == "ready"  # not the agent's fault
    assert rig.acd.calls == {}


@pytest.mark.parametrize("fallback, expected", [
    ({"action": "overflow", "queue": "backup"}, Overflow("c1", "sales", "backup")),
    ({"action": "voicemail", "mailbox": "800"}, SendToVoicemail("c1", "800")),
    ({"action": "hangup", "prompt": "nobody-here"}, HangupWithPrompt("c1", "nobody-here")),
])
def test_no_agents_logged_in(fallback, expected):
    rig = Rig(config({"2001": {"sales": 5}, "2009": {"backup": 1}},
                     one_queue(on_no_agents=fallback) + [{"name": "backup", "skill": "backup"}]))
    out = rig.do(CallArrived("c1", "sales", "0301"))
    assert expected in out
    assert f"{int(rig.t)}|c1|sales|NONE|EXITEMPTY|1|1|0" in rig.log
    assert rig.acd.queue_stats("sales", rig.t).exited_empty == 1


def test_not_ready_agents_count_as_present_and_wait_is_the_default():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(on_no_agents={"action": "voicemail", "mailbox": "9"})))
    rig.login("2001")
    rig.do(AgentNotReady("2001", "lunch"))
    out = rig.do(CallArrived("c1", "sales"), 1)
    assert of(out, SendToVoicemail) == [] and "c1" in rig.acd.waiting
    # the last agent logs out: the waiting call gets the no-agents treatment now
    out = rig.do(AgentLogout("2001"), 5)
    assert SendToVoicemail("c1", "9") in out


# ---------------------------------------------------------------------------- abandon, stats, queue_log

def test_abandon_is_counted_and_logged_with_position():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    rig.do(CallArrived("c1", "sales"))
    rig.do(CallArrived("c2", "sales"), 1)
    rig.do(CallAbandoned("c2"), 44)
    assert rig.log[-1] == f"{int(rig.t)}|c2|sales|NONE|ABANDON|2|2|44"
    s = rig.acd.queue_stats("sales", rig.t)
    assert (s.offered, s.abandoned, s.waiting, s.longest_wait) == (2, 1, 1, 45)


def test_abandon_while_ringing_frees_the_agent():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    out = rig.do(CallAbandoned("c1"), 3)
    assert CancelRing("c1", "2001", "1001") in out
    assert rig.state("2001") == "ready"


def test_service_level_asa_and_aht():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(service_level_threshold=20, wrapup_time=10)))
    rig.login("2001")
    rig.do(AgentNotReady("2001"))
    # three answered calls with hold times 5, 10, 30 s; talk 100, 200, 300 s; wrap-up 10 s each
    for cid, hold, talk in (("a", 5, 100), ("b", 10, 200), ("c", 30, 300)):
        rig.do(CallArrived(cid, "sales"), 1)
        out = rig.do(AgentReady("2001"), hold)
        assert rings(out) == [(cid, "2001")]
        rig.do(OfferAnswered(cid, "2001"))
        rig.do(CallEnded(cid), talk)
        rig.advance(10)
        rig.do(AgentNotReady("2001"))
    rig.do(CallArrived("d", "sales"), 1)
    rig.do(CallAbandoned("d"), 50)
    s = rig.acd.queue_stats("sales", rig.t)
    assert (s.offered, s.answered, s.abandoned) == (4, 3, 1)
    assert s.service_level == pytest.approx(2 / 4)  # 2 within 20 s over answered + abandoned
    assert s.asa == pytest.approx(15.0)
    assert s.aht == pytest.approx(200.0 + 10.0)
    assert s.agents["not-ready"] == 1


def test_queue_log_lines_for_a_whole_call():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(wrapup_time=0)))
    rig.login("2001")  # T0+1
    rig.do(CallArrived("c1", "sales", "0301"), 1)  # T0+2
    rig.do(OfferAnswered("c1", "2001", "leg1"), 7)  # T0+9
    rig.do(CallTransferred("c1", "1009", "internal"), 120)  # T0+129
    rig.do(AgentNotReady("2001", "lunch"), 1)  # T0+130
    rig.do(AgentReady("2001"), 600)  # T0+730
    rig.do(AgentLogout("2001"), 10)  # T0+740
    t = int(T0)
    assert rig.log == [
        f"{t + 1}|NONE|NONE|Agent/2001|AGENTLOGIN|SIP/1001",
        f"{t + 2}|c1|sales|NONE|ENTERQUEUE||0301",
        f"{t + 9}|c1|sales|Agent/2001|CONNECT|7|leg1|7",
        f"{t + 129}|c1|sales|Agent/2001|TRANSFER|1009|internal|7|120|1",
        f"{t + 130}|NONE|NONE|Agent/2001|PAUSEALL|lunch",
        f"{t + 730}|NONE|NONE|Agent/2001|UNPAUSEALL|lunch",
        f"{t + 740}|NONE|NONE|Agent/2001|AGENTLOGOFF|SIP/1001|739",
    ]


def test_queue_log_field_with_a_pipe_cannot_shift_fields():
    from acd.queuelog import line
    assert line(1.9, "c|1", "q", None, "ENTERQUEUE", "", "a|b") == "1|c_1|q|NONE|ENTERQUEUE||a_b"


def test_position_and_expected_wait_announced_at_interval():
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue(announce_interval=30)))
    rig.login("2001", "2002")
    rig.do(AgentNotReady("2001"))
    rig.do(AgentNotReady("2002"))
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(CallArrived("c2", "sales"), 1)
    out = rig.advance(29)
    # no history yet: 180 s per call, over 0 working agents (counted as 1)
    assert of(out, Announce) == [Announce("c1", 1, 180)]
    out = rig.advance(1)
    assert of(out, Announce) == [Announce("c2", 2, 360)]
    out = rig.advance(29)
    assert of(out, Announce) == [Announce("c1", 1, 180)]


def test_connected_call_abandon_is_completecaller():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue()))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    rig.do(OfferAnswered("c1", "2001"), 3)
    rig.do(CallAbandoned("c1"), 40)
    assert rig.log[-1].endswith("|c1|sales|Agent/2001|COMPLETECALLER|3|40|1")


# ---------------------------------------------------------------------------- feature codes on the engine

def test_feature_codes_drive_agent_state():
    cfg = config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue(),
                 not_ready_reasons={"1": "lunch", "2": "training"})
    cfg.agents[1] = dataclasses.replace(cfg.agents[1], extensions=["1005"])  # 2002 may also sit at 1005
    rig = Rig(cfg)
    assert FeatureCodeReply("1005", True, "logged in") in rig.do(FeatureCodeDialled("1005", "*11*2002#"))
    assert rig.acd.agents[1].extension == "1005"  # hot-desking: logged in at another phone
    assert FeatureCodeReply("1001", True, "logged in") in rig.do(FeatureCodeDialled("1001", "*11"))
    out = rig.do(FeatureCodeDialled("1005", "*132"))
    assert FeatureCodeReply("1005", True, "not ready") in out
    assert AgentStateChanged("2002", "not-ready", "training") in out
    assert FeatureCodeReply("1005", False, "unknown reason code 7") in rig.do(FeatureCodeDialled("1005", "*137"))
    assert FeatureCodeReply("1009", False, "no agent logged in at this phone") in rig.do(
        FeatureCodeDialled("1009", "*14"))
    assert of(rig.do(FeatureCodeDialled("1005", "*112001")), FeatureCodeReply) == [
        FeatureCodeReply("1005", False, "agent 2001 may not log in at 1005 (its phones: 1001)")]
    assert FeatureCodeReply("1005", True, "logged out") in rig.do(FeatureCodeDialled("1005", "*12"))
    assert rig.state("2002") == "logged-out"
    assert of(rig.do(FeatureCodeDialled("1001", "*99")), FeatureCodeReply) == [
        FeatureCodeReply("1001", False, "not a feature code")]


def test_late_answer_after_withdrawal_is_hung_up_and_duplicate_arrival_ignored():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(ring_time=5), dialplan=[{"number": "500", "queue": "sales"}]))
    assert rig.acd.queue_for_number("500") == "sales"
    rig.login("2001")
    rig.do(CallArrived("c1", "sales"), 1)
    assert rig.do(CallArrived("c1", "sales"), 1) == []
    rig.advance(5)
    out = rig.do(OfferAnswered("c1", "2001"), 1)  # the phone answered just after the ring timed out
    assert out == [CancelRing("c1", "2001", "1001")]
    assert rig.state("2001") == "not-ready" and "c1" in rig.acd.waiting


def test_every_timer_is_cleared_when_calls_finish():
    rig = Rig(config({"2001": {"sales": 5}}, one_queue(max_wait=100, announce_interval=10, wrapup_time=5,
                                                        sticky_window=60)))
    rig.login("2001")
    rig.do(CallArrived("c1", "sales", "0301"), 1)
    rig.do(OfferAnswered("c1", "2001"), 2)
    rig.do(CallEnded("c1"), 30)
    rig.advance(5)
    assert rig.acd.next_deadline() is None
    assert rig.acd.calls == {} and rig.acd.columns.active.sum() == 0


def test_an_impostor_cannot_log_in_as_an_agent():
    """Issue 11: any extension could log in as any logged-out agent. Now only at the agent's phones, or with its
    PIN; wrong PINs lock the dialling phone (not the agent) out of PIN logins."""
    cfg = config({"2001": {"sales": 5}, "2002": {"sales": 5}}, one_queue())
    cfg.agents[1] = dataclasses.replace(cfg.agents[1], pin="4711")
    rig = Rig(cfg)
    assert of(rig.do(FeatureCodeDialled("1009", "*11*2001")), FeatureCodeReply) == [
        FeatureCodeReply("1009", False, "agent 2001 may not log in at 1009 (its phones: 1001)")]
    assert rig.state("2001") == "logged-out"
    assert of(rig.do(FeatureCodeDialled("1002", "*11")), FeatureCodeReply) == [
        FeatureCodeReply("1002", False, "agent 2002 needs a PIN (*11*2002*PIN)")]
    for i in range(4):
        assert of(rig.do(FeatureCodeDialled("1009", f"*11*2002*{1000 + i}")), FeatureCodeReply)[0].message == "wrong PIN"
    last = of(rig.do(FeatureCodeDialled("1009", "*11*2002*1004")), FeatureCodeReply)[0]
    assert not last.ok and "locked" in last.message
    # locked: even the right PIN from that phone waits; the agent at another phone is not locked out
    assert not of(rig.do(FeatureCodeDialled("1009", "*11*2002*4711")), FeatureCodeReply)[0].ok
    assert FeatureCodeReply("1005", True, "logged in") in rig.do(FeatureCodeDialled("1005", "*11*2002*4711"))
    assert rig.acd.agents[1].extension == "1005"  # hot-desking with the PIN
    assert rig.state("2002") == "ready"
