"""Calls to an extension: ring every registered phone of it (parallel forking), first answer wins.

Serves a dialled extension number, and calls handed over to an extension (a blind transfer, an IVR
``Transfer``): then the caller, already answered by the switch, hears music while the target rings.
Unanswered within ``[sip] ring_timeout`` the caller gets 480 (or, for a transfer, is hung up).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import legs as L
from ..b2bua import best_final
from ..timers import Timers
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.calls")


@dataclass
class Ringing:
    call: "Call"
    number: str
    deadline: float
    transfer: bool            # the caller is already answered (handed over), not ringing


class ExtensionApp(Application):
    name = "extension"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.ringing: dict[str, Ringing] = {}   # call id -> the extension ringing for it
        self._timers: Timers[str] = Timers()

    # ------------------------------------------------------------------------- new calls
    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        cfg = self.config
        caller = call.caller_number
        req = call.caller.invite
        ext = cfg.extension(number) if number else None
        if ext is None or not ext.enabled:
            log.info("call from %s to %s refused: unknown number (404)", caller, number or "-")
            self.do(L.Reject(call, 404), now)
            return
        mf = req.headers.get("Max-Forwards")
        if mf is not None and int(mf) == 0:
            self.do(L.Reject(call, 483), now)
            return
        if not self.b2bua.reachable(ext.number, now):
            log.info("call from %s to %s refused: not registered (480)", caller, number)
            self.do(L.Reject(call, 480, "Not Registered"), now)
            return
        limit = getattr(ext, "busy_limit", 1)
        if limit and self.b2bua.active_calls(ext.number) >= limit:
            log.info("call from %s to %s refused: busy (486)", caller, number)
            call.final_status = 486
            self.do(L.Reject(call, 486), now)
            return
        call.callee_number = ext.number
        caller_ext = cfg.extension(caller)
        display = (caller_ext.name if caller_ext and caller_ext.name else caller).replace('"', "")
        mf_out = str(min(69, int(mf) - 1 if mf is not None else 69))
        passthrough = (req.body, req.headers.get("Content-Type") or "application/sdp") if self.b2bua.media is None else None
        legs = self.do(L.Ring(call, ext.number, display, mf_out, passthrough), now)
        if not call.live:
            return  # the caller's SDP or media ports failed: answered already
        if not legs:  # every fork failed for want of a media port
            self.do(L.Reject(call, 503, "Out of Media Ports", (("Retry-After", "5"),)), now)
            return
        self._ring(call, ext.number, now, transfer=False)
        if cfg.extension(ext.number) is not None:  # the ACD never offers a queue call to a phone on a call
            self.router.presence.mark(call.id, ext.number, now)
        log.info("call %s: %s -> %s ringing %d contact(s)", call.id, caller, ext.number, len(legs))

    def take(self, call: "Call", number: str, now: float) -> None:
        """A transferred caller (answered by the switch, hearing music) rings extension ``number``."""
        legs = self.do(L.Ring(call, number), now)
        log.info("call %s: %s transferred to %s (%d phone(s))", call.id, call.caller_number, number, len(legs))
        if not legs:
            log.info("call %s: transfer target %s not reachable", call.id, number)
            self.do(L.Hangup(call, f"transfer target {number} not reachable"), now)
            return
        self._ring(call, number, now, transfer=True)
        if self.config.extension(number) is not None:
            self.router.presence.mark(call.id, number, now)

    def _ring(self, call: "Call", number: str, now: float, transfer: bool) -> None:
        deadline = now + self.config.sip.ring_timeout
        self.ringing[call.id] = Ringing(call, number, deadline, transfer)
        self._timers.schedule(deadline, call.id)

    # --------------------------------------------------------------------------- events
    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        if isinstance(event, L.LegAnswered):
            r = self.ringing.pop(call.id, None)
            if r is None and call.answered is not None:
                self.do(L.CancelLeg(event.leg), now)  # a second answer: the call has its party
                return
            if r is not None and r.transfer:
                log.info("call %s: transfer to %s answered", call.id, r.number)
            self.do(L.Connect(call, event.leg), now)
            if r is not None and r.transfer:
                self.router.agent_answered(call, r.number, now)   # an agent's part, if an agent took it
        elif isinstance(event, L.LegFailed):
            self._failed(event, now)
        else:
            super().handle(event, now)

    def _failed(self, event: L.LegFailed, now: float) -> None:
        call = event.call
        r = self.ringing.get(call.id)
        if r is None or any(leg.ringing for leg in call.callees):
            return
        del self.ringing[call.id]
        best = best_final([leg.final for leg in call.callees if leg.final is not None and not leg.withdrawn])
        code, reason = (best.status, best.reason) if best else (480, None)
        call.final_status = code
        if r.transfer:
            log.info("call %s: transfer to %s failed (%d)", call.id, r.number, code)
            self.do(L.Hangup(call, f"transfer failed {code}"), now)
            return
        if code in (408, 503):
            code, reason = 480, "Temporarily Unavailable"
        self.do(L.Reject(call, code, reason), now)

    def gone(self, call: "Call", now: float) -> None:
        self.ringing.pop(call.id, None)

    # --------------------------------------------------------------------------- timers
    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def on_timer(self, now: float) -> None:
        for call_id in self._timers.due(now):
            r = self.ringing.get(call_id)
            if r is None or now < r.deadline or not r.call.live:
                continue
            del self.ringing[call_id]
            call = r.call
            call.final_status = 408
            call.end_reason = "no answer"
            if r.transfer:
                log.info("call %s: transfer to %s not answered", call.id, r.number)
                self.do(L.Hangup(call, "transfer not answered"), now)
            else:
                self.do(L.Reject(call, 480, "No Answer"), now)
