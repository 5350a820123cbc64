"""Answering-machine detection in call control (sans-IO switch, fake clock, anchored media): a predictive
campaign with ``amd = true`` listens to the answered customer before any agent is rung; a machine's
greeting ends the call as ``machine`` (retried by the machine rule) and never reaches the agent, a person
saying "Hello?" goes to the agent; a machine can be left a message after its greeting; in a progressive
campaign (the agent already on the line) the decision is shown to her and kept on the attempt.

The leg's audio is fed as the media engine emits it (``AudioChunk``: 200 ms of decoded 8 kHz audio, the
``Listen`` path speech recognition uses); tests/test_outbound_amd_e2e.py sends real RTP from a SIPp
carrier."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dialler import events as de
from dialler.rules import Result
from media.engine import AudioChunk
from softswitch.events import AgentConnected, AmdDetected, CallEnded, SpeakRequest

from .callcentre_harness import answer, login, reqs_to, sdp
from .test_outbound_calls import HOTLINE, bye_from, boot, dialler_input, play_media

RATE = 8000


def noise(seconds: float, level: float = 3000.0) -> np.ndarray:
    return (np.random.default_rng(3).standard_normal(int(seconds * RATE)) * level).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), np.float32)


def campaign(mode: str = "predictive", **amd: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "sales", "mode": mode, "queue": "support", "amd": True}
    for key in ("amd_machine", "amd_message", "amd_message_text"):
        if key in amd:
            c[key] = amd.pop(key)
    if amd:
        c["amd_settings"] = amd
    return {"campaigns": [c]}


def answered_predictive(tmp_path: Path | None = None, **amd: Any) -> tuple[Any, Any, Any, Any, Any]:
    core, net, ph = boot(tmp_path, **campaign(**amd))
    login(core, net, "2001")
    d = de.Dial(6, 10, "sales", "predictive", "1005", queue="support", caller_id=HOTLINE, name="Ms Li",
                data={"day": "Tuesday"})
    inv = reqs_to(net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now)), ph["1005"].peer,
                  "INVITE")[0]
    out = ph["1005"].send(answer(inv, 200, to_tag="p", contact="<sip:1005@10.0.0.5>", body=sdp(4000, "10.0.0.5")))
    assert not reqs_to(out, ph["1002"].peer, "INVITE")        # the agent is not rung while it listens
    call = next(iter(core.b2bua.calls.values()))
    assert call.caller.media in core.media._listening           # Listen on the customer's leg
    return core, net, ph, inv, call


def speak(core: Any, net: Any, call: Any, audio: np.ndarray) -> list:
    """The customer's audio as the media engine hands it over: 200 ms chunks, the clock moving with them."""
    out = []
    for i in range(0, len(audio), 1600):
        net.advance(0.2)
        out += net._run(core.on_media_events([AudioChunk(call.caller.media, audio[i:i + 1600])], net.now))
    return out


def test_a_machine_greeting_is_hung_up_recorded_machine_and_never_reaches_the_agent() -> None:
    core, net, ph, inv, call = answered_predictive()
    speak(core, net, call, np.concatenate((silence(0.3), noise(2.5))))
    assert reqs_to(net.sent, ph["1005"].peer, "BYE") and not call.live
    assert not reqs_to(net.sent, ph["1002"].peer, "INVITE")    # the agent never rang
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.result, end.abandoned, end.amd) == (Result.MACHINE, False, "MACHINE LONGGREETING-1500-1500")
    [amd] = [e for e in net.events if isinstance(e, AmdDetected)]
    assert (amd.verdict, amd.cause, amd.action, amd.contact) == ("MACHINE", "LONGGREETING-1500-1500", "hangup", 10)
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.variables["amd_status"] == "MACHINE" and rec.variables["amd_cause"] == "LONGGREETING-1500-1500"
    assert call.caller.media not in core.media._listening
    assert core.router.queue.acd.agent_state("2001")[0] == "ready"
    assert not core.router.outbound.direct


