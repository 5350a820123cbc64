"""Call control's middle layer, sans-IO with a fake clock and media on: every call ends in exactly one
``CallEnded`` event whose disposition says how it ended, and the hotline's whole path (IVR → queue →
agent → survey) is one call with one record."""
from __future__ import annotations

from pathlib import Path

from media.engine import DtmfReceived
from softswitch.events import AgentConnected, CallEnded, Disposition, OfferPresented

from .callcentre_harness import (ACD, DOMAIN, Net, Phone, ack_caller, answer, in_dialog, login, make_core,
                                 plain_call, reqs_to, responses, sdp)
from .core_harness import Peer

ROOT = Path(__file__).resolve().parents[1]


def events_of(core_out: list, kind: type) -> list:
    return [a for a in core_out if isinstance(a, kind)]


class Recorder(Net):
    """A Net that also keeps the events for the outside (call ends, offers...)."""

    def __init__(self, core):
        super().__init__(core)
        self.events: list = []

    def _run(self, actions):
        self.events += [a for a in actions if not hasattr(a, "data") and type(a).__name__ != "PersistBindings"]
        return super()._run(actions)


def boot(**sections):
    exts = {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x"}
    core = make_core(exts, **sections)
    net = Recorder(core)
    phones = {}
    for i, n in enumerate(exts):
        phones[n] = Phone(net, n, exts[n], Peer("udp", f"10.0.0.{i + 1}", 5060))
        assert phones[n].register().status == 200
    return core, net, phones


def ended(net) -> list[CallEnded]:
    return [e for e in net.events if isinstance(e, CallEnded)]


def test_a_callees_486_is_recorded_as_busy():
    core, net, ph = boot(media={"enabled": True})
    _, out = ph["1001"].invite("1002", body=sdp(4000, "10.0.0.1"))
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    out = ph["1002"].send(answer(inv, 486, to_tag="b"))
    assert [r.status for r in responses(out) if r.cseq.method == "INVITE"] == [486]
    [rec] = ended(net)
    assert rec.disposition is Disposition.BUSY and rec.caller == "1001" and rec.callee == "1002"
    assert rec.answered is None


def test_the_busy_limit_is_busy_and_an_unanswered_call_is_no_answer():
    core, net, ph = boot(media={"enabled": True})
    plain_call(net, ph["1001"], ph["1002"])
    _, out = ph["1003"].invite("1002", body=sdp(4000, "10.0.0.3"))      # 1002 is talking: 486 from the switch
    assert [r.status for r in responses(out) if r.status >= 300 and r.status != 407] == [486]
    assert ended(net)[-1].disposition is Disposition.BUSY
    _, out = ph["1003"].invite("1004", body=sdp(4000, "10.0.0.3"))
    ph["1004"].send(answer(reqs_to(out, ph["1004"].peer, "INVITE")[0], 180, to_tag="r"))
    out = net.advance(core.config.sip.ring_timeout + 1)
    assert any(isinstance(m, type(responses(out)[0])) and m.status == 480 for _, m in out)
    assert ended(net)[-1].disposition is Disposition.NO_ANSWER


def test_an_answered_call_and_a_blacklisted_caller():
    core, net, ph = boot(media={"enabled": True}, security={"blacklist": ["1003"]})
    a, b = plain_call(net, ph["1001"], ph["1002"])
    net.advance(5)
    a.req("BYE")
    rec = ended(net)[-1]
    assert rec.disposition is Disposition.ANSWERED and rec.hung_up_by == "caller"
    assert rec.ended - rec.answered >= 5 and rec.quality["caller"]["codec"]
    ph["1003"].send(ph["1003"].msg("INVITE", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", body=sdp()))
    assert ended(net)[-1].disposition is Disposition.BLOCKED


def test_a_caller_who_hangs_up_in_the_queue_is_abandoned():
    core, net, ph = boot(media={"enabled": True}, acd=ACD)
    _, out = ph["1001"].invite("500", body=sdp(4000, "10.0.0.1"))     # nobody logged in: the caller waits
    ok = [m for m in responses(out) if m.status == 200][0]
    ack_caller(ph["1001"], ok)
    net.advance(10)
    ph["1001"].send(in_dialog("BYE", ruri="sip:x@x", from_=f"<sip:1001@{DOMAIN}>;tag={ph['1001'].tag}",
                              to=ok.headers.get("To"), call_id=ok.call_id, cseq=ph["1001"].cseq + 1,
                              via_host="10.0.0.1", via_port=5060))
    [rec] = ended(net)
    assert rec.disposition is Disposition.ABANDONED and rec.queue == "support" and rec.agent == ""
    assert core.router.queue.calls == {} and core.router.queue.acd.queue_stats("support", net.now).waiting == 0


IVR = {
    "default_language": "en", "languages": ["en"], "prompts_dir": str(ROOT / "prompts"),
    "numbers": {"4000": "main"},
    "flows": {
        "main": {"start": "menu", "nodes": {
            "menu": {"type": "menu", "prompts": ["main-menu"], "choices": {"1": "q"}, "timeout": 10.0,
                     "fallback": "q"},
            "q": {"type": "queue", "queue": "support"}}},
        "survey": {"start": "rate", "nodes": {
            "rate": {"type": "survey", "prompts": ["survey-question"], "next": "bye"},
            "bye": {"type": "hangup", "prompts": ["goodbye"]}}},
    },
}


def test_hotline_ivr_queue_agent_survey_is_one_call_with_one_record(tmp_path):
    """Caller dials the hotline, presses 1, waits in the queue, the agent answers, talks, hangs up; the
    caller rates the call 4 in the survey and is hung up: one record, answered, with all of it."""
    acd = {**ACD, "queues": [{**ACD["queues"][0], "survey": "survey"}]}
    core, net, ph = boot(media={"enabled": True}, acd=acd, ivr={**IVR, "sounds_dir": str(tmp_path)})
    login(core, net, "2001")
    media = core.media
    c = ph["1001"]
    _, out = c.invite("4000", body=sdp(4000, "10.0.0.1"))
    ok = [m for m in responses(out) if m.status == 200][0]
    ack_caller(c, ok)
    call = next(iter(core.b2bua.calls.values()))
    assert call.app is core.router.ivr

    def digit(d: str) -> list:
        return net._run(core.on_media_events([DtmfReceived(call.caller.media, d, "rfc4733", 100)], net.now))

    out = digit("1")                                           # menu: 1 -> queue support -> agent 2001 rings
    assert call.app is core.router.queue
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    assert [e.agent for e in net.events if isinstance(e, OfferPresented)] == ["2001"]
    ph["1002"].send(answer(inv, 180, to_tag="ag"))
    net.advance(3)
    ph["1002"].send(answer(inv, 200, to_tag="ag", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    assert [e.agent for e in net.events if isinstance(e, AgentConnected)] == ["2001"]
    assert call.state == "answered" and call.answered.extension == "1002"
    net.advance(30)                                            # talk
    agent_bye = in_dialog("BYE", ruri="sip:x@x", from_=inv.headers.get("To") + ";tag=ag", to=inv.headers.get("From"),
                          call_id=inv.call_id, cseq=200, via_host="10.0.0.2", via_port=5060)
    out = ph["1002"].send(agent_bye)                           # the agent hangs up: the caller goes to the survey
    assert not reqs_to(out, c.peer, "BYE") and call.app is core.router.ivr and call.live
    out = digit("4")                                           # rates 4, then "goodbye" and the switch hangs up
    net.advance(2)
    assert reqs_to(net.sent, c.peer, "BYE")
    [rec] = ended(net)
    assert (rec.disposition, rec.queue, rec.agent, rec.ivr, rec.survey_score) == (
        Disposition.ANSWERED, "support", "2001", "survey", 4)
    assert rec.answered - rec.arrived >= 3 and rec.ended - rec.answered >= 30
    assert rec.hung_up_by == "callee"
    assert (len(media.endpoints), core.router.ivr.calls, core.router.queue.by_call) == (0, {}, {})


def test_originate_rings_a_then_b_and_connects_them():
    core, net, ph = boot(media={"enabled": True})
    router = core.router
    call = None

    def start():
        nonlocal call
        call = router.originator.originate("1001", "1002", net.now, caller_id="4000")

    out = net._run(core.run(start, now=net.now))
    inv_a = reqs_to(out, ph["1001"].peer, "INVITE")[0]
    assert not reqs_to(out, ph["1002"].peer, "INVITE")              # B waits until A answers
    assert "4000" in inv_a.headers.get("From")
    ph["1001"].send(answer(inv_a, 180, to_tag="a"))
    out = ph["1001"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1001@10.0.0.1>", body=sdp(4000, "10.0.0.1")))
    assert [m.method for m in reqs_to(out, ph["1001"].peer)] == ["ACK"]
    inv_b = reqs_to(out, ph["1002"].peer, "INVITE")[0]              # now B rings
    assert call.state == "queued" and call.answered is None         # A waits (music) while B rings
    net.advance(2)
    ph["1002"].send(answer(inv_b, 200, to_tag="b", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    assert call.state == "answered" and call.media_partner is call.answered and call.bridge is not None
    net.advance(10)
    bye = in_dialog("BYE", ruri="sip:x@x", from_=inv_b.headers.get("To") + ";tag=b", to=inv_b.headers.get("From"),
                    call_id=inv_b.call_id, cseq=5, via_host="10.0.0.2", via_port=5060)
    out = ph["1002"].send(bye)
    assert reqs_to(out, ph["1001"].peer, "BYE")
    [rec] = ended(net)
    assert (rec.caller, rec.callee, rec.disposition, rec.hung_up_by) == ("1001", "1002", Disposition.ANSWERED, "callee")
    assert rec.ended - rec.answered >= 10


def test_originate_hangs_up_a_when_b_is_busy():
    core, net, ph = boot(media={"enabled": True})
    net._run(core.run(core.router.originator.originate, "1001", "1002", net.now, now=net.now))
    inv_a = reqs_to(net.sent, ph["1001"].peer, "INVITE")[0]
    out = ph["1001"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1001@10.0.0.1>", body=sdp(4000, "10.0.0.1")))
    inv_b = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    out = ph["1002"].send(answer(inv_b, 486, to_tag="b"))
    assert reqs_to(out, ph["1001"].peer, "BYE")
    assert ended(net)[-1].disposition is Disposition.BUSY
    assert core.router.originator.originate("1003", "1002", net.now) is not None   # 1003 is registered
    assert core.router.originator.originate("9999", "1002", net.now) is None        # nobody to ring


def play_media(core, net, seconds: float) -> None:
    """Run the media engine's 20 ms tick for ``seconds`` (prompts and tones play out) beside the fake clock."""
    m = core.media
    t = m._clock()
    for _ in range(int(seconds / 0.02)):
        t += 0.02
        net._run(core.on_media_events(m.tick(t).events, net.now))


def test_feature_codes_are_service_calls_and_an_overflowed_call_is_overflow():
    acd = {**ACD, "queues": [{**ACD["queues"][0], "max_wait": 5, "on_timeout": {"action": "overflow", "queue": "spill"}},
                             {"name": "spill", "skill": "support"}]}
    core, net, ph = boot(media={"enabled": True}, acd=acd)
    _, out = ph["1002"].invite("*11*2001", body=sdp(4000, "10.0.0.2"))     # agent login: a service call
    ack_caller(ph["1002"], [m for m in responses(out) if m.status == 200][0])
    play_media(core, net, 1.0)                                              # the confirmation tone, then BYE
    assert ended(net)[-1].service and core.router.queue.acd.agent_state("2001")[0] == "ready"
    _, out = ph["1002"].invite("*12", body=sdp(4000, "10.0.0.2"))          # and out again: nobody serves
    ack_caller(ph["1002"], [m for m in responses(out) if m.status == 200][0])
    play_media(core, net, 1.0)
    _, out = ph["1001"].invite("500", body=sdp(4000, "10.0.0.1"))
    ok = [m for m in responses(out) if m.status == 200][0]
    ack_caller(ph["1001"], ok)
    net.advance(30)                                                         # overflowed to "spill" after 5 s
    ph["1001"].send(in_dialog("BYE", ruri="sip:x@x", from_=f"<sip:1001@{DOMAIN}>;tag={ph['1001'].tag}",
                              to=ok.headers.get("To"), call_id=ok.call_id, cseq=ph["1001"].cseq + 1,
                              via_host="10.0.0.1", via_port=5060))
    rec = ended(net)[-1]
    assert (rec.disposition, rec.queue, rec.service) == (Disposition.OVERFLOWED, "spill", False)


def test_the_calls_an_extension_placed_are_counted_by_look_up_and_forgotten_with_the_call():
    """``max_calls`` counts an extension's live calls from an index kept with the calls (not a walk over
    every call on each INVITE, bench/OVERLOAD.md): up while the call rings, down when it ends, and nothing
    left of it once the ended call is forgotten."""
    core, net, ph = boot(media={"enabled": True})
    b2bua = core.b2bua
    _, out = ph["1001"].invite("1002", body=sdp(4000, "10.0.0.1"))
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    assert b2bua.calls_placed("1001") == 1 and b2bua.calls_placed("1002") == 0
    ph["1002"].send(answer(inv, 486, to_tag="b"))
    assert b2bua.calls_placed("1001") == 0
    net.advance(40.0)                                   # past the ended call's linger (64*T1)
    assert not b2bua.calls and not b2bua._placed and not b2bua._placed_by
