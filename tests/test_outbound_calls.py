"""The dialler's calls in call control, sans-IO with a fake clock and anchored media: agent first (a virtual
call the ACD gives to an agent), then the customer; "press 1" keeps the caller's place in the ACD."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from dialler import events as de
from dialler.rules import Result
from media.engine import DtmfReceived
from softswitch.events import AgentConnected, CallEnded, DiallerInput, Disposition, OfferPresented

from .callcentre_harness import ACD, DOMAIN, Net, Phone, ack_caller, answer, in_dialog, login, make_core, reqs_to, sdp
from .core_harness import Peer

EXTS = {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x", "1005": "pw-1005-x"}
HOTLINE = "4008001234"


class Recorder(Net):
    def __init__(self, core):
        super().__init__(core)
        self.events: list = []

    def _run(self, actions):
        self.events += [a for a in actions if not hasattr(a, "data") or isinstance(a, DiallerInput)]
        return super()._run(actions)


def boot(tmp_path: Path | None = None, queue_extra: dict | None = None, sections: dict | None = None, **outbound):
    queue: dict = dict(ACD["queues"][0])  # type: ignore[index]
    acd = {**ACD, "queues": [{**queue, "strategy": "longest-idle", "max_wait": 120, **(queue_extra or {})}]}
    core = make_core(EXTS, media={"enabled": True}, acd=acd,
                     outbound={"caller_id": HOTLINE, **outbound}, **(sections or {}))
    net = Recorder(core)
    ph = {}
    for i, n in enumerate(EXTS):
        ph[n] = Phone(net, n, EXTS[n], Peer("udp", f"10.0.0.{i + 1}", 5060))
        assert ph[n].register().status == 200
    if tmp_path is not None:   # the callback prompts, as tiny WAVs
        core.router.sounds.sounds_dir = tmp_path
        (tmp_path / "en").mkdir()
        for name in ("callback-offer", "callback-confirmed"):
            with wave.open(str(tmp_path / "en" / f"{name}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(np.zeros(1600, np.int16).tobytes())
    return core, net, ph


def play_media(core, net, seconds: float) -> None:
    """The media engine's 20 ms tick for ``seconds`` (prompts play out) beside the fake clock."""
    m = core.media
    t = m._clock()
    for _ in range(int(seconds / 0.02)):
        t += 0.02
        net._run(core.on_media_events(m.tick(t).events, net.now))


def dialler_input(net, kind):
    return [e.event for e in net.events if isinstance(e, DiallerInput) and isinstance(e.event, kind)]


def dial(core, net, attempt=1, number="1005", mode="progressive", contact=7):
    d = de.Dial(attempt, contact, "followup", mode, number, queue="support", caller_id=HOTLINE, name="Ms Li",
                data={"order": 4711})
    return net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))


def bye_from(phone, inv, tag):
    return phone.send(in_dialog("BYE", ruri="sip:x@x", from_=inv.headers.get("To") + f";tag={tag}",
                                to=inv.headers.get("From"), call_id=inv.call_id, cseq=50,
                                via_host=phone.peer.host, via_port=5060))


def test_progressive_rings_the_agent_first_then_the_customer_presenting_the_hotline():
    core, net, ph = boot()
    login(core, net, "2001")
    out = dial(core, net)
    inv_a = reqs_to(out, ph["1002"].peer, "INVITE")[0]                 # agent 2001's phone rings first
    assert not reqs_to(net.sent, ph["1005"].peer, "INVITE")            # the customer does not
    pop = [e for e in net.events if isinstance(e, OfferPresented)][-1]  # the screen pop: the contact's record
    assert (pop.agent, pop.caller, pop.variables["order"], pop.variables["contact"]) == ("2001", "1005", 4711, 7)
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    inv_b = reqs_to(out, ph["1005"].peer, "INVITE")[0]                 # now the customer, from the hotline
    assert f"sip:{HOTLINE}@" in inv_b.headers.get("From")
    assert core.router.queue.acd.agent_state("2001")[0] == "on-call"
    net.advance(3)
    ph["1005"].send(answer(inv_b, 200, to_tag="b", contact="<sip:1005@10.0.0.5>", body=sdp(5000, "10.0.0.5")))
    call = core.router.outbound.by_call[pop.call].call
    assert call.bridge is not None and call.recording is not None      # bridged and recorded
    assert [e.agent for e in net.events if isinstance(e, AgentConnected)] == ["2001"]
    net.advance(20)
    bye_from(ph["1005"], inv_b, "b")
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.attempt, end.result, end.agent, end.counted) == (1, Result.COMPLETED, "2001", True)
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert (rec.caller, rec.callee, rec.queue, rec.agent, rec.disposition) == (
        HOTLINE, "1005", "support", "2001", Disposition.ANSWERED)
    assert rec.recordings and rec.ended - rec.answered >= 20
    assert core.router.outbound.virtual == {}


