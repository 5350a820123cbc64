"""Registrar and its safety rules, driven through the sans-IO core with a fake clock."""
from __future__ import annotations

from softswitch.sip.message import Response
from softswitch.sip.transaction import Peer

from .core_harness import DOMAIN, Net, Phone, make_core, responses


def phone(net: Net, user: str = "1001", password: str = "pw-1001-x", port: int = 40001, **kw) -> Phone:
    return Phone(net, user, password, Peer("udp", "127.0.0.1", port), **kw)


def test_register_challenge_offers_md5_by_default():
    """Every common phone answers an MD5-only challenge; many give up on any other (baresip, SIPp)."""
    net = Net(make_core())
    p = phone(net)
    out = responses(p.send(p.msg("REGISTER", f"sip:{DOMAIN}", extra=["Expires: 300"])))
    assert [r.status for r in out] == [401]
    challenges = out[0].headers.get_lines("WWW-Authenticate")
    assert len(challenges) == 1 and "algorithm=MD5" in challenges[0]
    assert all('qop="auth"' in c and 'realm="callcenter.local"' in c for c in challenges)
    assert net.persisted == []


def test_register_challenge_offers_sha256_then_md5_when_configured():
    net = Net(make_core(sip={"auth_algorithms": ["SHA-256", "MD5"]}))
    p = phone(net)
    challenges = responses(p.send(p.msg("REGISTER", f"sip:{DOMAIN}")))[0].headers.get_lines("WWW-Authenticate")
    assert len(challenges) == 2
    assert "algorithm=SHA-256" in challenges[0] and "algorithm=MD5" in challenges[1]


def test_sha256_per_extension():
    """``[[extensions]] auth_algorithms``: SHA-256 for the phones known to do it, MD5 for the rest."""
    core = make_core(extensions={"1001": "pw-1001-x", "1002": "pw-1002-x"})
    from dataclasses import replace
    from softswitch.config import Config
    cfg = core.config
    exts = [replace(e, auth_algorithms=["SHA-256", "MD5"]) if e.number == "1001" else e for e in cfg.extensions]
    core.config = Config(source=cfg.source, sip=cfg.sip, store=cfg.store, extensions=exts, security=cfg.security,
                         log=cfg.log, media=cfg.media, api=cfg.api, acd=cfg.acd, ivr=cfg.ivr)
    net = Net(core)
    a, b = phone(net), phone(net, "1002", "pw-1002-x", port=40002)
    ca = responses(a.send(a.msg("REGISTER", f"sip:{DOMAIN}")))[0].headers.get_lines("WWW-Authenticate")
    cb = responses(b.send(b.msg("REGISTER", f"sip:{DOMAIN}")))[0].headers.get_lines("WWW-Authenticate")
    assert ["algorithm=SHA-256" in ca[0], "algorithm=MD5" in ca[1]] == [True, True]
    assert len(cb) == 1 and "algorithm=MD5" in cb[0]
    assert a.register(algorithm="SHA-256").status == 200
    assert b.register(algorithm="MD5").status == 200


def test_register_md5_and_sha256_and_binding_is_persisted_before_ok():
    for algorithm in ("MD5", "SHA-256"):
        net = Net(make_core(sip={"auth_algorithms": ["SHA-256", "MD5"]}))
        p = phone(net)
        resp = p.register(algorithm=algorithm)
        assert resp.status == 200, resp
        contacts = resp.headers.get_all("Contact")
        assert contacts == ["<sip:1001@127.0.0.1:40001>;expires=300"]
        assert [op for op, _ in net.persisted] == ["put"]
        b = net.persisted[0][1]
        assert (b.aor, b.contact_uri, b.received) == ("1001", "sip:1001@127.0.0.1:40001", "udp:127.0.0.1:40001")
        assert b.expires_at == net.now + 300


