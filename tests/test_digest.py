"""Digest authentication: RFC vectors, server verification outcomes, nonces and header parsing."""
from __future__ import annotations

import base64

import pytest

from softswitch.sip.digest import (
    ALGORITHMS,
    AuthResult,
    Credentials,
    DigestAuthenticator,
    NonceManager,
    authorization_header,
    compute_ha1,
    compute_response,
    parse_auth_params,
)

REALM = "callcenter.local"
USERS = {"1001": "s3cret", "1002": "other"}
IP = "192.0.2.10"
URI = "sip:callcenter.local"


def make_auth(**kw) -> DigestAuthenticator:
    nonces = kw.pop("nonces", None) or NonceManager(b"k" * 32, lifetime=300.0)
    return DigestAuthenticator(REALM, USERS.get, nonces, **kw)


def challenge_for(auth: DigestAuthenticator, alg: str, now: float = 1000.0, ip: str = IP) -> str:
    for h in auth.challenge_headers(now, ip):
        if f"algorithm={alg}" in h:
            return h
    raise AssertionError(alg)


# ---------------------------------------------------------------------------- RFC vectors


def test_rfc2617_md5_vector():
    ha1 = compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life", "MD5")
    resp = compute_response(
        ha1, "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "MD5",
        qop="auth", nc="00000001", cnonce="0a4f113b",
    )
    assert resp == "6629fae49393a05397450978507c4ef1"


def test_rfc7616_sha256_vector():
    ha1 = compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", "SHA-256")
    resp = compute_response(
        ha1, "GET", "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "SHA-256",
        qop="auth", nc="00000001", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert resp == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"


def test_rfc7616_md5_vector_and_client_helper():
    challenge = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    value = authorization_header(
        challenge, "GET", "/dir/index.html", "Mufasa", "Circle of Life",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    creds = Credentials.from_header(value)
    assert creds.response == "8ca523f5e9506fed4657c9700eebdbec"
    assert (creds.qop, creds.nc, creds.algorithm) == ("auth", "00000001", "MD5")
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_rfc2069_style_without_qop():
    ha1 = compute_ha1("u", "r", "p", "MD5")
    assert compute_response(ha1, "REGISTER", "sip:r", "n", "MD5") == compute_response(
        ha1, "REGISTER", "sip:r", "n", "md5"
    )


@pytest.mark.parametrize("alg", ["MD5-sess", "SHA-256-sess", "SHA-512-256", ""])
def test_unsupported_algorithms_rejected(alg):
    with pytest.raises(ValueError):
        compute_ha1("u", "r", "p", alg)


def test_auth_int_not_supported():
    with pytest.raises(ValueError):
        compute_response("x", "INVITE", "sip:a", "n", "MD5", qop="auth-int", nc="00000001", cnonce="c")


# ---------------------------------------------------------------------------- parsing


def test_parse_escaped_quotes_and_lws():
    scheme, p = parse_auth_params(
        'Digest  username = "a\\"b\\\\c" ,realm="x, y"\t,\r\n nonce=abc ,, NC=00000001'
    )
    assert scheme == "Digest"
    assert p == {"username": 'a"b\\c', "realm": "x, y", "nonce": "abc", "nc": "00000001"}


def test_parse_scheme_only_and_unquoted_uri():
    assert parse_auth_params("Digest") == ("Digest", {})
    assert parse_auth_params("digest uri=sip:1001@h")[1] == {"uri": "sip:1001@h"}


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        'Digest realm="unterminated',
        'Digest realm="ends in backslash\\',
        "Digest realm",
        "Digest realm=",
        "Digest =x",
        'Digest a="1" b="2"',
        'Digest a="1", a="2"',
    ],
)
def test_parse_malformed(bad):
    with pytest.raises(ValueError):
        parse_auth_params(bad)


