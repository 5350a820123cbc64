"""SRTP (SDES, RFC 4568) end to end: pjsua2 phones with SRTP mandatory call each other through the switch on
extensions with ``srtp = "required"`` and hear each other; a phone without SRTP on such an extension is
refused with 488. Both legs are checked to have run SRTP (the switch's per-leg media line), not just the audio."""
from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("pylibsrtp")

from . import audio  # noqa: E402
from .conftest import DOMAIN, rtp_range  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002"}


def srtp_config(ports: str) -> str:
    return (f'auth_algorithms = ["MD5", "SHA-256"]\n[media]\nrtp_ports = "{ports}"\nrecord = "none"\n'
            '[[extensions]]\nnumber = "1001"\npassword = "secret-1001"\nsrtp = "required"\n'
            '[[extensions]]\nnumber = "1002"\npassword = "secret-1002"\nsrtp = "required"\n')


def test_srtp_required_call_has_audio_both_ways_and_a_plain_phone_gets_488(switch_factory, phones, tmp_path):
    sw = switch_factory(extensions={}, extra=srtp_config(rtp_range(100)))
    sw.extensions.update(EXTS)
    a, b = phones("a"), phones("b")
    for p, n in ((a, "1001"), (b, "1002")):
        reg = p.register(n, EXTS[n], DOMAIN, f"sip:{sw.addr}", srtp="mandatory")
        assert reg["code"] == 200, reg
    b.auto_answer(code=200)
    ca = a.call(f"sip:1002@{DOMAIN}")
    cb = b.wait_event("incoming", timeout=15)["call"]
    a.wait_call_state(ca, "CONFIRMED", timeout=15)
    b.wait_call_state(cb, "CONFIRMED", timeout=15)
    a.wait_event("media_state", call=ca, active=True, timeout=10)
    b.wait_event("media_state", call=cb, active=True, timeout=10)
    src_a = audio.write_wav(tmp_path / "a_says.wav", audio.melody(2.5, seed=61))
    src_b = audio.write_wav(tmp_path / "b_says.wav", audio.melody(2.5, seed=62))
    b.record(cb, tmp_path / "b_heard.wav")
    a.record(ca, tmp_path / "a_heard.wav")
    a.play(ca, src_a)
    b.play(cb, src_b)
    time.sleep(3.5)  # pacing: 2.5 s of audio each way in real time, and the jitter buffers' delay
    a.stop_record(ca)
    b.stop_record(cb)
    # hold and resume: re-INVITEs with (pjsua: new) keys; the stream goes on encrypted
    a.hold(ca)
    sw.wait_log(r"caller put the call on hold")
    a.unhold(ca)
    sw.wait_log(r"caller resumed the call")
    src_c = audio.write_wav(tmp_path / "a_again.wav", audio.melody(2.0, seed=63))
    b.record(cb, tmp_path / "b_heard_after.wav")
    a.play(ca, src_c)
    time.sleep(3.0)  # pacing: 2 s of audio in real time, and the jitter buffer
    b.stop_record(cb)
    a.hangup(ca)
    b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    corr_ab = audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp_path / "b_heard.wav"))
    corr_ba = audio.windowed_correlation(audio.read_mono(src_b), audio.read_mono(tmp_path / "a_heard.wav"))
    assert corr_ab > 0.7, f"b did not hear a over SRTP: {corr_ab:.2f}"
    assert corr_ba > 0.7, f"a did not hear b over SRTP: {corr_ba:.2f}"
    corr_c = audio.windowed_correlation(audio.read_mono(src_c), audio.read_mono(tmp_path / "b_heard_after.wav"))
    assert corr_c > 0.6, f"after hold/resume b does not hear a over SRTP: {corr_c:.2f}"   # pjsua drifts after unhold
    log = sw.wait_log(r"ended: caller hung up", timeout=10) and sw.log()
    for role in ("caller", "callee"):     # both legs were SRTP, and the switch took the phones' packets
        m = re.search(rf"{role} media PCM[UA] SRTP AES_CM_128_HMAC_SHA1_(80|32): rx (\d+) packets", log)
        assert m and int(m.group(2)) > 50, log[-2000:]

    # a phone without SRTP on the same (required) extension: its plain offer is refused
    x = phones("x")
    reg = x.register("1001", EXTS["1001"], DOMAIN, f"sip:{sw.addr}")
    assert reg["code"] == 200, reg
    cx = x.call(f"sip:1002@{DOMAIN}")
    ev = x.wait_call_state(cx, "DISCONNECTED", timeout=15)
    assert ev["code"] == 488, ev
    sw.wait_log(r"SRTP required, the offer has no usable a=crypto \(488\)")

    # called: with only the plain phone left on 1001, the switch offers it RTP/SAVP, which it refuses (488)
    a.unregister()
    x.auto_answer(code=200)
    cb2 = b.call(f"sip:1001@{DOMAIN}")
    ev = b.wait_call_state(cb2, "DISCONNECTED", timeout=15)
    assert ev["code"] == 488, ev                  # the phone's 488, passed on to the caller
    assert not x.events("media_state"), "the plain phone got a call on a required extension"
