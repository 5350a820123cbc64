"""Two pjsua2 softphones (a real SIP stack, each in its own process) register to the switch with
digest authentication and call each other through it, over UDP and TCP."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")

from .conftest import DOMAIN  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def _register(phone, sw, number: str) -> dict:
    reg = phone.register(number, sw.extensions[number], DOMAIN, f"sip:{sw.addr};transport={phone.transport}")
    assert reg["code"] == 200 and reg["active"], reg
    return reg


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_two_pjsua2_phones_call_through_the_switch(switch, phones, transport):
    a = phones("a", transport)
    b = phones("b", transport)
    _register(a, switch, "1001")
    _register(b, switch, "1002")
    switch.wait_log(r"registered 1001 contact .* from " + transport)
    switch.wait_log(r"registered 1002 contact .* from " + transport)
    b.auto_answer(code=200, delay_ms=300)

    call = a.call(f"sip:1002@{DOMAIN}")
    incoming = b.wait_event("incoming", timeout=10)
    assert "1001" in incoming["from"]
    assert a.wait_call_state(call, "CONFIRMED", timeout=10)["code"] == 200
    b.wait_call_state(incoming["call"], "CONFIRMED", timeout=10)
    a.wait_event("media_state", call=call, active=True, timeout=5)
    switch.wait_log(r"1001 -> 1002 answered")

    time.sleep(0.5)  # pacing: half a second of conversation, then the callee hangs up
    b.hangup(incoming["call"])  # the callee hangs up; the caller is told
    a.wait_call_state(call, "DISCONNECTED", timeout=10)
    b.wait_call_state(incoming["call"], "DISCONNECTED", timeout=10)
    switch.wait_log(r"1001 -> 1002 ended: ")

    errors = [e for p in (a, b) for e in p.history if e["event"] == "error"]
    assert not errors, errors


def test_pjsua2_uses_sha256_digest_when_its_extension_offers_it(switch_factory, phones, tmp_path):
    """MD5 alone by default (every phone answers it); an extension with ``auth_algorithms =
    ["SHA-256", "MD5"]`` is offered SHA-256 first (RFC 8760), and pjsip picks it."""
    from .conftest import free_port, wait_for
    port = free_port()
    text = (f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\n[api]\nenabled = false\n'
            '[store]\npath = "var/softswitch.db"\n'
            '[[extensions]]\nnumber = "1001"\npassword = "secret-1001"\nauth_algorithms = ["SHA-256", "MD5"]\n'
            '[[extensions]]\nnumber = "1002"\npassword = "secret-1002"\n')
    sw = switch_factory({"1001": "secret-1001", "1002": "secret-1002"}, port=port, config_text=text)
    a, b = phones("a"), phones("b")
    _register(a, sw, "1001")
    _register(b, sw, "1002")

    def algorithms(phone) -> set[str]:
        def lines() -> list[str]:  # pjsip writes its log behind the registration's callback
            return [l for l in phone.pjsip_log_path.read_text(errors="replace").splitlines()
                    if l.startswith("Authorization:")]
        return {a for a in ("SHA-256", "MD5") for l in wait_for(lines, 5, 0.05) if f"algorithm={a}" in l}

    assert algorithms(a) == {"SHA-256"}
    assert algorithms(b) == {"MD5"}


def test_wrong_password_is_refused_with_403(switch, phones):
    a = phones("a")
    reg = a.register("1001", "not-the-password", DOMAIN, f"sip:{switch.addr}")
    assert reg["code"] == 403, reg


@pytest.fixture
def tls_switch(switch_factory, tmp_path):
    """A switch with a TLS listener and a self-signed certificate (openssl)."""
    import shutil
    import subprocess
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", f"/CN={DOMAIN}"], check=True, capture_output=True)
    from .conftest import free_port
    tls_port = free_port()
    return switch_factory(extra=f'[sip.tls]\ncertificate = "{cert}"\nkey = "{key}"\n', tls_port=tls_port)


def test_two_pjsua2_phones_call_over_tls(tls_switch, phones):
    sw = tls_switch
    a, b = phones("a", "tls"), phones("b", "tls")
    for p, n in ((a, "1001"), (b, "1002")):
        reg = p.register(n, sw.extensions[n], DOMAIN, f"sip:127.0.0.1:{sw.tls_port};transport=tls")
        assert reg["code"] == 200 and reg["active"], reg
    sw.wait_log(r"registered 1002 contact .* from tls")
    b.auto_answer(code=200)
    call = a.call(f"sip:1002@{DOMAIN}")
    incoming = b.wait_event("incoming", timeout=10)
    assert a.wait_call_state(call, "CONFIRMED", timeout=10)["code"] == 200
    a.hangup(call)
    b.wait_call_state(incoming["call"], "DISCONNECTED", timeout=10)
    sw.wait_log(r"1001 -> 1002 ended: caller hung up")
