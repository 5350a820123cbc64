"""A hostile SIP/HTTP peer for the hardening tests (no tests here): raw sockets bound to any loopback address
(127.0.0.x), hand-written REGISTERs, digest answers computed by hand (with or without qop, for any URI),
replays, and HTTP from a chosen source address.

Linux routes all of 127.0.0.0/8 to the loopback interface, so a socket bound to 127.0.0.5 reaches a switch on
127.0.0.1 and the switch sees 127.0.0.5 as the source: other hosts, without network namespaces. A *spoofed*
source is modelled by a socket bound to the victim's address that never reads its replies (a spoofer
cannot see them).
"""
from __future__ import annotations

import http.client
import itertools
import json
import socket
from typing import Any

from softswitch.sip.digest import authorization_header, compute_ha1, compute_response, parse_auth_params
from softswitch.sip.message import Response, parse_message

from .conftest import DOMAIN

_n = itertools.count(1)


class SipPeer:
    """UDP from ``host`` (any 127.0.0.x) to the switch on 127.0.0.1:``port``."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.local_port = self.sock.getsockname()[1]
        self.target = ("127.0.0.1", port)
        self.cseq = 0

    def close(self) -> None:
        self.sock.close()

    def register_msg(self, user: str, *, auth: str | None = None, contact_port: int | None = None,
                     call_id: str | None = None, expires: int = 300, ruri: str = f"sip:{DOMAIN}") -> bytes:
        self.cseq += 1
        lines = [
            f"REGISTER {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.local_port};branch=z9hG4bK{next(_n)}hx;rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag=h{next(_n)}",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: {call_id or f'reg-{user}-{self.host}-{self.local_port}'}",
            f"CSeq: {self.cseq} REGISTER",
            f"Contact: <sip:{user}@{self.host}:{contact_port or self.local_port}>",
            f"Expires: {expires}",
        ]
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 3.0) -> Response | None:
        """The next final response (provisional ones skipped); None on silence."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65535)
            except (socket.timeout, ConnectionRefusedError):
                return None
            msg = parse_message(data)
            if isinstance(msg, Response) and msg.status >= 200:
                return msg

    def challenge(self, user: str, timeout: float = 3.0, algorithm: str = "MD5") -> str | None:
        """A WWW-Authenticate (for ``algorithm``) the switch issues to this address for ``user``; None if it is
        silent."""
        self.send(self.register_msg(user))
        r = self.recv(timeout)
        if r is None:
            return None
        assert r.status == 401, r.status
        return next(v for v in r.headers.get_lines("WWW-Authenticate") if f"algorithm={algorithm}" in v)

    def register(self, user: str, password: str, *, qop: bool = True, contact_port: int | None = None,
                 timeout: float = 3.0, algorithm: str = "MD5") -> tuple[Response | None, str]:
        """Challenge, answer; returns (the final response or None, the Authorization sent)."""
        ch = self.challenge(user, timeout, algorithm)
        if ch is None:
            return None, ""
        auth = answer(ch, user, password, qop=qop)
        self.send(self.register_msg(user, auth=auth, contact_port=contact_port))
        return self.recv(timeout), auth


def answer(challenge: str, user: str, password: str, *, qop: bool = True, uri: str = f"sip:{DOMAIN}",
           method: str = "REGISTER", nc: int = 1) -> str:
    """A digest answer; qop=False writes the RFC 2069 form (no qop/nc/cnonce) even to a qop challenge."""
    if qop:
        return authorization_header(challenge, method, uri, user, password, nc=nc)
    _, p = parse_auth_params(challenge)
    alg = p.get("algorithm", "MD5")
    ha1 = compute_ha1(user, p["realm"], password, alg)
    resp = compute_response(ha1, method, uri, p["nonce"], alg)
    return (f'Digest username="{user}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="{uri}", '
            f'response="{resp}", algorithm={alg}, opaque="{p.get("opaque", "")}"')


def http_from(source: str, port: int, method: str, path: str, body: Any = None,
              headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any, dict]:
    """One HTTP request to the API on 127.0.0.1:``port`` from the address ``source``. Header values may hold any
    characters (http.client sends them as Latin-1 bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        content = r.read()
        hdrs = {k: v for k, v in r.getheaders()}
        ctype = hdrs.get("Content-Type", "")
        return r.status, (json.loads(content) if "json" in ctype and content else content), hdrs
    finally:
        conn.close()