def test_credentials_from_header():
    with pytest.raises(ValueError):
        Credentials.from_header('Basic realm="x"')
    with pytest.raises(ValueError):
        Credentials.from_header('Digest username="a", realm="r", nonce="n", uri="u"')  # no response
    c = Credentials.from_header('DIGEST username="a", realm="r", nonce="n", uri="u", response="f"')
    assert (c.username, c.algorithm, c.qop, c.nc, c.cnonce, c.opaque) == ("a", "MD5", None, None, None, None)


# ---------------------------------------------------------------------------- challenges


def test_challenge_headers():
    auth = make_auth()
    hs = auth.challenge_headers(1000.0, IP)
    assert len(hs) == 2 and ALGORITHMS == ("SHA-256", "MD5")
    params = [parse_auth_params(h) for h in hs]
    assert [p["algorithm"] for _, p in params] == ["SHA-256", "MD5"]
    for scheme, p in params:
        assert scheme == "Digest"
        assert p["realm"] == REALM and p["qop"] == "auth" and p["opaque"] and p["nonce"]
        assert "stale" not in p
    assert hs[0].startswith('Digest realm="callcenter.local", nonce="')
    stale = auth.challenge_headers(1000.0, IP, stale=True)
    assert all(h.endswith(", stale=true") for h in stale)
    assert [parse_auth_params(h)[1]["stale"] for h in stale] == ["true", "true"]


def test_challenge_single_algorithm():
    auth = make_auth(algorithms=("MD5",))
    assert len(auth.challenge_headers(0.0, IP)) == 1


# ---------------------------------------------------------------------------- verification


@pytest.mark.parametrize("alg", ["SHA-256", "MD5"])
def test_round_trip(alg):
    auth = make_auth()
    value = authorization_header(challenge_for(auth, alg), "REGISTER", URI, "1001", "s3cret")
    assert f"algorithm={alg}" in value and "qop=auth" in value and "nc=00000001" in value
    assert auth.verify("REGISTER", value, 1001.0, IP) == AuthResult("ok", "1001")
    assert auth.verify("REGISTER", value, 1001.0, IP, expected_user="1001").outcome == "replayed"  # never ok
    value2 = authorization_header(challenge_for(auth, alg), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value2, 1001.0, IP, expected_user="1002").outcome == "failed"


def test_wrong_method_fails():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("INVITE", value, 1001.0, IP).outcome == "failed"


def test_uri_used_as_given():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "SHA-256"), "INVITE", "sip:2000@10.0.0.1;transport=udp",
                                 "1001", "s3cret")
    assert auth.verify("INVITE", value, 1001.0, IP).outcome == "ok"


def test_wrong_password_and_unknown_user_identical():
    auth = make_auth()
    wrong = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "1001", "nope")
    unknown = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "9999", "s3cret")
    r1 = auth.verify("REGISTER", wrong, 1001.0, IP)
    r2 = auth.verify("REGISTER", unknown, 1001.0, IP)
    assert r1.outcome == r2.outcome == "failed"


def test_stale_nonce_with_correct_response():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "SHA-256", now=1000.0), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1000.0 + 301.0, IP) == AuthResult("stale", "1001")
    # A stale nonce with a wrong password: re-challenged, not counted (only live nonces count).
    bad = authorization_header(challenge_for(auth, "SHA-256", now=1000.0), "REGISTER", URI, "1001", "x")
    assert auth.verify("REGISTER", bad, 1000.0 + 301.0, IP).outcome == "forged"


