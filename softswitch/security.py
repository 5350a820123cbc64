"""Failed-authentication ban tracker (fail2ban-like) and the watch on unanswered challenges, sans-IO.

SIP scanners (friendly-scanner, sipvicious, ...) hammer REGISTER/INVITE with guessed passwords. The
transport layer asks ``BanTracker.is_banned`` before doing any work for a datagram and reports each
digest "failed" outcome with ``record_failure``; the time is always passed in as ``now``.
"""
from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = ["BanPolicy", "BanTracker", "ChallengeWatch", "Unanswered", "source_key"]

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class BanPolicy:
    """max_failures within window seconds bans an address for ban_time seconds.

    exempt holds IPs or CIDRs (e.g. the call-centre LAN, a trunk provider). Loopback is NOT exempt
    unless listed: a local proxy or a compromised local process must not get a free pass.
    """

    max_failures: int = 10
    window: float = 60.0
    ban_time: float = 900.0
    exempt: tuple[str, ...] = ()


@dataclass(slots=True)
class _Entry:
    failures: deque[tuple[float, str]] = field(default_factory=deque)  # (time, user) of each counted failure
    banned_until: float | None = None


IPV6_BAN_PREFIX = 64  # one IPv6 subscriber holds a /64 (RFC 6177): banning one address of it bans nothing


@functools.lru_cache(maxsize=4096)  # parsed on every request: a few hot sources dominate
def _normalise(ip: str) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """Canonical key for an address so '::ffff:10.0.0.1' and '10.0.0.1' (or differently written IPv6)
    count as one source, and every address of an IPv6 /64 as one (a host picks any address in its /64
    at will: privacy addresses, RFC 8981). Unparseable strings are used verbatim."""
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]"))
    except ValueError:
        return ip, None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if isinstance(addr, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((addr, IPV6_BAN_PREFIX), strict=False)), addr
    return str(addr), addr


def source_key(ip: str) -> str:
    """The key bans and throttles count a source address under (IPv4 address, IPv6 /64)."""
    return _normalise(ip)[0]


