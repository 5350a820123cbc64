"""Calls the switch starts: ring party A, and when A answers ring party B and connect them.

This is the building block of click-to-dial and callbacks: A is typically the agent's phone, B the
customer. B may be an extension or an external number: a number the dial plan sends to the trunks
(``Router.route`` gives the external-calls application) is dialled through the dial rules with failover
(``trunks.dialer``), presenting ``external_caller_id`` (e.g. the hotline number), with A's permission
class unless the switch itself asks (``permission=None``). See docs/trunks.md. A hears ringback-like music while B rings; if B does not answer (or refuses) A is hung up;
if A hangs up first the attempt to reach B is cancelled.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import legs as L
from ..timers import Timers
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.calls")


@dataclass(eq=False)
class Attempt:
    call: "Call"
    a: str
    b: str
    deadline: float
    phase: str = "ringing-a"     # ringing-a | ringing-b | connected
    external_caller_id: str = ""  # presented to B when B is an external number
    permission: str | None = None  # class checked for an external B (None: not checked)


class OriginateApp(Application):
    name = "originate"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.attempts: dict[str, Attempt] = {}
        self._timers: Timers[str] = Timers()

    def originate(self, a: str, b: str, now: float, caller_id: str = "", variables: dict | None = None, *,
                  external_caller_id: str = "", permission: str | None = "extension") -> "Call | None":
        """Ring extension ``a`` (showing ``caller_id``, default ``b``); then ``b``: an extension, or an
        external number through the dial rules and trunks, presenting ``external_caller_id`` ("" = the
        rule's or trunk's ``caller_id``). ``permission``: "extension" = A's permission class, a class
        name, or None (the switch decided: callbacks, campaigns). None if A cannot be rung."""
        call = self.do(L.Originate(a, caller_id or b, display=caller_id or b, variables=variables or {}), now)
        if call is None:
            log.info("originate %s -> %s refused: %s not reachable", a, b, a)
            return None
        call.app = self
        call.caller_number, call.callee_number = a, b
        deadline = now + self.config.sip.ring_timeout
        if permission == "extension":
            permission = self.router.external.permission_of(a) or "internal"
        self.attempts[call.id] = Attempt(call, a, b, deadline, external_caller_id=external_caller_id,
                                         permission=permission)
        self._timers.schedule(deadline, call.id)
        log.info("call %s: originate: ringing %s, then %s", call.id, a, b)
        return call

    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        at = self.attempts.get(call.id)
        if at is None:
            super().handle(event, now)
            return
        leg = event.leg
        if isinstance(event, L.LegAnswered) and leg is call.caller and at.phase == "ringing-a" \
                and self.router.monitor.serves(at.b):  # a supervisor joins an agent's call (wallboard, desk)
            at.phase = "connected"
            self.attempts.pop(call.id, None)
            self.router.hand_over(call, self.router.monitor, at.b, now)
        elif isinstance(event, L.LegAnswered) and leg is call.caller and at.phase == "ringing-a":
            at.phase = "ringing-b"
            at.deadline = now + self.config.sip.ring_timeout
            self._timers.schedule(at.deadline, call.id)
            self.do(L.Music(leg), now)
            if self.router.route(at.b) is self.router.external:
                self._dial_external(call, at, now)
            elif not self.do(L.Ring(call, at.b, display=at.a), now):
                log.info("call %s: originate: %s not reachable", call.id, at.b)
                call.final_status = 480
                self.do(L.Hangup(call, f"{at.b} not reachable"), now)
            else:
                self.router.presence.mark(call.id, at.a, now)
                self.router.presence.mark(call.id, at.b, now)
        elif isinstance(event, L.LegAnswered) and at.phase == "ringing-b":
            at.phase = "connected"
            self.do(L.Connect(call, leg), now)
        elif isinstance(event, L.LegFailed):
            if leg is call.caller:
                call.final_status = event.status
                self.do(L.Hangup(call, f"{at.a} did not answer ({event.status})"), now)
            elif not event.withdrawn and not any(x.ringing for x in call.callees) and at.phase == "ringing-b":
                call.final_status = event.status
                self.do(L.Hangup(call, f"{at.b} did not answer ({event.status})"), now)
        else:
            super().handle(event, now)

    def _dial_external(self, call: "Call", at: Attempt, now: float) -> None:
        result = self.router.dialer.dial(call, at.b, now, caller_id=at.external_caller_id, permission=at.permission)
        if result != "ringing":
            log.info("call %s: originate: %s not dialled: %s", call.id, at.b, result)
            call.final_status = 403 if result == "forbidden" else 503 if result == "no_trunk" else 404
            self.do(L.Hangup(call, f"{at.b} not dialled: {result}"), now)
            return
        self.router.presence.mark(call.id, at.a, now)

    def gone(self, call: "Call", now: float) -> None:
        self.attempts.pop(call.id, None)

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def on_timer(self, now: float) -> None:
        for call_id in self._timers.due(now):
            at = self.attempts.get(call_id)
            if at is None or at.phase == "connected" or now < at.deadline:
                continue
            at.call.final_status = 408
            self.do(L.Hangup(at.call, "no answer"), now)