def test_a_person_saying_hello_goes_to_the_agent() -> None:
    core, net, ph, inv, call = answered_predictive()
    out = speak(core, net, call, np.concatenate((silence(0.4), noise(0.4), silence(1.0))))
    inv_a = reqs_to(out, ph["1002"].peer, "INVITE")[0]           # HUMAN after 800 ms of silence: the agent rings
    ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    assert [e.agent for e in net.events if isinstance(e, AgentConnected)] == ["2001"]
    assert call.caller.media not in core.media._listening
    net.advance(5)
    bye_from(ph["1002"], inv_a, "a")
    [end] = dialler_input(net, de.AttemptEnded)
    assert (end.result, end.abandoned, end.agent, end.amd) == (Result.COMPLETED, False, "2001", "HUMAN HUMAN-800-800")


def test_no_decision_in_time_is_notsure_and_connects() -> None:
    """No audio at all (or neither rule met): NOTSURE at total_analysis_time, treated as a person."""
    core, net, ph, inv, call = answered_predictive(total_analysis_time=3000)
    out = net.advance(2.9)
    assert not reqs_to(out, ph["1002"].peer, "INVITE")
    out = net.advance(0.2)
    assert reqs_to(out, ph["1002"].peer, "INVITE")
    [amd] = [e for e in net.events if isinstance(e, AmdDetected)]
    assert (amd.verdict, amd.cause, amd.action) == ("NOTSURE", "NOAUDIODATA-0", "agent")


def test_the_customer_hanging_up_during_detection_is_not_a_machine() -> None:
    core, net, ph, inv, call = answered_predictive()
    speak(core, net, call, noise(0.4))
    bye_from(ph["1005"], inv, "p")
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.COMPLETED and end.amd == "HANGUP"
    assert not reqs_to(net.sent, ph["1002"].peer, "INVITE")


def test_a_machine_gets_the_message_after_its_greeting(tmp_path: Path) -> None:
    core, net, ph, inv, call = answered_predictive(tmp_path, amd_machine="message", amd_message="callback-offer")
    speak(core, net, call, np.concatenate((silence(0.3), noise(2.0))))   # MACHINE at 1.5 s of greeting
    assert call.live
    [amd] = [e for e in net.events if isinstance(e, AmdDetected)]
    assert amd.action == "message"
    speak(core, net, call, noise(1.0))                         # still talking: no message yet
    assert not reqs_to(net.sent, ph["1005"].peer, "BYE")
    speak(core, net, call, silence(1.0))                        # the greeting ended: the message plays
    play_media(core, net, 0.5)
    assert reqs_to(net.sent, ph["1005"].peer, "BYE") and not call.live
    assert not reqs_to(net.sent, ph["1002"].peer, "INVITE")
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.MACHINE
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.reason == "message left on the answering machine"   # played whole, then hung up


def test_a_machine_gets_runtime_speech_with_the_contact_s_data(tmp_path: Path) -> None:
    """amd_message_text: rendered (TTS) while the greeting plays; the greeting ending before the speech is
    ready waits for it; then it plays and the call ends."""
    core, net, ph, inv, call = answered_predictive(
        tmp_path, amd_machine="message", amd_message_text="Dear {name}, see you on {day}.{missing}")
    speak(core, net, call, np.concatenate((silence(0.3), noise(2.0))))
    [say] = [e for e in net.events if isinstance(e, SpeakRequest)]
    assert (say.call, say.text, say.language) == (call.id, "Dear Ms Li, see you on Tuesday.", "en")
    speak(core, net, call, silence(1.0))                        # the greeting ended; the speech is not ready
    assert call.live and not reqs_to(net.sent, ph["1005"].peer, "BYE")
    net._run(core.speech_rendered(say.call, say.id, str(tmp_path / "en" / "callback-offer.wav"), net.now))
    play_media(core, net, 0.5)
    assert reqs_to(net.sent, ph["1005"].peer, "BYE") and not call.live
    rec = [e for e in net.events if isinstance(e, CallEnded)][-1]
    assert rec.reason == "message left on the answering machine"
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.MACHINE


def test_speech_that_never_comes_does_not_hold_the_machine_for_ever() -> None:
    core, net, ph, inv, call = answered_predictive(amd_machine="message", amd_message_text="Dear {name}.",
                                                   message_wait=5)
    speak(core, net, call, np.concatenate((silence(0.3), noise(2.0), silence(1.0))))
    [say] = [e for e in net.events if isinstance(e, SpeakRequest)]
    assert call.live
    net.advance(5)                                              # message_wait: hang up without a message
    assert not call.live and reqs_to(net.sent, ph["1005"].peer, "BYE")
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.MACHINE
    net._run(core.speech_rendered(say.call, say.id, None, net.now))   # late: nothing happens


