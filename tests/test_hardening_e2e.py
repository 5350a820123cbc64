"""Issue 11, signalling and API: a real switch process attacked from other loopback addresses (127.0.0.x) with raw
sockets, as a hostile network would. Each test failed on the code before the fix (noted per test).

- guesses interleaved with valid logins still end in a ban (a success no longer clears the count);
- a captured digest answer cannot be replayed (qop-less answers are single-use, nc must increase) nor reused for
  another Request-URI;
- spoofed packets with forged or foreign nonces ban nobody;
- the API's login throttle never refuses the right password from another address; a non-ASCII token is a 401.
"""
from __future__ import annotations

import pytest

from .attacker import SipPeer, answer, http_from
from .conftest import DOMAIN, wait_for
from .test_api_support import PASSWORDS, start_api_switch

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


@pytest.fixture
def peers():
    made: list[SipPeer] = []

    def make(host: str, port: int) -> SipPeer:
        p = SipPeer(host, port)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def test_guesses_interleaved_with_valid_logins_end_in_a_ban(switch_factory, peers):
    """The attacker owns 1001 and guesses 1002's password, registering 1001 properly between guesses. Before:
    each success cleared the count, 50 guesses and never banned."""
    sw = switch_factory(EXTS)  # default: 10 failures in 60 s ban for 900 s
    attacker = peers("127.0.0.2", sw.port)
    banned_after = None
    for guess in range(50):
        ok, _ = attacker.register("1001", EXTS["1001"])
        if ok is None:  # banned: no answer at all
            banned_after = guess
            break
        assert ok.status == 200, ok.status
        attacker.send(attacker.register_msg("1002", auth=answer(attacker.challenge("1002") or "", "1002",
                                                                   f"guess-{guess}")))
        r = attacker.recv()
        if r is None:
            banned_after = guess
            break
        assert r.status == 403
    assert banned_after is not None and banned_after <= 10, "never banned"
    sw.wait_log(r"banned 127\.0\.0\.2 for 900s")
    # the right password from the banned address gets nothing now; another address is untouched
    assert attacker.register("1001", EXTS["1001"], timeout=1.0)[0] is None
    assert peers("127.0.0.3", sw.port).register("1002", EXTS["1002"])[0].status == 200


def test_a_replayed_qop_less_answer_is_refused(switch_factory, peers):
    """Before: an answer without qop to a qop="auth" challenge was accepted and could be replayed for the nonce's
    lifetime (here re-registering the victim to the attacker's Contact)."""
    sw = switch_factory(EXTS)
    victim = peers("127.0.0.3", sw.port)
    ok, auth = victim.register("1001", EXTS["1001"], qop=False)
    assert ok is not None and ok.status == 200
    # the captured Authorization, resent (from the victim's address, as a spoofer or a NAT neighbour would)
    # with another Contact: refused (re-challenged), the binding unchanged
    victim.send(victim.register_msg("1001", auth=auth, contact_port=4444))
    r = victim.recv()
    assert r is not None and r.status == 401 and "stale=true" in (r.headers.get("WWW-Authenticate") or "")
    sw.wait_log(r"digest answer used before")
    # with qop, the same nc twice: refused likewise
    ok, auth = victim.register("1001", EXTS["1001"], qop=True)
    assert ok is not None and ok.status == 200
    victim.send(victim.register_msg("1001", auth=auth, contact_port=4444))
    assert victim.recv().status == 401  # type: ignore[union-attr]
    # a higher nc with the same nonce is the phone's next request: accepted
    ch = victim.challenge("1001")
    assert ch is not None
    victim.send(victim.register_msg("1001", auth=answer(ch, "1001", EXTS["1001"], nc=1)))
    assert victim.recv().status == 200  # type: ignore[union-attr]
    victim.send(victim.register_msg("1001", auth=answer(ch, "1001", EXTS["1001"], nc=2)))
    assert victim.recv().status == 200  # type: ignore[union-attr]
    # an answer computed for another Request-URI (an INVITE's credentials) does not register: 403
    ch = victim.challenge("1001")
    victim.send(victim.register_msg("1001", auth=answer(ch or "", "1001", EXTS["1001"], uri="sip:2000@" + DOMAIN)))
    r = victim.recv()
    assert r is not None and r.status == 403
    sw.wait_log(r"credentials were computed for another Request-URI")
    assert "banned" not in sw.log()


