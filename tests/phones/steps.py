"""What a test's phone does at the switch under test: register, call another phone until both have
media, dial a feature code. Shared by the end-to-end tests (they were copied into each)."""
from __future__ import annotations

from typing import Any

from tests.conftest import DOMAIN


def register(sw: Any, phones: Any, name: str, number: str) -> Any:
    """Phone ``name`` from the pool, registered as ``number`` (the switch must answer 200)."""
    p = phones(name)
    reg = p.register(number, sw.extensions[number], DOMAIN, f"sip:{sw.addr}")
    assert reg["code"] == 200, reg
    return p


def connect(sw: Any, phones: Any, a_num: str = "1001", b_num: str = "1002") -> tuple[Any, Any, Any, Any]:
    """Phones "a" (``a_num``) and "b" (``b_num``, answering) registered; a calls b until both legs are
    confirmed with active media. Returns (a, a's call, b, b's call)."""
    a, b = phones("a"), phones("b")
    for p, n in ((a, a_num), (b, b_num)):
        reg = p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")
        assert reg["code"] == 200, reg
    b.auto_answer(code=200)
    call = a.call(f"sip:{b_num}@{DOMAIN}")
    incoming = b.wait_event("incoming", timeout=10)
    a.wait_call_state(call, "CONFIRMED", timeout=10)
    b.wait_call_state(incoming["call"], "CONFIRMED", timeout=10)
    a.wait_event("media_state", call=call, active=True, timeout=5)
    b.wait_event("media_state", call=incoming["call"], active=True, timeout=5)
    return a, call, b, incoming["call"]


def feature_code(sw: Any, phone: Any, code: str) -> None:
    """Dial a feature code; the switch answers, beeps and hangs up."""
    call = phone.call(f"sip:{code}@{DOMAIN}")
    phone.wait_call_state(call, "CONFIRMED", timeout=10)
    phone.wait_call_state(call, "DISCONNECTED", timeout=10)
