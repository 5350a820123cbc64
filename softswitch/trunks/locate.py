"""Locating a carrier's SIP servers (RFC 3263), sans-IO: what to look up, and what the answers mean.

A trunk named by a host name without a port is found as Kamailio, FreeSWITCH and Asterisk find it:
NAPTR (optional: which transport the carrier prefers, by order and preference, unless the trunk names
its transport), then SRV (``_sip._udp``, ``_sip._tcp``, ``_sips._tcp``) ordered by priority and, within
a priority, by RFC 2782's weighted random pick, then A/AAAA of each SRV target. With an explicit port
(or ``resolve = "a"``) only A/AAAA of the host are looked up. The result is a list of targets (transport,
IP, port) in the order requests should try them: a request that times out or gets 503 moves to the next
target before the dial rule's next trunk.

Nothing here sends a packet or reads a clock: the edge (``softswitch.trunks.resolver``) does the look-ups
with dnspython and hands the records here; the randomness of the SRV pick is injected (tests give a
fixed sequence). ``Cache`` keeps answers for their TTL, clamped to ``[dns] min_ttl``..``max_ttl``, and
failures (NXDOMAIN, no answer, a server failure) for ``negative_ttl``, all on the injected clock.
"""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

from ..sip.transaction import Peer

# NAPTR services (RFC 3263 section 4.1) and SRV prefixes per transport
NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIX = {"udp": "_sip._udp.", "tcp": "_sip._tcp.", "tls": "_sips._tcp."}
DEFAULT_PORT = {"udp": 5060, "tcp": 5060, "tls": 5061}
# without NAPTR and without a configured transport: the order RFC 3263 4.1 suggests trying SRV in
SRV_ORDER = ("udp", "tcp", "tls")

RandInt = Callable[[int], int]   # rand(n): a uniformly random integer in 0..n (inclusive)


def system_rand() -> RandInt:
    """The production randomness of SRV picks (tests inject a fixed sequence instead)."""
    rng = random.SystemRandom()
    return lambda n: rng.randint(0, n)


@dataclass(frozen=True)
class Query:
    """What to locate: a trunk's host, its configured transport (None: the carrier's choice by NAPTR),
    its explicit port (None: SRV), and the mode ("rfc3263" or "a")."""
    host: str
    transport: str | None
    port: int | None
    mode: str
    transports: tuple[str, ...] = ()   # the transports we listen on (a NAPTR/SRV choice among them); () = any

    @classmethod
    def for_trunk(cls, trunk: Any, transports: tuple[str, ...] = ()) -> "Query":
        return cls(trunk.host, trunk.transport if trunk.transport_set else None,
                   trunk.port if trunk.port_set or trunk.resolve == "a" else None, trunk.resolve,
                   () if trunk.transport_set else transports)


@dataclass(frozen=True)
class ResolveTrunk:
    """Action for the edge: look ``trunk`` up and hand the ``Located`` back (``SwitchCore.trunk_located``)."""
    trunk: str
    query: Query


@dataclass(frozen=True)
class Srv:
    priority: int
    weight: int
    port: int
    target: str          # a host name (trailing dot stripped); "." means "not offered here"


@dataclass(frozen=True)
class Naptr:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str     # the SRV name to query next (regexp rewriting is not used by SIP carriers)


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def srv_order(records: Sequence[Srv], rand: RandInt) -> list[Srv]:
    """RFC 2782's selection, as a full try-order: lowest priority first; within one priority, repeatedly
    pick by weight (the weight-0 records first in the list, a running sum, a random number, the first
    record whose running sum reaches it). The RFC draws 0..sum, which gives the first weighted record one
    draw too many (weights 1 and 3 would share 2:3, not 1:3): here the draw is 1..sum when the group has
    no weight-0 record (exact shares), and 0..sum when it has (a weight-0 record then gets the RFC's
    "very small chance", 1 in sum+1, and is otherwise used when nothing heavier is left). A lone "."
    target (the service is decidedly not offered) yields []."""
    recs = [r for r in records if r.target not in ("", ".")]
    out: list[Srv] = []
    for prio in sorted({r.priority for r in recs}):
        group = [r for r in recs if r.priority == prio]
        # RFC 2782: weight-0 entries at the beginning; otherwise a fixed order (DNS returns a set, in any
        # order): the same draws give the same choice
        group.sort(key=lambda r: (r.weight != 0, r.target, r.port))
        while group:
            total = sum(r.weight for r in group)
            if len(group) == 1:
                pick = 0                        # nothing to choose: no draw
            elif not total:
                pick = 0
            elif group[0].weight == 0:
                pick = rand(total)              # 0..total: a draw of 0 takes the weight-0 record
            else:
                pick = rand(total - 1) + 1      # 1..total
            running = 0
            for i, r in enumerate(group):
                running += r.weight
                if running >= pick:
                    out.append(group.pop(i))
                    break
    return out


def naptr_order(records: Sequence[Naptr], transport: str | None,
                allowed: Sequence[str] = ()) -> list[tuple[str, str]]:
    """The (transport, SRV name) pairs NAPTR offers for SIP, in the carrier's order then preference;
    only terminal "S" records with a SIP service we speak. ``transport``: the trunk's configured
    transport (only that one is used) or None (the carrier's choice among ``allowed``, the transports
    we listen on; () = any)."""
    usable = [r for r in records if r.flags.lower() == "s" and r.service.upper() in NAPTR_SERVICES
              and r.replacement not in ("", ".")]
    usable.sort(key=lambda r: (r.order, r.preference))
    out: list[tuple[str, str]] = []
    for r in usable:
        t = NAPTR_SERVICES[r.service.upper()]
        if (t == transport) if transport else (not allowed or t in allowed):
            out.append((t, r.replacement.rstrip(".")))
    return out


