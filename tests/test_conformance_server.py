"""RFC 4475 / RFC 5118 torture tests against the switch (B2BUA + registrar role).

Each corpus message (../shared/conformance) is delivered as one UDP datagram to a fresh sans-IO
``SwitchCore`` and judged by the manifest:

* requests get at most one response (exactly one here: every request in the corpus has a Via to
  answer to), whose status is in ``expected_status`` (any 4xx when the list is empty) when the
  manifest says ``reject``; role-dependent cases use the B2BUA's roles (``endpoint`` towards the
  phones, ``registrar`` for REGISTER); ``reject-or-repair`` cases may be answered with the error or
  liberally processed;
* valid requests are processed: unauthenticated, an INVITE is challenged (407), a REGISTER gets 401,
  an OPTIONS 200, an out-of-dialog BYE or re-INVITE 481, a MESSAGE 405;
* responses are never answered (and the ``bcast`` one is never sent to 255.255.255.255);
* nothing raises and nothing is logged as an error (the core turns handler exceptions into 500s).

The last test sends the whole corpus to the real switch process over UDP.
"""
from __future__ import annotations

import logging
import re
import select
import time
import uuid

import pytest

from softswitch.core import PersistBindings
from softswitch.sip.digest import authorization_header
from softswitch.sip.message import ParseError, Request, Response, parse_message
from softswitch.sip.transaction import Peer, Send
from softswitch.sip.uri import parse_name_addr, parse_uri

from .conformance_corpus import CORPUS, Case, load, params
from .conftest import UdpClient
from .core_harness import Net, make_core, responses

PEER = Peer("udp", "192.0.2.50", 5062)
NOW = 1_800_000_000.0

# What processing an unauthenticated, valid request yields at the switch, by method.
PROCESSED = {"INVITE": {407}, "REGISTER": {401}, "OPTIONS": {200}, "BYE": {481}, "MESSAGE": {405}}
IN_DIALOG = {"INVITE": {481}, "BYE": {481}, "OPTIONS": {481}}  # To tag but no such dialog

# The verdict for role-dependent cases, in the roles a B2BUA plays (RFC 4475's own words in the
# manifest's ``roles``): the statuses allowed, or "process" to be processed as if valid.
ROLE_VERDICT: dict[str, set[int] | str] = {
    "intmeth": {501},    # endpoint: 501 listing the methods it understands (Allow)
    "esc02": {501},      # endpoint: RE%47IST%45R is an unknown method, not REGISTER
    "unksm2": {400},     # registrar: the To must be a SIP or SIPS URI
    "invut": {415},      # endpoint: 415 Unsupported Media Type
    "regaut01": {401},   # registrar with authentication: 401 with a new challenge
    "zeromf": "process",  # endpoint: process as if Max-Forwards were still positive
}


def decode(data: bytes) -> Request | Response:
    """What the switch sent. Its stateless 4xx copy the request's (malformed) Via, From, To... as
    RFC 3261 requires, so our own strict parser may refuse them: fall back to the partial message."""
    try:
        return parse_message(data)
    except ParseError as e:
        assert e.partial is not None, data[:200]
        return e.partial


def request_view(case: Case) -> Request | Response | None:
    try:
        return parse_message(case.data)
    except ParseError as e:
        return e.partial


def deliver(core, case: Case, peer: Peer = PEER) -> list[tuple[Peer, Request | Response]]:
    actions = core.receive(case.data, peer, NOW)
    assert isinstance(actions, list)
    out = []
    for a in actions:
        assert not isinstance(a, PersistBindings), f"{case.id}: nothing may be registered unauthenticated"
        if isinstance(a, Send):
            out.append((a.peer, decode(a.data)))
    return out


@pytest.fixture
def no_errors_logged(caplog):
    caplog.set_level(logging.WARNING, logger="softswitch")
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in errors)


