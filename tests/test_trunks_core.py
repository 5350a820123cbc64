"""Trunks through the sans-IO core with a fake clock: channels, hairpins, the carrier's challenge,
failover order, registration and keep-alive requests (no sockets; see test_trunks_e2e.py and
test_trunks_kamailio_e2e.py for real carriers)."""
from __future__ import annotations

from softswitch.config import parse_config
from softswitch.core import SwitchCore
from softswitch.sip.message import Request, Response, parse_message
from softswitch.sip.transaction import Peer

from .core_harness import DOMAIN, SDP, Net, Phone, answer, requests, responses

CARRIER = Peer("udp", "203.0.113.5", 5060)
BACKUP = Peer("udp", "198.51.100.9", 5060)
DID = "4008001234"


def make(*, carrier: dict | None = None, backup: dict | None = None, rules: list | None = None,
         media: bool = False, security: dict | None = None, more: list | None = None) -> Net:
    data: dict = {
        "sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db", "country_code": "86"},
        "extensions": [{"number": n, "password": f"pw-{n}-x"} for n in ("1001", "1002")],
        "media": {"enabled": media},
        "trunks": [{"name": "carrier", "host": CARRIER.host, "dids": {DID: "1002", "4008009999": "013800138000"},
                    "options_interval": 0, **(carrier or {})},
                   {"name": "backup", "host": BACKUP.host, "options_interval": 0, **(backup or {})},
                   *(more or [])],
        "dial_rules": rules if rules is not None else [{"prefix": "0", "trunks": ["carrier", "backup"]}],
        "security": security or {},
    }
    core = SwitchCore(parse_config(data), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    return Net(core)


def carrier_invite(net: Net, did: str, caller: str = "013800138000", call_id: str = "c1@carrier",
                   peer: Peer = CARRIER) -> list:
    msg = (f"INVITE sip:{did}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {peer.host}:{peer.port};branch=z9hG4bK{call_id}\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:{caller}@carrier>;tag=k1\r\nTo: <sip:{did}@127.0.0.1>\r\n"
           f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:{caller}@{peer.host}:{peer.port}>\r\n"
           f"Content-Type: application/sdp\r\nContent-Length: {len(SDP)}\r\n\r\n").encode() + SDP
    return net.deliver(msg, peer)


def final(out: list) -> Response:
    finals = [r for r in responses(out) if r.status >= 200]
    assert finals, out
    return finals[-1]


def phone(net: Net, number: str, port: int) -> Phone:
    p = Phone(net, number, f"pw-{number}-x", Peer("udp", "127.0.0.1", port))
    assert p.register().status == 200
    return p


def test_inbound_channels_are_limited_per_trunk():
    net = make(carrier={"max_channels": 1})
    phone(net, "1002", 6002)
    out = carrier_invite(net, DID, call_id="c1@carrier")
    assert [m.ruri.user for _, m in requests(out, "INVITE")] == ["1002"]   # it rings the agent
    out = carrier_invite(net, DID, call_id="c2@carrier")
    resp = final(out)
    assert resp.status == 503 and resp.headers.get("Retry-After") == "5"
    assert not requests(out, "INVITE")


def test_a_call_from_a_trunk_does_not_go_out_again_unless_a_rule_allows_it():
    net = make()
    resp = final(carrier_invite(net, "4008009999"))       # the DID maps to an external number
    assert resp.status == 403
    assert not [p for p, _ in requests(net.sent, "INVITE") if p.host in (CARRIER.host, BACKUP.host)]
    net = make(rules=[{"prefix": "0", "trunks": ["backup"], "from_trunks": True}])
    out = carrier_invite(net, "4008009999")
    assert [(p.host, m.ruri.user) for p, m in requests(out, "INVITE")] == [(BACKUP.host, "013800138000")]


def test_the_carriers_challenge_is_answered_once_then_the_next_trunk_is_tried():
    net = make(carrier={"username": "acct", "password": "trunk-pw"})
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")
    [(peer, inv)] = requests(out, "INVITE")
    assert peer.host == CARRIER.host and inv.cseq.number == 1
    challenge = 'Digest realm="carrier", nonce="n1", qop="auth"'
    out = net.deliver(answer(inv, 407).replace(b"Content-Length", f"Proxy-Authenticate: {challenge}\r\n"
                                                                   "Content-Length".encode()), CARRIER)
    [(peer, inv2)] = requests(out, "INVITE")
    auth = inv2.headers.get("Proxy-Authorization") or ""
    assert peer.host == CARRIER.host and inv2.cseq.number == 2 and inv2.call_id == inv.call_id
    assert 'username="acct"' in auth and "trunk-pw" not in inv2.serialize().decode()
    # challenged again: the credentials are wrong; the call goes out the backup, the phone never sees a 407
    out = net.deliver(answer(inv2, 407).replace(b"Content-Length", f"Proxy-Authenticate: {challenge}\r\n"
                                                                    "Content-Length".encode()), CARRIER)
    [(peer, inv3)] = requests(out, "INVITE")
    assert peer.host == BACKUP.host
    out = net.deliver(answer(inv3, 503), BACKUP)
    resp = final(out)
    assert resp.status == 503 and [r.status for r in responses(out) if r.status >= 400] == [503]


def test_outbound_skips_a_full_trunk_and_busy_is_not_failed_over():
    net = make(carrier={"max_channels": 1})
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")
    [(peer, inv)] = requests(out, "INVITE")
    assert peer.host == CARRIER.host
    net.deliver(answer(inv, 180), CARRIER)
    other = Phone(net, "1001", "pw-1001-x", Peer("udp", "127.0.0.1", 6011))
    _, out = other.invite("013900139000")
    [(peer, inv2)] = requests(out, "INVITE")
    assert peer.host == BACKUP.host                          # the carrier's one channel is taken
    out = net.deliver(answer(inv2, 486), BACKUP)
    assert final(out).status == 486 and not requests(out, "INVITE")   # busy: the callee's answer, passed on


def test_registration_and_keepalive_requests_go_to_the_carrier():
    net = make(carrier={"username": "acct", "password": "trunk-pw", "register": True, "options_interval": 10})
    out = net.advance(0.1)
    regs = requests(out, "REGISTER")
    opts = requests(out, "OPTIONS")
    assert [p.host for p, _ in regs] == [CARRIER.host] and [p.host for p, _ in opts] == [CARRIER.host]
    reg: Request = regs[0][1]
    assert reg.headers.get("Contact") == "<sip:acct@127.0.0.1:5060>" and reg.headers.get("Expires") == "600"
    challenge = 'Digest realm="carrier", nonce="n9"'
    out = net.deliver(answer(reg, 401).replace(b"Content-Length", f"WWW-Authenticate: {challenge}\r\n"
                                                                  "Content-Length".encode()), CARRIER)
    [(_, reg2)] = requests(out, "REGISTER")
    assert "Authorization" in reg2.headers
    ok = parse_message(answer(reg2, 200, contact="<sip:acct@127.0.0.1:5060>;expires=300"))
    net.deliver(ok.serialize(), CARRIER)
    net.deliver(answer(opts[0][1], 200), CARRIER)
    [status] = [t for t in net.core.trunk_runtime.status(net.now) if t["name"] == "carrier"]
    assert status["health"] == "up" and status["registration"]["state"] == "registered"
    assert "trunk-pw" not in repr(status)
    out = net.advance(300 * 0.8 + 1)                         # the refresh, and the pings every 10 s
    assert {m.cseq.number for _, m in requests(out, "REGISTER")} == {3}   # one refresh (and its retransmissions)
    assert len({m.call_id for _, m in requests(out, "OPTIONS")}) >= 20


def test_a_reload_swaps_the_table_and_registers_a_new_trunk():
    """softswitch.reload (the edge's SIGHUP / API reload) applies new trunks, rules and permissions."""
    net = make()
    net.advance(0.1)
    assert not requests(net.sent, "REGISTER")
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("0044207946000")
    assert final(out).status == 403                              # international: not with the default class
    data = {"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
            "store": {"path": "var/test.db", "country_code": "86"},
            "extensions": [{"number": n, "password": f"pw-{n}-x", "permission": "international"}
                           for n in ("1001", "1002")],
            "media": {"enabled": False},
            "trunks": [{"name": "intl", "host": "192.0.2.7", "username": "u", "password": "pw-intl",
                        "register": True, "options_interval": 0}],
            "dial_rules": [{"prefix": "00", "trunks": ["intl"]}]}
    new = parse_config(data)
    result = net.core.reload(new, net.now)
    assert result.ok, result
    out = net._run(result.actions) + net.advance(0.1)
    assert [p.host for p, _ in requests(out, "REGISTER")] == ["192.0.2.7"]
    _, out = desk.invite("0044207946000")
    assert [(p.host, m.ruri.user) for p, m in requests(out, "INVITE")] == [("192.0.2.7", "0044207946000")]


def test_toll_fraud_scans_are_refused_and_banned():
    """Refused with 403 and a log line; over TCP (a source that cannot be spoofed) repeated scans ban the
    address, over UDP they do not (ten forged datagrams must not silence an office: issue 11)."""
    net = make(security={"max_auth_failures": 3})
    for transport in ("udp", "tcp"):
        scanner = Peer(transport, "192.0.2.66", 5070)
        answers = []
        for i in range(4):
            msg = (f"INVITE sip:0046701234567@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/{transport.upper()} {scanner.host}:"
                   f"{scanner.port};branch=z9hG4bKscan{transport}{i}\r\nMax-Forwards: 70\r\n"
                   f"From: <sip:100@{scanner.host}>;tag=s{i}\r\nTo: <sip:0046701234567@127.0.0.1>\r\n"
                   f"Call-ID: scan{transport}{i}@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
            answers.append([r.status for r in responses(net.deliver(msg, scanner))])
        assert answers == ([[403]] * 4 if transport == "udp" else [[403], [403], [403], []]), (transport, answers)
    assert not [p for p, _ in requests(net.sent, "INVITE") if p.host in (CARRIER.host, BACKUP.host)]
    # the carrier is never banned, whatever it sends
    for i in range(5):
        final(carrier_invite(net, "4009999999", call_id=f"x{i}@carrier"))   # not a DID: 404 each time
    assert final(carrier_invite(net, DID, call_id="ok@carrier")).status == 480   # 1002 not registered


def test_an_extension_can_withhold_its_number():
    net = make()
    object.__setattr__(net.core.config.extension("1001"), "caller_id", "anonymous")   # [[extensions]] caller_id
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")
    [(_, inv)] = requests(out, "INVITE")
    assert inv.headers.get("Privacy") == "id" and "P-Asserted-Identity" not in inv.headers
    assert "anonymous@" in (inv.headers.get("From") or "")


def test_round_robin_rules_share_the_load():
    net = make(rules=[{"prefix": "0", "trunks": ["carrier", "backup"], "order": "round-robin"}])
    hosts = []
    for i in range(4):
        desk = Phone(net, "1001", "pw-1001-x", Peer("udp", "127.0.0.1", 6100 + i))
        if i == 0:
            assert desk.register().status == 200
        _, out = desk.invite(f"01380013800{i}")
        hosts += [p.host for p, _ in requests(out, "INVITE")]
    assert hosts == [CARRIER.host, BACKUP.host, CARRIER.host, BACKUP.host]


def test_a_carrier_caller_presenting_an_extension_number_is_not_that_phone():
    net = make()
    phone(net, "1002", 6002)
    out = carrier_invite(net, DID, caller="1001")
    assert [m.ruri.user for _, m in requests(out, "INVITE")] == ["1002"]
    call = next(iter(net.core.b2bua.calls.values()))
    assert call.caller_number == "1001" and call.caller.trunk == "carrier"
    assert not net.core.router.presence.has(call.id, "1001")   # extension 1001 stays free for queue calls


# ------------------------------------------------------------------ a trunk's codecs restrict its SDP
PCMU_PCMA = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=sendrecv\r\n")


def _payloads(body: bytes) -> list[str]:
    [m_line] = [ln for ln in body.decode().splitlines() if ln.startswith("m=audio")]
    return m_line.split()[3:]


def _codec_names(body: bytes) -> set[str]:
    return {ln.split()[1].split("/")[0] for ln in body.decode().splitlines() if ln.startswith("a=rtpmap:")}


def test_a_trunks_codecs_restrict_the_offer_to_the_carrier_and_a_bad_answer_is_refused(caplog):
    net = make(media=True, carrier={"codecs": ["PCMA"]})
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")          # the phone offers PCMU only
    [(peer, inv)] = requests(out, "INVITE")
    assert peer.host == CARRIER.host
    assert _payloads(inv.body) == ["8", "101"] and _codec_names(inv.body) == {"PCMA", "telephone-event"}
    # the carrier answers with a codec we did not offer: today's handling of a bad answer (logged, not used)
    bad = SDP.replace(b"4000", b"4010")
    with caplog.at_level("WARNING", logger="softswitch.b2bua"):
        net.deliver(answer(inv, 200, body=bad, contact="<sip:x@203.0.113.5>"), CARRIER)
    assert "answer names no codec we offered" in caplog.text
    call = next(iter(net.core.b2bua.calls.values()))
    assert call.callees[0].media.params is None     # no PCMU stream towards the carrier
    # the phone's own leg keeps its codec (answered PCMU): the engine transcodes µ-law <-> A-law
    assert _payloads(call.caller_answer)[0] == "0"


def test_without_trunk_codecs_the_carrier_is_offered_every_media_codec():
    net = make(media=True)
    desk = phone(net, "1001", 6001)
    _, out = desk.invite("013800138000")
    [(_, inv)] = requests(out, "INVITE")
    assert _payloads(inv.body) == ["0", "8", "101"]


def test_inbound_from_a_trunk_answers_only_with_its_codecs_and_488_without_one():
    net = make(media=True, carrier={"codecs": ["PCMA"]})
    agent = phone(net, "1002", 6002)
    # the carrier offers PCMU only: none of the trunk's codecs -> 488, the agent is never rung
    resp = final(carrier_invite(net, DID, call_id="u1@carrier"))
    assert resp.status == 488
    assert not [m for p, m in requests(net.sent, "INVITE") if p.port == agent.peer.port]
    # PCMU and PCMA offered (PCMU first): our answer names PCMA; the agent's phone is offered both
    msg = (f"INVITE sip:{DID}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER.host}:5060;branch=z9hG4bKu2\r\n"
           f"Max-Forwards: 70\r\nFrom: <sip:013800138000@carrier>;tag=k2\r\nTo: <sip:{DID}@127.0.0.1>\r\n"
           f"Call-ID: u2@carrier\r\nCSeq: 1 INVITE\r\nContact: <sip:013800138000@{CARRIER.host}:5060>\r\n"
           f"Content-Type: application/sdp\r\nContent-Length: {len(PCMU_PCMA)}\r\n\r\n").encode() + PCMU_PCMA
    out = net.deliver(msg, CARRIER)
    [(_, ring)] = [(p, m) for p, m in requests(out, "INVITE") if p.port == agent.peer.port]
    assert _payloads(ring.body)[:2] in (["0", "8"], ["8", "0"])
    out = net.deliver(answer(ring, 200, body=SDP.replace(b"4000", b"4020"), contact="<sip:1002@127.0.0.1:6002>"),
                      agent.peer)
    ok = [m for m in responses(out) if m.status == 200 and m.cseq.method == "INVITE" and m.call_id == "u2@carrier"]
    assert ok and _payloads(ok[0].body) == ["8"] and _codec_names(ok[0].body) == {"PCMA"}


# ------------------------------------------------------------------ weighted round-robin
THIRD = Peer("udp", "192.0.2.77", 5060)


def _dial_many(net: Net, n: int, first_port: int = 6200) -> list[tuple[Peer, Request]]:
    """``n`` calls from 1001 (each phone on its own port, the first registered); the trunk INVITE of each."""
    invites = []
    for i in range(n):
        desk = Phone(net, "1001", "pw-1001-x", Peer("udp", "127.0.0.1", first_port + i))
        if i == 0:
            assert desk.register().status == 200
        _, out = desk.invite(f"0138001{i:05d}")
        [(peer, inv)] = [(p, m) for p, m in requests(out, "INVITE") if p.host != "127.0.0.1"]
        invites.append((peer, inv))
    return invites


def test_trunk_weights_share_new_calls_3_to_1_smoothly():
    net = make(carrier={"weight": 3}, backup={"weight": 1},
               rules=[{"prefix": "0", "trunks": ["carrier", "backup"], "order": "round-robin"}])
    hosts = [p.host for p, _ in _dial_many(net, 8)]
    c, b = CARRIER.host, BACKUP.host
    assert hosts == [c, c, b, c, c, c, b, c]          # nginx's smooth order: 3:1, never b twice in a row


def test_weighted_round_robin_skips_full_and_down_trunks_without_spending_their_turn():
    net = make(carrier={"weight": 3, "max_channels": 1}, backup={"weight": 1},
               rules=[{"prefix": "0", "trunks": ["carrier", "backup"], "order": "round-robin"}])
    [(p1, inv1), (p2, _), (p3, _)] = _dial_many(net, 3)
    assert (p1.host, p2.host, p3.host) == (CARRIER.host, BACKUP.host, BACKUP.host)   # carrier's 1 channel busy
    net.deliver(answer(inv1, 486), CARRIER)                                      # its call ends: channel free
    [(p4, _), (p5, _)] = _dial_many(net, 2, first_port=6300)
    assert (p4.host, p5.host) == (CARRIER.host, BACKUP.host)

    # a trunk the keep-alive marks down takes no first calls (it is still the last resort)
    net = make(carrier={"weight": 1}, backup={"weight": 5, "options_interval": 10, "options_failures": 2},
               rules=[{"prefix": "0", "trunks": ["carrier", "backup"], "order": "round-robin"}])
    net.advance(40)                                                              # OPTIONS unanswered
    [status] = [t for t in net.core.trunk_runtime.status(net.now) if t["name"] == "backup"]
    assert status["health"] == "down" and status["weight"] == 5
    assert [p.host for p, _ in _dial_many(net, 3)] == [CARRIER.host] * 3


def test_after_the_weighted_pick_failover_goes_on_around_the_rule():
    net = make(carrier={"weight": 1}, backup={"weight": 1},
               more=[{"name": "third", "host": THIRD.host, "options_interval": 0, "weight": 2}],
               rules=[{"prefix": "0", "trunks": ["carrier", "backup", "third"], "order": "round-robin"}])
    picks = _dial_many(net, 3)
    assert [p.host for p, _ in picks] == [THIRD.host, CARRIER.host, BACKUP.host]
    out = net.deliver(answer(picks[2][1], 503), BACKUP)          # the third call's trunk fails: the next ones
    assert [p.host for p, _ in requests(out, "INVITE")] == [THIRD.host]
    out = net.deliver(answer(requests(out, "INVITE")[0][1], 503), THIRD)
    assert [p.host for p, _ in requests(out, "INVITE")] == [CARRIER.host]


def test_a_failover_rule_ignores_weights():
    net = make(carrier={"weight": 1}, backup={"weight": 9})
    assert [p.host for p, _ in _dial_many(net, 3)] == [CARRIER.host] * 3
