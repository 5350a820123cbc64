"""RFC 3263 locating of trunks: SRV selection (RFC 2782) with injected randomness, NAPTR order, and the
dnspython edge against a real DNS server answering on 127.0.0.1 (tests/dns_server.py)."""
from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from softswitch.sip.transaction import Peer
from softswitch.trunks.locate import (Cache, Limits, Located, Naptr, Query, ResolveTrunk, Srv, SrvTarget, naptr_order,
                                     srv_names, srv_order)
from softswitch.trunks.resolver import Resolver
from tests.dns_server import DnsServer


def seq(*values: int):
    """rand(n) returning the given draws in turn (each must be within 0..n)."""
    it = iter(values)

    def rand(n: int) -> int:
        v = next(it)
        assert 0 <= v <= n, (v, n)
        return v
    return rand


# RFC 2782's example: old-slow-box gets a quarter of the load, new-fast-box three quarters; the priority-1
# boxes only when both fail
RFC2782 = [Srv(0, 1, 9, "old-slow-box.example.com"), Srv(0, 3, 9, "new-fast-box.example.com"),
           Srv(1, 0, 9, "sysadmins-box.example.com"), Srv(1, 0, 9, "server.example.com")]


def names(srvs: list[Srv]) -> list[str]:
    return [s.target.split(".")[0] for s in srvs]


def test_rfc2782_example_by_draw() -> None:
    # sum 4, no weight 0: a draw from 1..4 (rand(3) + 1) over the group in a fixed order (new-fast-box 3,
    # old-slow-box 1): 1..3 reach new-fast-box's running sum (3), 4 old-slow-box's; the one left needs no
    # draw; then priority 1 (all weights 0: no draw, the fixed order)
    assert names(srv_order(RFC2782, seq(3))) == ["old-slow-box", "new-fast-box", "server", "sysadmins-box"]
    assert names(srv_order(RFC2782, seq(0)))[:2] == ["new-fast-box", "old-slow-box"]
    assert names(srv_order(RFC2782, seq(2)))[:2] == ["new-fast-box", "old-slow-box"]


def test_rfc2782_example_shares_load_by_weight() -> None:
    rng = random.Random(7)
    first = Counter(srv_order(RFC2782, lambda n: rng.randint(0, n))[0].target.split(".")[0] for _ in range(4000))
    assert set(first) == {"old-slow-box", "new-fast-box"}          # priority 1 never first
    assert 0.70 < first["new-fast-box"] / 4000 < 0.80                 # 3:1


def test_weight_zero_only_when_drawn_zero_or_alone() -> None:
    recs = [Srv(10, 5, 5060, "b"), Srv(10, 0, 5060, "a")]
    assert names(srv_order(recs, seq(0))) == ["a", "b"]     # weight 0 is put first: a draw of 0 takes it
    assert names(srv_order(recs, seq(1))) == ["b", "a"]     # 0..5 with a weight-0 record in the group
    assert names(srv_order(recs, seq(5))) == ["b", "a"]
    rng = random.Random(1)
    first = Counter(srv_order(recs, lambda n: rng.randint(0, n))[0].target for _ in range(3000))
    assert first["a"] < 0.25 * 3000                              # about 1 in 6 (a draw of 0 of 0..5)
    # all weights 0: every order is as good; the pick is the first of the list
    assert names(srv_order([Srv(1, 0, 1, "y"), Srv(1, 0, 1, "x")], seq())) == ["x", "y"]


def test_single_target_and_priority_failover() -> None:
    assert names(srv_order([Srv(0, 0, 5060, "only")], seq())) == ["only"]     # no draw needed
    recs = [Srv(20, 100, 5072, "second"), Srv(10, 1, 5071, "first")]
    assert names(srv_order(recs, seq())) == ["first", "second"]   # priority beats weight, whatever the draw
    assert srv_order([Srv(0, 0, 0, ".")], seq()) == []                   # "service decidedly not available"