def test_wrong_password_and_unknown_user_get_the_same_answer():
    net = Net(make_core())
    wrong = phone(net).register(password="nope")
    unknown = Phone(net, "1999", "whatever", Peer("udp", "127.0.0.1", 40002)).register()
    assert isinstance(wrong, Response) and isinstance(unknown, Response)
    assert (wrong.status, wrong.reason) == (unknown.status, unknown.reason) == (403, "Forbidden")
    assert sorted(n for n, _ in wrong.headers.items()) == sorted(n for n, _ in unknown.headers.items())


def test_expires_below_minimum_is_423_with_min_expires():
    net = Net(make_core())
    resp = phone(net).register(expires=30)
    assert resp.status == 423
    assert resp.headers.get("Min-Expires") == "60"


def test_expires_above_maximum_is_clamped():
    net = Net(make_core())
    resp = phone(net).register(expires=999999)
    assert resp.headers.get_all("Contact") == ["<sip:1001@127.0.0.1:40001>;expires=3600"]


def test_several_contacts_unregister_one_and_wildcard():
    net = Net(make_core())
    a, b = phone(net, port=40001), phone(net, port=40002)
    assert a.register().status == 200
    resp = b.register()
    assert len(resp.headers.get_all("Contact")) == 2
    resp = b.register(expires=0)
    assert resp.headers.get_all("Contact") == ["<sip:1001@127.0.0.1:40001>;expires=300"]
    # wildcard without Expires: 0 is refused, with it every binding goes
    bad = a.register(expires=300, contact="*")
    assert bad.status == 400
    gone = a.register(expires=0, contact="*")
    assert gone.status == 200 and gone.headers.get_all("Contact") == []
    assert net.core.registrar.lookup("1001", net.now) == []


def test_registration_expires():
    net = Net(make_core())
    phone(net).register(expires=60)
    assert net.core.registrar.lookup("1001", net.now)
    net.advance(61)
    assert net.core.registrar.lookup("1001", net.now) == []
    assert ("del", ("1001", "sip:1001@127.0.0.1:40001")) in net.persisted


def test_stale_nonce_is_rechallenged_with_stale_true():
    net = Net(make_core())
    p = phone(net)
    call_id = "stale@x"
    r401 = responses(p.send(p.msg("REGISTER", f"sip:{DOMAIN}", call_id=call_id)))[0]
    challenge = r401.headers.get_lines("WWW-Authenticate")[-1]  # MD5
    net.now += 400  # past the 300 s nonce lifetime
    from softswitch.sip.digest import authorization_header
    auth = authorization_header(challenge, "REGISTER", f"sip:{DOMAIN}", "1001", "pw-1001-x")
    resp = responses(p.send(p.msg("REGISTER", f"sip:{DOMAIN}", call_id=call_id, extra=[f"Authorization: {auth}"])))[0]
    assert resp.status == 401
    assert all("stale=true" in c for c in resp.headers.get_lines("WWW-Authenticate"))


def test_ten_failures_in_a_minute_ban_the_address_including_loopback():
    net = Net(make_core())
    attacker = phone(net, port=41000)
    for _ in range(10):
        assert attacker.register(password="guess").status == 403
    # banned: no answer at all, even to a correct password or an OPTIONS
    out = attacker.send(attacker.msg("OPTIONS", f"sip:{DOMAIN}"))
    assert out == []
    # another address is unaffected
    other = Phone(net, "1002", "pw-1002-x", Peer("udp", "127.0.0.2", 41001))
    assert other.register().status == 200
    # the ban lifts after 15 minutes
    net.advance(15 * 60 + 1)
    assert attacker.register().status == 200


def test_ban_is_configurable_and_exemptions_work():
    net = Net(make_core(security={"max_auth_failures": 3, "ban_exempt": ["127.0.0.0/8"]}))
    p = phone(net)
    for _ in range(5):
        assert p.register(password="guess").status == 403
    assert p.register().status == 200