def test_forged_and_tampered_nonce():
    auth = make_auth()
    ch = challenge_for(auth, "MD5")
    nonce = parse_auth_params(ch)[1]["nonce"]
    raw = bytearray(base64.urlsafe_b64decode(nonce))
    raw[0] ^= 0x01  # shift the timestamp
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()
    for fake in (tampered, "A" * 44, "not-a-nonce", nonce + "x"):
        # Never accepted; with the right password a fresh challenge (stale), with a wrong one a plain
        # re-challenge that is not counted (a forger must not get anyone banned).
        value = authorization_header(ch.replace(nonce, fake), "REGISTER", URI, "1001", "s3cret")
        assert auth.verify("REGISTER", value, 1001.0, IP) == AuthResult("stale", "1001"), fake
        wrong = authorization_header(ch.replace(nonce, fake), "REGISTER", URI, "1001", "guess")
        assert auth.verify("REGISTER", wrong, 1001.0, IP).outcome == "forged", fake
    # Same secret elsewhere validates; a different secret (an earlier run's key) asks for a new nonce.
    value = authorization_header(ch, "REGISTER", URI, "1001", "s3cret")
    other = make_auth(nonces=NonceManager(b"z" * 32))
    assert other.verify("REGISTER", value, 1001.0, IP).outcome == "stale"
    assert make_auth(nonces=NonceManager(b"z" * 32)).verify("REGISTER", value, 1001.0, IP,
                                                             expected_user="1002").outcome == "forged"
    same = make_auth(nonces=NonceManager(auth.nonces._secret))
    assert same.verify("REGISTER", value, 1001.0, IP).outcome == "ok"


def test_nonce_bound_to_client_ip():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "MD5", ip=IP), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1001.0, "198.51.100.7").outcome == "stale"  # a new nonce, no 403
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "ok"
    wrong = authorization_header(challenge_for(auth, "MD5", ip=IP), "REGISTER", URI, "1001", "guess")
    assert auth.verify("REGISTER", wrong, 1001.0, "198.51.100.7").outcome == "forged"  # another's nonce: not counted
    assert auth.verify("REGISTER", wrong, 1001.0, IP).outcome == "failed"  # its own: counted


def test_per_user_algorithms():
    auth = make_auth(algorithms=("MD5",))
    sha = auth.challenge_headers(1000.0, IP, algorithms=("SHA-256", "MD5"))
    assert ["algorithm=SHA-256" in sha[0], "algorithm=MD5" in sha[1]] == [True, True]
    value = authorization_header(sha[0], "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "failed"  # not offered to everyone
    assert auth.verify("REGISTER", value, 1001.0, IP, algorithms=("SHA-256", "MD5")).outcome == "ok"


def test_nc_replay_and_increase():
    auth = make_auth()
    ch = challenge_for(auth, "SHA-256")
    v1 = authorization_header(ch, "REGISTER", URI, "1001", "s3cret", nc=1)
    v3 = authorization_header(ch, "REGISTER", URI, "1001", "s3cret", nc=3)
    v2 = authorization_header(ch, "REGISTER", URI, "1001", "s3cret", nc=2)
    assert auth.verify("REGISTER", v1, 1001.0, IP).outcome == "ok"
    assert auth.verify("REGISTER", v1, 1002.0, IP).outcome == "replayed"
    assert auth.verify("REGISTER", v3, 1003.0, IP).outcome == "ok"
    assert auth.verify("REGISTER", v2, 1004.0, IP).outcome == "replayed"


def test_wrong_response_does_not_advance_nc():
    auth = make_auth()
    ch = challenge_for(auth, "MD5")
    attacker = authorization_header(ch, "REGISTER", URI, "1001", "guess", nc=0xFFFFFFFF)
    assert auth.verify("REGISTER", attacker, 1001.0, IP).outcome == "failed"
    honest = authorization_header(ch, "REGISTER", URI, "1001", "s3cret", nc=1)
    assert auth.verify("REGISTER", honest, 1001.0, IP).outcome == "ok"


def test_qop_auth_requires_nc_and_cnonce():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "1001", "s3cret")
    no_nc = value.replace(", nc=00000001", "")
    no_cnonce = value.replace(', cnonce="0a4f113b"', "")
    assert auth.verify("REGISTER", no_nc, 1001.0, IP).outcome == "failed"
    assert auth.verify("REGISTER", no_cnonce, 1001.0, IP).outcome == "failed"


