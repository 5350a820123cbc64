"""The trunks' live state, driven by the switch core: registrations, keep-alives, what the API shows.

The core hands over the responses and time-outs of the requests sent here (``owns``), calls
``on_timer`` at ``next_deadline``, and asks ``is_up`` (the dialer does, to order trunks). Requests go
out through the core's transaction layer; nothing here touches a socket or a clock. ``set_table``
takes a new ``TrunkTable`` (a reload): registrations of trunks whose settings did not change go on.

Trunks named by host name are located here as data (RFC 3263, ``locate``): a ``ResolveTrunk`` action
asks the edge to look one up when it has no targets or they expired; ``on_located`` takes the answer.
Until then the trunk is not dialled, registered or pinged (nothing blocks on DNS). Calls get the targets
in a fresh SRV draw each (``targets_for``); REGISTER and OPTIONS use one target at a time and move to
the next when a request to it times out. A look-up that fails keeps the last good targets (a DNS
outage must not take the carrier away) and is retried after ``[dns] negative_ttl``.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ..sip.dialog import new_call_id, new_tag
from ..sip.message import Response, new_request
from ..sip.transaction import Peer, new_branch
from .config import Trunk
from .keepalive import Health, KeepAlive
from .locate import Located, Query, RandInt, ResolveTrunk, system_rand
from .registration import Registration
from .table import TrunkTable

log = logging.getLogger("softswitch.trunks")


class TrunkRuntime:
    def __init__(self, core: Any, table: TrunkTable):
        self.core = core                 # softswitch.core.SwitchCore: transactions, our addresses, the outbox
        self.table = table
        self.registrations: dict[str, Registration] = {}
        self.keepalives: dict[str, KeepAlive] = {}
        self._txs: dict[int, tuple[str, str]] = {}   # id(client tx) -> (trunk, "register" | "options")
        self._started = False
        self.located: dict[str, Located] = {}   # named trunks: their targets (RFC 3263), until they expire
        self._resolving: set[str] = set()       # a ResolveTrunk is out at the edge
        self._failing: set[str] = set()         # the last look-up failed (said once in the log)
        self._current: dict[str, int] = {}      # named trunks: the target REGISTER/OPTIONS go to now
        self.rand: RandInt = system_rand()      # SRV draws per call (tests inject a sequence)
        self._build(table)

    def _build(self, table: TrunkTable) -> None:
        for t in table.trunks.values():
            if t.enabled and t.options_interval and t.name not in self.keepalives:
                self.keepalives[t.name] = KeepAlive(t)

    def set_table(self, table: TrunkTable, now: float) -> None:
        old = self.table
        self.table = table
        for name in list(self.registrations):
            if table.trunks.get(name) != old.trunks.get(name):
                del self.registrations[name]   # changed or gone: registered afresh below (if still wanted)
        for name in list(self.keepalives):
            if table.trunks.get(name) != old.trunks.get(name):
                del self.keepalives[name]
        for name in list(self.located):
            t = table.trunks.get(name)
            if t is None or (old_t := old.trunks.get(name)) is None or Query.for_trunk(t) != Query.for_trunk(old_t):
                del self.located[name]          # looked up afresh (a late answer to the old query is ignored)
                self._current.pop(name, None)
        self._build(table)
        if self._started:
            self._start_registrations(now)

    # ------------------------------------------------------------------------------ queries
    def targets_for(self, name: str) -> list[Peer] | None:
        """Where a new call to trunk ``name`` goes, in try-order: None when its host is an IP (the trunk's
        own host and port); [] when its name is not (yet) resolved to anything."""
        t = self.table.trunks.get(name)
        if t is None or not t.named:
            return None
        loc = self.located.get(name)
        return loc.ordered(self.rand) if loc is not None else []

    def peer_for(self, t: Trunk) -> Peer | None:
        """Where REGISTER and OPTIONS go now (None: a named trunk not resolved)."""
        if not t.named:
            return _peer(t)
        loc = self.located.get(t.name)
        if loc is None or not loc.targets:
            return None
        return loc.targets[self._current.get(t.name, 0) % len(loc.targets)]

    def _next_target(self, name: str, why: str) -> None:
        loc = self.located.get(name)
        if loc is not None and len(loc.targets) > 1:
            i = self._current.get(name, 0) + 1
            self._current[name] = i
            p = loc.targets[i % len(loc.targets)]
            log.info("trunk %s: %s; using its next target %s:%s:%d", name, why, p.transport, p.host, p.port)

    def on_located(self, name: str, query: Query, loc: Located, now: float) -> None:
        """The edge's answer to a ``ResolveTrunk``."""
        self._resolving.discard(name)
        loc = loc.usable(*self._families())
        if loc.expires < now + 1.0:   # never a look-up loop (a TTL of 0 with min_ttl 0, a slow answer)
            loc = replace(loc, expires=now + 1.0)
        t = self.table.trunks.get(name)
        if t is None or self._query(t) != query:
            return   # gone or changed by a reload meanwhile
        old = self.located.get(name)
        if not loc.targets:
            said = name in self._failing      # the log says a failure once, and its end
            self._failing.add(name)
            if old is not None and old.targets:
                if not said:
                    log.warning("trunk %s: %s not resolved (%s): keeping %s until it is", name, t.host, loc.error,
                                _show(old.targets))
                loc = replace(old, expires=loc.expires, error=loc.error)
            elif not said:
                log.warning("trunk %s: %s not resolved (%s): not dialled until it is", name, t.host, loc.error)
        else:
            if name in self._failing:
                self._failing.discard(name)
                log.info("trunk %s: %s resolved again", name, t.host)
            if old is None or old.targets != loc.targets:
                log.info("trunk %s: %s -> %s (%s)", name, t.host, _show(loc.targets), loc.how)
        if old is None or set(old.targets) != set(loc.targets):
            self._current[name] = 0
        self.located[name] = loc
        if self._started and t.enabled and t.register and name not in self.registrations and loc.targets \
                and self.core.local:
            self._start_registrations(now)

    def _resolve_due(self, now: float) -> None:
        for t in self.table.trunks.values():
            if not (t.enabled and t.named) or t.name in self._resolving:
                continue
            loc = self.located.get(t.name)
            if loc is None or now >= loc.expires:
                self._resolving.add(t.name)
                self.core.out.append(ResolveTrunk(t.name, self._query(t)))

    def _families(self) -> tuple[bool, bool]:
        """Whether we listen on IPv4, on IPv6 ("::" is taken as dual-stack)."""
        v4 = v6 = False
        for host, _ in self.core.local.values():
            h = host.strip("[]")
            if ":" in h:
                v6 = True
                v4 = v4 or h == "::"
            else:
                v4 = True
        return v4, v6

    def _query(self, t: Trunk) -> Query:
        """What to look up for ``t``: a carrier's NAPTR/SRV choice only among the transports we listen on."""
        return Query.for_trunk(t, tuple(sorted(self.core.local)))

    def is_up(self, name: str) -> bool:
        ka = self.keepalives.get(name)
        return ka is None or ka.health is not Health.DOWN

    def status(self, now: float) -> list[dict[str, Any]]:
        """Per trunk: its public settings, keep-alive health, registration state, channels in use."""
        from .dialer import channels_in_use
        out = []
        for t in self.table.trunks.values():
            ka = self.keepalives.get(t.name)
            reg = self.registrations.get(t.name)
            d = t.public()
            d.update(enabled=t.enabled, health=ka.health.value if ka else "unknown",
                     channels=channels_in_use(self.core.b2bua, t.name),
                     registration=reg.status(now).__dict__ if reg else None)
            if t.named:    # what the name resolved to (RFC 3263), in the order REGISTER/OPTIONS use
                loc = self.located.get(t.name)
                d.update(targets=[f"{p.transport}:{p.host}:{p.port}" for p in loc.targets] if loc else [],
                         resolved_by=loc.how if loc else "", resolve_error=loc.error if loc else "")
            out.append(d)
        return out

    # ------------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        if not self.table:
            return None
        if not self._started:
            return 0.0
        ds = [d for d in [*(r.next_deadline() for r in self.registrations.values()),
                          *(k.next_deadline() for k in self.keepalives.values()
                            if not k.trunk.named or k.trunk.name in self.located)] if d is not None]
        for t in self.table.trunks.values():
            if t.enabled and t.named and t.name not in self._resolving:
                loc = self.located.get(t.name)
                ds.append(loc.expires if loc is not None else 0.0)
        return min(ds) if ds else None

    def on_timer(self, now: float) -> None:
        if not self.table or not self.core.local:
            return  # nothing to do, or our listeners are not bound yet (no address for Via/Contact)
        self._resolve_due(now)
        if not self._started:
            self._started = True
            self._start_registrations(now)
        for name, reg in self.registrations.items():
            for req in reg.on_timer(now):
                self._send(name, "register", req, now)
        for ka in self.keepalives.values():
            before, missed = ka.health, ka.missed
            if ka.trunk.named and ka.trunk.name not in self.located:
                continue   # not looked up yet: nothing to ping
            send = ka.due(now)
            if ka.missed > missed:      # before the next ping: it goes to the next target
                self._next_target(ka.trunk.name, "OPTIONS unanswered")
            if send:
                self._ping(ka.trunk, now)
            if ka.health is Health.DOWN and before is not Health.DOWN:   # the wallboard's trunk alarm
                self._health_event(ka.trunk.name, False, f"{ka.missed} OPTIONS unanswered", now)

    def _start_registrations(self, now: float) -> None:
        for t in self.table.trunks.values():
            if t.enabled and t.register and t.name not in self.registrations:
                if self.peer_for(t) is None:
                    continue   # a name not resolved yet: registered once it is (on_located)
                reg = self._registration(t)
                self.registrations[t.name] = reg
                for req in reg.start(now):
                    self._send(t.name, "register", req, now)

    def _registration(self, t: Trunk) -> Registration:
        first = self.peer_for(t) or _peer(t)
        host, port = self.core._local_for(first.transport)
        user = t.contact_user or t.username
        transport = "" if first.transport == "udp" else f";transport={first.transport}"
        h = f"[{host}]" if ":" in host else host
        return Registration(t, f"<sip:{user}@{h}:{port}{transport}>",
                            lambda branch: self.core.via(self.peer_for(t) or first, branch), host)

    def unregistering(self) -> bool:
        """Whether an unregistration (shutdown) still waits for the carrier's answer."""
        return any(r.expires == 0 and r.state.value == "registering" for r in self.registrations.values())

    def unregister_all(self, now: float) -> None:
        """At shutdown: every registered trunk gets a REGISTER with Expires 0 (into the core's outbox)."""
        for name, reg in self.registrations.items():
            for req in reg.unregister(now):
                self._send(name, "register", req, now)

    # ------------------------------------------------------------------------------ sending
    def _ping(self, t: Trunk, now: float) -> None:
        peer = self.peer_for(t)
        if peer is None:
            return     # a name that resolved to nothing: the ping is missed (the trunk goes down)
        host = f"[{t.host}]" if ":" in t.host else t.host
        uri = f"sip:{host}" if t.named and not t.port_set else f"sip:{host}:{t.port}"
        domain = self.core.config.sip.domain
        req = new_request("OPTIONS", uri, [
            ("Via", self.core.via(peer, new_branch())),
            ("Max-Forwards", "70"),
            ("From", f"<sip:keepalive@{domain}>;tag={new_tag()}"),
            ("To", f"<{uri}>"),
            ("Call-ID", new_call_id(domain)),
            ("CSeq", "1 OPTIONS"),
            ("User-Agent", self.core.config.sip.user_agent),
        ])
        self._send(t.name, "options", req, now)

    def _health_event(self, name: str, up: bool, reason: str, now: float) -> None:
        from ..events import TrunkStateChanged
        self.core.out.append(TrunkStateChanged(name, up, reason, self.core.router.wall(now)))

    def _send(self, name: str, kind: str, req: Any, now: float) -> None:
        trunk = self.table.trunks[name]
        peer = self.peer_for(trunk)
        if peer is None:   # cannot happen for registrations (started once resolved; failures keep targets)
            log.warning("trunk %s: %s not sent: %s is not resolved", name, kind, trunk.host)
            return
        tx, actions = self.core.tl.send_request(req, peer, now)
        self._txs[id(tx)] = (name, kind)
        self.core.out.extend(actions)

    # ----------------------------------------------------------------------------- responses
    def owns(self, tx: Any) -> bool:
        return id(tx) in self._txs

    def on_response(self, resp: Response, tx: Any, now: float) -> None:
        name, kind = self._txs.get(id(tx), ("", ""))
        if resp.status >= 200:
            self._txs.pop(id(tx), None)
        if kind == "options":
            ka = self.keepalives.get(name)
            if ka is not None and ka.answered(now):
                self._health_event(name, True, "OPTIONS answered", now)
                reg = self.registrations.get(name)
                if reg is not None:  # back up after being down: the carrier may have forgotten us
                    for req in reg.kick(now):
                        self._send(name, "register", req, now)
        elif kind == "register":
            reg = self.registrations.get(name)
            if resp.status == 503:   # RFC 3263 4.3: this target is overloaded; the retry goes to the next
                self._next_target(name, "REGISTER got 503")
            if reg is not None and reg.request is not None and resp.cseq.number == reg.cseq:
                for req in reg.on_response(resp, now):
                    self._send(name, "register", req, now)

    def on_timeout(self, tx: Any, now: float) -> None:
        name, kind = self._txs.pop(id(tx), ("", ""))
        if kind == "register":
            self._next_target(name, "REGISTER timed out")
            reg = self.registrations.get(name)
            if reg is not None and reg.request is not None and tx.request.cseq.number == reg.cseq:
                for req in reg.on_timeout(now):
                    self._send(name, "register", req, now)


def _peer(t: Trunk) -> Peer:
    return Peer(t.transport, t.host, t.port)


def _show(peers: tuple[Peer, ...]) -> str:
    return ", ".join(f"{p.transport}:{p.host}:{p.port}" for p in peers) or "nothing"
