"""Inbound: which trunk a request comes from, the caller it presents, the DID it calls.

Carriers do not answer digest challenges: their requests are recognised by source address (an IP, a
CIDR network, or an IP and port where several peers share a host, as on a test bench), optionally
with a header that must also be present (Asterisk's ``identify`` with ``match_header``). Only a
recognised trunk's INVITEs skip authentication, and only to that trunk's DIDs.

The caller's number comes from P-Asserted-Identity (RFC 3325) when the trunk is trusted, else from
From; ``anonymous`` users, ``Privacy: id`` and callers without digits are withheld. The number is
normalised (``numbers.NumberFormat``) before anything else sees it.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ..sip.message import Request
from ..sip.uri import SipUri, parse_name_addr
from .config import Trunk, split_host_port
from .numbers import ANONYMOUS, NumberFormat

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Matcher:
    trunk: Trunk
    network: Network
    port: int | None

    def matches(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> bool:
        return ip in self.network and (self.port is None or self.port == port)


@dataclass(frozen=True)
class Inbound:
    """What an INVITE from a trunk asks for."""
    trunk: Trunk
    did: str                 # the number the carrier called (as sent)
    target: str              # our dialplan number for it ("" = not one of the trunk's DIDs)
    caller: str              # normalised (E.164) or "anonymous"
    raw_caller: str          # as presented
    display: str = ""


class Identifier:
    def __init__(self, trunks: Iterable[Trunk]):
        self.matchers: list[Matcher] = []
        for t in trunks:
            if not t.enabled:
                continue
            for m in (t.match or ([t.host] if _is_ip(t.host) else [])):
                host, port = split_host_port(m)
                self.matchers.append(Matcher(t, ipaddress.ip_network(host, strict=False), port))
        # the most specific first: an ip:port beats the same ip, a /32 beats a /24
        self.matchers.sort(key=lambda m: (m.port is None, -m.network.prefixlen))

    def addresses(self) -> list[str]:
        """The networks trunks are recognised by (never banned for failed challenges)."""
        return sorted({str(m.network) for m in self.matchers})

    def trunk_for(self, host: str, port: int, req: Request | None = None) -> Trunk | None:
        if not self.matchers:
            return None
        try:
            ip = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return None
        for m in self.matchers:
            if m.matches(ip, port) and (req is None or _header_ok(m.trunk, req)):
                return m.trunk
        return None


def _header_ok(trunk: Trunk, req: Request) -> bool:
    if not trunk.match_header:
        return True
    name, _, value = trunk.match_header.partition(":")
    return any(value.strip().lower() in v.lower() for v in req.headers.get_all(name.strip()))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def did_target(trunk: Trunk, did: str, numbers: NumberFormat) -> str:
    """Our dialplan number for ``did`` (matched as sent, then in E.164), or ""."""
    if did in trunk.dids:
        return trunk.dids[did]
    e164 = numbers.normalise(did)
    for k, v in trunk.dids.items():
        if k != "*" and numbers.normalise(k) == e164 and e164 != ANONYMOUS:
            return v
    return trunk.dids.get("*", "")


def inbound(trunk: Trunk, req: Request, numbers: NumberFormat) -> Inbound:
    ruri = req.ruri
    did = (getattr(ruri, "user_unescaped", None) or "").split(";")[0]
    to = req.to.uri
    to_user = ((to.user_unescaped or "") if isinstance(to, SipUri) else "").split(";")[0]
    if not did or (did in (trunk.contact_user, trunk.username) and did not in trunk.dids and to_user):
        did = to_user  # to our registered contact (or no user at all): the DID is in To
    raw, display = _presented(trunk, req)
    caller = numbers.normalise(raw)
    privacy = (req.headers.get("Privacy") or "").lower()
    if "id" in [p.strip() for p in privacy.replace(",", ";").split(";")] or raw.lower() in (ANONYMOUS, "unknown",
                                                                                          "restricted", "unavailable"):
        caller, display = ANONYMOUS, ""
    return Inbound(trunk, did, did_target(trunk, did, numbers), caller, raw, display)


def _presented(trunk: Trunk, req: Request) -> tuple[str, str]:
    """(number, display name) presented: P-Asserted-Identity (trusted trunks), else From."""
    if trunk.trusted:
        for value in req.headers.get_all("P-Asserted-Identity"):
            try:
                na = parse_name_addr(value)
            except ValueError:
                continue
            user = getattr(na.uri, "user_unescaped", None)
            if user is None and str(na.uri).lower().startswith("tel:"):
                user = str(na.uri)[4:].split(";")[0]
            if user:
                return user, na.display or ""
    frm = req.from_
    user = frm.uri.user_unescaped if isinstance(frm.uri, SipUri) else None
    if user is None and str(frm.uri).lower().startswith("tel:"):
        user = str(frm.uri)[4:].split(";")[0]
    return user or "", frm.display or ""
