"""Click-to-dial through the API (POST /api/calls) with a real switch process: the switch rings
extension A; only when A answers does it ring B (A hears music meanwhile); B answering connects
them, and each hears the other. The call record says "answered". Without phones: who may originate
from which extension (403), and an extension that cannot be rung (409)."""
from __future__ import annotations

import importlib.util
import time

import pytest

pytest.importorskip("aiohttp")

from tests.phones.client import PhoneTimeout  # noqa: E402

from . import audio  # noqa: E402
from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
requires_pjsua2 = pytest.mark.skipif(importlib.util.find_spec("pjsua2") is None, reason="pjsua2 not installed")

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


def _api_switch(switch_factory):
    """The API switch of tests/test_api_support.py (agents 2001 at 1002, 2002 at 1003, supervisor boss),
    media anchored on its own RTP port range."""
    return start_api_switch(switch_factory, EXTS, extra=rtp_extra())


@requires_pjsua2
def test_originate_rings_a_then_b_and_connects_them(switch_factory, phones, tmp_path):
    sw, anon = _api_switch(switch_factory)
    boss = anon.login("boss")
    a, b = phones("a"), phones("b")
    for p, n in ((a, "1001"), (b, "1002")):
        assert p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    a.auto_answer(code=200, delay_ms=1500)   # A rings for 1.5 s (B must stay quiet meanwhile)
    b.auto_answer(code=200, delay_ms=2500)   # B rings for 2.5 s (A hears music meanwhile)

    status, body = boss.post("/api/calls", {"from": "1001", "to": "1002"})
    assert status == 201, body
    call_id = body["id"]
    sw.wait_log(rf"call {call_id}: originate: ringing 1001, then 1002")

    # A rings first, showing B's number (the default caller id)
    a_in = a.wait_event("incoming", timeout=10)
    assert "1002" in a_in["from"], a_in
    a.wait_call_state(a_in["call"], "EARLY", timeout=5)
    # ... and B does not ring while A rings: until A's phone has sent its 200 (state CONNECTING; B's
    # INVITE can only follow it, so B's phone cannot report it before A's phone reports this)
    deadline = time.monotonic() + 10
    while True:
        assert not b.events("incoming"), "B rang before A answered"
        try:
            a.wait_call_state(a_in["call"], "CONNECTING", timeout=0.05)
            break
        except PhoneTimeout:
            assert time.monotonic() < deadline, "A never answered"
    a.wait_call_state(a_in["call"], "CONFIRMED", timeout=5)
    a.wait_event("media_state", call=a_in["call"], active=True, timeout=5)
    a.record(a_in["call"], tmp_path / "a_music.wav")

    # now B rings, showing A's number
    b_in = b.wait_event("incoming", timeout=10)
    assert "1001" in b_in["from"], b_in
    b.wait_call_state(b_in["call"], "CONFIRMED", timeout=10)
    a.stop_record(a_in["call"])
    sw.wait_log(rf"call {call_id}: 1001 -> 1002 answered by")
    b.wait_event("media_state", call=b_in["call"], active=True, timeout=5)
    # A heard the switch's music while B rang (silence would be an RMS of about 0)
    music = audio.read_mono(tmp_path / "a_music.wav")
    assert len(music) > audio.RATE and audio.rms(music[audio.RATE // 2:]) > 0.005, audio.rms(music)

    # audio both ways: each plays its own melody and the other's recording matches it
    a_says = audio.write_wav(tmp_path / "a_says.wav", audio.melody(2.0, seed=61))
    b_says = audio.write_wav(tmp_path / "b_says.wav", audio.melody(2.0, seed=62))
    a.record(a_in["call"], tmp_path / "a_heard.wav")
    b.record(b_in["call"], tmp_path / "b_heard.wav")
    time.sleep(0.3)  # pacing: the recorders run before the audio starts
    a.play(a_in["call"], a_says)
    b.play(b_in["call"], b_says)
    time.sleep(3.0)  # pacing: the 2 s melodies reach the other phone in real time (asserted below)
    a.stop_record(a_in["call"])
    b.stop_record(b_in["call"])
    live = boss.get("/api/calls")[1]
    assert [(c["id"], c["caller"], c["callee"]) for c in live] == [(call_id, "1001", "1002")]

    a.hangup(a_in["call"])
    b.wait_call_state(b_in["call"], "DISCONNECTED", timeout=10)
    a.wait_call_state(a_in["call"], "DISCONNECTED", timeout=10)
    heard_by_b = audio.windowed_correlation(audio.read_mono(a_says), audio.read_mono(tmp_path / "b_heard.wav"))
    heard_by_a = audio.windowed_correlation(audio.read_mono(b_says), audio.read_mono(tmp_path / "a_heard.wav"))
    assert heard_by_b > 0.8 and heard_by_a > 0.8, (heard_by_b, heard_by_a)

    rows = wait_for(lambda: db_rows(sw, "SELECT caller, callee, disposition, answered_at, talk_s FROM call_records "
                                        "WHERE call_ref = ?", (call_id,)))
    caller, callee, disposition, answered_at, talk_s = rows[0]
    assert (caller, callee, disposition) == ("1001", "1002", "answered"), rows
    assert answered_at is not None and talk_s > 3.0, rows
    assert boss.get("/api/calls")[1] == []


def test_originate_permissions_and_unreachable_extension(switch_factory):
    sw, anon = _api_switch(switch_factory)
    boss, alice = anon.login("boss"), anon.login("2001")   # alice: agent 2001 at extension 1002
    assert anon.post("/api/calls", {"from": "1001", "to": "1002"})[0] == 401
    # an agent may only originate from her own extension
    status, body = alice.post("/api/calls", {"from": "1001", "to": "1003"})
    assert status == 403 and body["field"] == "from", body
    assert "own extension" in body["error"]
    # her own extension is allowed, but no phone is registered there: 409
    status, body = alice.post("/api/calls", {"from": "1002", "to": "1003"})
    assert status == 409 and "1002" in body["error"] and "not registered" in body["error"], body
    # a supervisor may use any extension; still nothing registered
    status, body = boss.post("/api/calls", {"from": "1001", "to": "1002", "caller_id": "4000"})
    assert status == 409 and "1001" in body["error"], body
    # a call made for a queue (it presents the queue's caller_id) names a queue that exists
    status, body = boss.post("/api/calls", {"from": "1001", "to": "1002", "queue": "no-such-queue"})
    assert status == 400 and body["field"] == "queue" and "no queue no-such-queue" in body["error"], body
    # numbers are checked against the document
    for bad in ({"from": "10 01", "to": "1002"}, {"from": "1001"}, {"from": "1001", "to": "sip:x@y"},
                {"from": "1001", "to": "1002", "caller_id": "<script>"}, {"from": "1001", "to": "1002", "x": 1}):
        status, body = boss.post("/api/calls", bad)
        assert status == 400, (bad, body)
    assert boss.get("/api/calls")[1] == []
    assert sw.log().count("originate 1001 -> 1002 refused") == 1
