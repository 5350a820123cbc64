"""Calls the dialler places, and the queue callbacks that keep the caller's place.

Agent-first calls (progressive and preview campaigns, callback tasks, a queue caller who pressed 1) are
**virtual calls in the ACD**: they enter the campaign's queue like a caller, so the ACD picks the agent
with its own strategy, skills, wrap-up and statistics, and inbound and outbound work blend in one line.
When the ACD offers one to an agent (``RingAgent``) the switch rings the agent's phone (an originated
call, the customer's record popping on the desk); when she answers, the ACD connects and the switch
rings the customer, presenting the hotline number; the customer answering bridges them (recorded). So
no customer is ever rung before an agent is on the line. A queue caller who presses 1 leaves the call
but not the ACD: his entry stays in line, marked held (no wait limit, no announcements), and when it
reaches the front it is offered to an agent exactly like a waiting caller.

Customer-first calls (notification and predictive campaigns) are originated calls to the customer (an
extension, or an external number through the dial rules' trunks with failover); on answer a notification goes to its IVR flow (whose "press 1" node can queue the caller) and a
predictive call to the campaign's queue, where a customer no agent takes within ``ABANDON_AFTER``
seconds hears an apology and is counted abandoned.

What the dialler must hear (an attempt's result, a held callback dialled) leaves as
``events.DiallerInput`` in the outbox; the edge feeds it to ``dialler.Dialler`` and commits its state.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from acd import actions as acd_actions
from acd import events as acd_events
from dialler import events as de
from dialler.amd import AmdDetector, Decision, GreetingEnd, Verdict
from dialler.config import AmdSettings
from dialler.rules import Result

from .. import events as ev
from .. import legs as L
from ..states import move
from ..timers import Timers
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.outbound")

ABANDON_AFTER = 2.0   # seconds an answered predictive call waits for an agent before the apology (Ofcom: 2 s)


class VirtualState(str, Enum):
    WAITING = "waiting"            # in the ACD's queue, no agent yet
    RINGING_AGENT = "ringing-agent"
    PREVIEW = "preview"            # the agent answered and reads the contact; she starts the call
    DIALLING = "dialling"          # the agent is on the line, the customer rings
    TALKING = "talking"


TRANSITIONS = {
    VirtualState.WAITING: frozenset({VirtualState.RINGING_AGENT}),
    VirtualState.RINGING_AGENT: frozenset({VirtualState.WAITING, VirtualState.PREVIEW, VirtualState.DIALLING}),
    VirtualState.PREVIEW: frozenset({VirtualState.DIALLING}),
    VirtualState.DIALLING: frozenset({VirtualState.TALKING}),
    VirtualState.TALKING: frozenset(),
}


def result_for_status(status: int, rang: bool = True) -> Result:
    """The attempt's result from the customer leg's final SIP status; ``rang``: the far end said anything
    at all (a time-out without a single provisional response is a network that did not answer, not a
    customer who did not pick up)."""
    if status in (486, 600):
        return Result.BUSY
    if status == 408 and not rang:
        return Result.UNREACHABLE
    if status in (408, 480, 487, 0):
        return Result.NO_ANSWER
    if status == 603:
        return Result.BUSY   # declined on the phone: like busy (not a refusal of calls altogether)
    return Result.UNREACHABLE


@dataclass(eq=False)
class VirtualCall:
    acd_id: str
    queue: str
    number: str                   # the customer's
    caller_id: str                # what the customer sees
    contact: int
    attempt: int                  # 0: a held queue callback not dialled yet (the dialler numbers it then)
    mode: str                     # progressive | preview | callback
    kind: str = "campaign"        # campaign | voicemail | queue | web
    campaign: str = ""
    name: str = ""
    audio: str = ""
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    state: VirtualState = VirtualState.WAITING
    call: "Call | None" = None    # the current call (ringing an agent, then with the customer)
    agent: str = ""
    extension: str = ""
    status: int = 0               # the customer leg's final status
    rang: bool = False            # the customer's side answered anything (a provisional response)
    amd: "Detection | None" = None   # answering-machine detection on the customer's answer (shown to the agent)

    def move(self, new: VirtualState) -> None:
        self.state = move(self.state, new, TRANSITIONS, f"virtual call {self.acd_id}")

    def variables(self) -> dict[str, Any]:
        """What the agent's desk pops: the contact and why we call."""
        return {**self.data, "outbound": True, "customer": self.number, "name": self.name, "campaign": self.campaign,
                "contact": self.contact, "attempt": self.attempt, "kind": self.kind, "audio": bool(self.audio),
                "note": self.note, "mode": self.mode}


