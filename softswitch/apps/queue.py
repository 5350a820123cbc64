"""Queue calls: the switch answers, the caller hears music while the ACD (``acd.Acd``) picks an agent.

This module is the ACD's one owner: the only writer of its waiting calls (``enqueue``/``_leave``)
and the executor of its decisions. Each ``RingAgent`` becomes a new outgoing leg to the agent's
phone(s) carrying the switch's own SDP; when the agent answers, the ACD says ``Connect`` and the two
are bridged (after the agent's work number is announced to the caller and the queue's name whispered
to the agent, when the queue asks for it). Feature codes, supervisors and the API reach the ACD
through ``feed``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from acd import actions as acd_actions
from acd import events as acd_events
from acd.engine import Acd
from ivr.prompts import agent_announcement, queue_announcement

from .. import events as ev
from .. import legs as L
from ..states import LegState, move
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call, Leg

log = logging.getLogger("softswitch.queues")

RING_GRACE = 3.0  # an agent leg's hard ring limit: the queue's ring time plus this (if the ACD's own is lost)


class QueueCallState(str, Enum):
    WAITING = "waiting"          # in the ACD, hearing music; agents may be ringing
    CONNECTING = "connecting"    # an agent answered; announcements play before the bridge
    CONNECTED = "connected"      # talking to the agent


TRANSITIONS = {
    QueueCallState.WAITING: frozenset({QueueCallState.CONNECTING, QueueCallState.CONNECTED}),
    QueueCallState.CONNECTING: frozenset({QueueCallState.CONNECTED}),
    QueueCallState.CONNECTED: frozenset(),
}


@dataclass(eq=False)
class QueueCall:
    call: "Call"
    acd_id: str                  # the call's id in the ACD (a new one each time it enters a queue)
    queue: str
    state: QueueCallState = QueueCallState.WAITING
    agents: dict["Leg", str] = field(default_factory=dict)   # legs offering the call -> agent id
    answered_offer: set["Leg"] = field(default_factory=set)
    agent: str = ""              # the agent connected
    prompt: int | None = None    # playback to the caller, and what follows it
    after_prompt: str = ""
    agent_prompt: int | None = None
    language: str = ""           # the caller's (from the IVR): the queue's prompts are in it

    def move(self, new: QueueCallState) -> None:
        self.state = move(self.state, new, TRANSITIONS, f"queue call {self.acd_id}")


class QueueApp(Application):
    name = "queue"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.acd = Acd(self.config.acd)
        self.queue_log = Path(self.config.acd.queue_log) if self.config.acd.queue_log else None
        self.sounds = router.sounds
        self.calls: dict[str, QueueCall] = {}      # ACD call id -> queue call
        self.by_call: dict[str, QueueCall] = {}    # switch call id -> queue call
        self._entries: dict[str, int] = {}         # switch call id -> times it entered a queue
        self.refs: dict[str, str] = {}             # virtual (outbound) ACD call id -> the switch call it became
        # the priority a caller gets from outside the queue's own rules (VIP customers in the store)
        self.priority_of: Callable[[str, dict], int] = lambda caller, variables: 0

    # ------------------------------------------------------------------------------ routing
    def serves(self, number: str) -> bool:
        return self.acd.queue_for_number(number) is not None

    def next_deadline(self) -> float | None:
        return self.acd.next_deadline()

    def on_timer(self, now: float) -> None:
        d = self.acd.next_deadline()
        if d is not None and d <= now:
            self.execute(self.acd.on_timer(now), now)

    def feed(self, event: Any, now: float) -> None:
        """An event for the ACD (from the API, feature codes, phones); its decisions are carried out."""
        try:
            acts = self.acd.handle(event, now)
        except ValueError as e:  # an unknown agent or queue id from an API call
            log.warning("ACD refused %s: %s", type(event).__name__, e)
            return
        self.execute(acts, now)

    # the ACD never offers a queue call to a phone that is on another call (softswitch.presence)
    def registration(self, extension: str, registered: bool, now: float) -> None:
        """The extension's phone registered or went away: agents there are offered calls or skipped."""
        down = extension in self.acd.down_extensions
        if registered and down:
            self.feed(acd_events.PhoneRegistered(extension), now)
        elif not registered and not down:
            self.feed(acd_events.PhoneUnregistered(extension), now)

    def phone_busy(self, number: str, now: float) -> None:
        self.feed(acd_events.PhoneBusy(number), now)

    def phone_free(self, number: str, now: float) -> None:
        self.feed(acd_events.PhoneFree(number), now)

    # ------------------------------------------------------------------------ queue entry
    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        queue = self.acd.queue_for_number(number)
        assert queue is not None
        if self.do(L.AnswerLocally(call), now):
            log.info("call %s: %s entered queue %s", call.id, call.caller_number, queue)
            self.enqueue(call, queue, now)

    def take(self, call: "Call", number: str, now: float) -> None:
        """A call transferred to a queue number."""
        queue = self.acd.queue_for_number(number)
        assert queue is not None
        self.enqueue(call, queue, now)

    def enqueue(self, call: "Call", queue: str, now: float, priority: int = 0, skill: str = "") -> None:
        """The call waits in ``queue`` (the one way in); ``skill``: one it needs besides the queue's."""
        n = self._entries.get(call.id, 0)
        self._entries[call.id] = n + 1
        language = str(call.variables.get("language") or "")
        qc = QueueCall(call, call.id if n == 0 else f"{call.id}.{n}", queue,
                       language=language if language in self.sounds.languages else self.sounds.language)
        self.calls[qc.acd_id] = qc
        self.by_call[call.id] = qc
        call.notes["queue"] = queue
        call.notes["queued_at"] = now  # the wait (and the service level) counts from here, not from the IVR
        priority = max(priority, self.priority_of(call.caller_number, call.variables))
        self.router.out.append(ev.QueueEntered(call.id, queue, call.caller_number, self.router.wall(now)))
        self.feed(acd_events.CallArrived(qc.acd_id, queue, call.caller_number, priority, skill, language), now)
        self.router.outbound.queued(qc, now)  # "press 1 to be called back" after the configured wait

    def _leave(self, qc: QueueCall, event: Any, now: float) -> None:
        """The call leaves the ACD (the one way out)."""
        if not isinstance(event, acd_events.CallAbandoned):
            qc.call.notes["talk_ended"] = now  # the agent's part is over (the caller may stay for a survey)
            qc.call.hold.close(now)            # and so is any hold of it (hold time counts within the talk)
            qc.call.parts.end(now, qc.call.hold, transferred=isinstance(event, acd_events.CallTransferred))
        self.calls.pop(qc.acd_id, None)
        if self.by_call.get(qc.call.id) is qc:
            del self.by_call[qc.call.id]
        self.router.outbound.forget(qc.acd_id)
        self.feed(event, now)
        reason = ("abandoned" if isinstance(event, acd_events.CallAbandoned) else
                  "transferred" if isinstance(event, acd_events.CallTransferred) else "completed")
        self.router.out.append(ev.QueueLeft(qc.call.id, qc.queue, self.router.wall(now), reason))

    def release(self, call: "Call", now: float, target: str = "") -> None:
        """The call leaves for another application (a blind or attended transfer)."""
        qc = self.by_call.get(call.id)
        if qc is None:
            return
        for leg in qc.agents:  # agents still ringing for it stop
            if leg.ringing and not leg.withdrawn:
                self.do(L.CancelLeg(leg), now)
        if qc.state is QueueCallState.WAITING:
            self._leave(qc, acd_events.CallAbandoned(qc.acd_id), now)
        else:
            self._leave(qc, acd_events.CallTransferred(qc.acd_id, target or "?"), now)

    def gone(self, call: "Call", now: float) -> None:
        qc = self.by_call.get(call.id)
        self._entries.pop(call.id, None)
        if qc is None:
            return
        if qc.state is QueueCallState.WAITING:
            self._leave(qc, acd_events.CallAbandoned(qc.acd_id), now)
        else:
            self._leave(qc, acd_events.CallEnded(qc.acd_id, by_agent=call.hung_up_by == "callee"), now)

    # --------------------------------------------------------------------------- events
    def handle(self, event: L.LegEvent, now: float) -> None:
        qc = self.by_call.get(event.call.id)
        if qc is None:
            super().handle(event, now)
            return
        leg = event.leg
        if isinstance(event, L.LegAnswered):
            agent = qc.agents.get(leg)
            if agent is not None:
                qc.answered_offer.add(leg)
                self.feed(acd_events.OfferAnswered(qc.acd_id, agent, leg.invite.call_id), now)
        elif isinstance(event, L.LegFailed):
            agent = qc.agents.get(leg)
            if agent is None or event.withdrawn:
                return
            if any(a == agent and other.ringing for other, a in qc.agents.items()):
                return
            if _unreachable(event.status, leg.got_provisional):
                # never reached the agent (not there, no network): not a missed ring
                log.info("call %s: agent %s at %s unreachable (%d)", qc.call.id, agent, leg.extension, event.status)
                self.feed(acd_events.OfferFailed(qc.acd_id, agent, event.status), now)
                return
            log.info("call %s: agent %s at %s did not take the call (%d)", qc.call.id, agent, leg.extension,
                     event.status)
            self.feed(acd_events.OfferRejected(qc.acd_id, agent), now)
        elif isinstance(event, L.PlaybackFinished):
            self._played(qc, leg, event.playback, now)
        elif isinstance(event, L.DigitReceived):
            if (leg is qc.call.caller and qc.state is QueueCallState.WAITING and event.digit == "1"
                    and not any(x.ringing for x in qc.agents) and self.router.outbound.offered(qc)):
                self._keep_place(qc, now)
        elif isinstance(event, L.LegHungUp):
            if leg is qc.call.answered and qc.state is not QueueCallState.WAITING and self._survey(qc):
                self._to_survey(qc, now)
            else:
                self.hung_up(leg, now)

    def _keep_place(self, qc: QueueCall, now: float) -> None:
        """The caller pressed 1: he will be called back when his place reaches the front. His ACD entry stays
        (held, as a virtual call of the outbound application); his call is thanked and ended."""
        call = qc.call
        self.calls.pop(qc.acd_id, None)
        if self.by_call.get(call.id) is qc:
            del self.by_call[call.id]
        call.notes["disposition"] = ev.Disposition.TRANSFERRED   # handed to the callback, not abandoned
        log.info("call %s: %s chose a callback and keeps place in queue %s", call.id, call.caller_number, qc.queue)
        self.router.outbound.keep_place(qc, now)

    # ---------------------------------------------------------------------------- survey
    def _survey(self, qc: QueueCall) -> str:
        """The IVR survey flow the caller goes to when the agent hangs up, or ""."""
        q = next((q for q in self.config.acd.queues if q.name == qc.queue), None)
        return q.survey if q is not None and self.router.ivr.has_flow(q.survey) else ""

    def _to_survey(self, qc: QueueCall, now: float) -> None:
        """The agent hung up but the caller stays for the satisfaction survey: the ACD's part is over."""
        call = qc.call
        flow = self._survey(qc)
        log.info("call %s: agent %s hung up; caller stays for the survey", call.id, qc.agent or "-")
        call.hung_up_by = "callee"
        self.do(L.Detach(call, music=False), now)
        self._leave(qc, acd_events.CallEnded(qc.acd_id, by_agent=True), now)
        self.router.hand_over(call, self.router.ivr, flow, now)

    # ---------------------------------------------------------------------- ACD decisions
    def execute(self, acts: list, now: float) -> None:
        for a in acts:
            try:
                self._do(a, now)
            except Exception:  # one failed decision must not lose the others
                log.exception("error executing %s", a)

    def _do(self, a: Any, now: float) -> None:
        out = self.router.out
        if isinstance(a, acd_actions.QueueLogLine):
            if self.queue_log:
                out.append(ev.WriteQueueLog(self.queue_log, a.line))
            return
        if isinstance(a, acd_actions.AgentStateChanged):
            log.info("agent %s is %s%s", a.agent_id, a.state, f" ({a.reason})" if a.reason else "")
            i = self.acd.agent_index.get(a.agent_id)
            extension = (self.acd.agents[i].extension or "") if i is not None else ""
            out.append(ev.AgentStateChanged(a.agent_id, a.state, a.reason, self.router.wall(now), extension))
            return
        if isinstance(a, acd_actions.FeatureCodeReply):
            return  # answered by the feature-code application
        if isinstance(a, acd_actions.WrapUpDone):  # (the ACD's call id: the switch's, ".n" after a transfer)
            ref = self.refs.pop(a.call_id, None) or a.call_id.split(".")[0]
            out.append(ev.WrapUpEnded(ref, a.agent_id, a.queue, a.seconds))
            return
        if self.router.outbound.acd_action(a, now):  # a virtual call: an outbound attempt or a callback
            return
        qc = self.calls.get(getattr(a, "call_id", ""))
        if qc is None:
            return
        call = qc.call
        if isinstance(a, acd_actions.StartMusic):
            if qc.prompt is None:
                self.do(L.Music(call.caller), now)
        elif isinstance(a, acd_actions.Announce):
            wait = None if a.expected_wait is None else max(1, round(a.expected_wait / 60))
            self._prompt(qc, queue_announcement(qc.language, a.position, wait), "music", now)
        elif isinstance(a, acd_actions.RingAgent):
            self._ring(qc, a, now)
        elif isinstance(a, acd_actions.CancelRing):
            for leg, agent in qc.agents.items():
                if agent == a.agent_id and leg.state is not LegState.TERMINATED:
                    self.do(L.CancelLeg(leg), now)
        elif isinstance(a, acd_actions.Connect):
            self._connect(qc, a, now)
        elif isinstance(a, acd_actions.Overflow):
            log.info("call %s: overflow from queue %s to %s", call.id, a.from_queue, a.to_queue)
            qc.queue = a.to_queue
            call.notes["queue"] = a.to_queue
            call.notes["queued_at"] = now
            call.notes["overflowed"] = True
            self.router.out.append(ev.QueueEntered(call.id, a.to_queue, call.caller_number, self.router.wall(now)))
        elif isinstance(a, (acd_actions.HangupWithPrompt, acd_actions.SendToVoicemail)):
            prompt = a.prompt if isinstance(a, acd_actions.HangupWithPrompt) else "goodbye"
            if a.why:  # the switch gave up on the caller: not an abandon
                call.notes["disposition"] = ev.Disposition.TIMEOUT if a.why == "timeout" else ev.Disposition.NO_AGENTS
            log.info("call %s: %s", call.id, f"to voicemail {a.mailbox}: not wired yet, hanging up"
                     if isinstance(a, acd_actions.SendToVoicemail) else f"hang up with prompt {prompt}")
            if not self._prompt(qc, [prompt], "hangup", now):
                self.do(L.Hangup(call, "queue gave up"), now)

    def _ring(self, qc: QueueCall, a: acd_actions.RingAgent, now: float) -> None:
        call = qc.call
        log.info("call %s: queue %s offers the call to agent %s at %s", call.id, a.queue, a.agent_id, a.extension)
        legs = self.do(L.Ring(call, a.extension, display=f"{a.queue}: {a.caller or 'anonymous'}",
                              limit=a.timeout + RING_GRACE), now)
        if not legs:  # no registered phone: skipped until it registers
            log.info("call %s: agent %s at %s has no registered phone", call.id, a.agent_id, a.extension)
            self.feed(acd_events.OfferFailed(qc.acd_id, a.agent_id, 480), now)
            return
        for leg in legs:
            qc.agents[leg] = a.agent_id
        self.router.out.append(ev.OfferPresented(a.agent_id, call.id, call.caller_number, a.queue,
                                                 dict(call.variables), dict(call.context)))

    def _connect(self, qc: QueueCall, a: acd_actions.Connect, now: float) -> None:
        call = qc.call
        leg = next((x for x, agent in qc.agents.items() if agent == a.agent_id and x in qc.answered_offer
                    and x.state is LegState.CONFIRMED), None)
        if leg is None:
            return
        self.do(L.Connect(call, leg, bridge=False), now)
        qc.move(QueueCallState.CONNECTING)
        qc.agent = a.agent_id
        call.notes["agent"] = a.agent_id
        call.parts.begin(a.agent_id, qc.queue, now, call.hold)   # her part of the call (softswitch.agentparts)
        qc.prompt = qc.agent_prompt = None
        log.info("call %s: %s connected to agent %s at %s", call.id, call.caller_number, a.agent_id, a.extension)
        self.router.out.append(ev.AgentConnected(a.agent_id, call.id, call.caller_number, qc.queue))
        announcement = agent_announcement(qc.language, a.announce_agent) if a.announce_agent else []
        if announcement:
            self._prompt(qc, announcement, "bridge", now)
        # the agent hears the queue's name (whisper), or else the caller's announcement with the caller: she
        # knows the caller hears her the moment it ends, and her first words are not lost
        agent_files = self.sounds.files([f"queue-{a.whisper}"] if a.whisper else announcement,
                                        self.sounds.language if a.whisper else qc.language)
        if agent_files and (a.whisper or qc.prompt is not None):
            qc.agent_prompt = self.do(L.Play(leg, self.sounds.sequence(agent_files)), now)
        self._maybe_bridge(qc, now)

    def _prompt(self, qc: QueueCall, names: list[str], then: str, now: float) -> bool:
        files = self.sounds.files(names, qc.language)
        if not files:
            return False
        pid = self.do(L.Play(qc.call.caller, self.sounds.sequence(files)), now)
        if pid is None:
            return False
        qc.prompt, qc.after_prompt = pid, then
        return True

    def _played(self, qc: QueueCall, leg: "Leg", playback: int, now: float) -> None:
        call = qc.call
        # playback ids count per endpoint: match the leg as well as the id
        if leg is call.answered and leg is not call.caller and playback == qc.agent_prompt:
            qc.agent_prompt = None
            self._maybe_bridge(qc, now)
            return
        if leg is not call.caller or playback != qc.prompt:
            return
        qc.prompt = None
        what, qc.after_prompt = qc.after_prompt, ""
        if what == "hangup":
            self.do(L.Hangup(call, "prompt played"), now)
        elif what == "bridge":
            self._maybe_bridge(qc, now)
        elif what == "music":
            self.do(L.Music(call.caller), now)

    def _maybe_bridge(self, qc: QueueCall, now: float) -> None:
        if qc.state is QueueCallState.CONNECTING and qc.prompt is None and qc.agent_prompt is None:
            qc.move(QueueCallState.CONNECTED)
            self.do(L.Bridge(qc.call), now)

    # ----------------------------------------------------------------------- for others
    def connected_call(self, agent_id: str) -> "QueueCall | None":
        """The call agent ``agent_id`` talks to (supervisors join it)."""
        return next((qc for qc in self.by_call.values() if qc.agent == agent_id
                     and qc.state is not QueueCallState.WAITING and qc.call.live), None)


def _unreachable(status: int, rang: bool) -> bool:
    """An offer's failure that says the phone was not reached (not a missed ring): not found, not
    registered / unavailable, server failure, or a time-out before the phone said anything."""
    return status in (404, 410, 480, 502, 503, 504) or (status == 408 and not rang)