def test_a_busy_customer_ends_the_attempt_busy_and_frees_the_agent():
    core, net, ph = boot()
    login(core, net, "2001")
    inv_a = reqs_to(dial(core, net), ph["1002"].peer, "INVITE")[0]
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    inv_b = reqs_to(out, ph["1005"].peer, "INVITE")[0]
    out = ph["1005"].send(answer(inv_b, 486, to_tag="b"))
    assert reqs_to(out, ph["1002"].peer, "BYE")                          # the agent's leg is hung up
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.BUSY and end.counted
    assert core.router.queue.acd.agent_state("2001")[0] in ("ready", "wrap-up")


def test_no_customer_is_rung_while_no_agent_answers():
    core, net, ph = boot()
    login(core, net, "2001")
    inv_a = reqs_to(dial(core, net), ph["1002"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv_a, 486, to_tag="a"))                      # the agent rejects the offer
    net.advance(30)
    assert not reqs_to(net.sent, ph["1005"].peer, "INVITE")
    vc = core.router.outbound.virtual["ob-1"]
    assert vc.state.value == "waiting"                                  # still waits for an agent
    login(core, net, "2002")                                            # another agent: she gets it
    inv_a2 = reqs_to(net.sent, ph["1003"].peer, "INVITE")[-1]
    out = ph["1003"].send(answer(inv_a2, 200, to_tag="a2", contact="<sip:1003@10.0.0.3>", body=sdp(4000, "10.0.0.3")))
    assert reqs_to(out, ph["1005"].peer, "INVITE")