@dataclass(eq=False)
class Detection:
    """Answering-machine detection on one answered customer leg (``dialler.amd``): the switch listens to
    the leg (``Listen``: 200 ms ``AudioReceived`` chunks, with media workers too) until the detector decides;
    a machine that gets a message is then watched for the end of its greeting (``GreetingEnd``)."""
    settings: AmdSettings
    detector: AmdDetector
    leg: Any
    decision: Decision | None = None
    greeting_end: GreetingEnd | None = None   # MACHINE, message: waiting for the beep
    speaking: bool = False                    # the message to the machine plays
    say: int = 0                              # the runtime speech (message_text) asked for, 0: none
    spoken: str | None = None                 # its WAV once rendered ("" : nothing to say)
    due: bool = False                         # the greeting ended while the speech was being rendered

    def summary(self) -> str:
        """What the attempt row keeps: "MACHINE LONGGREETING-1500-1500"; "HANGUP" if the far end left first."""
        return str(self.decision) if self.decision is not None else "HANGUP"


@dataclass(eq=False)
class DirectCall:
    """A customer-first call (notification, predictive)."""
    dial: de.Dial
    call: "Call"
    answered: bool = False
    queued_at: float | None = None
    abandoned: bool = False
    route: Any = None                  # an external number's dial rule route (trunks.dialrules.Route)
    remaining: list[str] = field(default_factory=list)   # trunks not tried yet (failover)
    hosts: list[Any] = field(default_factory=list)       # the current trunk's RFC 3263 targets not tried yet
    amd: Detection | None = None


