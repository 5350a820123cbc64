"""The switch's sans-IO core: bytes and time in, actions out.

``SwitchCore.receive(data, peer, now)`` parses a datagram or framed stream message, applies the
safety checks (size, parse errors, bans, blacklist), runs it through the transaction layer and
dispatches to the registrar or the B2BUA. The asyncio edge (``transport.py``) only moves bytes,
commits ``PersistBindings`` to the store, and calls ``on_timer`` at ``next_deadline()``.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

from .b2bua import ALLOW, B2BUA
from .call_limits import CallLimits
from .router import Router
from .screening import CallerLists
from .config import Config
from .registrar import Change, Registrar, received_to_peer
from .security import BanPolicy, BanTracker, ChallengeWatch
from .sip.digest import DigestAuthenticator, NonceManager, uri_host
from .sip.limits import over_limits, reply_head
from .sip.message import ParseError, Request, Response, make_response, parse_message
from .sip.transaction import (
    AckTimeout,
    Peer,
    RequestReceived,
    ResponseReceived,
    Send,
    StrayResponse,
    Timers,
    TransactionLayer,
    TransactionTimeout,
)
from .sip.uri import SipUri, parse_uri
from .trunks.config import Trunk
from .trunks.dialer import channels_in_use
from .trunks.identify import inbound as trunk_inbound
from .trunks.runtime import TrunkRuntime
from .trunks.table import TrunkTable

log = logging.getLogger("softswitch.core")

SUPPORTED: frozenset[str] = frozenset({"path", "outbound", "replaces"})
ACCEPTED_BODIES = ("application/sdp", "application/dtmf-relay", "application/dtmf", "text/plain",
                   "application/media_control+xml", "message/sipfrag", "multipart/mixed")


@dataclass
class PersistBindings:
    """Commit ``changes`` to the store, then call ``core.after_persist(self, now)`` for the actions
    (the 200 OK): a registration is acknowledged only once it is durable."""
    changes: list[Change]
    tx: Any = None
    response: Response | None = None


@dataclass
class Stats:
    received: int = 0
    parse_errors: int = 0
    dropped_banned: int = 0
    auth_failures: int = 0
    bans: int = 0


class SwitchCore:
    def __init__(self, config: Config, *, secret: bytes | None = None, media_workers: int = 0):
        """``media_workers``: media worker processes (``media_worker_count``); the edge that starts the switch
        decides, so a core built in a test (no event loop, no processes) always carries its media in-process."""
        self.config = config
        sip = config.sip
        self.tl = TransactionLayer(Timers(t1=sip.t1_ms / 1000, t2=sip.t2_ms / 1000, t4=sip.t4_ms / 1000))
        self.set_nonce_secret(secret or secrets.token_bytes(32))
        self.challenges = ChallengeWatch()  # challenged phones that never answer (cannot do the algorithm)
        sec = config.security
        trunk_nets = tuple(TrunkTable.from_config(config).identifier.addresses())  # carriers are never banned
        self.bans = BanTracker(BanPolicy(max_failures=sec.max_auth_failures, window=float(sec.failure_window),
                                         ban_time=float(sec.ban_time), exempt=tuple(sec.ban_exempt) + trunk_nets))
        self.registrar = Registrar(config)
        self.media = make_media_engine(config, media_workers) if config.media.enabled else None
        self.out: list = []  # the one output path: SIP to send, events and work for the edge
        self.b2bua = B2BUA(self, self.out)
        self.call_limits = CallLimits()   # calls one extension may place at once and per minute
        self.router = Router(self.b2bua, config, self.out)
        self.trunk_runtime = TrunkRuntime(self, self.router.trunks)  # registrations and keep-alives to carriers
        self.router.dialer.is_up = self.trunk_runtime.is_up
        self.router.dialer.targets = self.trunk_runtime.targets_for   # named trunks' RFC 3263 targets
        self.lists = CallerLists.from_config(config)
        if self.router.ivr.ivr is not None:
            lists = self.lists
            self.router.ivr.ivr.screen = lambda caller, block, warn, wall: (
                (v := lists.check(caller, wall, block=block, warn=warn)).blocked, v.warned)
        self.local: dict[str, tuple[str, int]] = {}
        # modules with a table of their own swap it on a config reload: fn(old, new, now) (softswitch.reload)
        self.reloaders: list = []
        self.stats = Stats()
        self.banned_now: list[tuple[str, float]] = []  # new bans (address, until) for the edge to persist
        self._next_expiry_sweep = 0.0

    def set_trunks(self, config: Config, now: float) -> None:
        """A reload's new ``[[trunks]]``/``[[dial_rules]]``/``[numbering]`` (``softswitch.reload``): the
        router's table is swapped (calls in progress keep their trunks), registrations and keep-alives of
        unchanged trunks go on, changed or new ones start afresh (their requests go to the outbox)."""
        table = TrunkTable.from_config(config)
        self.router.set_trunks(table)
        self.trunk_runtime.set_table(table, now)

    def trunk_located(self, name: str, query: Any, located: Any, now: float) -> list:
        """The edge's answer to a ``ResolveTrunk`` (a trunk's RFC 3263 targets, ``trunks.locate``)."""
        self._guard(self.trunk_runtime.on_located, name, query, located, now)
        return self.drain(now)

    def unregister_trunks(self, now: float) -> list:
        """At shutdown: REGISTER with Expires 0 to every carrier we are registered to (the edge sends it
        before it closes its sockets)."""
        self._guard(self.trunk_runtime.unregister_all, now)
        return self.drain(now)

    def set_nonce_secret(self, secret: bytes) -> None:
        """The key that signs digest nonces. The edge passes the one kept in the store's directory, so
        nonces issued before a restart stay good (phones re-register without a new challenge)."""
        sip = self.config.sip
        self.nonces = NonceManager(secret, lifetime=float(sip.nonce_lifetime))
        self.auth = DigestAuthenticator(sip.realm, self._password_for, self.nonces,
                                        algorithms=tuple(sip.auth_algorithms), ha1_for=self._ha1_for)

    # ---------------------------------------------------------------------- addressing
    def set_local(self, transport: str, host: str, port: int) -> None:
        """The edge reports each bound listener; its address goes into our Via and Contact."""
        self.local.setdefault(transport, (self.config.sip.advertised_address or host, port))

    def _local_for(self, transport: str) -> tuple[str, int]:
        if transport in self.local:
            return self.local[transport]
        return next(iter(self.local.values()), ("127.0.0.1", 5060))

    def via(self, peer: Peer, branch: str) -> str:
        host, port = self._local_for(peer.transport)
        return f"SIP/2.0/{peer.transport.upper()} {_host(host)}:{port};branch={branch};rport"

    def contact(self, peer: Peer) -> str:
        host, port = self._local_for(peer.transport)
        t = "" if peer.transport == "udp" else f";transport={peer.transport}"
        return f"<sip:{_host(host)}:{port}{t}>"

    def binding_peer(self, binding: Any) -> Peer:
        """Where to reach a registered contact. ``[sip] nat``: "auto" sends to the address the REGISTER
        came from when the Contact names another host (a phone behind NAT advertising its private
        address) or when it registered over TCP/TLS (reuse its connection; it may not accept ours);
        "force" always does (Asterisk's force_rport + rewrite_contact); "never" trusts the Contact."""
        u = parse_uri(binding.contact_uri)
        assert isinstance(u, SipUri)
        contact = Peer(u.transport or "udp", u.host.strip("[]"), u.port or (5061 if u.scheme == "sips" else 5060))
        if not binding.received:
            return contact
        received = received_to_peer(binding.received)
        mode = getattr(self.config.sip, "nat", "auto")
        if mode == "never":
            return contact
        if mode == "force" or received.reliable or contact.host != received.host:
            return received
        return contact

    def _password_for(self, user: str) -> str | None:
        ext = self.config.extension(user)
        return ext.password if ext is not None and ext.enabled and ext.password else None

    def _ha1_for(self, user: str, algorithm: str) -> str | None:
        """The configured HA1 (``ha1_md5``/``ha1_sha256``) of an enabled extension, else None (then its
        plain password, if any, is hashed)."""
        ext = self.config.extension(user)
        return ext.ha1(algorithm) if ext is not None and ext.enabled else None

    def streams_in_use(self, now: float) -> set[tuple[str, str, int]]:
        """(transport, host, port) of the TCP/TLS peers the switch still needs: the connections registered
        phones came in on and those of live calls' legs (the edge closes other idle connections)."""
        out: set[tuple[str, str, int]] = set()
        for table in self.registrar._bindings.values():
            for b in table.values():
                if b.received and not b.received.startswith("udp:") and b.expires_at > now:
                    p = received_to_peer(b.received)
                    out.add((p.transport, p.host, p.port))
        for call in self.b2bua.calls.values():
            for leg in (getattr(call, "caller", None), *call.callees):
                peer = getattr(leg, "peer", None)
                if peer is not None and peer.reliable:
                    out.add((peer.transport, peer.host, peer.port))
        return out

    # ---------------------------------------------------------------------------- input
    def receive(self, data: bytes, peer: Peer, now: float) -> list:
        self.stats.received += 1
        if self.bans.is_banned(peer.host, now):
            self.stats.dropped_banned += 1
            return []  # like fail2ban: a banned address gets no answer at all
        if len(data) > self.config.sip.max_message_size:
            head = reply_head(data)  # only what the answer needs: parsing it whole is what it must not cost
            return self._stateless_error(head, peer, 513, "Message Too Large") if head is not None else []
        sip = self.config.sip
        too_many = over_limits(data, sip.max_headers, sip.max_via)
        if too_many is not None:
            self.stats.parse_errors += 1
            log.debug("refused unparsed from %s:%s: %s", peer.host, peer.port, too_many)
            head = reply_head(data)
            return self._stateless_error(head, peer, 400, too_many) if head is not None else []
        try:
            msg = parse_message(data, stream=peer.reliable)
        except ParseError as e:
            self.stats.parse_errors += 1
            partial = e.partial
            if isinstance(partial, Request) and partial.method != "ACK":
                log.debug("bad request from %s:%s: %s", peer.host, peer.port, e.reason)
                return self._reply_stateless(partial, peer, e.status, e.reason[:120])
            return []  # unparseable or a bad response: drop (RFC 3261 §18.3 / RFC 4475)
        if isinstance(msg, Request):
            _stamp_received(msg, peer)
        self._handle_events(self.tl.receive(msg, peer, now), now)
        return self.drain(now)

    def on_timer(self, now: float) -> list:
        self._handle_events(self.tl.on_timer(now), now)
        self._guard(self.b2bua.on_timer, now)
        self._guard(self.router.on_timer, now)
        self._guard(self.trunk_runtime.on_timer, now)
        if now >= self._next_expiry_sweep:
            self._next_expiry_sweep = now + 10.0
            self.call_limits.forget_idle(now)
            changes = self.registrar.expire(now)
            if changes:
                self.out.append(PersistBindings(changes))
                self._registrations_changed(changes, now)
            self._report_unanswered(now)
        return self.drain(now)

    def on_media_events(self, events: list, now: float) -> list:
        """DTMF digits, finished prompts, audio, RTP time-outs... from the media tick (``media.edge``)."""
        self._guard(self.b2bua.on_media_events, events, now)
        return self.drain(now)

    def run(self, fn: Any, *args: Any, now: float) -> list:
        """Call control from outside SIP (the API, tools): ``fn(*args)``, then what it caused."""
        try:
            fn(*args)
        finally:
            out = self.drain(now)
        return out

    def speech_rendered(self, call_id: str, say_id: int, file: str | None, now: float) -> list:
        """Runtime speech the edge rendered for an IVR ``Say`` or a machine's message (None: nothing to say)."""
        try:
            ours = self.router.outbound.spoken(call_id, say_id, file, now)
        except Exception:
            log.exception("error in spoken")
            ours = True
        if not ours:
            self._guard(self.router.ivr.spoken, call_id, say_id, file, now)
        return self.drain(now)

    def reload(self, config: Config, now: float) -> Any:
        """Apply a new, validated config for new calls (``softswitch.reload``); calls in progress go on.
        Returns the ``ReloadResult``; its ``actions`` are what the change caused (to execute)."""
        from .reload import apply_config

        result = apply_config(self, config, now)
        return dataclasses.replace(result, actions=self.drain(now))

    def speech_heard(self, call_id: str, text: str, now: float) -> list:
        """A result of the edge's speech worker for the IVR of ``call_id``."""
        self._guard(self.router.ivr.speech_heard, call_id, text, now)
        return self.drain(now)

    def set_wall_offset(self, offset: float) -> None:
        """Seconds to add to ``now`` for Unix time (the edge keeps it current): call records, queue_log
        lines, business hours and voicemail stamps need the date; every timer runs on ``now``."""
        self.router.wall_offset = offset
        self.router.queue.acd.wall_offset = offset
        if self.router.ivr.ivr is not None:
            self.router.ivr.ivr.wall_offset = offset

    def drain(self, now: float) -> list:
        """Let call control react to what happened, then hand over everything to send and do."""
        self.router.pump(now)
        out = self.out[:]
        self.out.clear()
        return out

    def next_deadline(self) -> float | None:
        cands = [d for d in (self.tl.next_deadline(), self.b2bua.next_deadline(), self._next_expiry_sweep,
                             self.router.next_deadline(), self.trunk_runtime.next_deadline()) if d is not None]
        return min(cands) if cands else None

    def _registrations_changed(self, changes: list, now: float) -> None:
        """Expired contacts: agents whose phone has none left are skipped by the ACD."""
        for aor in {item.aor if op == "put" else item[0] for op, item in changes}:
            self._guard(self.router.queue.registration, aor, bool(self.registrar.lookup(aor, now)), now)

    def sync_registrations(self, now: float) -> list:
        """After the bindings are restored at start: every extension's registration state to the ACD."""
        for ext in self.config.extensions:
            self._guard(self.router.queue.registration, ext.number, bool(self.registrar.lookup(ext.number, now)),
                        now)
        return self.drain(now)

    def after_persist(self, p: PersistBindings, now: float) -> list:
        if p.tx is None or p.response is None:
            return []
        return self.tl.respond(p.tx, p.response, now)

    # --------------------------------------------------------------------------- events
    def _handle_events(self, events: list, now: float) -> None:
        out = self.out
        for ev in events:
            if isinstance(ev, Send):
                out.append(ev)
            elif isinstance(ev, RequestReceived):
                try:
                    out += self._on_request(ev.request, ev.peer, ev.tx, now)
                except Exception:  # never let one message take the switch down
                    log.exception("error handling %s from %s", ev.request.method, ev.peer)
                    if ev.tx is not None and ev.request.method != "ACK":
                        out += self.tl.respond(ev.tx, make_response(ev.request, 500), now)
            elif isinstance(ev, ResponseReceived):
                if self.trunk_runtime.owns(ev.tx):
                    self._guard(self.trunk_runtime.on_response, ev.response, ev.tx, now)
                else:
                    self._guard(self.b2bua.on_response, ev.response, ev.tx, now)
            elif isinstance(ev, TransactionTimeout):
                if self.trunk_runtime.owns(ev.tx):
                    self._guard(self.trunk_runtime.on_timeout, ev.tx, now)
                else:
                    self._guard(self.b2bua.on_timeout, ev.tx, now)
            elif isinstance(ev, AckTimeout):
                self._guard(self.b2bua.on_ack_timeout, ev.tx, now)
            elif isinstance(ev, StrayResponse):
                self._guard(self.b2bua.on_stray_response, ev.response, ev.peer, now)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("error in %s", fn.__name__)

    def _on_request(self, req: Request, peer: Peer, tx: Any, now: float) -> list:
        method = req.method
        if tx is None:  # ACK for a 2xx: belongs to a dialog
            self.b2bua.on_in_dialog(req, peer, None, now)
            return []
        ruri = req.ruri
        if not isinstance(ruri, SipUri) and ruri.scheme != "tel":
            return self.tl.respond(tx, make_response(req, 416, to_tag=_tag()), now)
        unsupported = [o for o in _option_tags(req, "Require") if o.lower() not in SUPPORTED]
        if unsupported and method not in ("ACK", "CANCEL"):
            return self.tl.respond(tx, make_response(req, 420, to_tag=_tag(),
                                                     extra=[("Unsupported", ", ".join(unsupported))]), now)
        if method == "REGISTER":  # some phones put a To tag on refreshes; a REGISTER is never in a dialog
            return self._on_register(req, peer, tx, now)
        if method == "CANCEL":
            self.b2bua.on_cancel(req, peer, tx, now)
            return []
        if req.to.tag:
            self.b2bua.on_in_dialog(req, peer, tx, now)
            return []
        if method == "OPTIONS":
            return self.tl.respond(tx, make_response(req, 200, to_tag=_tag(), extra=[
                ("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", ", ".join(sorted(SUPPORTED))),
                ("Server", self.config.sip.user_agent)]), now)
        if method == "INVITE":
            return self._on_invite(req, peer, tx, now)
        if method in ("BYE", "INFO", "UPDATE", "PRACK", "ACK"):
            return self.tl.respond(tx, make_response(req, 481, to_tag=_tag()), now)
        if method in ("MESSAGE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER"):
            return self.tl.respond(tx, make_response(req, 405, to_tag=_tag(), extra=[("Allow", ALLOW)]), now)
        return self.tl.respond(tx, make_response(req, 501, to_tag=_tag(), extra=[("Allow", ALLOW)]), now)

    # --------------------------------------------------------------------------- auth
    def authenticate(self, req: Request, peer: Peer, tx: Any, now: float, *, proxy: bool,
                     expected_user: str | None) -> tuple[str | None, list]:
        """Digest-check ``req``. Returns (user, []) when authenticated, else (None, actions answering
        with a challenge or a refusal). Unknown users and wrong passwords take the same path."""
        header = "Proxy-Authorization" if proxy else "Authorization"
        challenge_name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        code = 407 if proxy else 401
        algorithms = self._algorithms_for(expected_user)
        outcome, user = "absent", None
        for value in req.headers.get_lines(header):
            result = self.auth.verify(req.method, value, now, peer.host, expected_user=expected_user,
                                      algorithms=algorithms, request_uri=self._uri_binding(req),
                                      uri_allowed=self._names_switch)
            outcome, user = result.outcome, result.username
            if outcome != "absent":
                break
        if outcome == "absent":
            self.challenges.challenged(peer.host, expected_user or "", req.method, now)
        else:
            self.challenges.answered(peer.host, expected_user or "")
        if outcome == "ok":
            self.bans.record_success(peer.host, now, user or "")
            return user, []
        if outcome == "failed":
            self.stats.auth_failures += 1
            if self.bans.record_failure(peer.host, now, user or ""):
                self.stats.bans += 1
                self.banned_now.append((peer.host, now + self.config.security.ban_time))
                log.warning("banned %s for %ds after %d failed authentications", peer.host,
                            self.config.security.ban_time, self.config.security.max_auth_failures)
            log.info("%s from %s: authentication failed for %s", req.method, peer.host,
                     _quote_user(req, header) or "-")
            return None, self.tl.respond(tx, make_response(req, 403, to_tag=_tag()), now)
        if outcome == "refused":
            log.info("%s from %s for %s refused: the credentials were computed for another Request-URI "
                     "(a captured answer replayed, or a proxy rewrote the Request-URI)", req.method, peer.host,
                     user or "-")
            return None, self.tl.respond(tx, make_response(req, 403, "Credentials Not For This Request",
                                                           to_tag=_tag()), now)
        if outcome == "replayed":
            log.info("%s from %s for %s: a digest answer used before (nonce count not increasing, or a "
                     "qop-less nonce reused) refused; re-challenged", req.method, peer.host, user or "-")
        elif outcome == "forged":
            log.debug("%s from %s: credentials with a nonce not issued to this address (or unreadable); "
                      "re-challenged, not counted", req.method, peer.host)
        extra = [(challenge_name, v) for v in self.auth.challenge_headers(
            now, peer.host, stale=outcome in ("stale", "replayed"), algorithms=algorithms)]
        challenge = make_response(req, code, to_tag=_tag(), extra=extra)
        return None, [a for a in self.tl.respond_statelessly(tx, challenge, now) if isinstance(a, Send)]

    def _uri_binding(self, req: Request) -> str | None:
        """The Request-URI the digest ``uri`` must name (``[security] digest_uri``: "strict" and "switch"
        bind it; "off" does not)."""
        return None if self.config.security.digest_uri == "off" else req.uri

    def _names_switch(self, uri: str) -> bool:
        """A digest ``uri`` naming only this switch (no user): SIPp and some phones answer with the
        server's address instead of the Request-URI. Allowed unless ``digest_uri = "strict"``: such
        credentials still cannot be replayed (nonce count, single-use qop-less nonces)."""
        if self.config.security.digest_uri == "strict":
            return False
        parts = uri_host(uri)
        if parts is None or parts[0]:
            return False
        sip = self.config.sip
        names = {sip.domain.lower(), sip.realm.lower(), (sip.advertised_address or "").lower()}
        names |= {host.lower().strip("[]") for host, _ in self.local.values()}
        names |= {la.host.lower() for la in sip.listen}
        return parts[1] in names

    def _algorithms_for(self, user: str | None) -> tuple[str, ...] | None:
        """An extension's own ``auth_algorithms``, else None (the realm's, ``[sip] auth_algorithms``)."""
        ext = self.config.extension(user) if user else None
        if ext is None:
            return None
        chosen = tuple(ext.auth_algorithms) if ext.auth_algorithms else None
        can = ext.secret_algorithms()  # an extension with only an HA1 can answer only that algorithm
        if can is None:
            return chosen
        usable = tuple(a for a in (chosen or self.auth.algorithms) if a in can)
        return usable or can

    def _report_unanswered(self, now: float) -> None:
        by_ip: dict[str, list] = {}
        for u in self.challenges.expire(now):
            by_ip.setdefault(u.ip, []).append(u)
        for ip, group in by_ip.items():
            if len(group) > 3:  # many users from one address: one line (a scanner, or a misconfigured PBX)
                log.info("%s from %s: challenges for %d users (%s...) never answered within %d s", group[0].method,
                         ip, len(group), ", ".join(u.user or "-" for u in group[:3]), int(self.challenges.timeout))
                continue
            for u in group:
                offered = self._algorithms_for(u.user) or self.auth.algorithms
                log.info("%s from %s for %s: %d challenge(s) never answered within %d s; the phone may not "
                         "support the digest algorithm(s) offered (%s) or has no password set", u.method, u.ip,
                         u.user or "-", u.challenges, int(self.challenges.timeout), ", ".join(offered))

    # ----------------------------------------------------------------------- REGISTER
    def _on_register(self, req: Request, peer: Peer, tx: Any, now: float) -> list:
        to_uri = req.to.uri
        if not isinstance(to_uri, SipUri) or not to_uri.user:
            return self.tl.respond(tx, make_response(req, 400, "To must be a SIP URI with a user",
                                                     to_tag=_tag()), now)
        aor = to_uri.user_unescaped or ""
        user, actions = self.authenticate(req, peer, tx, now, proxy=False, expected_user=aor)
        if user is None:
            return actions
        ext = self.config.extension(aor)
        assert ext is not None  # authentication succeeded only for a configured extension
        result = self.registrar.handle(req, peer, aor, now, ext.max_contacts)
        self._guard(self.router.queue.registration, aor, bool(self.registrar.lookup(aor, now)), now)
        if result.response.status == 200 and result.changes:
            return [PersistBindings(result.changes, tx, result.response)]
        return self.tl.respond(tx, result.response, now)

    # ------------------------------------------------------------------------- INVITE
    def _on_invite(self, req: Request, peer: Peer, tx: Any, now: float) -> list:
        trunks = self.router.trunks
        trunk = trunks.identifier.trunk_for(peer.host, peer.port, req) if trunks else None
        if trunk is not None:
            return self._on_trunk_invite(req, peer, tx, trunk, now)
        from_uri = req.from_.uri
        caller = from_uri.user_unescaped if isinstance(from_uri, SipUri) else None
        if trunks and self.config.extension(caller or "") is None and not req.headers.get("Proxy-Authorization"):
            refused = self._stranger_to_outside(req, peer, tx, caller or "", now)
            if refused is not None:
                return refused
        if caller and self._blacklisted(caller, now):
            log.info("call from blacklisted number %s refused (403)", caller)
            callee = req.ruri.user_unescaped if isinstance(req.ruri, SipUri) else ""
            self.router.blocked(caller, callee or "", now)
            return self.tl.respond(tx, make_response(req, 403, "Caller Blacklisted", to_tag=_tag()), now)
        if req.body and not _acceptable_body(req):
            return self.tl.respond(tx, make_response(req, 415, to_tag=_tag(),
                                                     extra=[("Accept", "application/sdp")]), now)
        accept = req.headers.get("Accept")
        if accept is not None and req.body and not any(
                a.split(";")[0].strip().lower() in ("application/sdp", "application/*", "*/*")
                for a in accept.split(",")):
            return self.tl.respond(tx, make_response(req, 406, to_tag=_tag(), extra=[
                ("Warning", '399 - "Only application/sdp answers are possible"')]), now)
        user, actions = self.authenticate(req, peer, tx, now, proxy=True, expected_user=caller)
        if user is None:
            return actions
        ext = self.config.extension(user)
        if ext is not None:
            # the count is a look-up of the calls this extension placed (B2BUA._placed); it used to walk every
            # call, a quarter of the CPU at 400 calls/s (bench/OVERLOAD.md), so it is asked only under a limit
            placed = self.b2bua.calls_placed(user) if ext.max_calls else 0
            refusal = self.call_limits.check(ext, placed, now)
            if refusal is not None:
                log.warning("call from %s refused (%d): %s", user, refusal.status, refusal.warning)
                return self.tl.respond(tx, make_response(req, refusal.status, refusal.reason, to_tag=_tag(), extra=[
                    ("Retry-After", str(refusal.retry_after)), ("Warning", f'399 - "{refusal.warning}"')]), now)
        self.b2bua.on_invite(req, peer, tx, user, now)
        return []

    def _stranger_to_outside(self, req: Request, peer: Peer, tx: Any, caller: str, now: float) -> list | None:
        """An INVITE from an address that is no trunk, by no extension of ours, to a DID or an external
        number: a toll-fraud scan (sipvicious and friends) or a carrier not configured. A clear 403 and a
        log line; it counts as a failed authentication (repeated, the address is banned)."""
        callee = (req.ruri.user_unescaped if isinstance(req.ruri, SipUri) else "") or ""
        callee = callee.split(";")[0]
        trunks = self.router.trunks
        is_did = any(callee in t.dids or trunks.numbers.normalise(callee) in
                     {trunks.numbers.normalise(d) for d in t.dids if d != "*"} for t in trunks.trunks.values())
        if not is_did and not trunks.dialplan.rule_for(callee):
            return None
        log.warning("INVITE from %s:%d (From %s) to %s refused (403): not a trunk address and not an extension "
                    "of ours%s", peer.host, peer.port, caller or "-", callee,
                    "" if is_did else " - an attempt to call out through us (toll fraud?)")
        self.stats.auth_failures += 1
        # Counted towards a ban only over TCP/TLS, whose handshake proves the source: a UDP source may be
        # spoofed, and ten forged INVITEs must not silence an office or a carrier (issue 11).
        if peer.reliable and self.bans.record_failure(peer.host, now):
            self.stats.bans += 1
            self.banned_now.append((peer.host, now + self.config.security.ban_time))
            log.warning("banned %s for %ds", peer.host, self.config.security.ban_time)
        return self.tl.respond(tx, make_response(req, 403, "Forbidden", to_tag=_tag()), now)

    def _on_trunk_invite(self, req: Request, peer: Peer, tx: Any, trunk: Trunk, now: float) -> list:
        """A carrier's INVITE (recognised by its address: no digest): only to its DIDs, from a caller that
        is not refused, within its channels."""
        inb = trunk_inbound(trunk, req, self.router.trunks.numbers)
        if not inb.target:
            log.warning("INVITE from trunk %s (%s:%d) to %s refused (404): not one of its DIDs", trunk.name,
                        peer.host, peer.port, inb.did or "-")
            return self.tl.respond(tx, make_response(req, 404, "Not A DID", to_tag=_tag()), now)
        wall = self.router.wall(now)
        verdict = self.lists.check(inb.caller, wall)
        if verdict.refused or verdict.blocked or (inb.raw_caller and self.lists.check(inb.raw_caller, wall).refused):
            log.info("call from %s on trunk %s to %s refused: caller on the %s (403)", inb.caller, trunk.name, inb.did,
                     "blacklist" if verdict.refused else "block list")
            self.router.blocked(inb.caller, inb.target, now)
            return self.tl.respond(tx, make_response(req, 403, "Caller Blocked", to_tag=_tag()), now)
        if trunk.max_channels and channels_in_use(self.b2bua, trunk.name) >= trunk.max_channels:
            log.warning("call from %s on trunk %s refused: all %d channels in use (503)", inb.caller, trunk.name,
                        trunk.max_channels)
            return self.tl.respond(tx, make_response(req, 503, "Trunk Full", to_tag=_tag(),
                                                     extra=[("Retry-After", "5")]), now)
        if req.body and not _acceptable_body(req):
            return self.tl.respond(tx, make_response(req, 415, to_tag=_tag(),
                                                     extra=[("Accept", "application/sdp")]), now)
        call = self.b2bua.on_invite(req, peer, tx, inb.caller, now, target=inb.target, trunk=trunk.name,
                                    codecs=tuple(trunk.codecs))
        call.notes.update(direction="inbound", trunk=trunk.name, did=inb.did, external=inb.caller)
        if verdict.warned:
            call.variables["warning"] = "1"  # flagged for the agent's screen pop
        if inb.display:
            call.variables.setdefault("caller_name", inb.display)
        log.info("call %s: inbound on trunk %s: %s (presented %s) -> DID %s -> %s", call.id, trunk.name, inb.caller,
                 inb.raw_caller or "-", inb.did, inb.target)
        return []

    def _blacklisted(self, number: str, now: float) -> bool:
        return self.lists.refused(number, self.router.wall(now))

    # ------------------------------------------------------------------- stateless
    def _reply_stateless(self, req: Request, peer: Peer, status: int, reason: str) -> list:
        try:
            resp = make_response(req, status, reason, to_tag=_tag())
        except Exception:
            return []
        if not resp.headers.get("Via"):
            return []
        return [Send(resp.serialize(), peer)]

    def _stateless_error(self, data: bytes, peer: Peer, status: int, reason: str) -> list:
        try:
            msg = parse_message(data[: self.config.sip.max_message_size * 4], stream=peer.reliable)
        except ParseError as e:
            msg = e.partial  # type: ignore[assignment]
        if isinstance(msg, Request) and msg.method != "ACK":
            return self._reply_stateless(msg, peer, status, reason)
        return []


def media_worker_count(configured: int) -> int:
    """``[media] workers`` for this machine: "auto" (-1) is one per spare core — the CPUs this process may run
    on, less one for signalling and call control (so 0, the tick in-process, on a one-CPU machine)."""
    if configured >= 0:
        return configured
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(0, min(64, cpus - 1))


def make_media_engine(config: Config, workers: int = 0) -> Any:
    """The media engine for ``[media]``: its SDP address defaults to the advertised or listen address;
    ``workers`` ≥ 1 puts the tick in that many worker processes behind a facade (``media.workers``)."""
    from media.engine import MediaEngine

    m = config.media
    address = m.address or config.sip.advertised_address or config.sip.listen[0].host
    if address in ("0.0.0.0", "::"):
        log.warning("[media] address not set and the switch listens on %s: SDP will name 127.0.0.1; "
                    "set [media] address (or [sip] advertised_address) to the switch's LAN address", address)
        address = "127.0.0.1"
    cfg = dataclasses.replace(m, address=address, bind_address=m.bind_address or address)
    if workers > 0:  # the media tick in worker processes (media.workers); SDP stays here
        from media.workers.pool import WorkerMedia

        return WorkerMedia(dataclasses.replace(cfg, workers=workers), workers, log_format=config.log.format)
    return MediaEngine(cfg)


def _tag() -> str:
    return secrets.token_hex(5)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _stamp_received(req: Request, peer: Peer) -> None:
    """RFC 3261 §18.2.1 + RFC 3581: record the source address in the top Via so that responses
    (and the phone) learn its public address and port."""
    try:
        via = req.top_via
    except ValueError:
        return
    changed = False
    if via.host.strip("[]") != peer.host:
        via.params["received"] = peer.host
        changed = True
    if "rport" in via.params and via.params["rport"] is None:
        via.params["received"] = peer.host
        via.params["rport"] = str(peer.port)
        changed = True
    if changed:
        req.headers.pop_first("Via")
        req.headers.add("Via", str(via), first=True)


def _option_tags(req: Request, name: str) -> list[str]:
    return [t.strip() for t in req.headers.get_all(name) if t.strip()]


def _acceptable_body(req: Request) -> bool:
    ctype = (req.headers.get("Content-Type") or "application/sdp").split(";")[0].strip().lower()
    return ctype in ACCEPTED_BODIES


def _quote_user(req: Request, header: str) -> str | None:
    v = req.headers.get(header) or ""
    i = v.find('username="')
    if i < 0:
        return None
    return v[i + 10 : v.find('"', i + 10)][:40]
