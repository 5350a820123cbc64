"""Registering to a carrier: a sans-IO client state machine with digest and back-off.

Many carriers (and every "SIP account" style provider) deliver calls only to a contact we registered.
``Registration`` takes responses, time-outs and the time, and returns the REGISTER requests to send;
it never touches a socket or a clock. States (``RegState``) move through one transition table:

    idle ──start──▶ registering ──200──▶ registered ──refresh due──▶ registering
                        │  ▲                                             │
        error/time-out  ▼  │ back-off over          error/time-out       ▼
                       failed ◀──────────────────────────────────────────┘

A 401/407 is answered once per request with the trunk's credentials (a second challenge right after
our answer, not ``stale``, means they are wrong: failed). A 423 takes the carrier's Min-Expires. A
failure is retried after ``retry_min`` seconds, doubling up to ``retry_max`` (the carrier restarting
or unreachable is not hammered); a success resets the back-off. The refresh is sent well before the
granted expiry (80%, at least 5 s before), so a lost request still has time to be retried.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Mapping

from ..sip.digest import authorization_header, parse_auth_params
from ..sip.dialog import new_call_id, new_tag
from ..sip.message import Request, Response, new_request
from ..sip.transaction import new_branch
from ..states import move
from .config import Trunk

log = logging.getLogger("softswitch.trunks")


class RegState(str, Enum):
    IDLE = "idle"                  # not started (or the trunk does not register)
    REGISTERING = "registering"    # a REGISTER is out
    REGISTERED = "registered"      # the carrier has our contact
    FAILED = "failed"              # refused or unreachable: waiting for the back-off to retry

    def __str__(self) -> str:
        return self.value


REG_TRANSITIONS: Mapping[RegState, frozenset[RegState]] = {
    RegState.IDLE: frozenset({RegState.REGISTERING}),
    RegState.REGISTERING: frozenset({RegState.REGISTERED, RegState.FAILED, RegState.IDLE}),
    RegState.REGISTERED: frozenset({RegState.REGISTERING, RegState.FAILED, RegState.IDLE}),
    RegState.FAILED: frozenset({RegState.REGISTERING, RegState.IDLE}),
}


@dataclass(frozen=True)
class RegistrationStatus:
    """What the API and logs show of a registration (never the password)."""
    trunk: str
    state: str
    expires_in: float | None
    failures: int
    last_status: int
    last_error: str


class Registration:
    def __init__(self, trunk: Trunk, contact: str, via: Callable[[str], str], local_host: str):
        self.trunk = trunk
        self.contact = contact                  # "<sip:user@our-host:port>"
        self.via = via                          # branch -> the Via value for our address on the trunk's transport
        self.state = RegState.IDLE
        self.call_id = new_call_id(local_host)  # one Call-ID and From tag for every REGISTER (RFC 3261 §10.2)
        self.tag = new_tag()
        self.cseq = 0
        self.expires = trunk.register_expires   # what we ask for (a 423 raises it)
        self.granted_until: float | None = None
        self.failures = 0
        self.answered_challenge = False         # the request out now carries our answer to a challenge
        self.last_status = 0
        self.last_error = ""
        self.deadline: float | None = None      # next refresh or retry
        self.request: Request | None = None

    # ------------------------------------------------------------------------- inputs
    def start(self, now: float) -> list[Request]:
        return self._send(now, None, "start")

    def on_timer(self, now: float) -> list[Request]:
        if self.deadline is None or now < self.deadline:
            return []
        self.deadline = None
        if self.state is RegState.REGISTERING:
            return []  # the transaction's own time-out will tell
        return self._send(now, None, "refresh" if self.state is RegState.REGISTERED else "retry")

    def on_response(self, resp: Response, now: float) -> list[Request]:
        if self.state is not RegState.REGISTERING or resp.status < 200:
            return []
        self.last_status = resp.status
        if resp.status in (401, 407):
            return self._challenged(resp, now)
        if resp.status == 423:
            min_expires = resp.headers.get("Min-Expires") or ""
            if min_expires.strip().isdigit() and int(min_expires) > self.expires:
                self.expires = int(min_expires)
                return self._send(now, None, f"interval too brief: asking {self.expires} s")
        if 200 <= resp.status < 300 and self.expires == 0:
            log.info("trunk %s: unregistered from %s:%d", self.trunk.name, self.trunk.host, self.trunk.port)
            self._move(RegState.IDLE)
            return []
        if 200 <= resp.status < 300:
            granted = self._granted(resp)
            if granted <= 0:
                return self._fail(now, "the carrier kept no contact of ours")
            self.failures = 0
            self.last_error = ""
            self.granted_until = now + granted
            self.deadline = now + max(1.0, min(granted * 0.8, granted - 5.0))
            if self.state is not RegState.REGISTERED:
                log.info("trunk %s: registered to %s:%d (expires %d s)", self.trunk.name, self.trunk.host,
                         self.trunk.port, granted)
            self._move(RegState.REGISTERED)
            return []
        return self._fail(now, f"{resp.status} {resp.reason or ''}".strip())

    def on_timeout(self, now: float) -> list[Request]:
        if self.state is not RegState.REGISTERING:
            return []
        self.last_status = 408
        return self._fail(now, "no answer (time-out)")

    def kick(self, now: float) -> list[Request]:
        """Register now (the carrier came back up: its keep-alive answers again)."""
        if self.state is RegState.REGISTERING:
            return []
        return self._send(now, None, "the carrier is reachable again")

    def unregister(self, now: float) -> list[Request]:
        """At shutdown: Expires 0, so that the carrier stops sending calls to a contact that is going away
        (fire and forget: nobody waits for the answer). Nothing while we are not registered."""
        if self.state is not RegState.REGISTERED:
            return []
        self.expires = 0
        [req] = self._send(now, None, "shutting down")
        self.deadline = None
        return [req]

    def next_deadline(self) -> float | None:
        return self.deadline

    def status(self, now: float) -> RegistrationStatus:
        left = self.granted_until - now if self.granted_until is not None and self.state is RegState.REGISTERED else None
        return RegistrationStatus(self.trunk.name, self.state.value, None if left is None else max(0.0, left),
                                  self.failures, self.last_status, self.last_error)

    # ------------------------------------------------------------------------- internals
    def _move(self, new: RegState) -> None:
        self.state = move(self.state, new, REG_TRANSITIONS, f"registration of trunk {self.trunk.name}")

    def _challenged(self, resp: Response, now: float) -> list[Request]:
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        challenges = resp.headers.get_lines(header)
        stale = any(parse_auth_params(c)[1].get("stale", "").lower() == "true" for c in challenges if _parses(c))
        if self.answered_challenge and not stale:
            return self._fail(now, "credentials refused (challenged again)")
        t = self.trunk
        for c in challenges:
            if not _parses(c) or (t.realm and parse_auth_params(c)[1].get("realm") != t.realm):
                continue
            try:
                value = authorization_header(c, "REGISTER", self._uri(), t.auth_user, t.password, cnonce=new_tag())
            except ValueError:
                continue
            return self._send(now, ("Authorization" if resp.status == 401 else "Proxy-Authorization", value),
                              "")
        return self._fail(now, "no challenge we can answer (scheme, algorithm or realm)")

    def _fail(self, now: float, why: str) -> list[Request]:
        self.failures += 1
        self.last_error = why
        t = self.trunk
        delay = min(float(t.retry_max), float(t.retry_min) * 2 ** (self.failures - 1))
        self.deadline = now + delay
        self.granted_until = None
        log.warning("trunk %s: registration failed: %s; retrying in %d s", t.name, why, delay)
        self._move(RegState.FAILED)
        return []

    def _granted(self, resp: Response) -> int:
        """Seconds the carrier keeps our contact: its Contact's expires (ours, matched by URI), else Expires."""
        ours = self.contact.strip("<>").lower()
        for value in resp.headers.get_all("Contact"):
            uri_part, _, params = value.partition(">")
            if uri_part.strip().lstrip("<").lower() != ours:
                continue
            for p in params.split(";"):
                k, _, v = p.strip().partition("=")
                if k.lower() == "expires" and v.strip().isdigit():
                    return int(v)
        exp = resp.headers.get("Expires")
        if exp is not None and exp.strip().isdigit():
            return int(exp)
        return self.expires if resp.headers.get("Contact") else 0

    def _uri(self) -> str:
        t = self.trunk
        host = f"[{t.host}]" if ":" in t.host else t.host
        transport = "" if t.transport == "udp" else f";transport={t.transport}"
        return f"sip:{host}:{t.port}{transport}" if t.port != 5060 or transport else f"sip:{host}"

    def _send(self, now: float, auth: tuple[str, str] | None, why: str) -> list[Request]:
        t = self.trunk
        self.cseq += 1
        self.answered_challenge = auth is not None
        aor = f"sip:{t.username}@{t.domain}"
        req = new_request("REGISTER", self._uri(), [
            ("Via", self.via(new_branch())),
            ("Max-Forwards", "70"),
            ("From", f"<{aor}>;tag={self.tag}"),
            ("To", f"<{aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", self.contact),
            ("Expires", str(self.expires)),
        ])
        if auth is not None:
            req.headers.add(*auth)
        if why:  # refreshes are routine: DEBUG; starts, retries and recoveries: INFO
            log.log(logging.DEBUG if why == "refresh" else logging.INFO, "trunk %s: %s %s:%d (%s)",
                    t.name, "unregistering from" if self.expires == 0 else "registering to", t.host, t.port, why)
        self.request = req
        self.deadline = None
        self._move(RegState.REGISTERING)
        return [req]


def _parses(challenge: str) -> bool:
    try:
        parse_auth_params(challenge)
        return True
    except ValueError:
        return False
