"""Self-test of the pjsua2 phone harness (tests/phones), without the switch.

Phone B calls phone A directly on A's own transport; A auto-answers.
"""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")

from tests.phones import Phone, PhoneError, Phones  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]


@pytest.fixture
def phones(tmp_path):
    pool = Phones(log_dir=tmp_path)
    yield pool
    pool.close()
    for phone in pool.phones:
        assert phone.proc.poll() is not None, f"{phone} still running"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_direct_call_auto_answer_and_hangup(phones, transport):
    started = time.monotonic()
    a = phones("a", transport)
    b = phones("b", transport)

    info = a.info()
    assert info["port"] == a.port > 0
    assert info["transport"] == transport

    a.account("a")
    b.account("b")
    a.auto_answer(code=200, delay_ms=0)

    call = b.call(f"sip:a@127.0.0.1:{a.port}")
    incoming = a.wait_event("incoming", timeout=5)
    assert "sip:b@127.0.0.1" in incoming["from"]
    a_call = incoming["call"]

    confirmed = b.wait_call_state(call, "CONFIRMED", timeout=5)
    assert confirmed["code"] == 200
    a.wait_call_state(a_call, "CONFIRMED", timeout=5)
    b.wait_event("media_state", call=call, active=True, timeout=5)

    b.hangup(call)
    b.wait_call_state(call, "DISCONNECTED", timeout=5)
    a.wait_call_state(a_call, "DISCONNECTED", timeout=5)

    errors = [e for p in (a, b) for e in p.history if e["event"] == "error"]
    assert not errors, errors
    assert not a.noise and not b.noise

    for phone in (a, b):
        assert phone.close() == 0
    assert time.monotonic() - started < 15


def test_command_errors_and_stdin_eof(tmp_path):
    phone = Phone("solo", log_dir=tmp_path)
    try:
        with pytest.raises(PhoneError, match="unknown command"):
            phone.cmd("no_such_command")
        with pytest.raises(PhoneError, match="unknown call"):
            phone.hangup(42)
        assert phone.info()["port"] == phone.port  # still alive after errors
        # closing stdin alone makes the phone quit cleanly
        phone.proc.stdin.close()
        assert phone.proc.wait(5) == 0
    finally:
        phone.close()
    assert phone.proc.poll() is not None