def _expected(case: Case, req: Request | None) -> tuple[set[int] | None, bool]:
    """(allowed statuses, None = any 4xx; whether a liberal 'processed' answer is also fine)."""
    m = case.m
    action = m["action"]
    if action == "process":
        return _processed_statuses(req), False
    if action == "role-dependent":
        v = ROLE_VERDICT[case.name]
        return (_processed_statuses(req), False) if isinstance(v, str) else (set(v), False)  # str: "process"
    if action == "reject-or-repair":
        assert m["liberal_accept_allowed"]
        return (set(m["expected_status"]) or None), True
    assert action == "reject", action
    return (set(m["expected_status"]) or None), False


def _processed_statuses(req: Request | None) -> set[int]:
    assert isinstance(req, Request)
    try:
        tagged = bool(req.to.tag)
    except ValueError:
        tagged = False
    table = IN_DIALOG if tagged and req.method != "REGISTER" else PROCESSED
    return table[req.method]


@pytest.mark.parametrize("case", params())
def test_switch_verdict(case: Case, no_errors_logged):
    core = make_core()
    out = deliver(core, case)
    sent_to = {p.host for p, _ in out}
    assert "255.255.255.255" not in sent_to
    answers = [m for _, m in out if isinstance(m, Response)]
    if not case.is_request:
        assert out == [], f"{case.id}: a response must never be answered or forwarded: {out}"
        return
    assert len(answers) <= 1, f"{case.id}: answered more than once: {[r.status for r in answers]}"
    assert len(answers) == 1, f"{case.id}: a request with a Via must be answered"
    assert all(isinstance(m, Response) for _, m in out), f"{case.id}: nothing but the answer is sent: {out}"
    (resp,) = answers
    peer, _ = out[0]
    assert peer.host == PEER.host and peer.transport == "udp"

    req = request_view(case)
    allowed, liberal = _expected(case, req if isinstance(req, Request) else None)
    status = resp.status
    ok = status in allowed if allowed is not None else 400 <= status <= 499
    if not ok and liberal and isinstance(req, Request):
        ok = status in _processed_statuses(req)  # the RFC allows repairing and processing it
    assert ok, (f"{case.id} ({case.m['verdict']}, action {case.m['action']}): answered {status} "
                f"{resp.reason!r}, expected {sorted(allowed) if allowed else 'a 4xx'}"
                + (" or normal processing" if liberal else ""))
    if case.m["action"] == "process" or ROLE_VERDICT.get(case.name) == "process":
        assert status != 400

    # The answer belongs to the request: Call-ID and CSeq copied when the request had them.
    if isinstance(req, Request):
        for name in ("Call-ID", "CSeq"):
            if req.headers.get(name) is not None:
                assert resp.headers.get(name) == req.headers.get(name), name
        if status >= 200 and req.headers.get("To") is not None:
            to = resp.headers.get("To")
            assert to is not None and ";tag=" in to.replace(" ", ""), to


def _only(case_name: str) -> Case:
    return next(c for rfc in ("rfc4475", "rfc5118") for c in load(rfc) if c.name == case_name)


def _answer(name: str) -> Response:
    out = deliver(make_core(), _only(name))
    (resp,) = [m for _, m in out if isinstance(m, Response)]
    return resp


def test_role_specific_details():
    resp = _answer("intmeth")
    assert resp.status == 501 and "INVITE" in resp.headers.get("Allow")
    resp = _answer("bext01")
    assert resp.status == 420
    assert {t.strip() for t in resp.headers.get("Unsupported").split(",")} == {
        "nothingSupportsThis", "nothingSupportsThisEither"}
    resp = _answer("regaut01")
    assert resp.status == 401
    assert all(v.startswith("Digest ") for v in resp.headers.get_lines("WWW-Authenticate"))
    resp = _answer("sdp01")
    if resp.status == 406:
        assert (resp.headers.get("Warning") or "").startswith("399 ")
    assert _answer("badvers").status == 505
    assert _answer("unkscm").status == 416
    assert _answer("invut").status == 415
    assert _answer("zeromf").status == 200  # a B2BUA is an endpoint here: not 483
    assert _answer("mismatch02").status == 501


