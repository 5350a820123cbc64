"""Trunks, sans-IO: config checks, E.164 normalisation, permission classes, dial rules, inbound identification."""
from __future__ import annotations

import pytest

from softswitch.config import ConfigError, parse_config
from softswitch.sip.message import Response, make_response, parse_message
from softswitch.trunks.config import Trunk
from softswitch.trunks.identify import inbound
from softswitch.trunks.keepalive import Health, KeepAlive
from softswitch.trunks.numbers import allowed
from softswitch.trunks.registration import RegState, Registration
from softswitch.trunks.table import TrunkTable

BASE = {"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "cc.local"}, "store": {"path": "x.db", "country_code": "86"}}


def config(**extra):
    return parse_config({**BASE, **extra})


TRUNKS = [{"name": "carrier", "host": "203.0.113.5", "match": ["203.0.113.0/28", "127.0.0.1:5080"],
           "dids": {"4008001234": "4000", "+861055512345": "1001"}},
          {"name": "backup", "host": "198.51.100.9", "dids": {"*": "4000"}, "trusted": False}]
RULES = [{"prefix": "0", "trunks": ["carrier", "backup"]},
         {"prefix": "00", "trunks": ["backup"], "send": "e164-no-plus"},
         {"prefix": "1", "trunks": ["carrier"], "min_length": 11, "max_length": 11, "add": "0"}]


@pytest.fixture
def table():
    return TrunkTable.from_config(config(trunks=TRUNKS, dial_rules=RULES))


@pytest.mark.parametrize("raw, e164", [
    ("013800138000", "+8613800138000"), ("13800138000", "+8613800138000"), ("8613800138000", "+8613800138000"),
    ("+86 138-0013-8000", "+8613800138000"), ("tel:+8613800138000", "+8613800138000"),
    ("sip:013800138000@carrier", "+8613800138000"), ("0044 20 7946 0000", "+442079460000"),
    ("anonymous", "anonymous"), ("", "anonymous"), ("1001", "1001"),
])
def test_normalise(table, raw, e164):
    assert table.numbers.normalise(raw) == e164


@pytest.mark.parametrize("dialled, cls", [
    ("110", "emergency"), ("112", "emergency"), ("12345678", "local"), ("013800138000", "national"),
    ("13800138000", "national"), ("+8613800138000", "national"), ("0044207946000", "international"),
    ("+44207946000", "international"), ("008613800138000", "national"),
])
def test_classify(table, dialled, cls):
    assert table.numbers.classify(dialled) == cls


def test_classify_without_country_code_still_knows_international():
    t = TrunkTable.from_config(parse_config({**BASE, "store": {"path": "x.db"}}))
    assert t.numbers.classify("0044207946000") == "international"
    assert t.numbers.classify("+8613800138000") == "international"
    assert t.numbers.classify("030123456") == "national"


def test_permission_classes():
    assert allowed("international", "national") and allowed("national", "local")
    assert not allowed("national", "international") and not allowed("local", "national")
    assert allowed("internal", "emergency") and not allowed("internal", "local")


def test_dial_rules_longest_prefix_formatting_and_classes(table):
    r = table.dialplan.resolve("0044207946000")
    assert r is not None and r.rule.prefix == "00" and r.send == "44207946000" and r.needs == "international"
    r = table.dialplan.resolve("013800138000")
    assert r is not None and r.rule.trunks == ["carrier", "backup"] and r.send == "013800138000"
    assert r.external == "+8613800138000" and r.needs == "national"
    r = table.dialplan.resolve("13800138000")
    assert r is not None and r.send == "013800138000"
    assert table.dialplan.resolve("1380013800") is None    # 10 digits: no rule
    assert table.dialplan.resolve("4000") is None


def test_a_rule_cannot_make_an_international_number_national():
    t = TrunkTable.from_config(config(trunks=TRUNKS, dial_rules=[{"prefix": "0", "trunks": ["carrier"],
                                                                  "permission": "local"}]))
    r = t.dialplan.resolve("0046701234567")
    assert r is not None and r.needs == "international"
    r = t.dialplan.resolve("013800138000")
    assert r is not None and r.needs == "national"


def test_identify_by_address_port_and_cidr(table):
    ident = table.identifier
    assert ident.trunk_for("203.0.113.7", 5060).name == "carrier"
    assert ident.trunk_for("127.0.0.1", 5080).name == "carrier"
    assert ident.trunk_for("127.0.0.1", 5081) is None
    assert ident.trunk_for("198.51.100.9", 5060).name == "backup"   # the host itself when match is empty
    assert ident.trunk_for("192.0.2.1", 5060) is None
    assert "203.0.113.0/28" in ident.addresses()


def _invite(ruri: str, from_user: str, extra: str = "") -> object:
    return parse_message((f"INVITE sip:{ruri}@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 203.0.113.5;branch=z9hG4bK1\r\n"
                          f"From: \"Someone\" <sip:{from_user}@carrier>;tag=1\r\nTo: <sip:{ruri}@10.0.0.1>\r\n"
                          f"Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
                          ).encode())


def test_inbound_caller_from_pai_on_trusted_trunks_only(table):
    carrier, backup = table.trunks["carrier"], table.trunks["backup"]
    req = _invite("4008001234", "0000", "P-Asserted-Identity: <tel:+86-138-0013-8000>\r\n")
    inb = inbound(carrier, req, table.numbers)  # type: ignore[arg-type]
    assert (inb.did, inb.target, inb.caller) == ("4008001234", "4000", "+8613800138000")
    inb = inbound(backup, req, table.numbers)  # type: ignore[arg-type]
    assert inb.caller == "0000" and inb.target == "4000"  # untrusted: From; any DID ("*")


def test_inbound_anonymous_and_did_in_other_forms(table):
    carrier = table.trunks["carrier"]
    inb = inbound(carrier, _invite("01055512345", "013800138000", "Privacy: id\r\n"), table.numbers)  # type: ignore[arg-type]
    assert inb.caller == "anonymous" and inb.target == "1001"  # the DID matched in E.164
    inb = inbound(carrier, _invite("4008001234", "anonymous"), table.numbers)  # type: ignore[arg-type]
    assert inb.caller == "anonymous"
    inb = inbound(carrier, _invite("4009999999", "013800138000"), table.numbers)  # type: ignore[arg-type]
    assert inb.target == ""  # not a DID of this trunk


@pytest.mark.parametrize("trunks, rules, key", [
    ([{"name": "a", "host": "10.0.0.1"}, {"name": "a", "host": "10.0.0.2"}], [], "trunks[1].name"),
    ([{"name": "a", "host": "10.0.0.1", "match": ["10.0.0.300"]}], [], "trunks[0].match[0]"),
    ([{"name": "a", "host": "sip.example.com", "dids": {"1": "2"}}], [], "trunks[0].match"),
    ([{"name": "a", "host": "10.0.0.1", "register": True}], [], "trunks[0].register"),
    ([{"name": "a", "host": "10.0.0.1", "dids": {"x1": "4000"}}], [], "trunks[0].dids.x1"),
    ([{"name": "a", "host": "10.0.0.1"}], [{"prefix": "0", "trunks": ["b"]}], "dial_rules[0].trunks[0]"),
    ([{"name": "a", "host": "10.0.0.1"}], [{"prefix": "", "trunks": ["a"]}], "dial_rules[0].prefix"),
    ([{"name": "a", "host": "10.0.0.1", "weight": 0}], [], "trunks[0].weight"),
    ([{"name": "a", "host": "10.0.0.1", "weight": "3"}], [], "trunks[0].weight"),
    ([{"name": "a", "host": "10.0.0.1", "codecs": ["G729"]}], [], "trunks[0].codecs[0]"),
])
def test_config_errors_name_the_key(trunks, rules, key):
    with pytest.raises(ConfigError) as e:
        config(trunks=trunks, dial_rules=rules)
    assert key in str(e.value), str(e.value)


def test_public_view_hides_the_password():
    c = config(trunks=[{"name": "a", "host": "10.0.0.1", "username": "u", "password": "s3cret-pw"}])
    assert "s3cret-pw" not in repr(c.trunks[0].public())


# ----------------------------------------------------------------------- registration and keep-alive

REG_TRUNK = Trunk(name="p", host="10.0.0.9", username="cc", password="pw-cc", register=True, register_expires=120,
                  retry_min=2, retry_max=10, options_interval=10, options_failures=2)


def _reg() -> Registration:
    return Registration(REG_TRUNK, "<sip:cc@10.0.0.1:5060>", lambda b: f"SIP/2.0/UDP 10.0.0.1:5060;branch={b}",
                        "10.0.0.1")


def _reply(req, status: int, extra=None) -> Response:
    return make_response(req, status, to_tag="t1", extra=extra or [])


def test_registration_answers_the_challenge_and_refreshes_before_expiry():
    r = _reg()
    [req] = r.start(0.0)
    assert r.state is RegState.REGISTERING and req.method == "REGISTER" and "Authorization" not in req.headers
    [req2] = r.on_response(_reply(req, 401, [("WWW-Authenticate", 'Digest realm="prov", nonce="abc", qop="auth"')]),
                           0.1)
    auth = req2.headers.get("Authorization") or ""
    assert 'username="cc"' in auth and 'realm="prov"' in auth and "pw-cc" not in auth
    assert req2.cseq.number == req.cseq.number + 1 and req2.call_id == req.call_id
    assert r.on_response(_reply(req2, 200, [("Contact", "<sip:cc@10.0.0.1:5060>;expires=100")]), 0.2) == []
    assert r.state is RegState.REGISTERED and r.next_deadline() == pytest.approx(0.2 + 80)
    assert r.on_timer(50.0) == []
    [refresh] = r.on_timer(80.2)
    assert refresh.method == "REGISTER" and r.state is RegState.REGISTERING


def test_registration_backs_off_on_failures_and_wrong_credentials():
    r = _reg()
    [req] = r.start(0.0)
    assert r.on_timeout(32.0) == [] and r.state is RegState.FAILED and r.next_deadline() == 34.0
    [req] = r.on_timer(34.0)
    r.on_response(_reply(req, 503), 34.1)
    assert r.next_deadline() == pytest.approx(34.1 + 4)        # 2, 4, 8, then capped at 10
    [req] = r.on_timer(38.1)
    [req] = r.on_response(_reply(req, 401, [("WWW-Authenticate", 'Digest realm="prov", nonce="n1"')]), 38.2)
    r.on_response(_reply(req, 401, [("WWW-Authenticate", 'Digest realm="prov", nonce="n2"')]), 38.3)
    assert r.state is RegState.FAILED and "credentials refused" in r.last_error
    assert r.next_deadline() == pytest.approx(38.3 + 8)
    [req] = r.on_timer(46.3)
    r.on_response(_reply(req, 500), 46.4)
    assert r.next_deadline() == pytest.approx(46.4 + 10)
    [req] = r.on_timer(56.4)
    [req] = r.on_response(_reply(req, 423, [("Min-Expires", "600")]), 56.5)
    assert req.headers.get("Expires") == "600"
    r.on_response(_reply(req, 200, [("Contact", "<sip:cc@10.0.0.1:5060>;expires=600")]), 56.6)
    assert r.state is RegState.REGISTERED and r.failures == 0
    assert r.status(60.0).expires_in == pytest.approx(596.6)


def test_keepalive_goes_down_after_missed_pings_and_up_on_an_answer():
    ka = KeepAlive(REG_TRUNK)
    assert ka.due(0.0) and not ka.due(1.0)
    assert ka.answered(0.1) is False and ka.health is Health.UP
    assert ka.due(10.0)
    assert not ka.due(15.0) and ka.health is Health.UP and ka.missed == 1   # 5 s without an answer: missed
    assert ka.due(20.0)
    ka.due(25.0)
    assert ka.health is Health.DOWN
    assert ka.due(30.0)
    assert ka.answered(30.2) is True and ka.health is Health.UP     # back up: the runtime re-registers


def test_the_store_and_the_trunks_write_a_number_alike():
    """The store's plan (records.centre_for) is the trunks' (NumberFormat.plan): a mobile typed into the CRM
    without prefix, the carrier's national form and its international form without '+' are one number."""
    from softswitch.records import centre_for
    from store.numbers import NumberPlan
    centre = centre_for(type("FakeStore", (), {"writer": None})(), config(numbering={"country_code": "86"}))
    t = TrunkTable.from_config(config(numbering={"country_code": "86"}))
    for raw in ("138 0013 8000", "013800138000", "8613800138000", "+8613800138000"):
        assert centre.plan.normalise(raw) == t.numbers.normalise(raw) == "+8613800138000", raw
    assert centre.plan.normalise("1001") == "1001" and centre.plan.normalise("12345678") == "12345678"
    assert NumberPlan(country_code="86").normalise("13800138000") == "13800138000"   # off by default


def test_numbers_stored_in_e164_match_the_dial_rules_as_dialled_here(table):
    """The CRM, callbacks and campaigns keep E.164; dial rules are written as people dial ("0", "00")."""
    r = table.dialplan.resolve("+8613800138000")
    assert r is not None and r.rule.prefix == "0" and r.send == "013800138000" and r.needs == "national"
    r = table.dialplan.resolve("+44207946000")
    assert r is not None and r.rule.prefix == "00" and r.send == "44207946000" and r.needs == "international"


def test_vip_levels_find_a_trunk_caller_in_e164():
    """VipTable (queue priority from the customer's vip_level) with the store's plan: the customer saved as
    "138 0013 8000" is the carrier's caller "+8613800138000"."""
    from softswitch.vip import VipTable
    plan = TrunkTable.from_config(config(numbering={"country_code": "86"})).numbers.plan
    vip = VipTable(normalise=plan.normalise)
    vip.set({plan.normalise("138 0013 8000"): 3}, {})
    assert vip.priority("+8613800138000", {}) == 3 and vip.priority("anonymous", {}) == 0


def test_registration_unregisters_at_shutdown():
    r = _reg()
    assert r.unregister(0.0) == []                                      # not registered: nothing to undo
    [req] = r.start(0.0)
    r.on_response(_reply(req, 200, [("Contact", "<sip:cc@10.0.0.1:5060>;expires=120")]), 0.1)
    [bye] = r.unregister(5.0)
    assert bye.headers.get("Expires") == "0" and bye.cseq.number == req.cseq.number + 1
    assert r.on_response(_reply(bye, 200), 5.1) == [] and r.state is RegState.IDLE and r.next_deadline() is None
