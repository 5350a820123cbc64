"""Outbound calls through the dial rules and trunks, with failover, for any application.

``Dialer.dial(call, number, now, caller_id=...)`` resolves ``number`` through the dial rules, checks
the permission class, and rings the first available trunk of the rule (``legs.Dial``: the carrier's
401/407 is answered with the trunk's credentials by the B2BUA). When that leg fails with a 5xx, a
408 or no response at all within the trunk's ``progress_timeout`` (a trunk down), the router hands
the ``LegFailed`` here first (``on_leg_failed``) and the next trunk is tried; the owning application
sees only the final outcome: ``LegRinging``/``LegAnswered`` of the leg that got through, or the
``LegFailed`` of the last trunk tried. Busy (486), not found (404), declined (603) and the like are the
callee's answer, not the trunk's failure: they are not retried elsewhere.

A trunk named by host name has targets (RFC 3263: SRV by priority and weight, then A/AAAA), located at
the edge and handed in as data (``targets``, the runtime's ``targets_for``: a fresh SRV draw per call).
A target that answers 503 or nothing at all (408) is left for the trunk's next target before the rule's
next trunk (RFC 3263 section 4.3); other failures (500, 502, 504, a refused challenge) leave the trunk.
A named trunk not resolved (yet) is skipped like a full one.

Trunks are tried in the rule's order; a trunk whose keep-alive says it is down, or that has no free
channel, is skipped (a down trunk is still tried last: a keep-alive may be wrong, a call should not be).

A rule with ``order = "round-robin"`` shares the load by the trunks' ``weight`` (default 1): the first
trunk of each call is chosen by smooth weighted round-robin (nginx's upstream algorithm: every
eligible trunk gains its weight, the one with the most is chosen and pays back the sum), so weights
3 and 1 give a, a, b, a, a, a, b, a, ... — deterministic and evenly interleaved, never random. Only
trunks that could take the call now compete (enabled, not down, a free channel); the others keep
their credit. The rest of the rule follows the chosen trunk around the list, as failover.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable

from .. import legs as L
from ..sip.transaction import Peer
from .config import DialRule, Trunk
from .dialrules import Route
from .numbers import ANONYMOUS, allowed
from .table import TrunkTable

if TYPE_CHECKING:
    from ..call import Call, Leg

log = logging.getLogger("softswitch.trunks")

# the trunk's failure, not the callee's answer: 5xx, time-outs, and a challenge our credentials did not pass
FAILOVER_STATUSES = frozenset({401, 407, 408, 500, 502, 503, 504, 580})
# a target's failure (RFC 3263 4.3: a time-out or 503): the same trunk's next target is tried first
TARGET_FAILOVER_STATUSES = frozenset({408, 503})


class DialResult(str, Enum):
    RINGING = "ringing"              # a trunk leg was sent
    NO_ROUTE = "no_route"            # no dial rule for the number
    FORBIDDEN = "forbidden"          # the permission class does not allow it (or a trunk-to-trunk hairpin)
    NO_TRUNK = "no_trunk"            # every trunk of the rule is full, disabled or failed to start

    def __str__(self) -> str:
        return self.value


@dataclass(eq=False)
class Attempt:
    call: "Call"
    route: Route
    caller_id: str
    remaining: list[str]
    leg: "Leg | None" = None
    tried: list[str] = field(default_factory=list)
    hosts: list[Peer] = field(default_factory=list)   # the current trunk's targets not tried yet


class Dialer:
    def __init__(self, b2bua: Any, table: TrunkTable, ring_timeout: float,
                 is_up: Callable[[str], bool] = lambda name: True):
        self.b2bua = b2bua
        self.table = table
        self.ring_timeout = ring_timeout
        self.is_up = is_up                          # the keep-alive's verdict (runtime)
        # a trunk's targets for a new call (runtime.targets_for): None = its host is an IP; [] = unresolved
        self.targets: Callable[[str], list[Peer] | None] = lambda name: None
        self.attempts: dict[str, Attempt] = {}      # call id -> its outbound attempt
        # round-robin rules: the rule's key -> each trunk's current weight (smooth weighted round-robin)
        self._credit: dict[tuple[Any, ...], dict[str, int]] = {}

    def serves(self, number: str) -> bool:
        return self.table.dialplan.rule_for(number) is not None

    # ------------------------------------------------------------------------------ dialling
    def dial(self, call: "Call", number: str, now: float, *, caller_id: str = "", permission: str | None = None,
             from_trunk: bool = False) -> DialResult:
        """Ring ``number`` (an external number) for ``call`` through the dial rules. ``permission``: the
        class of whoever asks (an extension's ``permission``), None for the switch itself (callbacks,
        campaigns: the caller of this method decided). ``from_trunk``: the call came in from a trunk
        (a hairpin needs a rule with ``from_trunks``)."""
        route = self.table.dialplan.resolve(number)
        if route is None:
            return DialResult.NO_ROUTE
        if from_trunk and not route.rule.from_trunks and route.needs != "emergency":
            log.warning("call %s: trunk-to-trunk call to %s refused (no dial rule with from_trunks)", call.id, number)
            return DialResult.FORBIDDEN
        if permission is not None and not allowed(permission, route.needs):
            log.warning("call %s: %s may not dial %s (%s number, permission %s)", call.id, call.caller_number,
                        number, route.needs, permission)
            return DialResult.FORBIDDEN
        call.notes.update(direction="outbound", external=route.external)
        at = Attempt(call, route, caller_id, self.trunks_for(route.rule))
        self.attempts[call.id] = at
        return DialResult.RINGING if self._next(at, now) else DialResult.NO_TRUNK

    def trunks_for(self, rule: DialRule) -> list[str]:
        """The trunks a new call of ``rule`` tries, in order: for a round-robin rule starting at the trunk
        whose turn it is (by weight), then around the list; enabled ones only, those down last. Each call
        asks once (it advances the rotation): the dialer here and the campaigns' customer-first calls."""
        return self._order(self._rotated(rule))

    def _rotated(self, rule: DialRule) -> list[str]:
        """The rule's trunks, starting at the one whose turn it is when the rule shares the load."""
        names = list(rule.trunks)
        if rule.order != "round-robin" or len(names) < 2:
            return names
        first = self._weighted_pick(rule, names)
        if first is None:
            return names          # none could take a call now: failover order (down last, full ones skipped)
        k = names.index(first)
        return names[k:] + names[:k]

    def _weighted_pick(self, rule: DialRule, names: list[str]) -> str | None:
        """Smooth weighted round-robin among the trunks that could take a call now (nginx's
        ngx_http_upstream_get_peer): each gains its weight, the richest is chosen and pays the total.
        Ties go to the one written first, so equal weights alternate exactly as plain round-robin."""
        credit = self._credit.setdefault(_rule_key(rule), {})
        total, best = 0, None
        for name in names:
            trunk = self.table.trunks.get(name)
            if trunk is None or not trunk.enabled or not self.is_up(name) or self._full(trunk):
                continue
            credit[name] = credit.get(name, 0) + trunk.weight
            total += trunk.weight
            if best is None or credit[name] > credit[best]:
                best = name
        if best is not None:
            credit[best] -= total
        return best

    def _full(self, trunk: Trunk) -> bool:
        return bool(trunk.max_channels) and channels_in_use(self.b2bua, trunk.name) >= trunk.max_channels

    def _order(self, names: list[str]) -> list[str]:
        trunks = [n for n in names if n in self.table.trunks and self.table.trunks[n].enabled]
        return [n for n in trunks if self.is_up(n)] + [n for n in trunks if not self.is_up(n)]

    def peers_for(self, trunk: Trunk) -> list[Peer]:
        """Where a new call through ``trunk`` goes, in try-order ([]: a name not resolved)."""
        peers = self.targets(trunk.name)
        return [Peer(trunk.transport, trunk.host, trunk.port)] if peers is None else peers

    def _next_target(self, at: Attempt, now: float) -> bool:
        """The same trunk's next target (after a 503 or a time-out of the one before)."""
        trunk = self.table.trunks.get(at.tried[-1]) if at.tried else None
        if trunk is None or not at.hosts:
            return False
        peer = at.hosts.pop(0)
        leg = self.b2bua.do(self._command(at, trunk, peer), now)
        if leg is None:
            return False    # no media port: not the target's doing; the rule's next trunk is tried
        at.leg = leg
        log.info("call %s: %s -> %s out via trunk %s at %s:%s:%d", at.call.id, at.call.caller_number,
                 at.route.external, trunk.name, peer.transport, peer.host, peer.port)
        return True

    def _next(self, at: Attempt, now: float) -> bool:
        """Send the call to the next trunk that takes it; False when none is left."""
        while at.remaining:
            name = at.remaining.pop(0)
            trunk = self.table.trunks[name]
            if self._full(trunk):
                log.info("call %s: trunk %s full (%d channels)", at.call.id, name, trunk.max_channels)
                continue
            peers = self.peers_for(trunk)
            if not peers:
                log.warning("call %s: trunk %s skipped: %s is not resolved", at.call.id, name, trunk.host)
                continue
            at.hosts = peers[1:]
            leg = self.b2bua.do(self._command(at, trunk, peers[0]), now)
            if leg is None:
                continue
            at.leg = leg
            at.tried.append(name)
            at.call.notes["trunk"] = name
            log.info("call %s: %s -> %s out via trunk %s as %s", at.call.id, at.call.caller_number,
                     at.route.external, name, at.route.send)
            return True
        return False

    def _command(self, at: Attempt, trunk: Trunk, peer: Peer) -> L.Dial:
        route = at.route
        cid = at.caller_id or route.rule.caller_id or trunk.caller_id or at.call.caller_number or ANONYMOUS
        headers: list[tuple[str, str]] = []
        if cid == ANONYMOUS:
            headers.append(("Privacy", "id"))
        else:
            headers.append(("P-Asserted-Identity", f"<sip:{cid}@{trunk.domain}>"))
        uri = request_uri(route.send, trunk, peer)
        creds = (trunk.auth_user, trunk.password, trunk.realm) if trunk.password else None
        return L.Dial(at.call, uri, peer, cid, trunk.domain,
                      display="" if cid == ANONYMOUS else cid, headers=tuple(headers), credentials=creds,
                      progress_timeout=float(trunk.progress_timeout), limit=self.ring_timeout,
                      codecs=tuple(trunk.codecs), trunk=trunk.name)

    # ------------------------------------------------------------------------------- events
    def on_leg_failed(self, ev: L.LegFailed, now: float) -> bool:
        """Failover: True when the failure was absorbed (a late failure of a trunk we left behind, or
        the next trunk is ringing); False lets the owning application see it."""
        at = self.attempts.get(ev.call.id)
        if at is None or not ev.leg.trunk:
            return False
        if ev.leg is not at.leg:
            return True  # a trunk given up earlier answers late: not news
        if ev.withdrawn or ev.status not in FAILOVER_STATUSES or not ev.call.live:
            return False
        if ev.status == 408 and ev.leg.got_provisional:
            return False  # it rang and nobody answered: the callee's doing, not the trunk's
        if ev.status in TARGET_FAILOVER_STATUSES and at.hosts:
            log.warning("call %s: trunk %s target %s:%d failed (%d %s): trying its next target", ev.call.id,
                        ev.leg.trunk, ev.leg.peer.host, ev.leg.peer.port, ev.status, ev.reason)
            if self._next_target(at, now):
                return True
        log.warning("call %s: trunk %s failed (%d %s)%s", ev.call.id, ev.leg.trunk, ev.status, ev.reason,
                    ": trying the next" if at.remaining else "")
        if self._next(at, now):
            return True
        return False

    def gone(self, call: "Call") -> None:
        self.attempts.pop(call.id, None)

    def leg_of(self, call: "Call") -> "Leg | None":
        at = self.attempts.get(call.id)
        return at.leg if at is not None else None


