"""B2BUA call flows through the sans-IO core: every message the switch sends is checked."""
from __future__ import annotations

from softswitch.sip.transaction import Peer

from .core_harness import DOMAIN, SDP, Net, Phone, answer, in_dialog, make_core, requests, responses

CALLER = Peer("udp", "127.0.0.1", 40001)
CALLEE = Peer("udp", "127.0.0.1", 40002)


def setup(**kw):
    net = Net(make_core(**kw))
    a = Phone(net, "1001", "pw-1001-x", CALLER)
    b = Phone(net, "1002", "pw-1002-x", CALLEE)
    assert a.register().status == 200 and b.register().status == 200
    net.sent.clear()
    return net, a, b


def ring(net, a, b):
    """1001 calls 1002: returns (caller INVITE bytes, INVITE the callee got)."""
    inv, out = a.invite("1002")
    assert [r.status for r in responses(out)] == [100]
    legs = requests(out, "INVITE")
    assert len(legs) == 1 and legs[0][0] == CALLEE
    return inv, legs[0][1]


def establish(net, a, b):
    inv, b_inv = ring(net, a, b)
    out = net.deliver(answer(b_inv, 180), CALLEE)
    assert [r.status for r in responses(out)] == [180]
    out = net.deliver(answer(b_inv, 200, contact="<sip:1002@127.0.0.1:40002>", body=SDP), CALLEE)
    acks = requests(out, "ACK")
    assert len(acks) == 1 and acks[0][0] == CALLEE
    ok = [r for r in responses(out) if r.status == 200]
    assert len(ok) == 1 and ok[0].body == SDP
    a_ok = ok[0]
    # caller ACKs the 200
    from .core_harness import _counter  # noqa: F401
    ack = in_dialog("ACK", ruri="sip:x@127.0.0.1:5060", from_=a_ok.headers.get("From"), to=a_ok.headers.get("To"),
                    call_id=a_ok.call_id, cseq=a_ok.cseq.number, via_host="127.0.0.1", via_port=CALLER.port)
    assert net.deliver(ack, CALLER) == []
    return a_ok, b_inv


