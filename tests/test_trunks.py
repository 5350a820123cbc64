"""Trunks, sans-IO: config checks, E.164 normalisation, permission classes, dial rules, inbound identification."""
from __future__ import annotations

import pytest

from softswitch.config import ConfigError, parse_config
from softswitch.sip.message import parse_message
from softswitch.trunks.identify import inbound
from softswitch.trunks.numbers import allowed
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
])
def test_config_errors_name_the_key(trunks, rules, key):
    with pytest.raises(ConfigError) as e:
        config(trunks=trunks, dial_rules=rules)
    assert key in str(e.value), str(e.value)


def test_public_view_hides_the_password():
    c = config(trunks=[{"name": "a", "host": "10.0.0.1", "username": "u", "password": "s3cret-pw"}])
    assert "s3cret-pw" not in repr(c.trunks[0].public())