def test_naptr_order_and_transport() -> None:
    recs = [Naptr(50, 50, "s", "SIP+D2U", "_sip._udp.c.example"), Naptr(90, 50, "s", "SIP+D2T", "_sip._tcp.c.example"),
            Naptr(50, 10, "S", "SIPS+D2T", "_sips._tcp.c.example"), Naptr(10, 10, "u", "E2U+sip", ""),
            Naptr(5, 5, "s", "SIP+D2S", "_sip._sctp.c.example")]
    assert naptr_order(recs, None) == [("tls", "_sips._tcp.c.example"), ("udp", "_sip._udp.c.example"),
                                       ("tcp", "_sip._tcp.c.example")]
    assert naptr_order(recs, "tcp") == [("tcp", "_sip._tcp.c.example")]
    # no transport written: the carrier's choice among the transports we listen on
    assert naptr_order(recs, None, ("tcp", "udp")) == [("udp", "_sip._udp.c.example"), ("tcp", "_sip._tcp.c.example")]
    assert srv_names("c.example", None, ("udp",)) == [("udp", "_sip._udp.c.example")]
    assert srv_names("c.example", None) == [("udp", "_sip._udp.c.example"), ("tcp", "_sip._tcp.c.example"),
                                            ("tls", "_sips._tcp.c.example")]
    assert srv_names("c.example", "tls") == [("tls", "_sips._tcp.c.example")]


def test_cache_clamps_ttls_and_remembers_failures() -> None:
    c: Cache[list[str]] = Cache(Limits(min_ttl=10, max_ttl=100, negative_ttl=5))
    c.put("a.example", "A", ["192.0.2.1"], 0, now=0)
    assert c.get("A.example.", "A", 9.9) is not None and c.get("a.example", "A", 10) is None   # TTL 0 -> 10
    c.put("a.example", "A", ["192.0.2.1"], 86400, now=0)
    assert c.get("a.example", "A", 99) is not None and c.get("a.example", "A", 100) is None
    neg = c.put_negative("gone.example", "SRV", "no such domain", now=0)
    assert neg.value is None and c.get("gone.example", "SRV", 4) is not None and c.get("gone.example", "SRV", 5) is None


# ------------------------------------------------------------------ against a real DNS server


@pytest.fixture
def dns_server():
    with DnsServer(ttl=60) as srv:
        yield srv


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def resolver(srv: DnsServer, clock: Clock, draws: list[int] | None = None, **limits: float) -> Resolver:
    rand = (lambda n: 0) if draws is None else seq(*draws)
    return Resolver([srv.address], Limits(**limits) if limits else Limits(), timeout=2.0, clock=clock, rand=rand)


def test_naptr_srv_a_against_a_real_server(dns_server: DnsServer) -> None:
    s = dns_server
    s.add("carrier.example", "NAPTR", '10 50 "s" "SIP+D2T" "" _sip._tcp.carrier.example.',
          '20 50 "s" "SIP+D2U" "" _sip._udp.carrier.example.')
    s.add("_sip._tcp.carrier.example", "SRV", "10 1 5081 b.carrier.example.", "20 1 5082 c.carrier.example.")
    s.add("_sip._udp.carrier.example", "SRV", "10 1 5071 b.carrier.example.")
    s.add("b.carrier.example", "A", "127.0.0.2")
    s.add("b.carrier.example", "AAAA", "::2")
    s.add("c.carrier.example", "A", "127.0.0.3")
    clock = Clock()
    r = resolver(s, clock)
    loc = asyncio.run(r.locate(Query("carrier.example", None, None, "rfc3263")))
    assert loc.how == "naptr" and not loc.error
    assert loc.targets == (Peer("tcp", "127.0.0.2", 5081), Peer("tcp", "::2", 5081), Peer("tcp", "127.0.0.3", 5082))
    assert loc.expires == clock.t + 60
    # the trunk's own transport wins over the carrier's NAPTR preference
    loc = asyncio.run(r.locate(Query("carrier.example", "udp", None, "rfc3263")))
    assert loc.targets == (Peer("udp", "127.0.0.2", 5071), Peer("udp", "::2", 5071))