def test_spoofed_forged_nonce_packets_ban_nobody(switch_factory, peers):
    """30 packets 'from' the office's address with forged nonces, another address's nonce and garbage, wrong
    passwords all: before, 10 of them banned the address for 15 minutes. Now they are re-challenged, never
    counted, and the office's phone registers at once."""
    sw = switch_factory(EXTS)
    office = "127.0.0.4"
    spoofer = peers(office, sw.port)  # sends as the office, never reads a reply
    elsewhere = peers("127.0.0.6", sw.port)
    foreign = elsewhere.challenge("1001")  # a genuine nonce, issued to another address
    assert foreign is not None
    for i in range(10):
        forged = foreign.replace(foreign.split('nonce="')[1].split('"')[0], f"{'A' * 40}{i:04d}")
        spoofer.send(spoofer.register_msg("1001", auth=answer(forged, "1001", f"wrong-{i}")))
        spoofer.send(spoofer.register_msg("1001", auth=answer(foreign, "1001", f"wrong-{i}")))
        spoofer.send(spoofer.register_msg("1001", auth='Digest username="1001", realm="' + DOMAIN + '", nonce="x'))
    # the switch has read all 30 (each answered with a challenge, to the office, which ignores it)
    wait_for(lambda: sw.log().count("re-challenged, not counted") >= 30, timeout=20)
    phone = peers(office, sw.port)
    ok, _ = phone.register("1001", EXTS["1001"])
    assert ok is not None and ok.status == 200
    assert "banned" not in sw.log()


def test_ban_exempt_address_is_never_banned(switch_factory, peers):
    sw = switch_factory(EXTS, extra='[security]\nban_exempt = ["127.0.0.7/32"]\nmax_auth_failures = 3\n')
    trunk = peers("127.0.0.7", sw.port)
    for i in range(6):
        trunk.send(trunk.register_msg("1002", auth=answer(trunk.challenge("1002") or "", "1002", f"bad-{i}")))
        assert trunk.recv().status == 403  # type: ignore[union-attr]
    assert trunk.register("1002", EXTS["1002"])[0].status == 200  # type: ignore[union-attr]
    assert "banned" not in sw.log()


# ------------------------------------------------------------------------------------------------------- API

def test_api_lockout_never_refuses_the_right_password_from_another_address(switch_factory):
    """Before: 10 failures for a user locked that user out for everyone (anyone could lock out the supervisor)."""
    sw, _ = start_api_switch(switch_factory)
    port = sw.api_port
    codes = [http_from("127.0.0.2", port, "POST", "/api/session", {"user": "boss", "password": f"guess{i}"})[0]
             for i in range(12)]
    assert codes[:5] == [401] * 5 and 429 in codes, codes
    status, body, headers = http_from("127.0.0.2", port, "POST", "/api/session",
                                      {"user": "boss", "password": PASSWORDS["boss"]})
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "this address" in body["error"]
    # the supervisor, elsewhere, logs in at once
    status, body, _ = http_from("127.0.0.3", port, "POST", "/api/session",
                                {"user": "boss", "password": PASSWORDS["boss"]})
    assert status == 200 and body["role"] == "supervisor"
    # and from the attacker's address another user is not locked out by the guesses at boss
    assert http_from("127.0.0.2", port, "POST", "/api/session",
                     {"user": "2001", "password": PASSWORDS["2001"]})[0] == 200


def test_non_ascii_token_is_401_not_500(switch_factory):
    """Before: hmac.compare_digest raised TypeError on a non-ASCII token: 500 and a traceback in the log."""
    sw, _ = start_api_switch(switch_factory)
    for headers in ({"Authorization": "Bearer abc\u00e9.def"}, {"Cookie": "session=abc\u00e9.d\u00fcf"},
                    {"Authorization": "Bearer \u00ff\u00ff\u00ff.\u00ff"}):
        status, body, _ = http_from("127.0.0.1", sw.api_port, "GET", "/api/me", headers=headers)
        assert status == 401, (headers, status, body)
    assert "Traceback" not in sw.log() and "failed" not in sw.log().split("api listening")[-1]


