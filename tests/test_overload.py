"""Admission control (softswitch.overload), sans-IO with a fake clock: the cheap look at a datagram, the
503 built from raw bytes, ranks, FIFO when normal and newest-first when overloaded, what is shed and why,
retransmissions, stale datagrams, the backlog limit, the way back to normal, and the [overload] config."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from softswitch.config import ConfigError, parse_config
from softswitch.overload import Admission, Answer, Mode, OverloadConfig, Process, Rank
from softswitch.overload.admission import CALM
from softswitch.overload.peek import answer, peek, reject
from softswitch.sip.message import Response, parse_message

SRC = ("192.0.2.10", 5060)


def request(method: str = "REGISTER", *, user: str = "1001", ruri: str | None = None, branch: str = "z9hG4bK1",
            call_id: str = "c1", to_tag: str = "", cseq: int = 1, auth: bool = False, compact: bool = False) -> bytes:
    ruri = ruri or ("sip:example.com" if method == "REGISTER" else f"sip:{user}@example.com")
    to = f"<sip:{user}@example.com>" + (f";tag={to_tag}" if to_tag else "")
    h = ("v", "f", "t", "i") if compact else ("Via", "From", "To", "Call-ID")
    lines = [f"{method} {ruri} SIP/2.0",
             f"{h[0]}: SIP/2.0/UDP 192.0.2.10:5060;branch={branch};rport",
             f"{h[1]}: <sip:1001@example.com>;tag=abc",
             f"{h[2]}: {to}",
             f"{h[3]}: {call_id}",
             f"CSeq: {cseq} {method if method != 'ACK' else 'INVITE'}",
             "Max-Forwards: 70"]
    if auth:
        lines.append('Authorization: Digest username="1001", realm="example.com", nonce="n", uri="sip:x", '
                     'response="0"')
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def response(status: int = 200) -> bytes:
    return (f"SIP/2.0 {status} OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
            "To: <sip:b@x>;tag=2\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()


def admission(**kw) -> Admission:
    cfg = OverloadConfig(**{"max_delay_ms": 400, "max_lag_ms": 150, "max_backlog": 1000, **kw})
    return Admission(cfg, t1=0.5, centre_numbers=frozenset({"500"}), centre_extensions=frozenset({"1002"}),
                     known_phone=lambda aor, host: (aor, host) == ("1003", SRC[0]), rng=random.Random(7))


def drain(a: Admission, now: float) -> list:
    out = []
    while (x := a.next(now)) is not None:
        out.append(x)
    assert not a.pending and a.figures.backlog == 0   # nothing left behind (the edge would spin on it)
    return out


# ------------------------------------------------------------------------------------------ peek

def test_peek_reads_what_admission_needs():
    p = peek(request("INVITE", user="500", branch="z9hG4bKab", call_id="abc@h", to_tag="t9", cseq=7, auth=True))
    assert p.ok and not p.response
    assert (p.method, p.ruri_user, p.branch, p.call_id, p.to_tag, p.to_user, p.cseq, p.cseq_method, p.credentials) == \
        ("INVITE", "500", "z9hG4bKab", "abc@h", "t9", "500", 7, "INVITE", True)
    compact = peek(request("REGISTER", user="1001", compact=True))
    assert compact.ok and compact.to_user == "1001" and compact.call_id == "c1" and not compact.to_tag
    assert peek(response()).response and peek(response()).call_id == "r1"
    for junk in (b"", b"\r\n\r\n", b"hello", b"INVITE sip:x SIP/2.0\r\n\r\n", b"\x00\xff garbage\r\nx: y\r\n\r\n"):
        assert not peek(junk).ok


def test_the_503_is_a_valid_response_to_the_request():
    data = request("INVITE", user="1003")
    out = reject(data, 17, "tagX")
    assert out is not None
    msg = parse_message(out)
    assert isinstance(msg, Response) and msg.status == 503
    assert msg.headers.get("Retry-After") == "17"
    assert msg.to.tag == "tagX" and msg.call_id == "c1" and msg.cseq.number == 1
    assert msg.top_via.branch == "z9hG4bK1"
    assert reject(request("ACK", to_tag="x"), 5, "t") is None          # an ACK is never answered
    assert reject(b"INVITE sip:x SIP/2.0\r\nTo: <sip:x@y>\r\n\r\n", 5, "t") is None   # no Via: nowhere to send
    bye = answer(request("BYE", to_tag="keep"), 481, "Call/Transaction Does Not Exist")
    assert bye is not None and parse_message(bye).to.tag == "keep"       # an existing tag is kept


# ----------------------------------------------------------------------------------------- ranks

@pytest.mark.parametrize("data, rank", [
    (response(), Rank.URGENT),
    (request("BYE", to_tag="t"), Rank.URGENT),
    (request("ACK", to_tag="t"), Rank.URGENT),
    (request("CANCEL"), Rank.URGENT),
    (request("INVITE", to_tag="t"), Rank.URGENT),                     # a re-INVITE
    (request("INVITE", user="500"), Rank.CENTRE),                     # a call to a queue number
    (request("REGISTER", user="1002"), Rank.CENTRE),                  # an agent's phone
    (request("REGISTER", user="1003"), Rank.REFRESH),                 # a refresh from where it registered
    (request("REGISTER", user="1004", auth=True), Rank.ANSWER),       # the answer to our challenge
    (request("INVITE", user="1004", auth=True), Rank.ANSWER),
    (request("REGISTER", user="1004"), Rank.NEW),
    (request("REGISTER", user="1004", to_tag="t"), Rank.NEW),         # a REGISTER is never in a dialog
    (request("INVITE", user="1004"), Rank.NEW),
    (request("OPTIONS", user="1004"), Rank.NEW),
    (b"garbage", Rank.NEW),
])
def test_ranks(data, rank):
    a = admission()
    a.offer(data, SRC, 0.0, 0.0)
    x = a.next(0.0)
    assert isinstance(x, Process) and x.rank is rank


def test_known_phone_means_same_address():
    a = admission()
    a.offer(request("REGISTER", user="1003"), ("198.51.100.1", 5060), 0.0, 0.0)
    assert a.next(0.0).rank is Rank.NEW
    a.offer(request("REGISTER", user="1003", auth=True), SRC, 0.0, 0.0)    # its answer to the challenge
    assert a.next(0.0).rank is Rank.ANSWER


# -------------------------------------------------------------------------------------- ordering

def test_normal_serves_in_arrival_order_urgent_and_centre_first():
    a = admission()
    a.offer(request("REGISTER", user="1010", branch="z9hG4bKa"), SRC, 0.00, 0.01)
    a.offer(request("REGISTER", user="1011", branch="z9hG4bKb"), SRC, 0.00, 0.01)
    a.offer(request("INVITE", user="500", branch="z9hG4bKc"), SRC, 0.00, 0.01)
    a.offer(request("BYE", to_tag="t", branch="z9hG4bKd"), SRC, 0.00, 0.01)
    order = [peek(x.data) for x in drain(a, 0.01)]
    assert [(p.method, p.to_user) for p in order] == [("BYE", "1001"), ("INVITE", "500"), ("REGISTER", "1010"),
                                                      ("REGISTER", "1011")]
    assert a.mode is Mode.NORMAL and a.figures.shed["rejected"] == 0


def flood(a: Admission, n: int, t0: float, t1: float, *, user: int = 5000) -> None:
    for i in range(n):
        t = t0 + (t1 - t0) * i / max(1, n - 1)
        a.offer(request("REGISTER", user=str(user + i), branch=f"z9hG4bKf{user + i}", call_id=f"f{user + i}"),
                SRC, t, t1)


def test_overloaded_serves_newest_first_sheds_the_oldest_with_503_and_never_urgent():
    a = admission()
    flood(a, 400, 0.0, 1.2)      # 1.2 s of requests waiting: overloaded at once
    a.offer(request("BYE", to_tag="t", branch="z9hG4bKbye", call_id="up"), SRC, 0.0, 1.2)   # as old as the oldest
    first = a.next(1.2)
    assert isinstance(first, Process) and peek(first.data).method == "BYE"     # urgent: served, not shed
    out = drain(a, 1.2)
    assert a.mode is Mode.OVERLOADED
    answers = [x for x in out if isinstance(x, Answer)]
    served = [peek(x.data).to_user for x in out if isinstance(x, Process)]
    # the ones older than max_delay (1 s) are answered 503 first, then the rest newest first
    assert len(answers) == a.figures.shed["rejected"] > 0
    assert all(parse_message(x.data).status == 503 for x in answers)
    assert served == sorted(served, reverse=True) and served[0] == "5399"
    assert len(answers) + len(served) == 400
    retry = {int(parse_message(x.data).headers.get("Retry-After")) for x in answers}
    assert min(retry) >= 5 and max(retry) <= 30 and len(retry) > 10    # spread over the window


def test_priority_traffic_is_served_before_bulk_under_overload():
    a = admission()
    flood(a, 300, 0.0, 0.5)
    a.offer(request("REGISTER", user="1002", branch="z9hG4bKagent", call_id="agent"), SRC, 0.0, 0.5)
    a.offer(request("REGISTER", user="1004", auth=True, branch="z9hG4bKans", call_id="ans"), SRC, 0.0, 0.5)
    a.offer(request("REGISTER", user="1003", branch="z9hG4bKold", call_id="old"), SRC, 0.0, 0.5)
    a.offer(request("REGISTER", user="1003", branch="z9hG4bKref", call_id="ref"), SRC, 0.3, 0.5)
    out = drain(a, 0.5)
    served = [x for x in out if isinstance(x, Process)]
    # the agent's phone and the answer waited 0.5 s: within their patience (2 x max_delay); the refresh that
    # waited as long is bulk: 503, like the newcomers of the first 0.1 s
    assert [x.rank for x in served[:3]] == [Rank.CENTRE, Rank.ANSWER, Rank.REFRESH]
    assert all(x.rank is Rank.NEW for x in served[3:])
    refused = {peek(x.data).call_id for x in out if isinstance(x, Answer)}
    assert "old" in refused and "ref" not in refused and len(refused) > 50


def test_a_stall_alone_switches_order_but_sheds_nothing_that_can_still_be_served():
    a = admission()
    flood(a, 50, 0.0, 0.3)       # the loop did not read for 300 ms
    out = drain(a, 0.35)
    assert a.mode is Mode.OVERLOADED and all(isinstance(x, Process) for x in out) and len(out) == 50
    assert a.figures.shed["rejected"] == 0
    # calm for CALM seconds: normal again
    now = 0.4
    while now < 0.5 + 2 * CALM:
        now += 0.1
        assert a.next(now) is None
    assert a.mode is Mode.NORMAL


def test_loop_lag_means_overload():
    a = admission()
    a.lag(0.4, 0.0)
    a.offer(request(), SRC, 0.0, 0.0)
    a.next(0.0)
    assert a.mode is Mode.OVERLOADED and a.figures.overloads == 1


# ------------------------------------------------------------------------------ retransmissions

def test_retransmissions_absorbed_and_503_repeated_and_its_dialog_refused():
    a = admission()
    data = request("INVITE", user="1004", branch="z9hG4bKr", call_id="r")
    a.offer(data, SRC, 0.0, 0.0)
    a.offer(data, SRC, 0.0, 0.0)                       # a copy while the first still waits: absorbed
    assert a.figures.shed["retransmission"] == 1
    assert len(drain(a, 0.0)) == 1
    a.offer(data, SRC, 0.5, 0.5)                       # normal: the transaction layer answers it
    assert isinstance(a.next(0.5), Process)

    b = admission()
    flood(b, 10, 0.0, 0.0)
    b.offer(data, SRC, 0.0, 2.0)                       # waited 2 s, overloaded: 503
    out = drain(b, 2.0)
    mine = [x for x in out if isinstance(x, Answer) and peek(x.data).call_id == "r"]
    assert len(mine) == 1
    tag = parse_message(mine[0].data).to.tag
    b.offer(data, SRC, 2.1, 2.1)                       # its retransmission: the same 503 again
    again = b.next(2.1)
    assert isinstance(again, Answer) and again.data == mine[0].data
    ack = request("ACK", user="1004", branch="z9hG4bKr", call_id="r", to_tag=tag)
    b.offer(ack, SRC, 2.2, 2.2)                        # its ACK: absorbed
    bye = request("BYE", user="1004", branch="z9hG4bKbye", call_id="r", to_tag=tag, cseq=2)
    b.offer(bye, SRC, 2.2, 2.2)                        # a BYE in the dialog the 503 named: 481 at once
    x = b.next(2.2)
    assert isinstance(x, Answer) and parse_message(x.data).status == 481
    assert b.next(2.2) is None
    assert b.figures.shed["refused_dialog"] == 2


def test_stale_datagrams_are_dropped_unread():
    a = admission()
    a.offer(request("BYE", to_tag="t"), SRC, 0.0, 40.0)     # older than 64*T1 (32 s)
    a.offer(response(), SRC, 0.0, 40.0)
    assert a.next(40.0) is None and a.figures.shed["stale"] == 2


def test_backlog_is_bounded_lowest_rank_oldest_first():
    a = admission(max_backlog=100)
    a.offer(request("INVITE", user="500", branch="z9hG4bKq", call_id="q"), SRC, 0.0, 0.0)
    flood(a, 150, 0.0, 0.01)
    assert a.figures.shed["backlog"] == 51
    out = drain(a, 0.01)
    served = [x for x in out if isinstance(x, Process)]
    assert served[0].rank is Rank.CENTRE and len(served) == 100
    assert sum(isinstance(x, Answer) for x in out) == 51


def test_figures_snapshot():
    a = admission()
    a.busy(0.0, 0.0)
    a.busy(0.5, 1.0)
    snap = a.snapshot(1.0)
    assert snap["mode"] == "normal" and snap["load"] == 0.5 and set(snap["shed"]) >= {"rejected", "stale"}


# ---------------------------------------------------------------------------------------- config

BASE = {"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "example.com"}, "store": {"path": "x.db"}}


def test_overload_config_defaults_and_errors():
    cfg = parse_config(BASE)
    assert cfg.overload.enabled and cfg.overload.max_delay_ms == 1000
    cfg = parse_config({**BASE, "overload": {"priority_numbers": ["4000"], "retry_after_min": 10,
                                             "retry_after_max": 60}})
    assert cfg.overload.priority_numbers == ["4000"]
    with pytest.raises(ConfigError, match=r"overload\.retry_after_min"):
        parse_config({**BASE, "overload": {"retry_after_min": 90, "retry_after_max": 60}})
    with pytest.raises(ConfigError, match=r"overload\.max_delay_ms"):
        parse_config({**BASE, "overload": {"max_delay_ms": 5}})
    with pytest.raises(ConfigError, match=r"overload\.shed"):
        parse_config({**BASE, "overload": {"shed": True}})


def test_for_switch_ranks_the_centres_numbers_agents_and_carriers():
    from softswitch.overload import for_switch

    cfg = parse_config({**BASE, "extensions": [{"number": "1002", "password": "secret-1002"}],
                        "acd": {"skills": [{"name": "s"}], "agents": [{"id": "2001", "name": "A", "extension": "1002",
                                                                       "skills": {"s": 5}}],
                                "queues": [{"name": "q", "skill": "s"}], "dialplan": [{"number": "500", "queue": "q"}]},
                        "trunks": [{"name": "carrier", "host": "203.0.113.5", "dids": {"+8675512345": "500"}}]})
    from softswitch.sip.transaction import TransactionLayer

    core = SimpleNamespace(registrar=SimpleNamespace(lookup=lambda aor, now: []), tl=TransactionLayer())
    a = for_switch(cfg, core, lambda: 0.0)
    cases = [(request("INVITE", user="500"), SRC, Rank.CENTRE),
             (request("INVITE", user="+8675512345"), SRC, Rank.CENTRE),            # the DID of the queue
             (request("INVITE", user="1003"), ("203.0.113.5", 5060), Rank.CENTRE),  # a customer via the carrier
             (request("INVITE", user="1003"), SRC, Rank.NEW),
             (request("REGISTER", user="1002"), SRC, Rank.CENTRE)]
    for data, src, rank in cases:
        a.offer(data, src, 0.0, 0.0)
        x = a.next(0.0)
        assert isinstance(x, Process) and x.rank is rank, (peek(data), src)


def test_udp_intake_drains_the_socket_serves_through_admission_and_sends():
    """The asyncio edge on a real socket: datagrams read with their kernel receive time, served in order,
    counted once; sendto reaches the peer; close releases the port."""
    import asyncio
    import socket

    from softswitch.overload.udp import UdpIntake

    async def main() -> None:
        counted: list[bytes] = []
        served: list = []
        server = SimpleNamespace(metrics=SimpleNamespace(sip_in=counted.append, sip_out=lambda data: None))
        intake = UdpIntake(server, admission(), lambda data, peer: served.append((data, peer)))  # type: ignore[arg-type]
        port = intake.open("127.0.0.1", 0, lambda sock: None)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        msgs = [request("OPTIONS", user=str(1000 + i), branch=f"z9hG4bKu{i}", call_id=f"u{i}") for i in range(5)]
        for m in msgs:
            client.sendto(m, ("127.0.0.1", port))
        for _ in range(200):
            if len(served) == 5:
                break
            await asyncio.sleep(0.01)
        assert [d for d, _ in served] == msgs and len(counted) == 5
        assert served[0][1].transport == "udp" and served[0][1].port == client.getsockname()[1]
        intake.sendto(b"pong", client.getsockname())
        for _ in range(200):
            try:
                assert client.recv(100) == b"pong"
                break
            except BlockingIOError:
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("nothing sent")
        assert intake.get_extra_info("sockname")[1] == port and not intake.is_closing()
        intake.close()
        assert intake.is_closing()
        client.close()
        again = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        again.bind(("127.0.0.1", port))  # the port is free again
        again.close()

    asyncio.run(main())


def test_a_retransmission_of_an_answered_request_gets_the_answer_without_a_parse():
    from softswitch.sip.message import Request, make_response
    from softswitch.sip.transaction import Peer, RequestReceived, TransactionLayer

    tl = TransactionLayer()
    a = Admission(OverloadConfig(), t1=0.5, resend=tl.answer_to_retransmission)
    data = request("OPTIONS", user="1004", branch="z9hG4bKopt", call_id="o")
    a.offer(data, SRC, 0.0, 0.0)
    served = a.next(0.0)
    assert isinstance(served, Process)
    msg = parse_message(served.data)
    assert isinstance(msg, Request)
    (ev,) = tl.receive(msg, Peer("udp", *SRC), 0.0)
    assert isinstance(ev, RequestReceived)
    (sent,) = tl.respond(ev.tx, make_response(msg, 200, to_tag="t1"), 0.0)
    a.offer(data, SRC, 0.6, 0.6)                        # the phone did not get it: the same 200, unparsed
    again = a.next(0.6)
    assert isinstance(again, Answer) and again.data == sent.data and a.next(0.6) is None
    assert a.figures.shed["retransmission"] == 1 and tl.retransmissions_received == 1
    # a request of another sender with the same branch is not a retransmission
    a.offer(data.replace(b"192.0.2.10:5060", b"192.0.2.11:5060"), SRC, 0.7, 0.7)
    assert isinstance(a.next(0.7), Process)


def test_what_cannot_be_served_in_time_is_refused_at_once():
    """Overloaded, serving 100 requests a second: with max_delay 0.4 s about 40 may wait; the rest of a
    burst of 300 gets its 503 at once, not after waiting 0.4 s for it."""
    a = admission()
    now = 0.0
    flood(a, 50, 0.0, 0.3, user=7000)            # a stall: overloaded
    a.next(0.3)
    assert a.mode is Mode.OVERLOADED
    now = 0.3
    for step in range(20):                        # serve 5 per 50 ms (100/s) while 10 arrive per 50 ms
        now += 0.05
        flood(a, 10, now - 0.01, now, user=8000 + 10 * step)
        for _ in range(5):
            while isinstance(a.next(now), Answer):
                pass
    assert a.rate is not None and 80 <= a.rate <= 120
    rejected = a.figures.shed["rejected"]
    flood(a, 300, now, now, user=20000)
    first = a.next(now)                           # the excess is answered before anything is served
    assert isinstance(first, Answer) and parse_message(first.data).status == 503
    assert a.figures.shed["rejected"] - rejected >= 250
    served = [x for x in drain(a, now) if isinstance(x, Process)]
    assert len(served) <= 50                      # about rate x 0.4 s were kept, and served newest first
    assert peek(served[0].data).to_user == "20299"
    for _ in range(60):                           # calm: normal again, and the next episode measures anew
        now += 0.1
        a.next(now)
    assert a.mode is Mode.NORMAL and a.rate is None


def test_a_reload_brings_new_priorities_and_limits():
    from softswitch.overload import for_switch, reconfigure
    from softswitch.sip.transaction import TransactionLayer

    core = SimpleNamespace(registrar=SimpleNamespace(lookup=lambda aor, now: []), tl=TransactionLayer())
    a = for_switch(parse_config(BASE), core, lambda: 0.0)
    a.offer(request("INVITE", user="4000"), SRC, 0.0, 0.0)
    assert a.next(0.0).rank is Rank.NEW
    reconfigure(a, parse_config({**BASE, "overload": {"priority_numbers": ["4000"], "max_delay_ms": 800}}))
    a.offer(request("INVITE", user="4000", branch="z9hG4bK2"), SRC, 0.0, 0.0)
    assert a.next(0.0).rank is Rank.CENTRE and a.max_delay == 0.8


def test_refusals_are_counted_by_rank():
    a = admission()
    flood(a, 20, 0.0, 0.0)
    a.offer(request("INVITE", user="500", branch="z9hG4bKq1", call_id="q1"), SRC, 0.0, 0.0)
    drain(a, 3.0)                                 # everything waited 3 s: refused
    snap = a.snapshot(3.0)
    assert snap["refused_by_rank"] == {"urgent": 0, "centre": 1, "answer": 0, "refresh": 0, "new": 20}


def test_a_byte_identical_copy_is_recognised_without_a_second_look(monkeypatch):
    import softswitch.overload.admission as admission_module

    looks = []
    monkeypatch.setattr(admission_module, "peek", lambda data: looks.append(data) or peek(data))
    a = admission()
    data = request("REGISTER", user="1010", branch="z9hG4bKcopy", call_id="copy")
    a.offer(data, SRC, 0.0, 0.0)
    a.offer(bytes(data), SRC, 0.5, 0.5)                   # the phone's retransmission: same bytes
    assert len(looks) == 1 and a.figures.shed["retransmission"] == 1
    a.offer(bytes(data), ("192.0.2.99", 5060), 0.6, 0.6)  # the same bytes from elsewhere: looked at
    assert len(looks) == 2


def test_a_low_service_rate_estimate_is_corrected_upwards_when_the_queue_runs_dry():
    a = admission()
    flood(a, 50, 0.0, 0.3)
    a.next(0.3)
    assert a.mode is Mode.OVERLOADED
    a.rate = 10.0                                  # far too low: everything beyond 20 waiting is refused
    now = 0.3
    for _ in range(4):                             # the queue is empty at every look: not saturated
        now += 0.26
        drain(a, now)
    assert a.rate is not None and a.rate > 15.0


# ------------------------------------------------------------------------------ the store's lag

def test_first_legs_wait_while_the_store_lags_and_answers_to_challenges_go_on():
    """A registration committed for longer than 0.4 x T1: refreshes and new REGISTERs (each a challenge
    now and a write later) are held back, without a busy loop; an answer to a challenge is served (its
    challenge is paid for); once the commit is done the held ones are served."""
    a = admission()
    write = a.write_started(0.0)
    a.offer(request("REGISTER", user="1003", branch="z9hG4bKr", call_id="r"), SRC, 0.1, 0.1)   # a refresh
    a.offer(request("REGISTER", user="1004", branch="z9hG4bKn", call_id="n"), SRC, 0.1, 0.1)   # a newcomer
    a.offer(request("REGISTER", user="1005", branch="z9hG4bKa", call_id="a", auth=True), SRC, 0.25, 0.25)
    assert a.ready(0.15)                           # 150 ms: within the budget (200 ms), nothing held
    first = a.next(0.25)                           # 250 ms: held; the answer to a challenge goes on
    assert isinstance(first, Process) and first.rank is Rank.ANSWER
    assert a.next(0.25) is None and a.pending and not a.ready(0.25)   # held: the edge does not spin
    assert a.figures.held == 1 and a.snapshot(0.25)["held_for_store"] == 1
    a.write_done(write, 0.3)
    assert a.ready(0.3)
    assert [x.rank for x in drain(a, 0.3)] == [Rank.REFRESH, Rank.NEW]


def test_a_lagging_store_counts_as_overload_and_held_requests_are_refused_as_they_age():
    a = admission()
    a.write_started(0.0)                           # never committed in this test
    flood(a, 10, 0.25, 0.25)
    assert a.next(0.25) is None and a.mode is Mode.OVERLOADED
    assert a.snapshot(0.25)["write_delay_ms"] == 250.0
    out = drain_held(a, 0.25 + 0.4 + 0.01)         # max_delay (0.4 s) later: every one answered 503
    assert len(out) == 10 and all(parse_message(x.data).status == 503 for x in out)


def drain_held(a: Admission, now: float) -> list:
    out = []
    while (x := a.next(now)) is not None:
        out.append(x)
    return out


def test_a_new_request_does_not_ask_the_transaction_layer_and_a_copy_of_a_waiting_one_nothing():
    asked = []

    def resend(branch: str, sent_by: tuple[str, int | None], method: str) -> bytes | None:
        asked.append(branch)
        return None

    a = Admission(OverloadConfig(), t1=0.5, resend=resend)
    data = request("REGISTER", user="1010", branch="z9hG4bKnew", call_id="new")
    a.offer(data, SRC, 0.0, 0.0)
    a.offer(data.replace(b";rport", b";rport;x"), SRC, 0.1, 0.1)   # not byte for byte: looked at, a copy
    a.offer(bytes(data), SRC, 0.2, 0.2)                             # byte for byte: absorbed at once
    assert asked == [] and a.figures.shed["retransmission"] == 2
    assert isinstance(a.next(0.2), Process) and a.next(0.2) is None
    a.offer(bytes(data), SRC, 0.6, 0.6)            # served before: the transaction layer may hold its answer
    assert asked == ["z9hG4bKnew"]