def test_srv_without_naptr_then_a_fallback(dns_server: DnsServer) -> None:
    s = dns_server
    s.add("srv.example", "SRV", "0 0 0 .")          # the zone exists (NAPTR: no data, not NXDOMAIN)
    s.add("_sip._udp.srv.example", "SRV", "20 0 5072 two.srv.example.", "10 0 5071 one.srv.example.")
    s.add("one.srv.example", "A", "127.0.0.1")
    s.add("two.srv.example", "A", "127.0.0.1")
    s.add("plain.example", "A", "127.0.0.9")
    r = resolver(s, Clock())
    loc = asyncio.run(r.locate(Query("srv.example", None, None, "rfc3263")))
    assert loc.how == "srv" and loc.targets == (Peer("udp", "127.0.0.1", 5071), Peer("udp", "127.0.0.1", 5072))
    loc = asyncio.run(r.locate(Query("plain.example", "tls", None, "rfc3263")))   # no SRV: A, the default port
    assert loc.how == "a" and loc.targets == (Peer("tls", "127.0.0.9", 5061),)


def test_explicit_port_is_a_records_only(dns_server: DnsServer) -> None:
    s = dns_server
    s.add("_sip._udp.carrier.example", "SRV", "10 1 5071 b.carrier.example.")
    s.add("carrier.example", "A", "127.0.0.7")
    r = resolver(s, Clock())
    loc = asyncio.run(r.locate(Query("carrier.example", "udp", 5099, "rfc3263")))
    assert loc.targets == (Peer("udp", "127.0.0.7", 5099),)
    loc = asyncio.run(r.locate(Query("carrier.example", "udp", None, "a")))
    assert loc.targets == (Peer("udp", "127.0.0.7", 5060),)
    assert s.queries[("carrier.example", "NAPTR")] == 0 and s.queries[("_sip._udp.carrier.example", "SRV")] == 0


def test_ttl_expiry_requeries_and_failures_are_cached(dns_server: DnsServer) -> None:
    s = dns_server
    s.add("_sip._udp.ttl.example", "SRV", "10 1 5071 a.ttl.example.", ttl=40)
    s.add("a.ttl.example", "A", "127.0.0.1", ttl=300)
    clock = Clock()
    r = resolver(s, clock, min_ttl=30, max_ttl=120, negative_ttl=20)
    q = Query("ttl.example", "udp", None, "rfc3263")
    loc = asyncio.run(r.locate(q))
    assert loc.targets == (Peer("udp", "127.0.0.1", 5071),)
    assert loc.expires == clock.t + 40    # the SRV's TTL (the A's 300 s is clamped to 120; no NAPTR)
    asyncio.run(r.locate(q))
    assert s.queries[("_sip._udp.ttl.example", "SRV")] == 1          # cached
    s.set("_sip._udp.ttl.example", "SRV", "10 1 5072 a.ttl.example.", ttl=40)
    clock.t += 39
    assert asyncio.run(r.locate(q)).targets == (Peer("udp", "127.0.0.1", 5071),)   # not expired yet
    clock.t += 2
    assert asyncio.run(r.locate(q)).targets == (Peer("udp", "127.0.0.1", 5072),)   # re-resolved
    assert s.queries[("_sip._udp.ttl.example", "SRV")] == 2
    assert s.queries[("a.ttl.example", "A")] == 1                   # its own TTL (clamped to 120) still holds
    # an unknown name: negative, remembered for negative_ttl
    loc = asyncio.run(r.locate(Query("nowhere.example", "udp", None, "rfc3263")))
    assert loc.targets == () and "nowhere.example" in loc.error
    n = s.queries[("_sip._udp.nowhere.example", "SRV")]
    asyncio.run(r.locate(Query("nowhere.example", "udp", None, "rfc3263")))
    assert s.queries[("_sip._udp.nowhere.example", "SRV")] == n
    clock.t += 21
    asyncio.run(r.locate(Query("nowhere.example", "udp", None, "rfc3263")))
    assert s.queries[("_sip._udp.nowhere.example", "SRV")] == n + 1


