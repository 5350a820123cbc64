"""Runtime speech: the IVR's say node (text with the call's variables, or a work order's status for the number
the caller typed), rendered by espeak-ng in a worker and cached, played through the switch."""
from __future__ import annotations

import asyncio
import shutil
import wave

import numpy as np
import pytest

from base.schema import ConfigError
from ivr.actions import Hangup, Say
from ivr.events import DigitReceived, PlaybackFinished
from ivr.testing import Call, one_flow
from ivr.tts import SpeechCache, order_status_text
from media.engine import DtmfReceived
from softswitch.events import SpeakRequest

from .callcentre_harness import Net, Phone, ack_caller, make_core, responses, sdp
from .core_harness import Peer

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def lookup_flow():
    return one_flow({
        "c": {"type": "collect", "prompts": ["enter-order-number"], "variable": "order", "next": "status",
              "fallback": "bye"},
        "status": {"type": "say", "lookup": "order_status", "variable": "order", "next": "bye"},
        "bye": {"type": "hangup", "reason": "done"},
    })


def test_say_node_reads_the_typed_number_and_goes_on_after_it_played():
    c = Call(lookup_flow())
    for d in "4711#":
        out = c.send(DigitReceived(d))
    [say] = [a for a in out if isinstance(a, Say)]
    assert (say.lookup, say.value, say.language) == ("order_status", "4711", "en")
    assert not [a for a in out if isinstance(a, Hangup)]          # waits for the speech
    out = c.send(PlaybackFinished(say.id))
    assert [a for a in out if isinstance(a, Hangup)]


def test_say_text_fills_in_variables_and_bad_text_is_refused_at_start():
    c = Call(one_flow({"s": {"type": "say", "text": "Your appointment is {when}{nothing}.", "next": "bye"},
                       "bye": {"type": "hangup"}}))
    c.s.variables["when"] = "at ten"
    out = c.send(PlaybackFinished(999))                           # a stale id: ignored
    assert not out
    c2 = Call(one_flow({"s": {"type": "say", "text": "Hello {name}.", "next": "bye"}, "bye": {"type": "hangup"}}))
    [say] = [a for a in c2.out if isinstance(a, Say)]
    assert say.text == "Hello ."                                  # a variable the call lacks is said as nothing
    for bad in ({"type": "say", "text": "oops {", "next": "bye"}, {"type": "say", "text": "{a.b}", "next": "bye"},
                {"type": "say", "lookup": "order_status", "next": "bye"}, {"type": "say", "next": "bye"}):
        with pytest.raises(ConfigError):
            one_flow({"s": bad, "bye": {"type": "hangup"}})


def test_order_status_sentences():
    assert order_status_text("en", "4711", "in_progress", "March 03") == \
        "Work order 4 7 1 1 is in progress. It is due on March 03."
    assert order_status_text("zh", "4711", "closed") == "工单4711的状态是：已完结。"
    assert order_status_text("yue", "12", None) == "對唔住，搵唔到工單12。"


@needs_espeak
def test_rendering_is_8khz_speech_and_cached(tmp_path):
    cache = SpeechCache(tmp_path)
    a = cache.render("Your order is in progress.", "en")
    with wave.open(str(a)) as w:
        assert (w.getframerate(), w.getnchannels()) == (8000, 1)
        samples = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert len(samples) > 4000 and np.abs(samples).max() > 1000   # half a second of something loud
    b = cache.render("Your order is in progress.", "en")
    assert a == b and (cache.renders, cache.hits) == (1, 1)
    assert cache.render("工单已完结。", "zh") != a and cache.renders == 2


class Recorder(Net):
    def __init__(self, core):
        super().__init__(core)
        self.events: list = []

    def _run(self, actions):
        self.events += [a for a in actions if isinstance(a, SpeakRequest)]
        return super()._run(actions)


@needs_espeak
def test_the_switch_speaks_a_work_orders_status_for_the_typed_number(tmp_path):
    """Sans-IO switch with media: the caller types 4711#, the IVR asks the edge for the speech, the rendered
    file plays to him, then the flow hangs up; with nothing to say the flow goes straight on."""
    ivr = {"default_language": "en", "languages": ["en"], "sounds_dir": str(tmp_path / "sounds"),
           "numbers": {"4100": "f"},
           "flows": {"f": {"start": "c", "nodes": {
               "c": {"type": "collect", "prompts": [], "variable": "order", "next": "status", "fallback": "bye"},
               "status": {"type": "say", "lookup": "order_status", "variable": "order", "next": "bye"},
               "bye": {"type": "hangup", "reason": "done"}}}}}
    core = make_core({"1001": "pw-1001-x"}, media={"enabled": True}, ivr=ivr)
    net = Recorder(core)
    phone = Phone(net, "1001", "pw-1001-x", Peer("udp", "10.0.0.1", 5060))
    assert phone.register().status == 200
    _, out = phone.invite("4100", body=sdp(4000, "10.0.0.1"))
    ack_caller(phone, [m for m in responses(out) if m.status == 200][0])
    call = next(iter(core.b2bua.calls.values()))
    for d in "4711#":
        net._run(core.on_media_events([DtmfReceived(call.caller.media, d, "rfc4733", 100)], net.now))
    [req] = net.events
    assert (req.call, req.lookup, req.value) == (call.id, "order_status", "4711")
    wav = SpeechCache(tmp_path / "tts").render(order_status_text("en", "4711", "open"), "en")
    net._run(core.speech_rendered(call.id, req.id, str(wav), net.now))
    assert core.router.ivr.calls[call.id].plays                  # playing to the caller
    m = core.media
    t = m._clock()
    bye = []
    for _ in range(int(8 / 0.02)):                                # the sentence plays out, then the hangup
        t += 0.02
        bye += [x for _, x in net._run(core.on_media_events(m.tick(t).events, net.now))
                if getattr(x, "method", "") == "BYE"]
        if bye:
            break
    assert bye and not call.live


def test_runtime_speech_reads_the_order_from_the_store(tmp_path):
    from store.crm import CallCentre
    from store.db import Store
    from softswitch.tts import RuntimeSpeech

    async def run():
        store = await Store.open(tmp_path / "s.db")
        centre = CallCentre(store)
        cust = await centre.create_customer(name="Li", phones=["13800138000"])
        order = await centre.create_order(kind="repair", customer_id=cust.id, created_by="2001")

        class Edge:   # what RuntimeSpeech needs of the server: its config and the call-centre store
            config = type("C", (), {"store": type("S", (), {"path": str(tmp_path / "s.db")})})()
            core = None

        Edge.centre = centre  # type: ignore[attr-defined]
        rs = RuntimeSpeech(Edge(), tmp_path / "tts")  # type: ignore[arg-type]
        found = await rs.text_for(SpeakRequest("c", 1, "", "order_status", str(order.id), "en"))
        missing = await rs.text_for(SpeakRequest("c", 2, "", "order_status", "99999", "zh"))
        await rs.stop()
        await centre.close()
        await store.close()
        return found, missing

    found, missing = asyncio.run(run())
    assert found == order_status_text("en", "1", "open") and missing == "对不起，没有找到工单99999。"
