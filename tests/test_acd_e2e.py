"""The call centre end to end: pjsua2 agents log in with feature codes from their phones, pjsua2
callers dial the queue number, the switch plays music, offers calls to agents and connects them.
Checked: which agent rings, ring-no-answer re-queueing, VIP callers first, the audio the caller hears
(music, then the agent's work number, then the agent), and the queue_log lines."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")

from tests.phones.steps import feature_code, register  # noqa: E402

from . import audio  # noqa: E402
from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import ACD_EXTS as EXTS, acd_config, queue_log  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.mark.slow
def test_login_call_connects_to_agent_and_queue_log(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds))
    alice = register(sw, phones, "alice", "1002")
    caller = register(sw, phones, "caller", "1001")
    feature_code(sw, alice, "*11*2001")
    sw.wait_log(r"feature code \*11\*2001 from 1002: ok")
    sw.wait_log(r"agent 2001 is ready")
    alice.auto_answer(code=200, delay_ms=2500)  # the caller waits with music meanwhile
    heard = tmp_path / "caller_heard.wav"
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)  # the switch answers: music while queued
    caller.record(call, heard)
    incoming = alice.wait_event("incoming", timeout=10)
    sw.wait_log(r"queue support offers the call to agent 2001 at 1002")
    sw.wait_log(r"connected to agent 2001 at 1002")
    alice.wait_call_state(incoming["call"], "CONFIRMED", timeout=10)
    # Pacing: the caller hears "agent 2 0 0 1 is serving you" before Alice (both asserted below); the
    # announcement plays in real time and no log line marks its end.
    time.sleep(4.0)
    src = audio.write_wav(tmp_path / "alice_says.wav", audio.melody(2.0, seed=5))
    alice.play(incoming["call"], src)
    time.sleep(3.0)  # pacing: Alice's 2 s of audio reach the caller's recorder in real time
    caller.stop_record(call)
    caller.hangup(call)
    alice.wait_call_state(incoming["call"], "DISCONNECTED", timeout=10)
    sw.wait_log(r"agent 2001 is wrap-up|agent 2001 is wrapup|agent 2001 is wrap")

    # the caller heard music while queued, the announcement of the agent's work number, then the agent
    got = audio.read_mono(heard)
    from media.engine import default_hold_music
    music = default_hold_music() / 32768.0
    assert audio.rms(got[:8000]) > 0.02, "silence instead of hold music while queued"
    assert audio.best_correlation(music[:8000], got[:24000])[0] > 0.6, "not the hold music"
    prompt = audio.read_mono(sounds / "en" / "is-serving-you.wav")
    assert audio.best_correlation(prompt, got)[0] > 0.6, "the caller did not hear 'is serving you'"
    assert audio.windowed_correlation(audio.read_mono(src), got) > 0.6, "the caller did not hear the agent"

    events = [row[4] for row in queue_log(tmp_path)]
    assert events[:1] == ["AGENTLOGIN"], events
    for ev in ("ENTERQUEUE", "CONNECT", "COMPLETECALLER"):
        assert ev in events, events
    connect = next(r for r in queue_log(tmp_path) if r[4] == "CONNECT")
    assert connect[2] == "support" and connect[3] == "Agent/2001"


def test_ring_no_answer_requeues_to_the_next_agent(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, ring_time=3, announce_agent=False))
    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    caller = register(sw, phones, "caller", "1001")
    feature_code(sw, bob, "*11*2002")    # Bob: level 9, offered first (skill-level first)
    feature_code(sw, alice, "*11*2001")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    bob.wait_event("incoming", timeout=10)        # Bob's phone rings but nobody picks up
    sw.wait_log(r"offers the call to agent 2002 at 1003")
    alice.wait_event("incoming", timeout=10)      # after 3 s the call goes to Alice
    sw.wait_log(r"connected to agent 2001 at 1002", timeout=10)
    sw.wait_log(r"agent 2002 is not-ready|agent 2002 is not_ready|agent 2002 is not ready")
    caller.hangup(call)
    sw.wait_log(r"ended: ")
    events = [r[4] for r in queue_log(tmp_path)]
    assert "RINGNOANSWER" in events, events
    rna = next(r for r in queue_log(tmp_path) if r[4] == "RINGNOANSWER")
    assert rna[3] == "Agent/2002"


def test_vip_caller_is_served_first(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, announce_agent=False))
    alice = register(sw, phones, "alice", "1002")
    plain, vip = register(sw, phones, "plain", "1004"), register(sw, phones, "vip", "1005")
    feature_code(sw, alice, "*11*2001")
    feature_code(sw, alice, "*13")               # not ready: callers wait
    sw.wait_log(r"agent 2001 is not")
    c1 = plain.call(f"sip:500@{DOMAIN}")
    plain.wait_call_state(c1, "CONFIRMED", timeout=10)
    sw.wait_log(r"1004 entered queue support")  # the plain caller waits first
    c2 = vip.call(f"sip:500@{DOMAIN}")          # arrives later, but is a VIP (priority rule)
    vip.wait_call_state(c2, "CONFIRMED", timeout=10)
    alice.auto_answer(code=200)
    feature_code(sw, alice, "*14")               # ready
    incoming = alice.wait_event("incoming", timeout=10)
    assert "1005" in incoming["from"], incoming
    sw.wait_log(r": 1005 connected to agent 2001")
    for p, c in ((plain, c1), (vip, c2)):
        p.hangup(c)
    sw.wait_log(r"1004 -> 500 ended")


def test_whisper_tells_the_agent_the_queue_before_connecting(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, announce_agent=False, whisper=True))
    alice, caller = register(sw, phones, "alice", "1002"), register(sw, phones, "caller", "1001")
    feature_code(sw, alice, "*11*2001")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    incoming = alice.wait_event("incoming", timeout=10)
    alice.wait_call_state(incoming["call"], "CONFIRMED", timeout=10)
    alice.record(incoming["call"], tmp_path / "alice_heard.wav")
    time.sleep(3.0)  # pacing: the whisper ("support call") plays to the agent in real time (asserted below)
    alice.stop_record(incoming["call"])
    caller.hangup(call)
    heard = audio.read_mono(tmp_path / "alice_heard.wav")
    whisper = audio.read_mono(sounds / "en" / "queue-support.wav")
    # (the phone's recorder starts a moment after the answer: compare the whisper's second half)
    assert audio.best_correlation(whisper[len(whisper) // 2:], heard)[0] > 0.7, "the agent did not hear 'support call'"


def test_supervisor_listens_to_both_parties_and_whispers_to_the_agent(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, announce_agent=False))
    alice, caller = register(sw, phones, "alice", "1002"), register(sw, phones, "caller", "1001")
    sup = register(sw, phones, "sup", "1004")
    feature_code(sw, alice, "*11*2001")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    a_in = alice.wait_event("incoming", timeout=10)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001")
    s_call = sup.call(f"sip:*21*2001@{DOMAIN}")       # listen
    sup.wait_call_state(s_call, "CONFIRMED", timeout=10)
    sw.wait_log(r"supervisor 1004 listens agent 2001")
    sup.wait_event("media_state", call=s_call, active=True, timeout=5)
    src_c = audio.write_wav(tmp_path / "caller_says.wav", audio.melody(2.0, seed=41))
    src_a = audio.write_wav(tmp_path / "alice_says.wav", audio.melody(2.0, seed=42))
    sup.record(s_call, tmp_path / "sup_heard.wav")
    caller.record(call, tmp_path / "caller_heard.wav")
    time.sleep(0.3)  # pacing: the recorders run before the audio starts
    caller.play(call, src_c)
    alice.play(a_in["call"], src_a)
    time.sleep(2.8)  # pacing: 2 s of audio from each party reach the supervisor in real time
    sup.stop_record(s_call)
    caller.stop_record(call)
    heard = audio.read_mono(tmp_path / "sup_heard.wav")
    assert audio.windowed_correlation(audio.read_mono(src_c), heard) > 0.5, "supervisor does not hear the caller"
    assert audio.windowed_correlation(audio.read_mono(src_a), heard) > 0.5, "supervisor does not hear the agent"
    caller.hangup(call)                                 # the monitored call ends: so does the supervisor's
    sup.wait_call_state(s_call, "DISCONNECTED", timeout=10)


def test_supervisor_whisper_is_heard_by_the_agent_only(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, announce_agent=False))
    alice, caller = register(sw, phones, "alice", "1002"), register(sw, phones, "caller", "1001")
    sup = register(sw, phones, "sup", "1004")
    feature_code(sw, alice, "*11*2001")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    a_in = alice.wait_event("incoming", timeout=10)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    s_call = sup.call(f"sip:*22*2001@{DOMAIN}")       # whisper
    sup.wait_call_state(s_call, "CONFIRMED", timeout=10)
    sw.wait_log(r"supervisor 1004 whispers agent 2001")
    sup.wait_event("media_state", call=s_call, active=True, timeout=5)
    coach = audio.write_wav(tmp_path / "coach.wav", audio.melody(2.0, seed=61))
    alice.record(a_in["call"], tmp_path / "alice_heard.wav")
    caller.record(call, tmp_path / "caller_heard.wav")
    time.sleep(0.3)  # pacing: the recorders run before the audio starts
    sup.play(s_call, coach)
    time.sleep(2.8)  # pacing: the supervisor's 2 s of audio reach the agent in real time
    alice.stop_record(a_in["call"])
    caller.stop_record(call)
    src = audio.read_mono(coach)
    assert audio.windowed_correlation(src, audio.read_mono(tmp_path / "alice_heard.wav")) > 0.6
    assert audio.windowed_correlation(src, audio.read_mono(tmp_path / "caller_heard.wav")) < 0.3
    caller.hangup(call)
    sup.wait_call_state(s_call, "DISCONNECTED", timeout=10)


def test_an_agent_on_a_direct_call_is_not_offered_queue_calls(switch_factory, phones, tmp_path, sounds):
    """Agent state never drifts from the phone: Alice is ready in the ACD but talking on a call she
    dialled herself, so the queue call waits until she hangs up."""
    sw = switch_factory(EXTS, extra=acd_config(tmp_path, sounds, announce_agent=False))
    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    caller = register(sw, phones, "caller", "1001")
    feature_code(sw, alice, "*11*2001")
    bob.auto_answer(code=200)
    direct = alice.call(f"sip:1003@{DOMAIN}")      # Bob is not logged in as an agent: a plain call
    alice.wait_call_state(direct, "CONFIRMED", timeout=10)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    sw.wait_log(r"1001 entered queue support")
    # Not a wait for something: the check that nothing happens needs time in which it could have (the
    # ACD routes on entering the queue and on every agent or phone change).
    time.sleep(2.0)
    assert not alice.events("incoming"), "a queue call was offered to a phone that is on a call"
    assert "offers the call to agent 2001" not in sw.log()
    alice.auto_answer(code=200)
    alice.hangup(direct)                          # now free: the waiting call comes to her
    alice.wait_event("incoming", timeout=10)
    sw.wait_log(r"connected to agent 2001 at 1002")
    caller.hangup(call)