def test_preview_waits_for_the_agent_to_start_the_call():
    core, net, ph = boot()
    login(core, net, "2001")
    inv_a = reqs_to(dial(core, net, mode="preview"), ph["1002"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    net.advance(30)
    assert not reqs_to(net.sent, ph["1005"].peer, "INVITE")            # she reads the contact first
    call = next(iter(core.router.outbound.by_call.values())).call
    out = net._run(core.on_media_events([DtmfReceived(call.caller.media, "1", "rfc4733", 100)], net.now))
    assert reqs_to(out, ph["1005"].peer, "INVITE")                      # 1 on her phone (or the desk) dials


def _caller_in_queue(core, net, ph):
    _, out = ph["1001"].invite("500", body=sdp(4000, "10.0.0.1"))
    ok = [m for _, m in out if getattr(m, "status", 0) == 200][0]
    ack_caller(ph["1001"], ok)
    return core.router.queue.by_call[ok.call_id if ok.call_id in core.router.queue.by_call else
                                     next(iter(core.router.queue.by_call))]


@pytest.mark.parametrize("queue_number", ["", "+862012345678"])
def test_press_1_keeps_the_callers_place_and_the_callback_rings_an_agent_then_him(tmp_path, queue_number):
    core, net, ph = boot(tmp_path, {"caller_id": queue_number}, callbacks={"offer_after": 10})
    login(core, net, "2001")
    net._run(core.run(core.router.queue.feed, __import__("acd.events", fromlist=["x"]).AgentNotReady("2001", "lunch"),
                      net.now, now=net.now))
    first = _caller_in_queue(core, net, ph)                              # 1001 waits, nobody is ready
    net.advance(11)                                                      # "press 1 to be called back"
    assert core.router.outbound.offered(first)
    net._run(core.on_media_events([DtmfReceived(first.call.caller.media, "1", "rfc4733", 100)], net.now))
    [req] = dialler_input(net, de.CallbackRequested)
    assert (req.queue, req.number, req.kind, req.ref) == ("support", "1001", "queue", first.call.id)
    assert first.acd_id in core.router.queue.acd.waiting                 # his entry keeps its place
    play_media(core, net, 0.5)                                           # the confirmation plays, then BYE
    assert reqs_to(net.sent, ph["1001"].peer, "BYE")
    net.advance(200)                                                     # the queue's 120 s limit: not for him
    assert not first.call.live and first.acd_id in core.router.queue.acd.waiting
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.disposition is Disposition.TRANSFERRED                    # not counted as an abandon
    _, out = ph["1004"].invite("500", body=sdp(4000, "10.0.0.4"))     # a later caller waits on the line
    ack_caller(ph["1004"], [m for _, m in out if getattr(m, "status", 0) == 200][0])
    assert len(core.router.queue.acd.waiting) == 2
    # the agent is back: the held callback is first in line; she is rung, then the customer who asked for it
    net._run(core.run(core.router.queue.feed, __import__("acd.events", fromlist=["x"]).AgentReady("2001"),
                      net.now, now=net.now))
    inv_a = reqs_to(net.sent, ph["1002"].peer, "INVITE")[-1]
    assert "callback" in inv_a.headers.get("From")
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    inv_b = reqs_to(out, ph["1001"].peer, "INVITE")[0]
    # the queue's own number when it has one ([[acd.queues]] caller_id), else [outbound] caller_id
    assert f"sip:{queue_number or HOTLINE}@{DOMAIN}" in inv_b.headers.get("From")
    [started] = dialler_input(net, de.QueueCallbackStarted)
    assert started.ref == first.call.id and started.agent == "2001"
    out = ph["1001"].send(answer(inv_b, 200, to_tag="b", contact="<sip:1001@10.0.0.1>", body=sdp(5000, "10.0.0.1")))
    call = next(iter(core.router.outbound.by_call.values())).call
    assert call.bridge is not None
    bye_from(ph["1001"], inv_b, "b")
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.result, end.ref, end.counted) == (Result.COMPLETED, first.call.id, True)
    assert "support: 1004" in reqs_to(net.sent, ph["1002"].peer, "INVITE")[-1].headers.get("From")  # then him


def notification_core(tmp_path):
    ivr = {"default_language": "en", "languages": ["en"], "sounds_dir": str(tmp_path / "sounds"),
           "numbers": {"4100": "remind"},
           "flows": {"remind": {"start": "say", "nodes": {
               "say": {"type": "say", "text": "Dear {name}, your appointment is on {day}.", "next": "bye"},
               "bye": {"type": "hangup", "reason": "notified"}}}}}
    core = make_core(EXTS, media={"enabled": True}, acd=ACD, ivr=ivr, outbound={"caller_id": HOTLINE})
    net = Recorder(core)
    ph = {}
    for i, n in enumerate(EXTS):
        ph[n] = Phone(net, n, EXTS[n], Peer("udp", f"10.0.0.{i + 1}", 5060))
        assert ph[n].register().status == 200
    return core, net, ph


def test_notification_calls_the_customer_and_speaks_the_contacts_data(tmp_path):
    from softswitch.events import SpeakRequest

    core, net, ph = notification_core(tmp_path)
    d = de.Dial(5, 9, "remind", "notification", "1005", caller_id=HOTLINE, flow="remind", name="Ms Li",
                data={"day": "Friday"})
    out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
    inv = reqs_to(out, ph["1005"].peer, "INVITE")[0]                      # the customer first, from the hotline
    assert f"sip:{HOTLINE}@" in inv.headers.get("From")
    net.events.clear()
    ph["1005"].send(answer(inv, 200, to_tag="n", contact="<sip:1005@10.0.0.5>", body=sdp(4000, "10.0.0.5")))
    call = next(iter(core.b2bua.calls.values()))
    assert call.app is core.router.ivr                                     # answered: the campaign's flow
    spoken = [e for e in net.events if isinstance(e, SpeakRequest)]
    assert spoken and spoken[0].text == "Dear Ms Li, your appointment is on Friday."   # the contact's data
    net._run(core.speech_rendered(call.id, spoken[0].id, None, net.now))   # nothing rendered: the flow goes on
    assert not call.live                                                   # "notified": hung up
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.attempt, end.result, end.abandoned) == (5, Result.COMPLETED, False)