# ----------------------------------------------------------------------------------------------- agents

AGENTS_CONFIG = '''[acd]
[[acd.skills]]
name = "support"
[[acd.agents]]
id = "2001"
name = "Alice"
extension = "1002"
skills = {{ support = 5 }}
[[acd.agents]]
id = "2002"
name = "Bob"
extension = "1003"
pin = "4711"
skills = {{ support = 9 }}
[[acd.queues]]
name = "support"
skill = "support"
[api]
listen = "127.0.0.1:{api_port}"
[[api.users]]
id = "2001"
password = "{pw_2001}"
[[api.users]]
id = "2002"
password = "{pw_2002}"
[[api.users]]
id = "boss"
role = "supervisor"
password = "{pw_boss}"
'''


@pytest.fixture
def phones(tmp_path):
    from tests.phones import Phones
    pool = Phones(log_dir=tmp_path)
    yield pool
    pool.close()


def test_an_impostor_cannot_log_in_as_an_agent(switch_factory, phones):
    """Before: any extension logged in as any logged-out agent with *11*<id>, and the API let an agent log in at
    any extension: queue calls and screen pops went to the impostor."""
    from .conftest import free_port
    api_port = free_port()
    sw = switch_factory(EXTS, extra=AGENTS_CONFIG.format(api_port=api_port, pw_2001=PASSWORDS["2001"],
                                                         pw_2002=PASSWORDS["2002"], pw_boss=PASSWORDS["boss"]))
    sw.wait_log(r"api listening")
    impostor = phones("impostor")
    assert impostor.register("1001", EXTS["1001"], DOMAIN, f"sip:{sw.addr}")["code"] == 200

    def dial(code: str) -> None:
        call = impostor.call(f"sip:{code}@{DOMAIN}")
        impostor.wait_call_state(call, "DISCONNECTED", timeout=15)  # answered, a tone, hung up

    def state(agent: str) -> str:
        status, body, _ = http_from("127.0.0.1", api_port, "POST", "/api/session",
                                    {"user": "boss", "password": PASSWORDS["boss"]})
        token = body["token"]
        _, agents, _ = http_from("127.0.0.1", api_port, "GET", "/api/agents",
                                 headers={"Authorization": f"Bearer {token}"})
        return next(a["state"] for a in agents if a["id"] == agent)

    dial("*11*2001")  # Alice's id, from 1001: not her phone
    sw.wait_log(r"feature code \*11\*2001 from 1001: refused \(agent 2001 may not log in at 1001")
    dial("*11*2002*1234")  # Bob has a PIN; a wrong guess, and the PIN never reaches the log
    sw.wait_log(r"feature code \*11\*2002\*\*\*\*\* from 1001: refused \(wrong PIN\)")
    assert "*11*2002*1234" not in sw.log()
    assert state("2001") == "logged-out" and state("2002") == "logged-out"

    # the API: an agent at another's phone is refused; its own phone, or with its PIN, is fine
    def agent_login(user: str, body: dict) -> tuple[int, dict]:
        _, s, _ = http_from("127.0.0.1", api_port, "POST", "/api/session",
                            {"user": user, "password": PASSWORDS[user]})
        status, answer_, _ = http_from("127.0.0.1", api_port, "POST", f"/api/agents/{user}/state",
                                       {"action": "login", **body}, headers={"Authorization": f"Bearer {s['token']}"})
        return status, answer_

    status, body = agent_login("2001", {"extension": "1001"})
    assert status == 403 and "may not log in at 1001" in body["error"]
    status, body = agent_login("2002", {"extension": "1001", "pin": "0000"})
    assert status == 403 and body["error"] == "wrong PIN"
    assert state("2001") == "logged-out" and state("2002") == "logged-out"
    assert agent_login("2001", {"extension": "1002"})[0] == 200
    status, body = agent_login("2002", {"extension": "1001", "pin": "4711"})  # hot-desking with the PIN
    assert status == 200 and body["extension"] == "1001", body
