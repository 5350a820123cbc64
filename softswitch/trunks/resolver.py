"""The DNS edge of the trunks: NAPTR, SRV and A/AAAA look-ups with dnspython's asyncio resolver.

The core never waits for DNS: it asks for a trunk's targets with a ``ResolveTrunk`` action; the server
runs ``Resolver.locate`` as a task and hands the ``Located`` result back to the core as data
(``SwitchCore.trunk_located``). Answers are cached for their TTL (clamped by ``[dns] min_ttl`` and
``max_ttl``), failures for ``negative_ttl`` (``locate.Cache``), so trunks sharing a carrier's name, and
re-resolutions before the records changed, cost no query.

Why dnspython: the OS resolver (``getaddrinfo``) knows only A/AAAA, blocks a thread per look-up and
hides TTLs; RFC 3263 needs NAPTR and SRV with their TTLs. dnspython is already installed with aiortc
(aioice uses it) and is well kept. ``[dns] nameservers`` (``"ip"`` or ``"ip:port"``) replace the
system's (``/etc/resolv.conf``); with the system's, a name DNS does not know is tried once more with
``getaddrinfo`` (``/etc/hosts``), as the OS would have.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, Callable

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from ..sip.transaction import Peer
from .locate import (DEFAULT_PORT, Cache, Entry, Limits, Located, Naptr, Query, RandInt, Srv, is_ip, naptr_order,
                     srv_names, srv_order, srv_targets, system_rand)

log = logging.getLogger("softswitch.trunks")

Records = list[Any]   # Naptr | Srv | address strings


class Resolver:
    """Looks trunks up: ``locate(Query)`` -> ``Located``. ``from_config`` takes ``[dns]``."""

    @classmethod
    def from_config(cls, dns_config: Any, clock: Callable[[], float] | None = None,
                    rand: RandInt | None = None) -> "Resolver":
        return cls(list(dns_config.nameservers), Limits(float(dns_config.min_ttl), float(dns_config.max_ttl),
                                                        float(dns_config.negative_ttl)),
                   timeout=float(dns_config.timeout), clock=clock, rand=rand)

    def __init__(self, nameservers: list[str] | tuple[str, ...] = (), limits: Limits | None = None, timeout: float = 2.0,
                 clock: Callable[[], float] | None = None, rand: RandInt | None = None):
        self.cache: Cache[Records] = Cache(limits or Limits())
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.rand = rand or system_rand()
        self.system = not nameservers
        try:
            self._dns = dns.asyncresolver.Resolver(configure=self.system)
        except dns.resolver.NoResolverConfiguration:
            log.warning("no nameservers in /etc/resolv.conf: trunk host names are looked up on 127.0.0.1")
            self._dns = dns.asyncresolver.Resolver(configure=False)
            self._dns.nameservers = ["127.0.0.1"]
        if nameservers:
            servers: list[dns.nameserver.Nameserver | str] = []
            for ns in nameservers:
                host, port = _host_port(ns)
                servers.append(dns.nameserver.Do53Nameserver(host, port))
            self._dns.nameservers = servers
        self._dns.lifetime = timeout
        self._dns.timeout = timeout

    # ------------------------------------------------------------------------------ queries
    async def query(self, name: str, rtype: str) -> Entry[Records]:
        """One record set, from the cache or the server; a failure is cached as a negative entry."""
        now = self.clock()
        hit = self.cache.get(name, rtype, now)
        if hit is not None:
            return hit
        try:
            answer = await self._dns.resolve(name, rtype, raise_on_no_answer=True, search=False)
        except dns.resolver.NXDOMAIN:
            return self.cache.put_negative(name, rtype, f"{name}: no such domain", self.clock())
        except dns.resolver.NoAnswer:
            return self.cache.put_negative(name, rtype, f"{name}: no {rtype} records", self.clock())
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.LifetimeTimeout) as e:
            return self.cache.put_negative(name, rtype, f"{name} {rtype}: {type(e).__name__}", self.clock())
        except dns.exception.DNSException as e:
            return self.cache.put_negative(name, rtype, f"{name} {rtype}: {e}", self.clock())
        rrset = answer.rrset
        assert rrset is not None
        return self.cache.put(name, rtype, [_record(rtype, r) for r in rrset], float(rrset.ttl), self.clock())

    async def addresses(self, name: str) -> tuple[list[str], float, str]:
        """IPv4 then IPv6 addresses of ``name``, when they expire, and why there are none."""
        a, aaaa = await asyncio.gather(self.query(name, "A"), self.query(name, "AAAA"))
        ips = list(a.value or []) + list(aaaa.value or [])
        held = [e.expires for e in (a, aaaa) if e.value]   # a name without AAAA: its A records' TTL counts
        expires = min(held) if held else min(a.expires, aaaa.expires)
        if ips or not self.system:
            return ips, expires, "" if ips else (a.error or aaaa.error)
        try:   # the system resolver's other sources (/etc/hosts), as the OS resolved trunks before
            infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_DGRAM)
        except OSError as e:
            return [], expires, f"{name}: {e}"
        found = list(dict.fromkeys(str(i[4][0]) for i in infos))
        return found, self.clock() + self.cache.limits.min_ttl, ""

    # ----------------------------------------------------------------------------- locating
    async def locate(self, q: Query) -> Located:
        """RFC 3263 section 4: the targets of a trunk, in try-order."""
        host = q.host.strip("[]").rstrip(".")
        if is_ip(host):
            t = q.transport or "udp"
            return Located((Peer(t, host, q.port or DEFAULT_PORT[t]),), float("inf"), how="ip")
        if q.mode == "a" or q.port is not None:
            return await self._by_address(host, q.transport or "udp", q.port)
        expires = float("inf")
        naptr = await self.query(host, "NAPTR")
        pairs = naptr_order(naptr.value or [], q.transport, q.transports)
        how = "naptr" if pairs else "srv"
        if naptr.value:
            expires = naptr.expires
        if not pairs:
            pairs = srv_names(host, q.transport, q.transports)
        errors: list[str] = []
        for transport, name in pairs:
            srv = await self.query(name, "SRV")
            expires = min(expires, srv.expires)
            if not srv.value:
                errors.append(srv.error)
                continue
            ordered = srv_order(srv.value, self.rand)
            found = await asyncio.gather(*(self.addresses(r.target) for r in ordered))
            addresses = {r.target.lower(): ips for r, (ips, _, _) in zip(ordered, found)}
            for _, exp, _ in found:
                expires = min(expires, exp)
            with_peers = srv_targets(transport, ordered, addresses)
            if with_peers:
                peers = tuple(dict.fromkeys(p for t in with_peers for p in t.peers))
                return Located(peers, expires, how=how, srv=with_peers)
            errors.append(f"{name}: no addresses for its targets")
        loc = await self._by_address(host, q.transport or "udp", None)   # no SRV: A/AAAA, the default port
        if not loc.targets:
            return Located((), min(expires, loc.expires), "; ".join([*errors, loc.error]), how="a")
        return Located(loc.targets, min(expires, loc.expires), how="a")

    async def _by_address(self, host: str, transport: str, port: int | None) -> Located:
        ips, expires, error = await self.addresses(host)
        p = port or DEFAULT_PORT[transport]
        return Located(tuple(Peer(transport, ip, p) for ip in ips), expires, error, how="a")


def _record(rtype: str, r: Any) -> Any:
    if rtype == "SRV":
        return Srv(int(r.priority), int(r.weight), int(r.port), r.target.to_text().rstrip(".").lower())
    if rtype == "NAPTR":
        return Naptr(int(r.order), int(r.preference), _text(r.flags), _text(r.service),
                     r.replacement.to_text().rstrip(".").lower())
    return r.to_text()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _host_port(v: str) -> tuple[str, int]:
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if v.count(":") == 1:
        host, _, port = v.partition(":")
        return host, int(port)
    return v, 53
