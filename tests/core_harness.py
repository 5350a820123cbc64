"""Drive the sans-IO ``SwitchCore`` exactly: messages in, the messages it would send out, a fake clock.

Phones here are plain objects that write the SIP a real phone writes; no sockets are involved, so
every path (timers included) is deterministic.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from softswitch.config import parse_config
from softswitch.core import PersistBindings, SwitchCore
from softswitch.sip.digest import authorization_header
from softswitch.sip.message import ParseError, Request, Response, parse_message
from softswitch.sip.transaction import Peer, Send

DOMAIN = "callcenter.local"
SDP = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       b"m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
_counter = itertools.count(1)


def make_core(extensions: dict[str, str] | None = None, **sections) -> SwitchCore:
    exts = extensions or {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x"}
    data: dict = {
        "sip": {"listen": ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db"},
        "extensions": [{"number": n, "password": p, "name": f"Ext {n}"} for n, p in exts.items()],
    }
    data["media"] = {"enabled": False}  # SDP passes through unless a test asks for anchored media
    for name, values in sections.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:   # an array of tables ([[trunks]], [[dial_rules]])
            data[name] = values
    core = SwitchCore(parse_config(data), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    core.set_local("tcp", "127.0.0.1", 5060)
    return core


@dataclass
class Net:
    """Runs the core, committing PersistBindings at once, and records what it sends to whom."""

    core: SwitchCore
    now: float = 1_800_000_000.0
    sent: list[tuple[Peer, Request | Response]] = field(default_factory=list)
    persisted: list = field(default_factory=list)

    def _run(self, actions: list) -> list[tuple[Peer, Request | Response]]:
        out = []
        for a in actions:
            if isinstance(a, Send):
                try:
                    msg = parse_message(a.data, stream=a.peer.reliable)
                except ParseError as e:  # e.g. a 400 that echoes the malformed CSeq it answers
                    assert e.partial is not None, a.data[:200]
                    msg = e.partial
                out.append((a.peer, msg))
            elif isinstance(a, PersistBindings):
                self.persisted.extend(a.changes)
                out += self._run(self.core.after_persist(a, self.now))
        self.sent += out
        return out

    def deliver(self, data: bytes | str, peer: Peer) -> list[tuple[Peer, Request | Response]]:
        if isinstance(data, str):
            data = data.encode()
        return self._run(self.core.receive(data, peer, self.now))

    def advance(self, seconds: float) -> list[tuple[Peer, Request | Response]]:
        """Move the clock, firing every timer on the way in order."""
        end = self.now + seconds
        out = []
        while True:
            d = self.core.next_deadline()
            if d is None or d > end:
                break
            self.now = max(self.now, d)
            out += self._run(self.core.on_timer(self.now))
        self.now = end
        return out


@dataclass
class Phone:
    """A SIP phone at ``peer`` writing messages by hand."""

    net: Net
    user: str
    password: str
    peer: Peer
    contact_host: str | None = None
    tag: str = field(default_factory=lambda: f"t{next(_counter)}")
    cseq: int = 0

    def msg(self, method: str, ruri: str, *, to: str | None = None, call_id: str | None = None,
            cseq: int | None = None, extra: Sequence[str] = (), body: bytes = b"", branch: str | None = None,
            to_tag: str | None = None, from_tag: str | None = None) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        host = self.contact_host or self.peer.host
        t = self.peer.transport.upper()
        to_hdr = to or f"<sip:{self.user}@{DOMAIN}>"
        if to_tag:
            to_hdr += f";tag={to_tag}"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/{t} {host}:{self.peer.port};branch={branch or 'z9hG4bK' + str(next(_counter))}x;rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{DOMAIN}>;tag={from_tag or self.tag}",
            f"To: {to_hdr}",
            f"Call-ID: {call_id or str(next(_counter)) + '@' + host}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:{self.user}@{host}:{self.peer.port}>",
            *extra,
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, data: bytes) -> list[tuple[Peer, Request | Response]]:
        return self.net.deliver(data, self.peer)

    def register(self, expires: int = 300, *, password: str | None = None, algorithm: str = "MD5",
                 contact: str | None = None) -> Response:
        call_id = f"reg-{self.user}-{self.peer.port}@{self.peer.host}"
        extra = [f"Expires: {expires}"]
        first = self.send(self.msg("REGISTER", f"sip:{DOMAIN}", call_id=call_id, extra=extra))
        resp = responses(first)[-1]
        if resp.status != 401:
            return resp
        challenge = next(v for v in resp.headers.get_lines("WWW-Authenticate") if f"algorithm={algorithm}" in v)
        auth = authorization_header(challenge, "REGISTER", f"sip:{DOMAIN}", self.user, password or self.password)
        extra.append(f"Authorization: {auth}")
        data = self.msg("REGISTER", f"sip:{DOMAIN}", call_id=call_id, extra=extra)
        if contact is not None:
            data = data.replace(f"Contact: <sip:{self.user}@{self.contact_host or self.peer.host}:{self.peer.port}>".encode(),
                                f"Contact: {contact}".encode())
        return responses(self.send(data))[-1]

    def invite(self, number: str, *, body: bytes = SDP, call_id: str | None = None,
               password: str | None = None) -> tuple[bytes, list]:
        """Authenticated INVITE: returns (the INVITE sent, what the switch sent in answer)."""
        call_id = call_id or f"call-{next(_counter)}@{self.peer.host}"
        ruri = f"sip:{number}@{DOMAIN}"
        to = f"<sip:{number}@{DOMAIN}>"
        first = self.msg("INVITE", ruri, to=to, call_id=call_id, body=body)
        out = self.send(first)
        r407 = [m for _, m in out if isinstance(m, Response) and m.status == 407]
        assert r407, out
        ack = self.msg("ACK", ruri, to=to, call_id=call_id, cseq=self.cseq, to_tag=r407[0].to.tag)
        self.send(ack)
        challenge = r407[0].headers.get("Proxy-Authenticate")
        assert challenge is not None, r407[0]
        auth = authorization_header(challenge, "INVITE", ruri, self.user, password or self.password)
        data = self.msg("INVITE", ruri, to=to, call_id=call_id, body=body, extra=[f"Proxy-Authorization: {auth}"])
        return data, self.send(data)


def responses(out: list) -> list[Response]:
    return [m for _, m in out if isinstance(m, Response)]


def requests(out: list, method: str | None = None) -> list[tuple[Peer, Request]]:
    return [(p, m) for p, m in out if isinstance(m, Request) and (method is None or m.method == method)]


def answer(req: Request, status: int, *, to_tag: str = "calleetag", contact: str | None = None,
           body: bytes = b"") -> bytes:
    """The response a phone writes to ``req``."""
    lines = [f"SIP/2.0 {status} X"]
    lines += [f"Via: {v}" for v in req.headers.get_lines("Via")]
    to = req.headers.get("To") or ""
    if ";tag=" not in to and status > 100:
        to += f";tag={to_tag}"
    lines += [f"From: {req.headers.get('From')}", f"To: {to}", f"Call-ID: {req.call_id}",
              f"CSeq: {req.headers.get('CSeq')}"]
    if contact:
        lines.append(f"Contact: {contact}")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def in_dialog(method: str, *, ruri: str, from_: str, to: str, call_id: str, cseq: int, via_host: str,
              via_port: int, body: bytes = b"", extra: Sequence[str] = ()) -> bytes:
    lines = [f"{method} {ruri} SIP/2.0",
             f"Via: SIP/2.0/UDP {via_host}:{via_port};branch=z9hG4bK{next(_counter)}d;rport",
             "Max-Forwards: 70", f"From: {from_}", f"To: {to}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
             *extra]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