def test_weighted_pick_uses_injected_randomness(dns_server: DnsServer) -> None:
    s = dns_server
    s.add("_sip._udp.w.example", "SRV", "10 1 5071 a.w.example.", "10 3 5072 b.w.example.")
    s.add("a.w.example", "A", "127.0.0.1")
    s.add("b.w.example", "A", "127.0.0.1")
    # the group in a fixed order (a.w.example 1, b.w.example 3), a draw 1..4: 1 -> a, 2..4 -> b
    loc = asyncio.run(resolver(s, Clock(), draws=[1]).locate(Query("w.example", "udp", None, "rfc3263")))
    assert [p.port for p in loc.targets] == [5072, 5071]
    loc = asyncio.run(resolver(s, Clock(), draws=[0]).locate(Query("w.example", "udp", None, "rfc3263")))
    assert [p.port for p in loc.targets] == [5071, 5072]
    # each new request draws afresh from the same records (per-request load sharing, RFC 2782)
    assert [p.port for p in loc.ordered(seq(3))] == [5072, 5071]
    assert [p.port for p in loc.ordered(seq(0))] == [5071, 5072]


# ------------------------------------------------------------------ config and the sans-IO core


def _config(trunk: dict, dns: dict | None = None):
    from softswitch.config import parse_config
    return parse_config({"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "cc.example"},
                         "store": {"path": "var/test.db", "country_code": "86"},
                         "trunks": [{"name": "carrier", **trunk}], "dns": dns or {}})


def test_config_resolve_defaults_and_refusals() -> None:
    from softswitch.config import ConfigError
    t = _config({"host": "sip.carrier.example"}).trunks[0]
    assert (t.resolve, t.port, t.port_set, t.transport, t.transport_set) == ("rfc3263", 5060, False, "udp", False)
    assert Query.for_trunk(t) == Query("sip.carrier.example", None, None, "rfc3263")
    t = _config({"host": "sip.carrier.example", "port": 5070, "transport": "tcp"}).trunks[0]
    assert t.resolve == "a" and Query.for_trunk(t) == Query("sip.carrier.example", "tcp", 5070, "a")
    t = _config({"host": "sip.carrier.example", "resolve": "a"}).trunks[0]
    assert Query.for_trunk(t) == Query("sip.carrier.example", None, 5060, "a")
    assert _config({"host": "203.0.113.5"}).trunks[0].named is False
    with pytest.raises(ConfigError, match="A/AAAA records only"):
        _config({"host": "sip.carrier.example", "port": 5070, "resolve": "rfc3263"})
    with pytest.raises(ConfigError, match="nameserver"):
        _config({"host": "203.0.113.5"}, {"nameservers": ["dns.example"]})
    c = _config({"host": "203.0.113.5"}, {"nameservers": ["127.0.0.1:5353"], "min_ttl": 5})
    assert c.dns.nameservers == ["127.0.0.1:5353"] and c.dns.min_ttl == 5


A = Peer("udp", "203.0.113.5", 5071)
B = Peer("udp", "203.0.113.6", 5072)


def _located(now: float, ttl: float = 60) -> Located:
    return Located((A, B), now + ttl, how="srv",
                   srv=(SrvTarget(Srv(10, 0, 5071, "a.carrier.example"), (A,)),
                        SrvTarget(Srv(20, 0, 5072, "b.carrier.example"), (B,))))


