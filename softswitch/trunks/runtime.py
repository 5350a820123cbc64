"""The trunks' live state, driven by the switch core: registrations, keep-alives, what the API shows.

The core hands over the responses and time-outs of the requests sent here (``owns``), calls
``on_timer`` at ``next_deadline``, and asks ``is_up`` (the dialer does, to order trunks). Requests go
out through the core's transaction layer; nothing here touches a socket or a clock. ``set_table``
takes a new ``TrunkTable`` (a reload): registrations of trunks whose settings did not change go on.
"""
from __future__ import annotations

import logging
from typing import Any

from ..sip.dialog import new_call_id, new_tag
from ..sip.message import Response, new_request
from ..sip.transaction import Peer, new_branch
from .config import Trunk
from .keepalive import Health, KeepAlive
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
        self._build(table)
        if self._started:
            self._start_registrations(now)

    # ------------------------------------------------------------------------------ queries
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
            out.append(d)
        return out

    # ------------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        if not self.table:
            return None
        if not self._started:
            return 0.0
        ds = [d for d in [*(r.next_deadline() for r in self.registrations.values()),
                          *(k.next_deadline() for k in self.keepalives.values())] if d is not None]
        return min(ds) if ds else None

    def on_timer(self, now: float) -> None:
        if not self.table or not self.core.local:
            return  # nothing to do, or our listeners are not bound yet (no address for Via/Contact)
        if not self._started:
            self._started = True
            self._start_registrations(now)
        for name, reg in self.registrations.items():
            for req in reg.on_timer(now):
                self._send(name, "register", req, now)
        for ka in self.keepalives.values():
            before = ka.health
            if ka.due(now):
                self._ping(ka.trunk, now)
            if ka.health is Health.DOWN and before is not Health.DOWN:   # the wallboard's trunk alarm
                self._health_event(ka.trunk.name, False, f"{ka.missed} OPTIONS unanswered", now)

    def _start_registrations(self, now: float) -> None:
        for t in self.table.trunks.values():
            if t.enabled and t.register and t.name not in self.registrations:
                reg = self._registration(t)
                self.registrations[t.name] = reg
                for req in reg.start(now):
                    self._send(t.name, "register", req, now)

    def _registration(self, t: Trunk) -> Registration:
        peer = _peer(t)
        host, port = self.core._local_for(t.transport)
        user = t.contact_user or t.username
        transport = "" if t.transport == "udp" else f";transport={t.transport}"
        h = f"[{host}]" if ":" in host else host
        return Registration(t, f"<sip:{user}@{h}:{port}{transport}>", lambda branch: self.core.via(peer, branch), host)

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
        peer = _peer(t)
        host = f"[{t.host}]" if ":" in t.host else t.host
        domain = self.core.config.sip.domain
        req = new_request("OPTIONS", f"sip:{host}:{t.port}", [
            ("Via", self.core.via(peer, new_branch())),
            ("Max-Forwards", "70"),
            ("From", f"<sip:keepalive@{domain}>;tag={new_tag()}"),
            ("To", f"<sip:{host}:{t.port}>"),
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
        tx, actions = self.core.tl.send_request(req, _peer(trunk), now)
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
            if reg is not None and reg.request is not None and resp.cseq.number == reg.cseq:
                for req in reg.on_response(resp, now):
                    self._send(name, "register", req, now)

    def on_timeout(self, tx: Any, now: float) -> None:
        name, kind = self._txs.pop(id(tx), ("", ""))
        if kind == "register":
            reg = self.registrations.get(name)
            if reg is not None and reg.request is not None and tx.request.cseq.number == reg.cseq:
                for req in reg.on_timeout(now):
                    self._send(name, "register", req, now)


def _peer(t: Trunk) -> Peer:
    return Peer(t.transport, t.host, t.port)
