"""Registrar (RFC 3261 §10.3): bindings of extensions to the contacts their phones register.

Pure logic over an in-memory table: ``handle`` takes an already authenticated REGISTER and returns
the response plus the binding changes, which the asyncio edge commits to the store before it sends
the response (so a 200 OK means the binding survives a restart). The records (``Binding``, ``Change``)
come from ``base.bindings``: the registrar never imports the store (nor SQLite).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from base.bindings import Binding, Change

from .config import Config
from .sip.message import Request, Response, make_response
from .sip.transaction import Peer
from .sip.uri import MAX_UINT32, SipUri, parse_name_addr

log = logging.getLogger("softswitch.registrar")

__all__ = ["Binding", "Change", "RegisterResult", "Registrar", "peer_to_received", "received_to_peer"]


@dataclass
class RegisterResult:
    response: Response
    changes: list[Change] = field(default_factory=list)


def peer_to_received(peer: Peer) -> str:
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    return f"{peer.transport}:{host}:{peer.port}"


def received_to_peer(received: str) -> Peer:
    transport, _, rest = received.partition(":")
    host, _, port = rest.rpartition(":")
    return Peer(transport, host.strip("[]"), int(port))


class Registrar:
    def __init__(self, config: Config):
        self.config = config
        self.sip = config.sip
        self._bindings: dict[str, dict[str, Binding]] = {}

    # ------------------------------------------------------------------------------ queries
    def load(self, bindings: list[Binding]) -> None:
        for b in bindings:
            self._bindings.setdefault(b.aor, {})[b.contact_uri] = b

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """Unexpired contacts of ``aor``, best first (highest q, then most recently refreshed)."""
        table = self._bindings.get(aor)
        if not table:
            return []
        live = [b for b in table.values() if b.expires_at > now]
        live.sort(key=lambda b: (-b.q, -b.updated_at))
        return live

    def count(self) -> int:
        return sum(len(t) for t in self._bindings.values())

    def expire(self, now: float) -> list[Change]:
        """Drop expired bindings; returns the deletions for the store."""
        changes: list[Change] = []
        for aor in list(self._bindings):
            table = self._bindings[aor]
            for uri in [u for u, b in table.items() if b.expires_at <= now]:
                del table[uri]
                changes.append(("del", (aor, uri)))
                log.info("registration expired: %s contact %s", aor, uri)
            if not table:
                del self._bindings[aor]
        return changes

    # ----------------------------------------------------------------------------- REGISTER
    def handle(self, req: Request, peer: Peer, aor: str, now: float, max_contacts: int) -> RegisterResult:
        """Apply an authenticated REGISTER for extension ``aor``."""
        sip = self.sip
        h = req.headers
        contacts = h.get_all("Contact")
        default = sip.default_expires
        exp_hdr = h.get("Expires")
        if exp_hdr is not None:
            default = int(exp_hdr)  # validated by the parser
        table = self._bindings.get(aor, {})
        changes: list[Change] = []
        call_id, cseq = req.call_id, req.cseq.number

        if contacts == ["*"]:
            if exp_hdr is None or int(exp_hdr) != 0:
                return RegisterResult(make_response(req, 400, "Wildcard Contact requires Expires: 0", to_tag=_tag(req)))
            for uri, b in list(table.items()):
                if b.call_id == call_id and b.cseq >= cseq:
                    continue
                changes.append(("del", (aor, uri)))
            self._apply(aor, changes)
            log.info("unregistered %s: all contacts (from %s)", aor, peer_to_received(peer))
            return RegisterResult(self._ok(req, aor, now), changes)
        if "*" in contacts:
            return RegisterResult(make_response(req, 400, "Wildcard Contact must stand alone", to_tag=_tag(req)))

        wanted: list[tuple[str, int, float]] = []
        for value in contacts:
            try:
                na = parse_name_addr(value)
            except ValueError as e:
                return RegisterResult(make_response(req, 400, f"Bad Contact: {e}"[:100], to_tag=_tag(req)))
            if not isinstance(na.uri, SipUri):
                return RegisterResult(make_response(req, 400, "Contact must be a SIP URI", to_tag=_tag(req)))
            expires = default
            p = na.params.get("expires")
            if p is not None:
                if not p.isdigit() or int(p) > MAX_UINT32:
                    return RegisterResult(make_response(req, 400, "Bad expires parameter", to_tag=_tag(req)))
                expires = int(p)
            if 0 < expires < sip.min_expires:
                return RegisterResult(make_response(req, 423, to_tag=_tag(req),
                                                    extra=[("Min-Expires", str(sip.min_expires))]))
            expires = min(expires, sip.max_expires)
            q = 1.0
            if na.params.get("q"):
                try:
                    q = max(0.0, min(1.0, float(na.params["q"] or 1)))
                except ValueError:
                    return RegisterResult(make_response(req, 400, "Bad q parameter", to_tag=_tag(req)))
            uri = str(na.uri)
            old = table.get(uri)
            if old is not None and old.call_id == call_id and old.cseq >= cseq:
                # an old or reordered REGISTER must not undo a newer one (§10.3 step 7)
                return RegisterResult(make_response(req, 500, "Out-of-order REGISTER", to_tag=_tag(req),
                                                    extra=[("Retry-After", "1")]))
            wanted.append((uri, expires, q))

        received = peer_to_received(peer)
        ua = (h.get("User-Agent") or "")[:200]
        for uri, expires, q in wanted:
            if expires == 0:
                if uri in table:
                    changes.append(("del", (aor, uri)))
                    log.info("unregistered %s contact %s (from %s)", aor, uri, received)
                continue
            is_new = uri not in table
            changes.append(("put", Binding(aor=aor, contact_uri=uri, expires_at=now + expires, call_id=call_id,
                                           cseq=cseq, q=q, received=received, user_agent=ua, updated_at=now)))
            if is_new:  # new and removed bindings at INFO; refreshes (most REGISTERs) only at DEBUG
                log.info("registered %s contact %s from %s for %ds (%s)", aor, uri, received, expires, ua or "-")
            elif log.isEnabledFor(logging.DEBUG):
                log.debug("refreshed %s contact %s from %s for %ds", aor, uri, received, expires)
        self._apply(aor, changes)
        # keep at most max_contacts per extension: the least recently refreshed go first
        table = self._bindings.get(aor, {})
        if len(table) > max_contacts:
            for b in sorted(table.values(), key=lambda b: b.updated_at)[: len(table) - max_contacts]:
                del table[b.contact_uri]
                changes.append(("del", (aor, b.contact_uri)))
        return RegisterResult(self._ok(req, aor, now), changes)

    def bind_local(self, aor: str, contact_uri: str, now: float, lifetime: float, user_agent: str) -> None:
        """A contact of a phone inside the switch (the desk's browser phone, ``softswitch.browserphone``):
        bound by its authenticated desk session instead of a REGISTER, and never persisted (it dies with
        the process and with the session, which unbinds it)."""
        self._apply(aor, [("put", Binding(aor=aor, contact_uri=contact_uri, expires_at=now + lifetime,
                                          call_id=f"local-{contact_uri}", cseq=1, received=None,
                                          user_agent=user_agent, updated_at=now))])
        log.info("registered %s contact %s (%s)", aor, contact_uri, user_agent)

    def unbind_local(self, aor: str, contact_uri: str) -> None:
        if contact_uri in self._bindings.get(aor, {}):
            self._apply(aor, [("del", (aor, contact_uri))])
            log.info("unregistered %s contact %s", aor, contact_uri)

    def _apply(self, aor: str, changes: list[Change]) -> None:
        table = self._bindings.setdefault(aor, {})
        for op, item in changes:
            if op == "put":
                assert isinstance(item, Binding)
                table[item.contact_uri] = item
            else:
                table.pop(item[1], None)  # type: ignore[index]
        if not table:
            self._bindings.pop(aor, None)

    def _ok(self, req: Request, aor: str, now: float) -> Response:
        extra = [("Contact", f"<{b.contact_uri}>;expires={max(0, int(b.expires_at - now))}")
                 for b in self.lookup(aor, now)]
        return make_response(req, 200, to_tag=_tag(req), extra=extra)


def _tag(req: Request) -> str | None:
    # a REGISTER response needs a To tag; derive it from the Call-ID so retransmissions agree
    return None if req.to.tag else f"r{abs(hash(req.call_id)) % 10**10}"