@pytest.mark.parametrize("case", params([c for rfc in ("rfc4475", "rfc5118") for c in load(rfc) if c.is_request]))
def test_retransmission_gets_the_same_single_answer(case: Case, no_errors_logged):
    core = make_core()
    first = [m.status for _, m in deliver(core, case) if isinstance(m, Response)]
    second = [m.status for _, m in deliver(core, case) if isinstance(m, Response)]
    assert len(second) <= 1 and second == first


@pytest.mark.parametrize("case", params())
def test_stream_delivery_never_raises(case: Case, no_errors_logged):
    """The same messages as if framed off a TCP connection: never an exception, at most one answer."""
    out = deliver(make_core(), case, Peer("tcp", "192.0.2.50", 40000, conn_id=7))
    answers = [m for _, m in out if isinstance(m, Response)]
    assert len(answers) <= (1 if case.is_request else 0)


@pytest.mark.e2e
def test_corpus_sent_to_the_real_switch(switch, udp_client_factory):
    """Every corpus file (RFC 5118's archived originals and the unreferenced test.dat too) as one UDP
    datagram to the running switch: it stays up, never answers twice with different statuses, answers
    an OPTIONS afterwards and logs no traceback."""
    files = sorted(CORPUS.glob("rfc4475/*.dat")) + sorted(CORPUS.glob("rfc5118/*.dat")) \
        + sorted(CORPUS.glob("rfc5118/wire/*.dat"))
    assert len(files) == 50 + 12 + 12
    # One socket per file: the RFC 5118 messages share one Call-ID, and a file's archived and wire
    # forms share their branch, so answers are told apart by where they arrive.
    clients: list[tuple[str, UdpClient]] = []
    for path in files:
        c = udp_client_factory(switch.port)
        c.send(path.read_bytes())  # bytes: sent exactly as stored
        clients.append((f"{path.parent.name}/{path.name}", c))
        time.sleep(0.002)  # pacing: 74 datagrams in a burst could overflow the switch's receive buffer
    answers: dict[str, set[int]] = {}
    by_sock = {c.sock: name for name, c in clients}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # until 0.5 s pass without anything arriving
        ready, _, _ = select.select(list(by_sock), [], [], 0.5)
        if not ready:
            break
        for sock in ready:
            data, src = sock.recvfrom(65535)
            if src[1] != switch.port:
                continue  # not from the switch (RTP of another test or bench on this machine)
            msg = decode(data)
            assert isinstance(msg, Response), (by_sock[sock], data[:200])
            answers.setdefault(by_sock[sock], set()).add(msg.status)
    assert len(answers) > 40, f"the switch answered only {sorted(answers)}"
    conflicting = {name: s for name, s in answers.items() if len(s) > 1}
    assert not conflicting, conflicting  # one answer per request (retransmitted copies are the same)
    for name in ("rfc4475/unreason.dat", "rfc4475/noreason.dat", "rfc4475/bcast.dat",
                 "rfc4475/scalarlg.dat", "rfc4475/bigcode.dat"):
        assert name not in answers, f"{name} is a response: never answered"
    client = clients[-1][1]

    assert switch.proc.poll() is None, switch.log()[-3000:]
    call_id = f"{uuid.uuid4().hex}@127.0.0.1"
    client.send(
        f"OPTIONS sip:{switch.addr} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{client.port};branch=z9hG4bK{uuid.uuid4().hex};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=probe1\r\nTo: <sip:" + switch.addr + ">\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
    deadline = time.monotonic() + 5
    resp = None
    while time.monotonic() < deadline:
        data = client.recv(timeout=1.0)
        if data is None:
            continue
        msg = decode(data)
        if isinstance(msg, Response) and msg.headers.get("Call-ID") == call_id:
            resp = msg
            break
    assert resp is not None and resp.status == 200, switch.log()[-3000:]
    assert switch.proc.poll() is None
    assert "Traceback" not in switch.log(), switch.log()[-5000:]


# ------------------------------------------------------------------ registrar, authenticated

def _authenticated_register(name: str, aor_user: bytes) -> tuple[Net, Peer, list, bytes, str]:
    """The corpus REGISTER with its AOR user replaced by extension 1001 (extension numbers are digits),
    answered to the 401 challenge. Returns the network, the peer, what the switch sent in answer to
    the authenticated REGISTER, that request, and the challenge."""
    net = Net(make_core())
    peer = Peer("udp", "192.0.2.60", 5060)
    data = _only(name).data.replace(aor_user + b"@", b"1001@")
    (r401,) = responses(net.deliver(data, peer))
    assert r401.status == 401
    challenge = next(v for v in r401.headers.get_lines("WWW-Authenticate") if "MD5" in v)
    register = parse_message(data)
    assert isinstance(register, Request)
    auth = authorization_header(challenge, "REGISTER", register.uri, "1001", "pw-1001-x")
    i = data.index(b"\r\n") + 2
    data = data[:i] + b"Authorization: " + auth.encode() + b"\r\n" + data[i:]
    data = re.sub(rb"branch=(\S+)", rb"branch=\1-2", data, count=1)  # a new transaction
    return net, peer, net.deliver(data, peer), data, challenge


def _binding_uris(resp: Response) -> list[str]:
    return [str(parse_name_addr(c).uri) for c in resp.headers.get_all("Contact")]


def test_registrar_role_cparam01_contact_param_is_not_a_uri_param():
    net, peer, out, _, challenge = _authenticated_register("cparam01", b"watson")
    (ok,) = responses(out)
    assert ok.status == 200
    assert _binding_uris(ok) == ["sip:+19725552222@gw1.example.net"]
    assert [c.contact_uri for _, c in net.persisted] == ["sip:+19725552222@gw1.example.net"]
    # a later fetch (REGISTER without Contact) shows the same binding
    auth = authorization_header(challenge, "REGISTER", "sip:example.com", "1001", "pw-1001-x", nc=2)
    fetch = ("REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKfetch1\r\n"
             "Max-Forwards: 70\r\nFrom: sip:1001@example.com;tag=fetch1\r\nTo: sip:1001@example.com\r\n"
             "Call-ID: cparam01.70710@saturn.example.com\r\nCSeq: 3 REGISTER\r\n"
             f"Authorization: {auth}\r\nContent-Length: 0\r\n\r\n").encode()
    (r,) = responses(net.deliver(fetch, peer))
    assert r.status == 200 and _binding_uris(r) == ["sip:+19725552222@gw1.example.net"]


def test_registrar_role_cparam02_uri_param_is_kept():
    net, _, out, _, _ = _authenticated_register("cparam02", b"watson")
    (ok,) = responses(out)
    assert ok.status == 200 and _binding_uris(ok) == ["sip:+19725552222@gw1.example.net;unknownparam"]


def test_registrar_role_regescrt_keeps_the_escaped_route_header():
    net, _, out, _, _ = _authenticated_register("regescrt", b"user")
    (ok,) = responses(out)
    assert ok.status == 200 and _binding_uris(ok) == ["sip:1001@example.com?Route=%3Csip:sip.example.com%3E"]


def test_registrar_role_escnull_registers_two_distinct_contacts():
    net, _, out, _, _ = _authenticated_register("escnull", b"null-%00-null")
    (ok,) = responses(out)
    assert ok.status == 200
    uris = _binding_uris(ok)
    assert sorted(uris) == ["sip:%00%00@host5.example.com", "sip:%00@host5.example.com"]
    assert sorted(parse_uri(u).user_unescaped for u in uris) == ["\x00", "\x00\x00"]


def test_registrar_role_regbadct_is_rejected_or_repaired():
    """Contact: sip:user@example.com?Route=... without <>: 400, or (liberal) the inferred name-addr."""
    net, _, out, _, _ = _authenticated_register("regbadct", b"user")
    (r,) = responses(out)
    assert r.status == 400 or (r.status == 200 and _binding_uris(r) == [
        "sip:1001@example.com?Route=%3Csip:sip.example.com%3E"]), (r.status, r.headers.get_all("Contact"))
