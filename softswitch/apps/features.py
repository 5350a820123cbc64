"""Feature codes dialled from a phone (``*11*2001`` login, ``*12`` logout, ``*13`` not ready, ``*14``
ready): the ACD applies them, the switch answers with a tone (two short beeps: done; one low tone:
refused) and hangs up.

An agent with a PIN (``[[acd.agents]] pin``) who dials ``*11*<id>`` (or ``*11`` on its own phone) without
it is asked for it: the switch answers, plays a rising two-tone prompt and collects the PIN as DTMF,
ended by ``#`` (``*`` starts over), within ``PIN_TIMEOUT`` seconds. Keyed in, the PIN stays out of the
phone's call history and redial list, which ``*11*<id>*<pin>`` does not.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
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
PIN_PROMPT_TONE = [(600, 0.15), (0, 0.05), (900, 0.25)]   # "key in your PIN, then #"
PIN_TIMEOUT = 15.0
MAX_PIN_DIGITS = 12


@dataclass
class _PinEntry:
    """A login waiting for its PIN as DTMF."""

    agent_id: str
    deadline: float
    digits: str = ""


class FeatureApp(Application):
    name = "features"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.tones: dict[str, int] = {}   # call id -> the tone's playback id
        self.pins: dict[str, _PinEntry] = {}  # call id -> PIN being keyed in

    def serves(self, number: str) -> bool:
        return parse_feature_code(number, self.config.acd.feature_codes) is not None

    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        call.notes["service"] = True
        agent_id = self._asks_pin(call, number)
        if agent_id is not None:
            if not self.do(L.AnswerLocally(call), now):
                return
            call.answered_at = now
            call.callee_number = mask_pin(number, self.config.acd.feature_codes)
            log.info("feature code %s from %s: PIN asked for agent %s", number, call.caller_number, agent_id)
            self.pins[call.id] = _PinEntry(agent_id, now + PIN_TIMEOUT)
            self.do(L.Play(call.caller, self.router.sounds.generated("<pin>", PIN_PROMPT_TONE)), now)
            return
        self._apply(call, number, now, answered=False)

    def _asks_pin(self, call: "Call", number: str) -> str | None:
        """The agent whose PIN to ask for: a login without a PIN for an agent that has one."""
        acd = self.config.acd
        cmd = parse_feature_code(number, acd.feature_codes)
        if cmd is None or cmd.command != "login" or cmd.pin is not None:
            return None
        agent = next((a for a in acd.agents if (a.id == cmd.agent_id if cmd.agent_id
                                                 else a.extension == call.caller_number)), None)
        return agent.id if agent is not None and agent.pin else None

    def _apply(self, call: "Call", number: str, now: float, *, answered: bool) -> None:
        queue = self.router.queue
        acts = queue.acd.handle(acd_events.FeatureCodeDialled(call.caller_number, number), now)
        reply = next((a for a in acts if isinstance(a, acd_actions.FeatureCodeReply)), None)
        ok = bool(reply and reply.ok)
        self._result(call, mask_pin(number, self.config.acd.feature_codes), ok,
                     reply.message if reply else "no reply", now, answered=answered)
        queue.execute(acts, now)

    def _result(self, call: "Call", shown: str, ok: bool, message: str, now: float, *, answered: bool) -> None:
        call.callee_number = shown  # the call record must not keep an agent's PIN
        log.info("feature code %s from %s: %s (%s)", shown, call.caller_number, "ok" if ok else "refused", message)
        if not answered:
            if not self.do(L.AnswerLocally(call), now):
                return
            call.answered_at = now  # the switch is the party this call reached
        sounds = self.router.sounds
        tone = sounds.generated("<confirm>" if ok else "<refuse>", CONFIRM_TONE if ok else REFUSE_TONE)
        pid = self.do(L.Play(call.caller, tone), now)
        if pid is None:
            self.do(L.Hangup(call, "feature code done"), now)
        else:
            self.tones[call.id] = pid

    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        entry = self.pins.get(call.id)
        if entry is not None and isinstance(event, L.DigitReceived) and event.leg is call.caller:
            if event.digit == "*":
                entry.digits = ""
            elif event.digit.isdigit():
                entry.digits += event.digit
            if event.digit == "#" or len(entry.digits) >= MAX_PIN_DIGITS:
                self._pin_done(call, entry, now)
        elif entry is not None and isinstance(event, L.PlaybackFinished):
            pass  # the prompt ended: keep listening for the PIN
        elif isinstance(event, L.PlaybackFinished) and event.leg is call.caller and self.tones.get(call.id) == event.playback:
            del self.tones[call.id]
            self.do(L.Hangup(call, "prompt played"), now)
        else:
            super().handle(event, now)

    def _pin_done(self, call: "Call", entry: _PinEntry, now: float) -> None:
        del self.pins[call.id]
        self.do(L.StopPlayback(call.caller), now)
        login = self.config.acd.feature_codes.login
        if not entry.digits:
            self._result(call, f"{login}*{entry.agent_id}", False, "no PIN keyed in", now, answered=True)
            return
        self._apply(call, f"{login}*{entry.agent_id}*{entry.digits}", now, answered=True)

    def next_deadline(self) -> float | None:
        return min((e.deadline for e in self.pins.values()), default=None)

    def on_timer(self, now: float) -> None:
        for call_id, entry in list(self.pins.items()):
            if now >= entry.deadline:
                call = self.b2bua.calls.get(call_id)
                if call is None:
                    self.pins.pop(call_id, None)
                else:
                    self._pin_done(call, entry, now)

    def gone(self, call: "Call", now: float) -> None:
        self.tones.pop(call.id, None)
        self.pins.pop(call.id, None)