def test_rfc2069_style_accepted():
    auth = make_auth()
    ch = challenge_for(auth, "MD5").replace(', qop="auth"', "")
    value = authorization_header(ch, "REGISTER", URI, "1001", "s3cret")
    assert "qop" not in value and "cnonce" not in value
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "ok"


def test_algorithm_not_offered_fails():
    auth = make_auth(algorithms=("SHA-256",))
    md5_ch = make_auth().challenge_headers(1000.0, IP)[1]
    value = authorization_header(md5_ch, "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "failed"
    sess = value.replace("algorithm=MD5", "algorithm=MD5-sess")
    assert make_auth().verify("REGISTER", sess, 1001.0, IP).outcome == "failed"


def test_absent_cases():
    auth = make_auth()
    assert auth.verify("REGISTER", "NoOneKnowsThisScheme opaque-data=here", 1.0, IP) == AuthResult("absent")
    assert auth.verify("REGISTER", "Basic dXNlcjpwYXNz", 1.0, IP).outcome == "absent"
    assert auth.verify("REGISTER", "", 1.0, IP).outcome == "absent"
    other_realm = authorization_header(challenge_for(auth, "MD5").replace(REALM, "elsewhere"),
                                       "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", other_realm, 1001.0, IP).outcome == "absent"


def test_garbage_digest_is_rechallenged_not_counted():
    # Unreadable credentials carry no nonce of ours: anyone could send them from a spoofed address.
    auth = make_auth()
    assert auth.verify("REGISTER", 'Digest username="1001", realm="unterminated', 1.0, IP).outcome == "forged"
    assert auth.verify("REGISTER", f'Digest username="1001", realm="{REALM}"', 1.0, IP).outcome == "forged"
    assert auth.verify("REGISTER", 'Digest username="1001"', 1.0, IP).outcome == "forged"
    value = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value.replace('response="', 'response="\u00e9'), 1001.0, IP).outcome == "failed"


# ---------------------------------------------------------------------------- NonceManager


def test_nonce_manager_check():
    nm = NonceManager(b"secret", lifetime=10.0)
    n = nm.make(100.0, IP)
    assert nm.check(n, 100.0, IP) == "ok"
    assert nm.check(n, 110.0, IP) == "ok"
    assert nm.check(n, 110.5, IP) == "stale"
    assert nm.check(n, 105.0, "10.0.0.1") == "invalid"
    assert nm.check("", 100.0, IP) == "invalid"
    assert nm.check("=" * 44, 100.0, IP) == "invalid"
    assert nm.make(100.0, IP) != n  # random part


def test_check_nc_garbage_and_bound():
    nm = NonceManager(b"secret", max_tracked=2)
    n1, n2, n3 = (nm.make(float(t), IP) for t in (1, 2, 3))
    for bad in ("1", "0000000g", "000000001", "00000000", " 0000001"):
        assert nm.check_nc(n1, bad) is False, bad
    assert nm.check_nc(n1, "00000001")
    assert nm.check_nc(n1, "0000000A")
    assert not nm.check_nc(n1, "0000000a")
    assert nm.check_nc(n2, "00000001")
    assert nm.check_nc(n3, "00000001")  # evicts n1
    assert len(nm._nc) == 2
    # n1 was evicted: it cannot be replayed from nc=1 again, and it is reported as forgotten.
    assert nm.forgotten(n1) and not nm.forgotten(n3)
    assert nm.check_nc(n1, "00000001") is False


def test_evicted_nonce_gives_stale_not_ok():
    auth = make_auth(nonces=NonceManager(b"k" * 32, max_tracked=1))
    ch1 = challenge_for(auth, "MD5", now=1000.0)
    ch2 = challenge_for(auth, "MD5", now=1001.0)
    v1 = authorization_header(ch1, "REGISTER", URI, "1001", "s3cret")
    v2 = authorization_header(ch2, "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", v1, 1002.0, IP).outcome == "ok"
    assert auth.verify("REGISTER", v2, 1002.0, IP).outcome == "ok"  # evicts the first nonce
    assert auth.verify("REGISTER", v1, 1003.0, IP).outcome == "stale"  # replay: re-challenged, never ok