def test_predictive_answered_customer_without_an_agent_is_abandoned_after_2_s(tmp_path):
    core, net, ph = boot(tmp_path)
    (tmp_path / "en" / "outbound-sorry.wav").write_bytes((tmp_path / "en" / "callback-offer.wav").read_bytes())
    d = de.Dial(6, 10, "sales", "predictive", "1005", queue="support", caller_id=HOTLINE)
    out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
    inv = reqs_to(out, ph["1005"].peer, "INVITE")[0]
    ph["1005"].send(answer(inv, 200, to_tag="p", contact="<sip:1005@10.0.0.5>", body=sdp(4000, "10.0.0.5")))
    call = next(iter(core.b2bua.calls.values()))
    assert call.app is core.router.queue and core.router.queue.acd.waiting     # no agent logged in: it waits
    net.advance(2.5)
    play_media(core, net, 0.5)                                              # the apology, then BYE
    assert reqs_to(net.sent, ph["1005"].peer, "BYE") and not call.live
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.result, end.abandoned) == (Result.COMPLETED, True)
    assert not core.router.queue.acd.waiting
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.disposition is Disposition.ABANDONED


def test_predictive_answered_customer_goes_to_a_free_agent(tmp_path):
    core, net, ph = boot()
    login(core, net, "2001")
    d = de.Dial(7, 11, "sales", "predictive", "1005", queue="support", caller_id=HOTLINE)
    out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
    inv = reqs_to(out, ph["1005"].peer, "INVITE")[0]
    out = ph["1005"].send(answer(inv, 200, to_tag="p", contact="<sip:1005@10.0.0.5>", body=sdp(4000, "10.0.0.5")))
    inv_a = reqs_to(out, ph["1002"].peer, "INVITE")[0]                    # now the agent
    ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    net.advance(5)
    bye_from(ph["1002"], inv_a, "a")
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.result, end.abandoned, end.agent) == (Result.COMPLETED, False, "2001")


def test_notification_to_an_external_number_goes_out_the_trunks_with_failover(tmp_path):
    """Customer first through the dial rules: the first trunk answers 503, the second takes the call; the
    hotline is presented (From and P-Asserted-Identity); the contact's E.164 number is dialled nationally."""
    from softswitch.config import parse_config
    from softswitch.core import SwitchCore
    from softswitch.events import SpeakRequest

    data = {
        "sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db", "country_code": "86"},
        "extensions": [{"number": n, "password": p} for n, p in EXTS.items()],
        "media": {"enabled": True},
        "numbering": {"country_code": "86"},
        "trunks": [{"name": "first", "host": "10.0.0.8", "options_interval": 0},
                   {"name": "second", "host": "10.0.0.9", "options_interval": 0}],
        "dial_rules": [{"prefix": "0", "trunks": ["first", "second"]}],
        "ivr": {"default_language": "en", "languages": ["en"], "sounds_dir": str(tmp_path), "numbers": {"4100": "f"},
                "flows": {"f": {"start": "say", "nodes": {
                    "say": {"type": "say", "text": "Hello {name}.", "next": "bye"},
                    "bye": {"type": "hangup", "reason": "notified"}}}}},
        "outbound": {"caller_id": HOTLINE},
    }
    core = SwitchCore(parse_config(data), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    net = Recorder(core)
    first, second = Peer("udp", "10.0.0.8", 5060), Peer("udp", "10.0.0.9", 5060)
    d = de.Dial(8, 12, "remind", "notification", "+8613800138000", caller_id=HOTLINE, flow="f", name="Li")
    out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
    inv1 = reqs_to(out, first, "INVITE")[0]
    assert str(inv1.ruri).startswith("sip:013800138000@10.0.0.8")
    assert HOTLINE in inv1.headers.get("P-Asserted-Identity") and f"sip:{HOTLINE}@" in inv1.headers.get("From")
    out = net.deliver(answer(inv1, 503, to_tag="t1"), first)
    inv2 = reqs_to(out, second, "INVITE")[0]                             # failover to the second trunk
    net.deliver(answer(inv2, 180, to_tag="t2"), second)
    net.deliver(answer(inv2, 200, to_tag="t2", contact="<sip:c@10.0.0.9>", body=sdp(4000, "10.0.0.9")), second)
    [say] = [e for e in net.events if isinstance(e, SpeakRequest)]
    assert say.text == "Hello Li."
    out = net._run(core.speech_rendered(say.call, say.id, None, net.now))
    assert reqs_to(out, second, "BYE")
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.attempt, end.result) == (8, Result.COMPLETED)
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.disposition is Disposition.ANSWERED and rec.callee == "+8613800138000"