def test_progressive_shows_the_decision_to_the_agent_on_the_line() -> None:
    core, net, ph = boot(**campaign("progressive"))
    login(core, net, "2001")
    d = de.Dial(1, 7, "sales", "progressive", "1005", queue="support", caller_id=HOTLINE, name="Ms Li")
    inv_a = reqs_to(net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now)), ph["1002"].peer,
                    "INVITE")[0]
    out = ph["1002"].send(answer(inv_a, 200, to_tag="a", contact="<sip:1002@10.0.0.2>", body=sdp(4000, "10.0.0.2")))
    inv_b = reqs_to(out, ph["1005"].peer, "INVITE")[0]
    ph["1005"].send(answer(inv_b, 200, to_tag="b", contact="<sip:1005@10.0.0.5>", body=sdp(5000, "10.0.0.5")))
    call = next(c for c in core.b2bua.calls.values() if c.live)
    assert call.bridge is not None                              # talking at once: the agent is the judge
    leg = next(x for x in call.callees if x.media is not None)
    assert leg.media in core.media._listening
    for i in range(0, 8 * 1600, 1600):
        net.advance(0.2)
        net._run(core.on_media_events([AudioChunk(leg.media, noise(1.6)[i:i + 1600])], net.now))
    [amd] = [e for e in net.events if isinstance(e, AmdDetected)]
    assert (amd.verdict, amd.agent, amd.action) == ("MACHINE", "2001", "shown")
    assert call.live and leg.media not in core.media._listening
    bye_from(ph["1005"], inv_b, "b")
    [end] = dialler_input(net, de.AttemptEnded)
    assert end.result is Result.COMPLETED and end.amd.startswith("MACHINE ")   # the agent sets `machine` at wrap-up


def test_the_dialler_keeps_the_decision_on_the_attempt_counts_machines_and_retries_them(tmp_path: Path) -> None:
    """A machine is retried by the `machine` rule (every 4 h); the attempt row keeps the detector's decision
    (store migration 11); the campaign's figures count machines (the wallboard's `campaign` event)."""
    import asyncio

    from dialler.engine import Dialler
    from dialler.events import ContactsAdded, NewContact, Save, Tick
    from store.db import Store
    from store.outbound import attempts_of, save_outbound

    from .test_dialler_engine import T0, config, dials

    d = Dialler(config(campaigns=[{"name": "followup", "queue": "service", "mode": "predictive", "amd": True}]))
    saves = [a for a in d.handle(ContactsAdded("followup", (NewContact("13800000001"),)), T0) if isinstance(a, Save)]
    out = d.handle(Tick({"service": 1}), T0)
    [placed] = dials(out)
    saves += [a for a in out if isinstance(a, Save)]
    out = d.handle(de.AttemptEnded(placed.attempt, Result.MACHINE, "c1", amd="MACHINE MAXWORDS-3-2"), T0 + 20)
    assert d.campaign_figures("followup")["machines"] == 1 and d.campaign_figures("followup")["amd"] == 1
    [row] = [r for a in out if isinstance(a, Save) for r in a.attempts]
    assert (row.result, row.amd) == ("machine", "MACHINE MAXWORDS-3-2")
    saves += [a for a in out if isinstance(a, Save)]
    assert d.contacts[placed.contact].next_due == T0 + 4 * 3600     # the machine rule: every 4 h

    async def persist() -> list[dict[str, Any]]:
        store = await Store.open(tmp_path / "t.db")
        try:
            for a in saves:
                def write(c: Any, a: Save = a) -> None:
                    save_outbound(c, a.contacts, a.attempts, a.dnc)
                await store.writer.run(write)
            return await store.read_sync(lambda c: attempts_of(c, placed.contact))
        finally:
            await store.close()

    [stored] = asyncio.run(persist())
    assert (stored["result"], stored["amd"]) == ("machine", "MACHINE MAXWORDS-3-2")