def _named_net(**carrier: object):
    from tests.test_trunks_core import make
    net = make(carrier={"host": "sip.carrier.example", "match": ["203.0.113.0/28"], **carrier})
    actions = net.core.on_timer(net.now)
    asks = [a for a in actions if isinstance(a, ResolveTrunk)]
    assert [a.trunk for a in asks] == ["carrier"]          # looked up at the edge, once
    assert not [a for a in net.core.on_timer(net.now) if isinstance(a, ResolveTrunk)]
    return net, asks[0]


def test_the_core_dials_srv_targets_in_order_before_the_next_trunk() -> None:
    from tests.core_harness import answer, requests
    from tests.test_trunks_core import BACKUP, phone
    net, ask = _named_net()
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")           # not resolved yet: the carrier is skipped, not waited for
    assert [p for p, _ in requests(out, "INVITE")] == [BACKUP]
    net._run(net.core.trunk_located("carrier", ask.query, _located(net.now), net.now))
    _, out = desk.invite("013800138001")
    [(peer, inv)] = requests(out, "INVITE")
    assert peer == A and str(inv.ruri).startswith("sip:013800138001@sip.carrier.example") and ":5071" not in str(inv.ruri)
    out = net.deliver(answer(inv, 503), A)          # 503: the carrier's next SRV target
    [(peer, inv2)] = requests(out, "INVITE")
    assert peer == B and "013800138001@" in str(inv2.ruri)
    out = net.deliver(answer(inv2, 503), B)         # its last target: the rule's next trunk
    assert [p for p, _ in requests(out, "INVITE")] == [BACKUP]
    # a time-out (no answer within progress_timeout) moves on the same way; a 500 leaves the trunk at once
    _, out = desk.invite("013800138002")
    [(peer, _)] = requests(out, "INVITE")
    assert peer == A
    out = net.advance(5.5)
    assert {p for p, m in requests(out, "INVITE") if "013800138002@" in str(m.ruri) and p != A} == {B}
    _, out = desk.invite("013800138003")
    [(peer, inv)] = requests(out, "INVITE")
    out = net.deliver(answer(inv, 500), A)
    assert [p for p, _ in requests(out, "INVITE")] == [BACKUP]


def test_targets_expire_and_are_looked_up_again_keeping_the_old_on_failure() -> None:
    net, ask = _named_net()
    net._run(net.core.trunk_located("carrier", ask.query, _located(net.now, ttl=30), net.now))
    assert net.core.next_deadline() is not None and net.core.next_deadline() <= net.now + 30
    net.now += 29
    assert not [a for a in net.core.on_timer(net.now) if isinstance(a, ResolveTrunk)]
    net.now += 1
    [again] = [a for a in net.core.on_timer(net.now) if isinstance(a, ResolveTrunk)]
    net._run(net.core.trunk_located("carrier", again.query, Located((), net.now + 30, "SERVFAIL"), net.now))
    assert net.core.trunk_runtime.targets_for("carrier") == [A, B]      # a DNS failure keeps the carrier
    [status] = [t for t in net.core.trunk_runtime.status(net.now) if t["name"] == "carrier"]
    assert status["targets"] == ["udp:203.0.113.5:5071", "udp:203.0.113.6:5072"] and status["resolve"] == "rfc3263"


def test_registration_and_keepalive_follow_the_targets() -> None:
    from tests.core_harness import requests
    net, ask = _named_net(username="acct", password="trunk-pw", register=True, options_interval=10,
                          retry_min=5)
    assert not requests(net.advance(1), "REGISTER")                 # nothing is sent before the look-up
    out = net._run(net.core.trunk_located("carrier", ask.query, _located(net.now, ttl=3600), net.now))
    out += net.advance(0.1)
    regs = requests(out, "REGISTER")
    assert {p for p, _ in regs} == {A} and str(regs[0][1].ruri) == "sip:sip.carrier.example"
    [first_ping] = {m.call_id for p, m in requests(out, "OPTIONS")}
    assert {p for p, _ in requests(out, "OPTIONS")} == {A}
    out = net.advance(10)                                          # the first OPTIONS unanswered (5 s)
    # the next ping (not a retransmission of the first) goes to the next target
    assert {p for p, m in requests(out, "OPTIONS") if m.call_id != first_ping} == {B}
    out = net.advance(30)                                          # A never answers: REGISTER times out (32 s)
    assert B in {p for p, _ in requests(out, "REGISTER")}