def test_click_to_dial_pops_the_customer_on_the_agents_desk_and_is_recorded():
    core, net, ph = boot()
    login(core, net, "2001")
    made: list = []
    out = net._run(core.run(lambda: made.append(core.router.outbound.click_to_dial(
        "1002", "1005", net.now, external_caller_id=HOTLINE)), now=net.now))
    [call] = made
    pop = [e for e in net.events if isinstance(e, OfferPresented)][-1]
    assert (pop.agent, pop.call, pop.caller, pop.variables["kind"]) == ("2001", call.id, "1005", "click-to-dial")
    inv_a = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    inv_b = reqs_to(out, ph["1005"].peer, "INVITE")[0]
    ph["1005"].send(answer(inv_b, 200, to_tag="b", contact="<sip:1005@10.0.0.5>", body=sdp(5000, "10.0.0.5")))
    assert call.recording is not None                                     # recorded like the hotline's calls
    bye_from(ph["1005"], inv_b, "b")
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert (rec.agent, rec.disposition) == ("2001", Disposition.ANSWERED) and rec.recordings


def test_customer_first_campaign_calls_share_the_trunks_by_weight_with_their_codecs(tmp_path):
    """A round-robin rule's weights (2:1) and a trunk's codecs (PCMA only) hold for campaign calls too."""
    from softswitch.config import parse_config
    from softswitch.core import SwitchCore

    data = {
        "sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db", "country_code": "86"},
        "extensions": [{"number": n, "password": p} for n, p in EXTS.items()],
        "media": {"enabled": True},
        "trunks": [{"name": "first", "host": "10.0.0.8", "options_interval": 0, "weight": 2, "codecs": ["PCMA"]},
                   {"name": "second", "host": "10.0.0.9", "options_interval": 0}],
        "dial_rules": [{"prefix": "0", "trunks": ["first", "second"], "order": "round-robin"}],
        "ivr": {"default_language": "en", "languages": ["en"], "sounds_dir": str(tmp_path), "numbers": {"4100": "f"},
                "flows": {"f": {"start": "bye", "nodes": {"bye": {"type": "hangup", "reason": "notified"}}}}},
        "outbound": {"caller_id": HOTLINE},
    }
    core = SwitchCore(parse_config(data), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    net = Recorder(core)
    hosts, bodies = [], []
    for i in range(3):
        d = de.Dial(20 + i, 30 + i, "remind", "notification", f"+861380013800{i}", caller_id=HOTLINE, flow="f")
        out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
        [(peer, inv)] = [(p, m) for p, m in out if getattr(m, "method", "") == "INVITE"]
        hosts.append(peer.host)
        bodies.append(inv.body.decode())
    assert hosts == ["10.0.0.8", "10.0.0.9", "10.0.0.8"]          # smooth 2:1 (a b a), not a a b
    m_lines = [next(ln for ln in b.splitlines() if ln.startswith("m=audio")).split()[3:] for b in bodies]
    assert m_lines == [["8", "101"], ["0", "8", "101"], ["8", "101"]]


@pytest.mark.parametrize("queue", ["", "support"])
def test_click_to_dial_presents_the_queues_number_only_when_made_for_the_queue(queue):
    """An agent's click-to-dial keeps today's presentation (the dial rule's, then the trunk's number) unless
    it is made for a queue: then the queue's caller_id goes out in From and P-Asserted-Identity."""
    trunk = {"numbering": {"country_code": "86"},
             "trunks": [{"name": "carrier", "host": "10.0.0.8", "options_interval": 0, "caller_id": "+864008001234"}],
             "dial_rules": [{"prefix": "0", "trunks": ["carrier"]}]}
    core, net, ph = boot(None, {"caller_id": "+862012345678"}, trunk, caller_id="")
    made: list = []
    out = net._run(core.run(lambda: made.append(core.router.outbound.click_to_dial(
        "1002", "013800138000", net.now, queue=queue)), now=net.now))
    inv_a = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    [inv_b] = reqs_to(out, Peer("udp", "10.0.0.8", 5060), "INVITE")
    shown = "+862012345678" if queue else "+864008001234"
    assert f"<sip:{shown}@" in inv_b.headers.get("P-Asserted-Identity") and f"sip:{shown}@" in inv_b.headers.get("From")