class _Blank(dict[str, str]):
    """A message's variables: one the contact does not have is said as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


class OutboundApp(Application):
    name = "outbound"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.virtual: dict[str, VirtualCall] = {}        # ACD call id -> virtual call
        self.by_call: dict[str, VirtualCall] = {}        # switch call id -> virtual call
        self.direct: dict[str, DirectCall] = {}          # switch call id -> customer-first call
        self._timers: Timers[str] = Timers()
        self._offered: set[str] = set()                  # queue calls (ACD ids) offered "press 1"
        self._leaving: set[str] = set()                  # calls that chose a callback: confirmation, then hang up
        self._says: dict[int, str] = {}                  # runtime speech for machines: say id -> call id
        self._next_say = 1_000_000                       # ids apart from the IVR's own

    @property
    def queue(self) -> Any:
        return self.router.queue

    def _to_dialler(self, event: Any) -> None:
        self.router.out.append(ev.DiallerInput(event))

    # ------------------------------------------------------------------- the dialler's calls
    def dial(self, d: de.Dial, now: float) -> bool:
        """Carry out one ``Dial`` (its attempt is already committed). False: it could not start (the
        attempt is ended as not dialled)."""
        if d.mode in ("progressive", "preview", "callback"):
            if self.queue.acd.queue_index.get(d.queue) is None:
                log.warning("attempt %d: no queue %s", d.attempt, d.queue)
                self._to_dialler(de.AttemptEnded(d.attempt, Result.UNREACHABLE, counted=False))
                return False
            vc = VirtualCall(f"ob-{d.attempt}", d.queue, d.number, d.caller_id, d.contact, d.attempt, d.mode, d.kind,
                             d.campaign, d.name, d.audio, d.note, dict(d.data))
            self._enqueue(vc, now)
            return True
        return self._dial_direct(d, now)

    def _enqueue(self, vc: VirtualCall, now: float, priority: int = 0) -> None:
        self.virtual[vc.acd_id] = vc
        log.info("%s %s for %s enters queue %s (agent first)", vc.mode, vc.acd_id, vc.number, vc.queue)
        self.queue.feed(acd_events.CallArrived(vc.acd_id, vc.queue, vc.number, priority), now)

    # ------------------------------------------------------------------ presented numbers
    def queue_number(self, queue: str) -> str:
        """``[[acd.queues]] caller_id`` of ``queue`` ("" when it has none or there is no such queue); read
        from the live config, so a reload takes effect at the next call."""
        q = self.config.acd.queue(queue) if queue else None
        return q.caller_id if q is not None else ""

    def queue_caller_id(self, queue: str) -> str:
        """The number a callback of ``queue`` presents: the queue's, else ``[outbound] caller_id`` (the
        dialler's campaigns put their own ``caller_id`` first: ``OutboundConfig.presented``)."""
        return self.config.outbound.presented(None, self.queue_number(queue))

    # ------------------------------------------------------------------------ click-to-dial
    def click_to_dial(self, a: str, b: str, now: float, caller_id: str = "",
                      external_caller_id: str = "", queue: str = "") -> "Call | None":
        """The agent's phone (extension ``a``) rings, then ``b`` (``apps.originate``); the call is recorded,
        gets the agent in its call record, and pops ``b``'s record on the agent's desk like an inbound offer.
        ``queue``: the call is made for that queue: without an ``external_caller_id`` it presents the
        queue's number (``queue_caller_id``)."""
        if queue and not external_caller_id:
            external_caller_id = self.queue_caller_id(queue)
        call = self.router.originator.originate(a, b, now, caller_id, external_caller_id=external_caller_id)
        if call is None:
            return None
        call.notes["outbound"] = True
        acd = self.queue.acd
        i = acd.by_extension.get(a)
        if i is not None:
            agent = acd.agents[i].id
            call.notes["agent"] = agent
            self.router.out.append(ev.OfferPresented(agent, call.id, b, "", {
                "outbound": True, "kind": "click-to-dial", "customer": b}, {}))
        return call

    # ------------------------------------------------------------- "press 1 to be called back"
    def _offer_after(self, queue: str) -> int:
        cb = self.config.outbound.callbacks
        return cb.offer_after if cb.offer_after and (not cb.queues or queue in cb.queues) else 0

    def queued(self, qc: Any, now: float) -> None:
        """A caller entered a queue: the callback offer is played after the configured wait."""
        after = self._offer_after(qc.queue)
        if after:
            self._timers.schedule(now + after, f"offer:{qc.acd_id}")

    def forget(self, acd_id: str) -> None:
        self._offered.discard(acd_id)

    def offered(self, qc: Any) -> bool:
        return qc.acd_id in self._offered

    def _offer(self, acd_id: str, now: float) -> None:
        qc = self.queue.calls.get(acd_id)
        if qc is None or qc.state.value != "waiting" or qc.prompt is not None:
            return
        if self.queue._prompt(qc, ["callback-offer"], "music", now):
            self._offered.add(acd_id)
            log.info("call %s: callback offered in queue %s", qc.call.id, qc.queue)

    def keep_place(self, qc: Any, now: float) -> None:
        """A queue caller pressed 1: his ACD entry becomes a held virtual call (same id, same place); the
        dialler persists the task; the caller hears the confirmation and the call ends."""
        call = qc.call
        self._offered.discard(qc.acd_id)
        vc = VirtualCall(qc.acd_id, qc.queue, call.caller_number, self.queue_caller_id(qc.queue), 0, 0, "callback",
                         "queue", "callbacks", data={"ref": call.id})
        self.virtual[vc.acd_id] = vc
        self.queue.feed(acd_events.CallbackHeld(qc.acd_id), now)
        queued = call.notes.get("queued_at")
        self._to_dialler(de.CallbackRequested(qc.queue, call.caller_number, kind="queue",
                                              position=self.router.wall(queued if queued is not None else now),
                                              ref=call.id))
        call.app = self
        self._leaving.add(call.id)
        files = self.router.sounds.files(["callback-confirmed"], qc.language)
        if not files or self.do(L.Play(call.caller, self.router.sounds.sequence(files)), now) is None:
            self.do(L.Hangup(call, "callback requested"), now)

    def restore_held(self, contact: Any, caller_id: str, now: float) -> None:
        """At start: a held queue callback of the last run goes back in line (the order of ``position``)."""
        vc = VirtualCall(f"cb-{contact.id}", contact.queue, contact.number, caller_id, contact.id, 0, "callback",
                         "queue", "callbacks", contact.name, contact.audio, contact.note, dict(contact.data))
        self._enqueue(vc, now)
        self.queue.feed(acd_events.CallbackHeld(vc.acd_id), now)

    def waiting(self, queue: str) -> int:
        """Virtual calls in ``queue`` that no agent has yet (they will take the next free agents)."""
        return sum(1 for vc in self.virtual.values() if vc.queue == queue and vc.state is VirtualState.WAITING)

    # ----------------------------------------------------------------- the ACD's decisions
    def acd_action(self, a: Any, now: float) -> bool:
        """An ACD decision about a virtual call (called by the queue application); False: not ours."""
        vc = self.virtual.get(getattr(a, "call_id", ""))
        if vc is None:
            return False
        if isinstance(a, acd_actions.RingAgent):
            self._ring_agent(vc, a, now)
        elif isinstance(a, acd_actions.CancelRing):
            if vc.call is not None and vc.state is VirtualState.RINGING_AGENT and vc.agent == a.agent_id:
                call, vc.call = vc.call, None
                vc.move(VirtualState.WAITING)
                self.by_call.pop(call.id, None)
                self.do(L.Hangup(call, "offer withdrawn"), now)
        elif isinstance(a, acd_actions.Connect):
            self._agent_connected(vc, now)
        elif isinstance(a, acd_actions.Overflow):
            vc.queue = a.to_queue
        elif isinstance(a, (acd_actions.HangupWithPrompt, acd_actions.SendToVoicemail)):
            # the ACD gave up on it (its queue's wait limit, nobody logged in): not dialled
            log.info("%s for %s left queue %s without an agent", vc.acd_id, vc.number, vc.queue)
            self._drop(vc)
            if vc.attempt:
                self._to_dialler(de.AttemptEnded(vc.attempt, Result.NO_ANSWER, counted=False))
            else:  # a held callback: an ordinary callback task now, dialled when an agent is free
                self._to_dialler(de.HeldReleased(vc.contact, str(vc.data.get("ref", ""))))
        return True

    def _ring_agent(self, vc: VirtualCall, a: acd_actions.RingAgent, now: float) -> None:
        label = vc.campaign if vc.kind == "campaign" else f"callback {vc.kind}"
        call = self.do(L.Originate(a.extension, vc.number, display=f"{label}: {vc.name or vc.number}",
                                   variables=vc.variables()), now)
        if call is None:
            log.info("%s: agent %s at %s has no registered phone", vc.acd_id, a.agent_id, a.extension)
            self.queue.feed(acd_events.OfferFailed(vc.acd_id, a.agent_id, 480), now)
            return
        call.app = self
        call.caller_number, call.callee_number = a.extension, vc.number
        call.notes["queue"] = vc.queue
        call.notes["outbound"] = True
        vc.call, vc.agent, vc.extension = call, a.agent_id, a.extension
        vc.move(VirtualState.RINGING_AGENT)
        self.by_call[call.id] = vc
        self.queue.refs[vc.acd_id] = call.id
        log.info("call %s: %s offered to agent %s at %s", call.id, vc.acd_id, a.agent_id, a.extension)
        self.router.out.append(ev.OfferPresented(a.agent_id, call.id, vc.number, vc.queue, vc.variables(), {}))

    def _agent_connected(self, vc: VirtualCall, now: float) -> None:
        call = vc.call
        if call is None:
            return
        call.notes["agent"] = vc.agent
        if vc.mode == "preview":
            vc.move(VirtualState.PREVIEW)
            log.info("call %s: agent %s previews %s", call.id, vc.agent, vc.number)
            return
        vc.move(VirtualState.DIALLING)
        self._ring_customer(vc, now)

    def start_preview(self, call_id: str, now: float, skip: bool = False) -> None:
        """The agent previewing a contact starts the call (or skips it: not dialled, due again later)."""
        vc = self.by_call.get(call_id)
        if vc is None or vc.state is not VirtualState.PREVIEW or vc.call is None:
            raise KeyError(call_id)
        if skip:
            vc.call.notes["disposition"] = ev.Disposition.FAILED
            self.do(L.Hangup(vc.call, "preview skipped"), now)
            return
        vc.move(VirtualState.DIALLING)
        self._ring_customer(vc, now)

    def _ring_customer(self, vc: VirtualCall, now: float) -> None:
        call = vc.call
        assert call is not None
        if not vc.attempt:
            self._to_dialler(de.QueueCallbackStarted(vc.contact, vc.agent, call.id, ref=str(vc.data.get("ref", ""))))
        call.caller_number = vc.caller_id or vc.extension   # the From the customer sees: the hotline
        log.info("call %s: agent %s on the line; ringing %s", call.id, vc.agent, vc.number)
        self.do(L.Music(call.caller), now)
        number = self.dialable(vc.number)
        if self.router.route(number) is self.router.external:
            # an external number: the dial rules and trunks (failover), presenting the hotline; the switch
            # decided to call, so no extension's permission class applies (docs/trunks.md)
            result = self.router.dialer.dial(call, number, now, caller_id=vc.caller_id, permission=None)
            if result != "ringing":
                log.info("call %s: customer %s not dialled: %s", call.id, vc.number, result)
                vc.status = call.final_status = 403 if result == "forbidden" else 503 if result == "no_trunk" else 404
                self.do(L.Hangup(call, f"{vc.number} not dialled: {result}"), now)
            return
        legs = self.do(L.Ring(call, vc.number, display=vc.caller_id or vc.extension,
                              limit=float(self.config.sip.ring_timeout)), now)
        if not legs:
            log.info("call %s: customer %s not reachable", call.id, vc.number)
            vc.status = 404
            call.final_status = 404
            self.do(L.Hangup(call, f"{vc.number} not reachable"), now)

    def dialable(self, number: str) -> str:
        """A contact's number as the dial rules expect it: stored numbers are E.164 ("+8613800138000"), dial
        rules are written as dialled ("0", "1", "00"); an E.164 number no rule takes as it is is dialled in
        its national (or, abroad, international) form."""
        trunks = getattr(self.router, "trunks", None)
        if trunks is None or not number.startswith("+") or trunks.dialplan.rule_for(number) is not None:
            return number
        return str(trunks.numbers.send_as(number, "national"))

    # ------------------------------------------------------------------------ leg events
    def handle(self, event: L.LegEvent, now: float) -> None:
        call = event.call
        if call.id in self._leaving:
            if isinstance(event, L.PlaybackFinished):
                self.do(L.Hangup(call, "callback requested"), now)
            elif isinstance(event, L.LegHungUp):
                call.hung_up_by = "caller"
                self.do(L.Hangup(call, "callback requested"), now)
            return
        dc = self.direct.get(call.id)
        if dc is not None:
            self._handle_direct(dc, event, now)
            return
        vc = self.by_call.get(call.id)
        if vc is None or vc.call is not call:
            super().handle(event, now)
            return
        leg = event.leg
        if isinstance(event, L.LegAnswered):
            if leg is call.caller and vc.state is VirtualState.RINGING_AGENT:
                self.queue.feed(acd_events.OfferAnswered(vc.acd_id, vc.agent, leg.invite.call_id), now)
            elif leg is not call.caller and vc.state is VirtualState.DIALLING:
                vc.move(VirtualState.TALKING)
                self.do(L.Connect(call, leg), now)
                log.info("call %s: agent %s talks to %s", call.id, vc.agent, vc.number)
                self.router.out.append(ev.AgentConnected(vc.agent, call.id, vc.number, vc.queue))
                settings = self._amd_settings(vc.campaign)   # None for callbacks (not a campaign)
                if settings is not None:   # the agent is on the line already: the decision is shown, not acted on
                    vc.amd = self._start_amd(call, leg, settings, now)
        elif isinstance(event, L.LegFailed):
            if leg is call.caller and vc.state is VirtualState.RINGING_AGENT:
                self._agent_missed(vc, event.status, leg.got_provisional, now)
            elif (leg is not call.caller and vc.state is VirtualState.DIALLING and not event.withdrawn
                  and not any(x.ringing for x in call.callees)):
                vc.status = event.status
                vc.rang = any(x.got_provisional for x in call.callees)
                call.final_status = event.status
                self.do(L.Hangup(call, f"{vc.number} did not answer ({event.status})"), now)
        elif isinstance(event, L.AudioReceived) and vc.amd is not None and leg is vc.amd.leg:
            if vc.amd.decision is None:
                d = vc.amd.detector.feed(event.samples, now)
                if d is not None:
                    self._virtual_decided(vc, d, now)
        elif isinstance(event, L.DigitReceived) and leg is call.caller and vc.state is VirtualState.PREVIEW:
            if event.digit == "1":
                self.start_preview(call.id, now)
            elif event.digit in ("*", "2"):
                self.start_preview(call.id, now, skip=True)
        else:
            super().handle(event, now)

    def _agent_missed(self, vc: VirtualCall, status: int, rang: bool, now: float) -> None:
        call = vc.call
        vc.call = None
        vc.move(VirtualState.WAITING)
        if call is not None:
            self.by_call.pop(call.id, None)
            self.do(L.Hangup(call, "agent did not answer"), now)
        unreachable = status in (404, 410, 480, 502, 503, 504) or (status == 408 and not rang)
        self.queue.feed(acd_events.OfferFailed(vc.acd_id, vc.agent, status) if unreachable
                        else acd_events.OfferRejected(vc.acd_id, vc.agent), now)

    def gone(self, call: "Call", now: float) -> None:
        self._leaving.discard(call.id)
        dc = self.direct.pop(call.id, None)
        if dc is not None:
            self._direct_gone(dc, call, now)
            return
        vc = self.by_call.pop(call.id, None)
        if vc is None or vc.call is not call:
            return
        if vc.state is VirtualState.RINGING_AGENT:  # the agent's leg died before an answer
            self._agent_missed(vc, call.final_status or 480, False, now)
            return
        self._drop(vc)
        self.queue.feed(acd_events.CallEnded(vc.acd_id, by_agent=call.hung_up_by != "callee"), now)
        if vc.state is VirtualState.PREVIEW:
            result, counted = Result.NO_ANSWER, False
        elif vc.state is VirtualState.TALKING:
            result, counted = Result.COMPLETED, True
        else:
            result, counted = result_for_status(vc.status, vc.rang), True
        log.info("call %s: attempt %s on %s: %s", call.id, vc.attempt or "(callback)", vc.number,
                 result.value if counted else "not dialled")
        self._to_dialler(de.AttemptEnded(vc.attempt, result, call.id, vc.agent, counted=counted, contact=vc.contact,
                                         ref="" if vc.attempt else str(vc.data.get("ref", "")),
                                         amd=vc.amd.summary() if vc.amd is not None else ""))

    def _drop(self, vc: VirtualCall) -> None:
        self.virtual.pop(vc.acd_id, None)

    # ---------------------------------------------------------------- customer-first calls
    def _direct_variables(self, d: de.Dial) -> dict[str, Any]:
        return {**d.data, "outbound": True, "campaign": d.campaign, "contact": d.contact, "attempt": d.attempt,
                "name": d.name}

    def _trunks_for(self, number: str) -> tuple[Any, list[str]] | None:
        """The dial rule's route for an external ``number`` and its trunks as the dialer orders them (round-robin
        rules by weight, those up first) (None: no rule)."""
        route = self.router.trunks.dialplan.resolve(number)
        if route is None:
            return None
        return route, self.router.dialer.trunks_for(route.rule)

    def _originate_trunk(self, d: de.Dial, route: Any, remaining: list[str], now: float,
                         hosts: list[Any] | None = None) -> "Call | None":
        """A customer-first call out through the next trunk of ``remaining`` that takes it (as the trunk
        dialer's legs: the hotline in From and P-Asserted-Identity, the carrier's credentials, failover on
        no response). A trunk named by host name goes to its first RFC 3263 target; the others are left
        in ``hosts`` (failover to them first on a 503 or a time-out)."""
        from ..trunks.dialer import channels_in_use

        while remaining:
            trunk = self.router.trunks.trunks[remaining.pop(0)]
            if trunk.max_channels and channels_in_use(self.b2bua, trunk.name) >= trunk.max_channels:
                continue
            peers = self.router.dialer.peers_for(trunk)
            if not peers:
                continue   # a name not resolved (yet)
            if hosts is not None:
                hosts[:] = peers[1:]
            call = self._originate_at(d, route, trunk, peers[0], now)
            if call is not None:
                return call
        return None

    def _originate_at(self, d: de.Dial, route: Any, trunk: Any, peer: Any, now: float) -> "Call | None":
        """One customer-first call through ``trunk`` to ``peer`` (one of its targets)."""
        from ..trunks.dialer import request_uri
        from ..trunks.numbers import ANONYMOUS

        cid = d.caller_id or route.rule.caller_id or trunk.caller_id or ANONYMOUS
        headers = (("Privacy", "id"),) if cid == ANONYMOUS else (
            ("P-Asserted-Identity", f"<sip:{cid}@{trunk.domain}>"),)
        creds = (trunk.auth_user, trunk.password, trunk.realm) if trunk.password else None
        call = self.do(L.Originate(route.send, cid, display="" if cid == ANONYMOUS else cid,
                                   variables=self._direct_variables(d),
                                   uri=request_uri(route.send, trunk, peer),
                                   peer=peer, domain=trunk.domain,
                                   headers=headers, credentials=creds,
                                   progress_timeout=float(trunk.progress_timeout), codecs=tuple(trunk.codecs),
                                   trunk=trunk.name), now)
        if call is not None:
            call.notes.update(direction="outbound", external=route.external, trunk=trunk.name)
            log.info("call %s: %s attempt %d to %s out via trunk %s", call.id, d.mode, d.attempt, route.external,
                     trunk.name)
        return call

    def _dial_direct(self, d: de.Dial, now: float) -> bool:
        number = self.dialable(d.number)
        remaining: list[str] = []
        hosts: list[Any] = []
        route = None
        if self.router.route(number) is self.router.external:
            found = self._trunks_for(number)
            if found is not None:
                route, remaining = found
                call = self._originate_trunk(d, route, remaining, now, hosts)
            else:
                call = None
        else:
            call = self.do(L.Originate(d.number, d.caller_id or d.number, display=d.caller_id,
                                       variables=self._direct_variables(d)), now)
        if call is None:
            log.info("attempt %d: %s not reachable", d.attempt, d.number)
            self._to_dialler(de.AttemptEnded(d.attempt, Result.UNREACHABLE))
            return False
        call.app = self
        call.caller_number, call.callee_number = d.caller_id, d.number
        call.notes["outbound"] = True
        self.direct[call.id] = DirectCall(d, call, route=route, remaining=remaining, hosts=hosts)
        self._timers.schedule(now + self.config.sip.ring_timeout, call.id)
        log.info("call %s: %s attempt %d to %s", call.id, d.mode, d.attempt, d.number)
        return True

    def _handle_direct(self, dc: DirectCall, event: L.LegEvent, now: float) -> None:
        call = dc.call
        if isinstance(event, L.LegAnswered) and event.leg is call.caller and not dc.answered:
            dc.answered = True
            settings = self._amd_settings(dc.dial.campaign)
            if settings is not None:   # person or machine? listen first; the agent or the flow only for a person
                dc.amd = self._start_amd(call, call.caller, settings, now)
            else:
                self._direct_answered(dc, now)
        elif isinstance(event, L.AudioReceived) and dc.amd is not None and event.leg is call.caller:
            self._direct_audio(dc, event.samples, now)
        elif isinstance(event, L.PlaybackFinished) and dc.amd is not None and dc.amd.speaking:
            self.do(L.Hangup(call, "message left on the answering machine"), now)
        elif isinstance(event, L.PlaybackFinished) and dc.abandoned:
            self.do(L.Hangup(call, "apology played"), now)
        elif isinstance(event, L.LegFailed) and event.leg is call.caller:
            if self._failover(dc, event, now):
                return
            call.final_status = event.status
            self.do(L.Hangup(call, f"{dc.dial.number} did not answer ({event.status})"), now)
        else:
            super().handle(event, now)

    def _direct_answered(self, dc: DirectCall, now: float) -> None:
        """The customer answered (a person, or not sure): to the IVR flow or the campaign's queue."""
        call = dc.call
        d = dc.dial
        if d.mode == "notification":
            call.answered_at = now   # the customer answered; the switch (the IVR flow) is his party
            self.router.hand_over(call, self.router.ivr, d.flow, now)
        else:  # predictive: the campaign's queue, ahead of everyone (this customer is on the line already)
            dc.queued_at = now
            self._timers.schedule(now + ABANDON_AFTER, call.id)
            call.app = self.queue
            self.queue.enqueue(call, d.queue, now, priority=100)

    # -------------------------------------------------------------- answering-machine detection
    def _amd_settings(self, campaign: str) -> AmdSettings | None:
        """The campaign's detection settings (None: it does not detect); read at each answer (reloads)."""
        ob = self.config.outbound
        return ob.amd_for(ob.campaign(campaign))

    def _start_amd(self, call: "Call", leg: Any, settings: AmdSettings, now: float) -> Detection:
        det = Detection(settings, AmdDetector(settings.params(), now), leg)
        self.do(L.Listen(leg, True), now)
        self._timers.schedule(det.detector.deadline, f"amd:{call.id}")
        log.info("call %s: answered; answering-machine detection for up to %d ms", call.id,
                 settings.total_analysis_time)
        return det

    def _amd_decided(self, call: "Call", det: Detection, d: Decision, campaign: str, contact: int, action: str,
                     agent: str, now: float) -> None:
        """Record a decision: the call's variables (Asterisk's AMDSTATUS/AMDCAUSE, in the call_end event), the log,
        the event stream."""
        det.decision = d
        call.variables["amd_status"], call.variables["amd_cause"] = d.verdict.value, d.detail
        log.info("call %s: AMD %s cause %s (%d ms analysed, %d words, %d ms voice): %s", call.id, d.verdict.value,
                 d.detail, d.analysed_ms, d.words, d.voice_ms, action)
        self.router.out.append(ev.AmdDetected(call.id, campaign, contact, d.verdict.value, d.detail, action, agent))

    def _virtual_decided(self, vc: VirtualCall, d: Decision, now: float) -> None:
        assert vc.amd is not None and vc.call is not None
        self.do(L.Listen(vc.amd.leg, False), now)
        self._amd_decided(vc.call, vc.amd, d, vc.campaign, vc.contact, "shown", vc.agent, now)

    def _direct_audio(self, dc: DirectCall, samples: Any, now: float) -> None:
        det = dc.amd
        assert det is not None
        if det.decision is None:
            d = det.detector.feed(samples, now)
            if d is not None:
                self._direct_decided(dc, d, now)
        elif det.greeting_end is not None and not det.speaking and not det.due and det.greeting_end.feed(samples):
            self._leave_message(dc, "its beep" if det.greeting_end.beeped else "silence", now)

    def _direct_decided(self, dc: DirectCall, d: Decision, now: float) -> None:
        """HUMAN or NOTSURE: on to the agent (predictive) or the flow (notification), as without detection;
        MACHINE: hang up, or wait for the greeting's end and leave the campaign's message."""
        det, call = dc.amd, dc.call
        assert det is not None
        if d.verdict is not Verdict.MACHINE:
            self.do(L.Listen(call.caller, False), now)
            self._amd_decided(call, det, d, dc.dial.campaign, dc.dial.contact,
                              "flow" if dc.dial.mode == "notification" else "agent", "", now)
            self._direct_answered(dc, now)
            return
        if det.settings.machine == "message":
            self._amd_decided(call, det, d, dc.dial.campaign, dc.dial.contact, "message", "", now)
            det.greeting_end = GreetingEnd(det.settings.silence_threshold, det.settings.after_greeting_silence)
            self._timers.schedule(now + det.settings.message_wait, f"amd-message:{call.id}")
            if det.settings.message_text:   # rendered while the greeting plays: ready at the beep
                self._next_say += 1
                det.say = self._next_say
                self._says[det.say] = call.id
                dial = dc.dial
                text = det.settings.message_text.format_map(_Blank(
                    {**{k: str(v) for k, v in dial.data.items()}, "name": dial.name, "number": dial.number,
                     "campaign": dial.campaign}))
                language = getattr(self.config.ivr, "default_language", "en") if self.config.ivr else "en"
                self.router.out.append(ev.SpeakRequest(call.id, det.say, text, language=language))
            return
        self._amd_decided(call, det, d, dc.dial.campaign, dc.dial.contact, "hangup", "", now)
        self.do(L.Listen(call.caller, False), now)
        self.do(L.Hangup(call, "answering machine"), now)

    def _leave_message(self, dc: DirectCall, after: str, now: float) -> None:
        det, call = dc.amd, dc.call
        assert det is not None
        self.do(L.Listen(call.caller, False), now)
        if det.say and det.spoken is None:   # the speech is still being rendered: it plays when ready
            if det.due:   # message_wait passed as well: no machine waits for ever
                log.warning("call %s: the message's speech was not ready in time", call.id)
                self.do(L.Hangup(call, "answering machine"), now)
                return
            det.due = True
            log.info("call %s: the machine's greeting ended (%s); waiting for the message's speech", call.id, after)
            return
        det.speaking = True
        what = det.settings.message or "(runtime speech)"
        files = [det.spoken] if det.say and det.spoken else [] if det.say else self.router.sounds.files(
            [det.settings.message])
        log.info("call %s: leaving the message %s on the answering machine after %s", call.id, what, after)
        if not files or self.do(L.Play(call.caller, self.router.sounds.sequence(files)), now) is None:
            log.warning("call %s: no message %s to leave on the machine", call.id, what)
            self.do(L.Hangup(call, "answering machine"), now)

    def spoken(self, call_id: str, say_id: int, file: str | None, now: float) -> bool:
        """Runtime speech for a machine's message is ready (``file``; None: nothing to say). False: not ours
        (an IVR ``Say``)."""
        if self._says.pop(say_id, None) != call_id:
            return False
        dc = self.direct.get(call_id)
        det = dc.amd if dc is not None else None
        if dc is None or det is None or det.say != say_id or det.speaking:
            return True   # the call ended (or spoke) meanwhile
        det.spoken = file or ""
        if det.due:
            self._leave_message(dc, "the greeting", now)
        return True

    def _amd_timer(self, key: str, now: float) -> None:
        kind, _, call_id = key.partition(":")
        dc = self.direct.get(call_id)
        det = dc.amd if dc is not None else None
        if dc is not None and det is not None:
            if kind == "amd" and det.decision is None:
                d = det.detector.expired(now)
                if d is not None:
                    self._direct_decided(dc, d, now)
            elif kind == "amd-message" and det.greeting_end is not None and not det.speaking:
                self._leave_message(dc, f"{det.settings.message_wait} s (the greeting did not end)", now)
            return
        vc = self.by_call.get(call_id)
        if vc is not None and vc.amd is not None and vc.amd.decision is None and kind == "amd":
            d = vc.amd.detector.expired(now)
            if d is not None:
                self._virtual_decided(vc, d, now)

    def _failover(self, dc: DirectCall, event: L.LegFailed, now: float) -> bool:
        """A trunk failed (5xx, 408 without a word): the next trunk of the rule gets the call (a new call;
        the failed one ends without a result)."""
        from ..trunks.dialer import FAILOVER_STATUSES, TARGET_FAILOVER_STATUSES

        if (dc.route is None or not (dc.remaining or dc.hosts) or event.status not in FAILOVER_STATUSES
                or (event.status == 408 and event.leg.got_provisional)):
            return False
        old = dc.call
        call = None
        trunk = self.router.trunks.trunks.get(event.leg.trunk)
        if event.status in TARGET_FAILOVER_STATUSES and dc.hosts and trunk is not None:
            log.warning("call %s: trunk %s target %s:%d failed (%d): trying its next target", old.id, trunk.name,
                        event.leg.peer.host, event.leg.peer.port, event.status)
            call = self._originate_at(dc.dial, dc.route, trunk, dc.hosts.pop(0), now)
        if call is None and dc.remaining:
            log.warning("call %s: trunk %s failed (%d): trying the next", old.id, event.leg.trunk, event.status)
            call = self._originate_trunk(dc.dial, dc.route, dc.remaining, now, dc.hosts)
        if call is None:
            return False
        self.direct.pop(old.id, None)
        old.app = None
        self.do(L.Hangup(old, "trunk failed over"), now)
        call.app = self
        call.caller_number, call.callee_number = dc.dial.caller_id, dc.dial.number
        call.notes["outbound"] = True
        dc.call = call
        self.direct[call.id] = dc
        self._timers.schedule(now + self.config.sip.ring_timeout, call.id)
        return True

    def watch_gone(self, call: "Call", now: float) -> None:
        """Any call ended (the router tells): a customer-first call handed to the IVR or a queue ends here."""
        dc = self.direct.get(call.id)
        if dc is not None and call.app is not self:
            del self.direct[call.id]
            self._direct_gone(dc, call, now)

    def _direct_gone(self, dc: DirectCall, call: "Call", now: float) -> None:
        amd = dc.amd.summary() if dc.amd is not None else ""
        if dc.amd is not None and dc.amd.decision is not None and dc.amd.decision.verdict is Verdict.MACHINE:
            abandoned, result = False, Result.MACHINE   # retried by the machine rule, never an abandoned call
        elif dc.answered:
            abandoned = dc.dial.mode == "predictive" and not call.notes.get("agent")
            result = Result.COMPLETED
        else:
            abandoned, result = False, result_for_status(call.final_status, call.caller.got_provisional)
        self._to_dialler(de.AttemptEnded(dc.dial.attempt, result, call.id, str(call.notes.get("agent", "")),
                                         abandoned=abandoned, amd=amd))

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def on_timer(self, now: float) -> None:
        for call_id in self._timers.due(now):
            if call_id.startswith("offer:"):
                self._offer(call_id[6:], now)
                continue
            if call_id.startswith("amd"):
                self._amd_timer(call_id, now)
                continue
            dc = self.direct.get(call_id)
            if dc is None:
                continue
            call = dc.call
            if not dc.answered:
                call.final_status = 408
                self.do(L.Hangup(call, "no answer"), now)
            elif dc.queued_at is not None and not call.notes.get("agent") and call.app is self.queue:
                # answered, no agent within the limit: the apology, then hang up (an abandoned call)
                self.queue.release(call, now)
                call.app = self
                call.notes["disposition"] = ev.Disposition.ABANDONED
                files = self.router.sounds.files(["outbound-sorry"])
                if not files or self.do(L.Play(call.caller, self.router.sounds.sequence(files)), now) is None:
                    self.do(L.Hangup(call, "no agent free"), now)
                else:
                    dc.abandoned = True