def test_a_register_answered_503_is_retried_at_the_next_target() -> None:
    from tests.core_harness import answer, requests
    net, ask = _named_net(username="acct", password="trunk-pw", register=True, retry_min=5)
    out = net._run(net.core.trunk_located("carrier", ask.query, _located(net.now, ttl=3600), net.now))
    [(peer, reg)] = requests(out, "REGISTER")                      # registered as soon as it is located
    assert peer == A
    net.deliver(answer(reg, 503), A)
    out = net.advance(6)                                           # retry_min later, at the other target
    assert {p for p, _ in requests(out, "REGISTER")} == {B}


def test_campaign_calls_fail_over_across_srv_targets_then_trunks(tmp_path) -> None:
    """Customer-first calls (notifications, predictive) build their own legs: they follow the targets too."""
    from dialler import events as de
    from softswitch.config import parse_config
    from softswitch.core import SwitchCore
    from tests.callcentre_harness import DOMAIN, answer, reqs_to
    from tests.test_outbound_calls import EXTS, HOTLINE, Recorder

    data = {
        "sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db", "country_code": "86"},
        "extensions": [{"number": n, "password": p} for n, p in EXTS.items()],
        "numbering": {"country_code": "86"},
        "trunks": [{"name": "first", "host": "sip.carrier.example", "options_interval": 0},
                   {"name": "second", "host": "10.0.0.9", "options_interval": 0}],
        "dial_rules": [{"prefix": "0", "trunks": ["first", "second"]}],
        "outbound": {"caller_id": HOTLINE},
    }
    core = SwitchCore(parse_config(data), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    net = Recorder(core)
    [ask] = [a for a in core.on_timer(net.now) if isinstance(a, ResolveTrunk)]
    net._run(core.trunk_located("first", ask.query, _located(net.now), net.now))
    second = Peer("udp", "10.0.0.9", 5060)
    d = de.Dial(8, 12, "remind", "notification", "+8613800138000", caller_id=HOTLINE, name="Li")
    out = net._run(core.run(core.router.outbound.dial, d, net.now, now=net.now))
    inv1 = reqs_to(out, A, "INVITE")[0]
    assert str(inv1.ruri).startswith("sip:013800138000@sip.carrier.example")
    out = net.deliver(answer(inv1, 503, to_tag="t1"), A)
    inv2 = reqs_to(out, B, "INVITE")[0]                    # the same trunk's next SRV target
    out = net.deliver(answer(inv2, 503, to_tag="t2"), B)
    assert reqs_to(out, second, "INVITE")                   # then the rule's next trunk


def test_targets_of_an_ip_version_we_do_not_listen_on_are_dropped() -> None:
    v6 = Peer("udp", "2001:db8::5", 5071)
    loc = Located((A, v6, B), 100.0, how="srv",
                  srv=(SrvTarget(Srv(10, 0, 5071, "a"), (A, v6)), SrvTarget(Srv(20, 0, 5072, "b"), (B,))))
    assert loc.usable(True, True) is loc
    only4 = loc.usable(True, False)
    assert only4.targets == (A, B) and only4.ordered(seq()) == [A, B]
    assert loc.usable(False, True).targets == (v6,)
    none = Located((v6,), 100.0).usable(True, False)
    assert none.targets == () and "IP version" in none.error
    net, ask = _named_net()                                  # the harness listens on 127.0.0.1 only
    net._run(net.core.trunk_located("carrier", ask.query, loc, net.now))
    assert net.core.trunk_runtime.targets_for("carrier") == [A, B]
