"""Blind transfer with a phone's transfer key (REFER): the switch keeps the caller, hangs up the party
that transferred, rings the target and connects the caller to it."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from . import test_ivr_e2e  # noqa: E402

sounds = test_ivr_e2e.sounds            # the fixture: the shipped prompts, built once per module
hotline_config = test_ivr_e2e.hotline_config

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def a_talks_to_b(switch_factory, phones):
    """Phones a (1001), b (1002), c (1003) registered, b and c answering; a has called b."""
    sw = switch_factory(extra=rtp_extra())
    a, b, c = phones("a"), phones("b"), phones("c")
    for p, n in ((a, "1001"), (b, "1002"), (c, "1003")):
        assert p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    b.auto_answer(code=200)
    c.auto_answer(code=200)
    call = a.call(f"sip:1002@{DOMAIN}")
    b_in = b.wait_event("incoming", timeout=10)
    a.wait_call_state(call, "CONFIRMED", timeout=10)
    b.wait_call_state(b_in["call"], "CONFIRMED", timeout=10)
    return sw, a, b, c, call, b_in


def test_refer_blind_transfer_connects_the_caller_to_the_target(switch_factory, phones, tmp_path):
    sw, a, b, c, call, b_in = a_talks_to_b(switch_factory, phones)
    b.transfer(b_in["call"], f"sip:1003@{DOMAIN}")
    sw.wait_log(r"transfers 1001 to 1003 \(REFER\)")
    b.wait_call_state(b_in["call"], "DISCONNECTED", timeout=10)   # the transferring agent is free
    c_in = c.wait_event("incoming", timeout=10)
    assert "1001" in c_in["from"]
    c.wait_call_state(c_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"transfer to 1003 answered")
    c.wait_event("media_state", call=c_in["call"], active=True, timeout=5)
    src = audio.write_wav(tmp_path / "c_says.wav", audio.melody(2.0, seed=31))
    a.record(call, tmp_path / "a_heard.wav")
    time.sleep(0.3)  # pacing: the recorder runs before the audio starts
    c.play(c_in["call"], src)
    time.sleep(3.0)  # pacing: c's 2 s of audio reach a in real time (asserted below)
    a.stop_record(call)
    a.hangup(call)
    c.wait_call_state(c_in["call"], "DISCONNECTED", timeout=10)
    assert audio.windowed_correlation(audio.read_mono(src), audio.read_mono(tmp_path / "a_heard.wav")) > 0.8


def test_attended_transfer_connects_the_two_other_parties(switch_factory, phones, tmp_path):
    """b talks to a, puts a on hold, calls c, then transfers (REFER with Replaces): a and c talk."""
    sw, a, b, c, call_a, b_in = a_talks_to_b(switch_factory, phones)
    b.hold(b_in["call"])
    sw.wait_log(r"callee put the call on hold")
    call_bc = b.call(f"sip:1003@{DOMAIN}")        # consult c
    c_in = c.wait_event("incoming", timeout=10)
    b.wait_call_state(call_bc, "CONFIRMED", timeout=10)
    c.wait_call_state(c_in["call"], "CONFIRMED", timeout=10)
    b.transfer_replaces(b_in["call"], call_bc)
    sw.wait_log(r"attended transfer: 1002 connects 1001 with 1003")
    b.wait_call_state(b_in["call"], "DISCONNECTED", timeout=10)
    b.wait_call_state(call_bc, "DISCONNECTED", timeout=10)
    src = audio.write_wav(tmp_path / "c_says.wav", audio.melody(2.0, seed=51))
    a.record(call_a, tmp_path / "a_heard.wav")
    time.sleep(0.3)  # pacing: the recorder runs before the audio starts
    c.play(c_in["call"], src)
    time.sleep(3.0)  # pacing: c's 2 s of audio reach a in real time (asserted below)
    a.stop_record(call_a)
    a.hangup(call_a)
    c.wait_call_state(c_in["call"], "DISCONNECTED", timeout=10)
    assert audio.windowed_correlation(audio.read_mono(src), audio.read_mono(tmp_path / "a_heard.wav")) > 0.8


def test_blind_transfer_to_the_hotline_puts_the_caller_in_the_ivr(switch_factory, phones, tmp_path, sounds):
    """b answers a's call and transfers it (REFER) to the hotline number 4000: the switch hands the
    caller to the IVR application (not to an extension: "transfer target 4000 not reachable" was the bug),
    and the caller hears the hotline's language menu."""
    sw = switch_factory(extra=hotline_config(tmp_path, sounds))
    a, b = phones("a"), phones("b")
    for p, n in ((a, "1001"), (b, "1002")):
        assert p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    b.auto_answer(code=200)
    call = a.call(f"sip:1002@{DOMAIN}")
    b_in = b.wait_event("incoming", timeout=10)
    a.wait_call_state(call, "CONFIRMED", timeout=10)
    b.wait_call_state(b_in["call"], "CONFIRMED", timeout=10)
    a.record(call, tmp_path / "a_heard.wav")
    b.transfer(b_in["call"], f"sip:4000@{DOMAIN}")
    sw.wait_log(r"transfers 1001 to 4000 \(REFER\)")
    b.wait_call_state(b_in["call"], "DISCONNECTED", timeout=10)   # the transferring party is free
    sw.wait_log(r"1001 enters IVR flow main", timeout=10)
    assert "not reachable" not in sw.log()
    # Pacing: two seconds of the language menu (asserted below) play to the caller in real time.
    time.sleep(2.0)
    a.stop_record(call)
    dropped = [e for e in a.events("call_state") if e["call"] == call and e["state"] == "DISCONNECTED"]
    assert not dropped, f"the caller was dropped: {dropped}"
    a.hangup(call)
    sw.wait_log(r"1001 -> 4000 ended: caller hung up")
    lang_menu = audio.read_mono(sounds / "zh" / "lang-zh.wav")
    heard = audio.read_mono(tmp_path / "a_heard.wav")
    assert audio.windowed_correlation(lang_menu[:12000], heard) > 0.7, "the caller did not hear the IVR's language menu"
