"""Calls to external numbers: a phone dials out through the dial rules and trunks.

Serves a dialled number that is no extension, queue or IVR number but matches a dial rule
(``[[dial_rules]]``). The caller's extension must have the permission class the number needs
(``permission`` of ``[[extensions]]``: internal, local, national, international; emergency numbers
always go out); a call that came in from a trunk goes out again only where a rule allows it
(``from_trunks``: no open relay). The trunk legs, the carrier's digest challenge and failover are the
``trunks.dialer``'s; this application answers the caller with the outcome: the carrier's ringing and
early media (183 with SDP, relayed by the B2BUA so the caller hears announcements), the answer, or
the final refusal (403 not permitted, 404 no route, 503 no trunk, or the callee's own answer).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import legs as L
from ..trunks.dialer import DialResult
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.calls")

REFUSALS = {DialResult.FORBIDDEN: (403, "Not Permitted"), DialResult.NO_ROUTE: (404, "No Route"),
            DialResult.NO_TRUNK: (503, "No Trunk Available")}


class ExternalApp(Application):
    name = "external"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.transfers: set[str] = set()     # calls handed over (the caller is answered already)

    def serves(self, number: str) -> bool:
        return self.router.dialer.serves(number)

    def permission_of(self, number: str) -> str | None:
        """The permission class of extension ``number`` (None: not an extension)."""
        ext = self.config.extension(number)
        if ext is None:
            return None
        numbering = getattr(self.config, "numbering", None)
        default = numbering.default_permission if numbering is not None else "national"
        return getattr(ext, "permission", "") or default

    def _dial(self, call: "Call", number: str, now: float, asking: str) -> DialResult:
        from_trunk = bool(call.caller.trunk)
        permission = self.permission_of(asking)
        if permission is None and not from_trunk:
            permission = "internal"  # nobody we know asks: only emergency numbers
        ext = self.config.extension(asking)
        cid = getattr(ext, "caller_id", "") if ext is not None else ""
        return self.router.dialer.dial(call, number, now, caller_id=cid,
                                       permission=permission, from_trunk=from_trunk)

    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        result = self._dial(call, number, now, call.caller_number)
        if result is not DialResult.RINGING:
            status, reason = REFUSALS[result]
            log.info("call from %s to %s refused: %s (%d)", call.caller_number, number, result, status)
            call.final_status = status
            self.do(L.Reject(call, status, reason), now)
            return
        call.callee_number = number

    def take(self, call: "Call", number: str, now: float) -> None:
        """A blind transfer to an external number: the party who transferred decides the permission."""
        asking = call.answered.party if call.answered is not None else call.caller_number
        result = self._dial(call, number, now, asking)
        if result is not DialResult.RINGING:
            log.info("call %s: transfer to %s refused: %s", call.id, number, result)
            self.do(L.Hangup(call, f"transfer to {number} refused: {result}"), now)
            return
        self.transfers.add(call.id)
        call.callee_number = number

    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        if isinstance(event, L.LegAnswered):
            if call.answered is not None:
                self.do(L.CancelLeg(event.leg), now)
                return
            self.do(L.Connect(call, event.leg), now)
        elif isinstance(event, L.LegFailed):
            if event.withdrawn or any(leg.ringing and not leg.withdrawn for leg in call.callees):
                return
            status = event.status
            call.final_status = status
            if call.id in self.transfers or call.caller.state.value == "confirmed":
                self.do(L.Hangup(call, f"external number failed ({status})"), now)
                return
            reason = event.reason or None
            if status == 408 and event.leg.got_provisional:
                status, reason = 480, "No Answer"    # it rang: the callee did not answer
            elif status in (401, 407, 408, 500, 502, 504, 580):  # (never relay a carrier's challenge)  # the trunks failed (failover is over): not the callee
                status, reason = 503, "No Trunk Available"
            self.do(L.Reject(call, status, reason), now)
        else:
            super().handle(event, now)

    def gone(self, call: "Call", now: float) -> None:
        self.transfers.discard(call.id)