def request_uri(user: str, trunk: Trunk, peer: Peer) -> str:
    """The Request-URI of a call to ``user`` through ``trunk`` sent to ``peer``: the carrier's host as
    configured (a name the carrier's proxy knows itself by), with the port only when it was written or
    the host is an IP (RFC 3263: a port in the URI would mean "no SRV" to the next hop), and the
    transport ``peer`` uses (a NAPTR may have chosen TCP or TLS)."""
    host = f"[{trunk.host}]" if ":" in trunk.host else trunk.host
    port = "" if trunk.named and trunk.resolve == "rfc3263" else f":{trunk.port}"
    transport = "" if peer.transport == "udp" else f";transport={peer.transport}"
    return f"sip:{user}@{host}{port}{transport}"


def _rule_key(rule: DialRule) -> tuple[Any, ...]:
    """A rule's identity for its rotation: what makes it the rule it is (the same after a reload that did
    not change it; a changed rule starts afresh)."""
    return (rule.prefix, rule.min_length, rule.max_length, tuple(rule.trunks), rule.order)


def channels_in_use(b2bua: Any, trunk: str) -> int:
    """Calls holding a channel of ``trunk``: inbound calls from it, outbound legs to it not yet ended."""
    n = 0
    for call in b2bua.calls.values():
        if not call.live:
            continue
        if call.caller.trunk == trunk:
            n += 1
            continue
        if any(leg.trunk == trunk and leg.state.value != "terminated" for leg in call.callees):
            n += 1
    return n