# ---------------------------------------------------------------------------- replay and binding (issue 11)


def test_qop_less_answer_is_single_use():
    auth = make_auth()
    ch = challenge_for(auth, "MD5").replace(', qop="auth"', "")
    value = authorization_header(ch, "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "ok"
    assert auth.verify("REGISTER", value, 1002.0, IP).outcome == "replayed"
    # nor can the spent nonce be reused with qop
    ch2 = challenge_for(auth, "MD5")
    ch2 = ch2.replace(parse_auth_params(ch2)[1]["nonce"], parse_auth_params(ch)[1]["nonce"])
    qv = authorization_header(ch2, "REGISTER", URI, "1001", "s3cret")
    assert "qop=auth" in qv
    assert auth.verify("REGISTER", qv, 1003.0, IP).outcome == "replayed"


def test_qop_less_answer_to_a_qop_challenge_cannot_be_replayed():
    auth = make_auth()
    ch = challenge_for(auth, "MD5")  # offers qop="auth"
    nonce = parse_auth_params(ch)[1]["nonce"]
    from softswitch.sip.digest import compute_ha1, compute_response
    resp = compute_response(compute_ha1("1001", REALM, "s3cret", "MD5"), "REGISTER", URI, nonce, "MD5")
    value = f'Digest username="1001", realm="{REALM}", nonce="{nonce}", uri="{URI}", response="{resp}", algorithm=MD5'
    assert auth.verify("REGISTER", value, 1001.0, IP, request_uri=URI).outcome == "ok"
    assert auth.verify("REGISTER", value, 1001.5, IP, request_uri=URI).outcome == "replayed"


def test_uri_must_name_the_request_uri():
    auth = make_auth()
    value = authorization_header(challenge_for(auth, "MD5"), "INVITE", "sip:2000@example.com", "1001", "s3cret")
    assert auth.verify("INVITE", value, 1001.0, IP, request_uri="sip:*11*2001@example.com").outcome == "refused"
    value = authorization_header(challenge_for(auth, "MD5"), "INVITE", "sip:2000@example.com", "1001", "s3cret")
    assert auth.verify("INVITE", value, 1001.0, IP, request_uri="sip:2000@EXAMPLE.com:5060;transport=udp").outcome == "ok"


def test_same_request_uri():
    from softswitch.sip.digest import same_request_uri
    assert same_request_uri("sip:example.com", "sip:example.com")
    assert same_request_uri("sip:example.com", "sip:example.com:5060;transport=tcp")
    assert same_request_uri("sips:a@[::1]:5061", "sips:a@[::1]")
    assert not same_request_uri("sip:a@example.com", "sip:b@example.com")
    assert not same_request_uri("sip:example.com", "sip:example.com:5080")
    assert not same_request_uri("garbage", "sip:example.com")


def test_ha1_lookup_instead_of_password():
    from softswitch.sip.digest import compute_ha1
    stored = {("1001", "MD5"): compute_ha1("1001", REALM, "s3cret", "MD5")}
    auth = DigestAuthenticator(REALM, lambda u: None, NonceManager(b"k" * 32),
                               ha1_for=lambda u, a: stored.get((u, a)))
    value = authorization_header(challenge_for(auth, "MD5"), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", value, 1001.0, IP).outcome == "ok"
    sha = authorization_header(challenge_for(auth, "SHA-256"), "REGISTER", URI, "1001", "s3cret")
    assert auth.verify("REGISTER", sha, 1001.0, IP).outcome == "failed"  # no SHA-256 HA1 stored
