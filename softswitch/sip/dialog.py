"""SIP dialogs (RFC 3261 §12): identifiers, route set, CSeq counters and in-dialog request building.

A dialog is pure state. The B2BUA holds one per call leg; the leg decides where to send (for phones
behind NAT that is the address the phone's messages came from, not its Contact).
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from .message import Request, Response, new_request
from .uri import NameAddr, parse_name_addr


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id(host: str) -> str:
    return f"{secrets.token_hex(10)}@{host}"


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str             # our From (UAC) / To (UAS) URI as a name-addr without tag
    remote_uri: str
    remote_target: str         # the peer's Contact URI: Request-URI of in-dialog requests
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 1
    remote_seq: int | None = None
    secure: bool = False

    # ----------------------------------------------------------------------------- construction
    @classmethod
    def as_uas(cls, req: Request, local_tag: str) -> "Dialog":
        """Dialog created by answering ``req`` (we are the callee side of this leg)."""
        contact = _first_contact_uri(req) or str(req.from_.uri)
        return cls(
            call_id=req.call_id,
            local_tag=local_tag,
            remote_tag=req.from_.tag,
            local_uri=_without_tag(req.headers.get("To") or ""),
            remote_uri=_without_tag(req.headers.get("From") or ""),
            remote_target=contact,
            route_set=list(req.headers.get_all("Record-Route")),
            local_seq=0,
            remote_seq=req.cseq.number,
        )

    @classmethod
    def as_uac(cls, req: Request, resp: Response) -> "Dialog":
        """Dialog created by a 1xx-with-tag or 2xx answering our ``req``."""
        contact = _first_contact_uri(resp) or str(req.ruri)
        return cls(
            call_id=req.call_id,
            local_tag=req.from_.tag or "",
            remote_tag=resp.to.tag,
            local_uri=_without_tag(req.headers.get("From") or ""),
            remote_uri=_without_tag(resp.headers.get("To") or ""),
            remote_target=contact,
            route_set=list(reversed(resp.headers.get_all("Record-Route"))),
            local_seq=req.cseq.number,
        )

    # -------------------------------------------------------------------------------- behaviour
    def update_target(self, msg: Request | Response) -> None:
        """Target refresh (re-INVITE, UPDATE, their 2xx): a new Contact replaces the remote target."""
        contact = _first_contact_uri(msg)
        if contact:
            self.remote_target = contact

    def check_remote_cseq(self, req: Request) -> bool:
        """False for an out-of-order in-dialog request (§12.2.2 → 500). ACK and CANCEL carry the INVITE's number."""
        if req.method in ("ACK", "CANCEL"):
            return True
        n = req.cseq.number
        if self.remote_seq is not None and n <= self.remote_seq:
            return False
        self.remote_seq = n
        return True

    def create_request(self, method: str, *, via: str, contact: str | None, body: bytes = b"",
                       content_type: str | None = None, cseq: int | None = None) -> Request:
        if cseq is None:
            if method not in ("ACK", "CANCEL"):
                self.local_seq += 1
            cseq = self.local_seq
        ruri = self.remote_target
        routes = list(self.route_set)
        if routes and ";lr" not in routes[0].lower():
            # strict router (§12.2.1.1): its URI becomes the Request-URI, the target goes last
            ruri = str(parse_name_addr(routes[0]).uri)
            routes = routes[1:] + [f"<{self.remote_target}>"]
        to = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        headers += [("Route", r) for r in routes]
        if contact and method not in ("ACK", "BYE", "CANCEL"):
            headers.append(("Contact", contact))
        if body:
            headers.append(("Content-Type", content_type or "application/sdp"))
        return new_request(method, ruri, headers, body)


def _without_tag(value: str) -> str:
    na = parse_name_addr(value)
    na.params.pop("tag", None)
    return str(na)


def _first_contact_uri(msg: Request | Response) -> str | None:
    values = msg.headers.get_all("Contact")
    if not values:
        return None
    try:
        na: NameAddr = parse_name_addr(values[0])
    except ValueError:
        return None
    return str(na.uri)