def test_register_to_must_be_a_sip_uri():
    net = Net(make_core())
    p = phone(net)
    data = p.msg("REGISTER", f"sip:{DOMAIN}", to="<tel:+15551234>")
    assert [r.status for r in responses(p.send(data))] == [400]


def test_bindings_are_restored_from_the_store_records():
    net = Net(make_core())
    phone(net).register()
    puts = [b for op, b in net.persisted if op == "put"]
    fresh = make_core()
    fresh.registrar.load(puts)
    assert [b.contact_uri for b in fresh.registrar.lookup("1001", net.now)] == ["sip:1001@127.0.0.1:40001"]


def _authenticated_register(net: Net, p: Phone) -> bytes:
    """A REGISTER answering a challenge from ``net``'s switch (what a phone caches and sends again)."""
    from softswitch.sip.digest import authorization_header
    r401 = responses(p.send(p.msg("REGISTER", f"sip:{DOMAIN}", call_id="cached@x")))[0]
    auth = authorization_header(r401.headers.get_lines("WWW-Authenticate")[-1], "REGISTER", f"sip:{DOMAIN}",
                                p.user, p.password)
    return p.msg("REGISTER", f"sip:{DOMAIN}", call_id="cached@x", extra=[f"Authorization: {auth}"])


def test_nonce_of_an_earlier_run_gets_a_fresh_challenge_not_403():
    """A restart with another nonce key (no key file, a new machine): the phone's cached nonce is answered
    401 stale=true, never 403, and nothing counts towards a ban."""
    p = phone(Net(make_core()))
    cached = _authenticated_register(p.net, p)
    after = Net(make_core(security={"max_auth_failures": 1}))
    after.core.set_nonce_secret(b"another key, another run....xyz!")
    for _ in range(3):
        out = responses(after.deliver(cached, p.peer))
        assert [r.status for r in out] == [401], out
        assert "stale=true" in (out[0].headers.get("WWW-Authenticate") or "")
    assert after.core.stats.auth_failures == 0 and not after.core.bans.banned(after.now)


def test_the_same_key_keeps_nonces_good_across_a_restart():
    p = phone(Net(make_core()))
    cached = _authenticated_register(p.net, p)
    after = Net(make_core())  # make_core's fixed key: what the key file gives the next run
    assert [r.status for r in responses(after.deliver(cached, p.peer))] == [200]


def test_a_challenge_never_answered_is_logged_once(caplog):
    net = Net(make_core())
    p = phone(net)
    with caplog.at_level("INFO", logger="softswitch.core"):
        for _ in range(3):  # a phone that cannot do the algorithm retries without credentials
            p.send(p.msg("REGISTER", f"sip:{DOMAIN}"))
            net.advance(5)
        ok = phone(net, "1002", "pw-1002-x", port=40002)
        assert ok.register().status == 200  # answered at once: never reported
        net.advance(60)
        p.send(p.msg("REGISTER", f"sip:{DOMAIN}"))
        net.advance(60)  # muted: one line per phone every ten minutes
    lines = [r.getMessage() for r in caplog.records if "never answered" in r.getMessage()]
    assert lines == ["REGISTER from 127.0.0.1 for 1001: 3 challenge(s) never answered within 32 s; the phone may "
                     "not support the digest algorithm(s) offered (MD5) or has no password set"], lines
    assert len(net.core.challenges) == 0


def test_a_scanner_spraying_users_is_one_line(caplog):
    net = Net(make_core())
    with caplog.at_level("INFO", logger="softswitch.core"):
        for user in ("100", "101", "102", "103", "admin"):
            p = Phone(net, user, "guess", Peer("udp", "198.51.100.9", 5070))
            p.send(p.msg("REGISTER", f"sip:{DOMAIN}"))
        net.advance(45)
    lines = [r.getMessage() for r in caplog.records if "never answered" in r.getMessage()]
    assert lines == ["REGISTER from 198.51.100.9: challenges for 5 users (100, 101, 102...) never answered "
                     "within 32 s"], lines