def test_invite_without_credentials_is_challenged_407():
    net, a, b = setup()
    out = responses(a.send(a.msg("INVITE", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", body=SDP)))
    assert [r.status for r in out] == [407]
    challenges = out[0].headers.get_lines("Proxy-Authenticate")
    assert len(challenges) == 1 and "algorithm=MD5" in challenges[0]  # the default: MD5 alone


def test_unknown_number_404_and_unregistered_480():
    net, a, b = setup(extensions={"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x"})
    _, out = a.invite("4444")
    assert [r.status for r in responses(out)] == [100, 404]
    _, out = a.invite("1003")
    assert [r.status for r in responses(out)] == [100, 480]


def test_call_answered_and_caller_hangs_up():
    net, a, b = setup()
    a_ok, b_inv = establish(net, a, b)
    assert b_inv.body == SDP  # SDP passed through for now
    assert b_inv.headers.get("From").startswith('"Ext 1001" <sip:1001@callcenter.local>')
    call = next(iter(net.core.b2bua.calls.values()))
    assert call.state == "answered"
    bye = in_dialog("BYE", ruri="sip:x@127.0.0.1:5060", from_=a_ok.headers.get("From"), to=a_ok.headers.get("To"),
                    call_id=a_ok.call_id, cseq=a_ok.cseq.number + 1, via_host="127.0.0.1", via_port=CALLER.port)
    out = net.deliver(bye, CALLER)
    assert [r.status for r in responses(out)] == [200]
    byes = requests(out, "BYE")
    assert len(byes) == 1 and byes[0][0] == CALLEE and byes[0][1].call_id == b_inv.call_id
    assert byes[0][1].uri == "sip:1002@127.0.0.1:40002"
    out = net.deliver(answer(byes[0][1], 200), CALLEE)
    assert call.state == "ended"
    net.advance(40)
    assert net.core.b2bua.calls == {}
    assert len(net.core.tl) == 0


def test_callee_hangs_up():
    net, a, b = setup()
    a_ok, b_inv = establish(net, a, b)
    ok_tag = "calleetag"
    bye = in_dialog("BYE", ruri="sip:127.0.0.1:5060", from_=f"<sip:1002@{DOMAIN}>;tag={ok_tag}",
                    to=b_inv.headers.get("From"), call_id=b_inv.call_id, cseq=1, via_host="127.0.0.1",
                    via_port=CALLEE.port)
    out = net.deliver(bye, CALLEE)
    assert [r.status for r in responses(out)] == [200]
    byes = requests(out, "BYE")
    assert len(byes) == 1 and byes[0][0] == CALLER and byes[0][1].call_id == a_ok.call_id


def test_caller_cancels_while_ringing():
    net, a, b = setup()
    inv, b_inv = ring(net, a, b)
    net.deliver(answer(b_inv, 180), CALLEE)
    cancel = inv.replace(b"INVITE sip:1002", b"CANCEL sip:1002").replace(b"INVITE\r\n", b"CANCEL\r\n")
    cancel = cancel.split(b"Content-Type")[0].replace(b"Proxy-Authorization", b"X-Ignored") + b"Content-Length: 0\r\n\r\n"
    out = net.deliver(cancel, CALLER)
    assert sorted(r.status for r in responses(out)) == [200, 487]
    cancels = requests(out, "CANCEL")
    assert len(cancels) == 1 and cancels[0][0] == CALLEE
    assert cancels[0][1].top_via.branch == b_inv.top_via.branch
    # callee answers the CANCEL and the INVITE; the switch ACKs the 487 itself
    net.deliver(answer(cancels[0][1], 200), CALLEE)
    out = net.deliver(answer(b_inv, 487), CALLEE)
    assert [m.method for _, m in requests(out)] == ["ACK"]
    assert responses(out) == []  # the caller already got its 487


def test_callee_busy_is_relayed_486():
    net, a, b = setup()
    _, b_inv = ring(net, a, b)
    out = net.deliver(answer(b_inv, 486), CALLEE)
    assert [r.status for r in responses(out)] == [486]


def test_extension_in_a_call_is_busy():
    net, a, b = setup()
    establish(net, a, b)
    c = Phone(net, "1003", "pw-1003-x", Peer("udp", "127.0.0.1", 40003))
    c.register()
    _, out = c.invite("1002")
    assert [r.status for r in responses(out)] == [100, 486]


def test_no_answer_times_out_with_480_and_cancel():
    net, a, b = setup(sip={"ring_timeout": 20})
    _, b_inv = ring(net, a, b)
    net.deliver(answer(b_inv, 180), CALLEE)
    out = net.advance(21)
    assert 480 in [r.status for r in responses(out)]
    assert requests(out, "CANCEL")


def test_reinvite_hold_is_relayed_and_acked_end_to_end():
    net, a, b = setup()
    a_ok, b_inv = establish(net, a, b)
    hold_sdp = SDP.replace(b"a=sendrecv", b"a=sendonly")
    reinv = in_dialog("INVITE", ruri="sip:x@127.0.0.1:5060", from_=a_ok.headers.get("From"),
                      to=a_ok.headers.get("To"), call_id=a_ok.call_id, cseq=5, via_host="127.0.0.1",
                      via_port=CALLER.port, body=hold_sdp, extra=["Contact: <sip:1001@127.0.0.1:40001>"])
    out = net.deliver(reinv, CALLER)
    fwd = requests(out, "INVITE")
    assert len(fwd) == 1 and fwd[0][0] == CALLEE and fwd[0][1].body == hold_sdp
    assert fwd[0][1].call_id == b_inv.call_id and fwd[0][1].cseq.number == 2
    out = net.deliver(answer(fwd[0][1], 200, contact="<sip:1002@127.0.0.1:40002>",
                             body=SDP.replace(b"sendrecv", b"recvonly")), CALLEE)
    oks = [r for r in responses(out) if r.status == 200]
    assert len(oks) == 1 and b"recvonly" in oks[0].body
    ack = in_dialog("ACK", ruri="sip:x@127.0.0.1:5060", from_=a_ok.headers.get("From"), to=a_ok.headers.get("To"),
                    call_id=a_ok.call_id, cseq=5, via_host="127.0.0.1", via_port=CALLER.port)
    out = net.deliver(ack, CALLER)
    acks = requests(out, "ACK")
    assert len(acks) == 1 and acks[0][0] == CALLEE and acks[0][1].cseq.number == 2


def test_info_is_passed_through_and_answered():
    net, a, b = setup()
    a_ok, b_inv = establish(net, a, b)
    info = in_dialog("INFO", ruri="sip:x@127.0.0.1:5060", from_=a_ok.headers.get("From"), to=a_ok.headers.get("To"),
                     call_id=a_ok.call_id, cseq=7, via_host="127.0.0.1", via_port=CALLER.port)
    out = net.deliver(info, CALLER)
    fwd = requests(out, "INFO")
    assert len(fwd) == 1 and fwd[0][0] == CALLEE
    out = net.deliver(answer(fwd[0][1], 200), CALLEE)
    assert [r.status for r in responses(out)] == [200]


def test_in_dialog_request_for_unknown_dialog_is_481():
    net, a, b = setup()
    bye = in_dialog("BYE", ruri="sip:x@127.0.0.1:5060", from_="<sip:1001@x>;tag=a", to="<sip:1002@x>;tag=b",
                    call_id="nope", cseq=1, via_host="127.0.0.1", via_port=CALLER.port)
    assert [r.status for r in responses(net.deliver(bye, CALLER))] == [481]


def test_blacklisted_caller_is_refused():
    net, a, b = setup(security={"blacklist": ["1001"]})
    out = responses(a.send(a.msg("INVITE", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", body=SDP)))
    assert [r.status for r in out] == [403]


def test_invite_retransmission_does_not_make_a_second_call():
    net, a, b = setup()
    inv, b_inv = ring(net, a, b)
    out = net.deliver(inv, CALLER)
    assert requests(out, "INVITE") == []
    assert len(net.core.b2bua.calls) == 1


def test_options_is_answered():
    net, a, b = setup()
    out = responses(a.send(a.msg("OPTIONS", f"sip:{DOMAIN}")))
    assert [r.status for r in out] == [200]
    assert "INVITE" in out[0].headers.get("Allow")


def test_malformed_request_gets_400_and_garbage_is_dropped():
    net, a, b = setup()
    bad = a.msg("OPTIONS", f"sip:{DOMAIN}").replace(b"CSeq: ", b"CSeq: x")
    assert [r.status for r in responses(a.send(bad))] == [400]
    assert a.send(b"\x00\xff garbage \r\n\r\n") == []
    assert a.send(b"SIP/2.0 200 OK\r\n\r\n") == []


def test_challenge_is_stateless_not_retransmitted_and_its_ack_is_dropped():
    """Like Kamailio's proxy_challenge: the 407 keeps no transaction (no Timer G retransmissions,
    nothing held for 32 s); a retransmitted INVITE gets a fresh 407; the ACK matches nothing."""
    net, a, b = setup()
    inv = a.msg("INVITE", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", body=SDP)
    first = responses(a.send(inv))
    assert [r.status for r in first] == [407]
    assert net.advance(40) == []  # no retransmission of the 407, ever
    again = responses(a.send(inv))
    assert [r.status for r in again] == [407]
    ack = a.msg("ACK", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", cseq=a.cseq, to_tag=again[0].to.tag)
    assert a.send(ack) == []
    assert len(net.core.tl) == 0  # no transaction left behind