def srv_names(host: str, transport: str | None, allowed: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Without NAPTR: the SRV names to query, in order (the configured transport's only, if any; else
    those of ``allowed``, the transports we listen on, () = any)."""
    host = host.rstrip(".")
    ts = [transport] if transport else [t for t in SRV_ORDER if not allowed or t in allowed]
    return [(t, SRV_PREFIX[t] + host) for t in ts]


def targets_from(transport: str, srvs: Sequence[Srv], addresses: dict[str, list[str]]) -> list[Peer]:
    """SRV records (in try-order) and the addresses of their targets → peers in try-order (each target's
    IPv4 then IPv6 addresses, as the resolver listed them; a target without addresses is left out)."""
    out: list[Peer] = []
    for r in srvs:
        for ip in addresses.get(r.target.rstrip(".").lower(), []):
            peer = Peer(transport, ip, r.port)
            if peer not in out:
                out.append(peer)
    return out


def srv_targets(transport: str, srvs: Sequence[Srv], addresses: dict[str, list[str]]) -> tuple[SrvTarget, ...]:
    """The SRV records with the peers their targets resolved to (records without addresses left out)."""
    out = []
    for r in srvs:
        peers = targets_from(transport, [r], addresses)
        if peers:
            out.append(SrvTarget(r, tuple(peers)))
    return tuple(out)


@dataclass(frozen=True)
class SrvTarget:
    srv: Srv
    peers: tuple[Peer, ...]


# ------------------------------------------------------------------------------------ the cache

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """``[dns]``: TTLs are clamped to min..max (a carrier's TTL of 0 must not make us query per call, nor a
    week-long one outlive its move); failures are remembered for ``negative_ttl`` seconds."""
    min_ttl: float = 30.0
    max_ttl: float = 3600.0
    negative_ttl: float = 30.0

    def clamp(self, ttl: float) -> float:
        return max(self.min_ttl, min(self.max_ttl, ttl))


@dataclass(frozen=True)
class Entry(Generic[T]):
    value: T | None           # None: a negative answer (NXDOMAIN / no data / failure)
    expires: float
    error: str = ""


class Cache(Generic[T]):
    """Answers by (name, record type) until they expire, on the caller's clock. Bounded: beyond
    ``max_entries`` the entry expiring first is dropped (names come from config, so this is a guard)."""

    def __init__(self, limits: Limits = Limits(), max_entries: int = 1024):
        self.limits = limits
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], Entry[T]] = {}

    def get(self, name: str, rtype: str, now: float) -> Entry[T] | None:
        key = (name.lower().rstrip("."), rtype)
        e = self._entries.get(key)
        if e is not None and now >= e.expires:
            del self._entries[key]
            return None
        return e

    def put(self, name: str, rtype: str, value: T, ttl: float, now: float) -> Entry[T]:
        return self._store(name, rtype, Entry(value, now + self.limits.clamp(ttl)))

    def put_negative(self, name: str, rtype: str, error: str, now: float) -> Entry[T]:
        return self._store(name, rtype, Entry(None, now + self.limits.negative_ttl, error))

    def _store(self, name: str, rtype: str, entry: Entry[T]) -> Entry[T]:
        if len(self._entries) >= self.max_entries:
            oldest = min(self._entries, key=lambda k: self._entries[k].expires)
            del self._entries[oldest]
        self._entries[(name.lower().rstrip("."), rtype)] = entry
        return entry

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True)
class Located:
    """What the edge found for one trunk: its targets in try-order (empty: nothing usable, ``error`` says
    why) and until when they hold (the earliest expiry of the records used)."""
    targets: tuple[Peer, ...]
    expires: float
    error: str = ""
    how: str = ""          # "naptr", "srv", "a": for the log and the API
    srv: tuple[SrvTarget, ...] = ()    # the SRV records behind ``targets`` (empty: A/AAAA only)

    def usable(self, v4: bool, v6: bool) -> "Located":
        """Only the targets of the address families we can send from (a switch listening on IPv4 only
        cannot reach an AAAA target: trying it would cost a time-out per call)."""
        def ok(p: Peer) -> bool:
            return v6 if ":" in p.host else v4
        targets = tuple(p for p in self.targets if ok(p))
        if len(targets) == len(self.targets):
            return self
        srv = tuple(SrvTarget(t.srv, ps) for t in self.srv if (ps := tuple(p for p in t.peers if ok(p))))
        error = self.error or ("" if targets else "only addresses of an IP version we do not listen on")
        return Located(targets, self.expires, error, self.how, srv)

    def ordered(self, rand: RandInt) -> list[Peer]:
        """The targets for one new request: SRV records drawn afresh (RFC 2782 is a choice per request:
        two equal carrier SBCs each get half of the calls, not all calls until the TTL runs out)."""
        if len(self.srv) < 2:
            return list(self.targets)
        by_srv = {id(t.srv): t.peers for t in self.srv}
        out: list[Peer] = []
        for r in srv_order([t.srv for t in self.srv], rand):
            out.extend(p for p in by_srv[id(r)] if p not in out)
        return out