class BanTracker:
    """Counts failed authentications per source address (an IPv6 /64) in a sliding window; max_failures
    within window bans the address for ban_time. Memory is bounded (max_addresses, evicting the least
    recently seen) so a scanner spraying source addresses cannot exhaust memory.

    Failures are remembered with the user they were for, and only time forgets them: a successful
    login forgets that user's own earlier failures from that address (a phone whose password was
    just fixed), never another user's, so an attacker holding one valid extension cannot reset the
    count between guesses at the others."""

    def __init__(self, policy: BanPolicy, max_addresses: int = 65536):
        if policy.max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        if max_addresses < 1:
            raise ValueError("max_addresses must be >= 1")
        self.policy = policy
        self.max_addresses = max_addresses
        self._exempt: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(net.strip(), strict=False) for net in policy.exempt
        )
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _is_exempt(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return addr is not None and any(addr.version == net.version and addr in net for net in self._exempt)

    def exempt(self, ip: str) -> bool:
        """Whether ``ip`` is in ``ban_exempt`` (trunks, SBCs, the office LAN)."""
        return self._is_exempt(_normalise(ip)[1])

    def _expire_ban(self, key: str, entry: _Entry, now: float) -> None:
        if entry.banned_until is not None and now >= entry.banned_until:
            entry.banned_until = None
            if not entry.failures:
                del self._entries[key]

    def is_banned(self, ip: str, now: float) -> bool:
        """True while the address serves a ban. Touching a banned address keeps it from being evicted."""
        key, _ = _normalise(ip)
        entry = self._entries.get(key)
        if entry is None or entry.banned_until is None:
            return False
        self._expire_ban(key, entry, now)
        if entry.banned_until is None:
            return False
        self._entries.move_to_end(key)
        return True

    def record_failure(self, ip: str, now: float, user: str = "") -> bool:
        """Count one failed authentication (for ``user``); True if this failure caused a new ban."""
        key, addr = _normalise(ip)
        if self._is_exempt(addr):
            return False
        p = self.policy
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(deque(maxlen=p.max_failures))
            self._evict()
        else:
            self._entries.move_to_end(key)
            self._expire_ban(key, entry, now)
            if key not in self._entries:  # ban had expired with nothing else to remember
                entry = self._entries[key] = _Entry(deque(maxlen=p.max_failures))
        if entry.banned_until is not None:
            return False  # already banned; its traffic should not even get here
        failures = entry.failures
        while failures and now - failures[0][0] >= p.window:
            failures.popleft()
        failures.append((now, user))
        if len(failures) >= p.max_failures:
            failures.clear()
            entry.banned_until = now + p.ban_time
            return True
        return False

    def record_success(self, ip: str, now: float, user: str = "") -> None:
        """``user`` logged in from ``ip``: forget that user's own failures from there (not other users':
        see the class). An active ban stays: it is lifted only by time."""
        key, _ = _normalise(ip)
        entry = self._entries.get(key)
        if entry is None:
            return
        if any(u == user for _, u in entry.failures):
            kept = [f for f in entry.failures if f[1] != user]
            entry.failures.clear()
            entry.failures.extend(kept)
        self._expire_ban(key, entry, now)
        if key in self._entries and entry.banned_until is None and not entry.failures:
            del self._entries[key]

    def ban(self, ip: str, until: float) -> None:
        """Serve a ban until ``until`` (restored from the store after a restart)."""
        key, addr = _normalise(ip)
        if self._is_exempt(addr):
            return
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(deque(maxlen=self.policy.max_failures))
            self._evict()
        entry.banned_until = max(until, entry.banned_until or until)

    def banned(self, now: float) -> dict[str, float]:
        """ip -> ban expiry for active bans, for status pages and logging (drops expired ones)."""
        out: dict[str, float] = {}
        for key, entry in list(self._entries.items()):
            if entry.banned_until is None:
                continue
            self._expire_ban(key, entry, now)
            if entry.banned_until is not None:
                out[key] = entry.banned_until
        return out

    def _evict(self) -> None:
        while len(self._entries) > self.max_addresses:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Unanswered:
    """A source that was challenged and never came back with credentials (``ChallengeWatch.expire``)."""

    ip: str
    user: str
    method: str
    challenges: int
    since: float


class ChallengeWatch:
    """Who was challenged (401/407) and never answered: a phone that cannot do the offered digest
    algorithm, or has no password set, gives up silently; this is how the switch's log learns of it.

    Challenges are stateless, so this is the one place that remembers them: per (source address, user),
    the first unanswered challenge's time and a count, in a bounded table (the oldest entries go first,
    so a scanner spraying users costs a fixed amount of memory). ``expire`` returns the entries older
    than ``timeout`` (a retry comes within a second or two; 32 s is SIP's transaction timeout); each is
    reported once, then muted for ``mute`` seconds so a phone retrying every minute is one log line per
    ``mute``, not one per attempt."""

    def __init__(self, timeout: float = 32.0, max_entries: int = 1024, mute: float = 600.0):
        self.timeout = timeout
        self.max_entries = max_entries
        self.mute = mute
        self._open: OrderedDict[tuple[str, str], list] = OrderedDict()  # key -> [since, method, count]
        self._muted: OrderedDict[tuple[str, str], float] = OrderedDict()  # key -> muted until

    def __len__(self) -> int:
        return len(self._open)

    def challenged(self, ip: str, user: str, method: str, now: float) -> None:
        key = (_normalise(ip)[0], user)
        until = self._muted.get(key)
        if until is not None:
            if now < until:
                return
            del self._muted[key]
        entry = self._open.get(key)
        if entry is None:
            self._open[key] = [now, method, 1]
            while len(self._open) > self.max_entries:
                self._open.popitem(last=False)
        else:
            entry[2] += 1

    def answered(self, ip: str, user: str) -> None:
        """Credentials came (right or wrong): the phone can answer this challenge."""
        if self._open:
            self._open.pop((_normalise(ip)[0], user), None)

    def expire(self, now: float) -> list[Unanswered]:
        out: list[Unanswered] = []
        while self._open:
            key, (since, method, count) = next(iter(self._open.items()))
            if now - since < self.timeout:
                break  # insertion order is time order
            del self._open[key]
            out.append(Unanswered(key[0], key[1], method, count, since))
            self._muted[key] = now + self.mute
            self._muted.move_to_end(key)
            while len(self._muted) > self.max_entries:
                self._muted.popitem(last=False)
        return out
