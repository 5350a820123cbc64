"""Feature codes dialled from a phone (``*11*2001`` login, ``*12`` logout, ``*13`` not ready, ``*14``
ready): the ACD applies them, the switch answers with a tone (two short beeps: done; one low tone:
refused) and hangs up."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from acd import actions as acd_actions
from acd import events as acd_events
from acd.featurecodes import mask_pin, parse_feature_code

from .. import legs as L
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.queues")

CONFIRM_TONE = [(1000, 0.12), (0, 0.08), (1000, 0.12), (0, 0.3)]
REFUSE_TONE = [(400, 0.6), (0, 0.3)]


class FeatureApp(Application):
    name = "features"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.tones: dict[str, int] = {}   # call id -> the tone's playback id

    def serves(self, number: str) -> bool:
        return parse_feature_code(number, self.config.acd.feature_codes) is not None

    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        queue = self.router.queue
        acts = queue.acd.handle(acd_events.FeatureCodeDialled(call.caller_number, number), now)
        reply = next((a for a in acts if isinstance(a, acd_actions.FeatureCodeReply)), None)
        ok = bool(reply and reply.ok)
        shown = mask_pin(number, self.config.acd.feature_codes)
        call.callee_number = shown  # the call record must not keep an agent's PIN
        log.info("feature code %s from %s: %s (%s)", shown, call.caller_number, "ok" if ok else "refused",
                 reply.message if reply else "no reply")
        call.notes["service"] = True
        if self.do(L.AnswerLocally(call), now):
            call.answered_at = now  # the switch is the party this call reached
            sounds = self.router.sounds
            tone = sounds.generated("<confirm>" if ok else "<refuse>", CONFIRM_TONE if ok else REFUSE_TONE)
            pid = self.do(L.Play(call.caller, tone), now)
            if pid is None:
                self.do(L.Hangup(call, "feature code done"), now)
            else:
                self.tones[call.id] = pid
        queue.execute(acts, now)

    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        if isinstance(event, L.PlaybackFinished) and event.leg is call.caller and self.tones.get(call.id) == event.playback:
            del self.tones[call.id]
            self.do(L.Hangup(call, "prompt played"), now)
        else:
            super().handle(event, now)

    def gone(self, call: "Call", now: float) -> None:
        self.tones.pop(call.id, None)
