"""The dialler: campaigns, callback tasks, retry rules and pacing, sans-IO.

``Dialler.handle(event, now)`` takes one event (``dialler.events``) and returns actions: ``Save`` (rows to
commit), then ``Dial`` (calls to make: only after that ``Save`` is committed), then ``FiguresChanged``.
It knows nothing of SIP, the ACD or the store; the switch (``softswitch.outbound``) feeds it and carries
out what it says, exactly like the ACD.

Why it is cheap: every (campaign, queue) lane keeps its waiting contacts in a heap by next-due time
(lazy deletion: an entry whose contact moved on is skipped when it surfaces), so a pacing pass costs
O(calls placed x log n), whatever the number of contacts: 100,000 contacts waiting for retries cost
nothing until they are due. Agents are the ACD's: the switch passes, per queue, how many are free and
not yet reserved (``Tick.free``), and a progressive campaign places at most that many calls, each a
virtual call the ACD gives to one agent, whose phone rings before the customer's: no customer is ever
rung without an agent.

Durability: an attempt is written (``Save``) before its dial; after a crash an attempt without a
result counts as made at its start (``load``), so its contact is not dialled again inside the retry
window.
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from .config import CALLBACKS, Campaign, OutboundConfig
from .events import (
    AttemptEnded, AttemptRow, CallbackRequested, CampaignStarted, CampaignStopped, ContactRow, ContactsAdded, Dial,
    DncChanged, FiguresChanged, HeldReleased, QueueCallbackStarted, ResultCode, Save, Tick,
)
from .rules import CallingHours, Result, RetryRule, local_day, next_due, zone

__all__ = ["Contact", "ContactState", "Dialler", "TRANSITIONS"]


class ContactState(str, Enum):
    WAITING = "waiting"      # due at next_due (in its lane's heap)
    HELD = "held"            # a queue callback keeping its place in the ACD: the switch dials it
    DIALLING = "dialling"    # an attempt is in progress
    DONE = "done"            # finished: last_result says why

    def __str__(self) -> str:
        return self.value


TRANSITIONS: dict[ContactState, frozenset[ContactState]] = {
    ContactState.WAITING: frozenset({ContactState.DIALLING, ContactState.DONE, ContactState.WAITING}),
    ContactState.HELD: frozenset({ContactState.DIALLING, ContactState.DONE, ContactState.WAITING}),
    ContactState.DIALLING: frozenset({ContactState.WAITING, ContactState.DONE, ContactState.HELD}),
    ContactState.DONE: frozenset({ContactState.WAITING}),   # an agent's "call back later" after completed
}

REACHED = frozenset({Result.COMPLETED, Result.CALLBACK, Result.WRONG_NUMBER, Result.REFUSED, Result.MACHINE})


@dataclass(eq=False, slots=True)
class Contact:
    id: int
    campaign: str
    number: str
    queue: str = ""
    kind: str = "campaign"       # campaign | voicemail | queue | web
    name: str = ""
    timezone: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    audio: str = ""
    note: str = ""
    key: str = ""
    position: float = 0.0
    state: ContactState = ContactState.WAITING
    attempts: int = 0
    day: str = ""
    day_attempts: int = 0
    next_due: float | None = None
    last_result: str = ""
    last_attempt: float | None = None
    created: float = 0.0
    attempt: int = 0             # the attempt in progress

    def move(self, new: ContactState) -> None:
        if new not in TRANSITIONS[self.state]:
            raise ValueError(f"contact {self.id}: {self.state} -> {new} is not allowed")
        self.state = new

    def row(self) -> ContactRow:
        return ContactRow(self.id, self.campaign, self.kind, self.queue, self.number, self.name, self.timezone,
                          dict(self.data), self.audio, self.note, self.key, self.position, self.state.value,
                          self.attempts, self.day, self.day_attempts, self.next_due, self.last_result,
                          self.last_attempt, self.created)

    @classmethod
    def from_row(cls, r: ContactRow) -> "Contact":
        return cls(r.id, r.campaign, r.number, r.queue, r.kind, r.name, r.timezone, dict(r.data), r.audio, r.note,
                   r.key, r.position, ContactState(r.state), r.attempts, r.day, r.day_attempts, r.next_due,
                   r.last_result, r.last_attempt, r.created)


@dataclass(eq=False, slots=True)
class _Attempt:
    id: int
    contact: Contact
    started: float
    agent: str = ""
    call: str = ""


@dataclass
class _Figures:
    contacts: int = 0
    waiting: int = 0
    held: int = 0
    dialling: int = 0
    done: int = 0
    attempts: int = 0
    reached: int = 0
    answered: int = 0            # customer answered (predictive / notification: with or without an agent)
    abandoned: int = 0
    machines: int = 0            # attempts whose result is machine (the detector's or the agent's)
    amd: int = 0                 # attempts the answering-machine detector analysed

    def as_dict(self) -> dict[str, float]:
        return {"contacts": self.contacts, "waiting": self.waiting, "held": self.held, "dialling": self.dialling,
                "done": self.done, "remaining": self.waiting + self.held + self.dialling, "attempts": self.attempts,
                "reached": self.reached,
                "contact_rate": round(self.reached / self.attempts, 4) if self.attempts else 0.0,
                "abandoned": self.abandoned,
                "abandon_rate": round(self.abandoned / self.answered, 4) if self.answered else 0.0,
                "machines": self.machines, "amd": self.amd}


class _Lane:
    """The waiting contacts of one campaign for one queue, by next-due time."""
    __slots__ = ("campaign", "queue", "heap", "seq")

    def __init__(self, campaign: str, queue: str):
        self.campaign = campaign
        self.queue = queue
        self.heap: list[tuple[float, float, int, Contact]] = []   # (due, position, seq, contact)
        self.seq = 0

    def push(self, c: Contact) -> None:
        assert c.next_due is not None
        self.seq += 1
        heapq.heappush(self.heap, (c.next_due, c.position, self.seq, c))

    def top(self) -> Contact | None:
        """The earliest waiting contact (stale entries dropped)."""
        h = self.heap
        while h:
            due, _, _, c = h[0]
            if c.state is ContactState.WAITING and c.next_due == due:
                return c
            heapq.heappop(h)
        return None


class Dialler:
    def __init__(self, config: OutboundConfig, *, normalise: Callable[[str], str] = lambda n: n,
                 queue_caller_id: Callable[[str], str] = lambda queue: ""):
        self.config = config
        self.normalise = normalise
        self.queue_caller_id = queue_caller_id   # a queue's own caller_id ("" = none), read at each dial (reloads)
        self.contacts: dict[int, Contact] = {}
        self.by_key: dict[tuple[str, str], int] = {}           # (campaign, source key) -> contact
        self.by_ref: dict[str, int] = {}                       # held queue callbacks: their call id -> contact
        self.attempts: dict[int, _Attempt] = {}                # in progress
        self.last_attempt_of: dict[int, int] = {}              # contact -> its last attempt (result codes)
        self.dnc: set[str] = {normalise(n) for n in config.dnc}
        self.running: set[str] = {c.name for c in config.campaigns if c.start} | {CALLBACKS}
        self.lanes: dict[tuple[str, str], _Lane] = {}
        self.figures: dict[str, _Figures] = {c.name: _Figures() for c in config.campaigns}
        self.figures[CALLBACKS] = _Figures()
        self.in_flight: dict[str, int] = {}                    # campaign -> attempts in progress
        self.recent: dict[str, deque[tuple[bool, bool]]] = {}  # predictive: (answered, abandoned) per attempt
        self.next_contact = 1
        self.next_attempt = 1
        self._campaigns: dict[str, Campaign | None] = {c.name: c for c in config.campaigns}
        self._campaigns[CALLBACKS] = None
        self._rules: dict[str, dict[Result, RetryRule]] = {n: config.rules(c) for n, c in self._campaigns.items()}
        self._hours: dict[str, CallingHours] = {n: config.hours(c) for n, c in self._campaigns.items()}
        self._zone: dict[str, str] = {n: config.zone_name(c) for n, c in self._campaigns.items()}
        self._limit: dict[str, int] = {n: config.attempts_limit(c) for n, c in self._campaigns.items()}
        # queue -> its lanes, callbacks first, then campaigns by priority
        self._queue_lanes: dict[str, list[_Lane]] = {}
        self._dirty: dict[int, Contact] = {}
        self._attempt_rows: list[AttemptRow] = []
        self._dnc_rows: list[tuple[str, bool]] = []
        self._figures_dirty: set[str] = set()

    # ------------------------------------------------------------------------ public API
    def handle(self, event: Any, now: float) -> list[Any]:
        dials: list[Any] = []
        handler = getattr(self, "_on_" + type(event).__name__)
        handler(event, now, dials)
        return self._flush() + dials + self._figures_out()

    def load(self, rows: Iterable[ContactRow], open_attempts: Iterable[AttemptRow], next_attempt: int,
             now: float) -> list[Any]:
        """The store's state at start. An attempt that has no result (the switch died during it) counts as
        a no-answer made at its start: its contact is rescheduled from then, never dialled sooner."""
        open_by_contact = {a.contact: a for a in open_attempts}
        for r in rows:
            c = Contact.from_row(r)
            self.contacts[c.id] = c
            self.next_contact = max(self.next_contact, c.id + 1)
            if c.key:
                self.by_key[(c.campaign, c.key)] = c.id
            if c.kind == "queue" and c.data.get("ref"):
                self.by_ref[str(c.data["ref"])] = c.id
            if c.campaign not in self.figures:
                self.figures[c.campaign] = _Figures()  # a campaign no longer configured: kept, not dialled
            f = self.figures[c.campaign]
            f.contacts += 1
            f.attempts += c.attempts
            if c.last_result in REACHED:
                f.reached += 1
            if c.last_result == Result.MACHINE.value:
                f.machines += 1
            a = open_by_contact.get(c.id)
            if c.state is ContactState.DIALLING:
                c.state = ContactState.WAITING if c.kind != "queue" or c.attempts else ContactState.HELD
                if a is not None:
                    self._attempt_rows.append(AttemptRow(a.id, c.id, c.campaign, c.number, a.started, now,
                                                         "interrupted", a.agent, a.call))
                    self._schedule(c, Result.NO_ANSWER, a.started, now)
                    self._dirty[c.id] = c
                elif c.state is ContactState.WAITING:
                    c.next_due = max(c.next_due or now, now)
                    self._dirty[c.id] = c
            self._count(c, +1)
            if c.state is ContactState.WAITING:
                self._lane(c).push(c)
        self.next_attempt = max(self.next_attempt, next_attempt)
        self._figures_dirty.update(self.figures)
        return self._flush() + self._figures_out()

    def held(self) -> list[Contact]:
        """Queue callbacks keeping a place (the switch puts them back in their queues at start), in order."""
        return sorted((c for c in self.contacts.values() if c.state is ContactState.HELD),
                      key=lambda c: (c.position, c.id))

    def next_deadline(self) -> float | None:
        """The earliest next-due time of a running campaign's waiting contact (None: nothing waits)."""
        best: float | None = None
        for lane in self.lanes.values():
            if lane.campaign in self.running and (c := lane.top()) is not None:
                assert c.next_due is not None
                best = c.next_due if best is None else min(best, c.next_due)
        return best

    def campaign_figures(self, name: str) -> dict[str, float]:
        f = self.figures.get(name)
        if f is None:
            raise KeyError(name)
        return {**f.as_dict(), "running": 1.0 if name in self.running else 0.0,
                "in_flight": float(self.in_flight.get(name, 0))}

    def calling_hours_open(self, contact: int, t: float) -> bool:
        """Whether ``t`` is inside the calling hours of ``contact`` (in its time zone)."""
        c = self.contacts[contact]
        return self._hours[c.campaign].open_at(t, self._tz(c))

    def last_attempt(self, contact: int) -> int | None:
        return self.last_attempt_of.get(contact)

    # -------------------------------------------------------------------------- events
    def _on_ContactsAdded(self, e: ContactsAdded, now: float, dials: list[Any]) -> None:
        if e.campaign not in self._campaigns or e.campaign == CALLBACKS:
            raise ValueError(f"no campaign {e.campaign!r}")
        camp = self._campaigns[e.campaign]
        queue = camp.queue if camp is not None else ""
        for n in e.contacts:
            if n.key and (e.campaign, n.key) in self.by_key:
                continue
            if n.timezone:
                zone(n.timezone)  # ValueError: refused before anything is added
            c = self._new(e.campaign, self.normalise(n.number), queue, "campaign", now)
            c.name, c.timezone, c.data, c.key = n.name, n.timezone, dict(n.data), n.key
            if c.key:
                self.by_key[(e.campaign, c.key)] = c.id
            self._enter(c, n.due if n.due is not None else now, now)

    def _on_CallbackRequested(self, e: CallbackRequested, now: float, dials: list[Any]) -> None:
        c = self._new(CALLBACKS, self.normalise(e.number), e.queue, e.kind, now)
        c.name, c.note, c.audio, c.position = e.name, e.note, e.audio, e.position or now
        c.data = {"ref": e.ref} if e.ref else {}
        if e.ref:
            self.by_ref[e.ref] = c.id
        if e.kind == "queue":
            c.state = ContactState.HELD   # its virtual call keeps the caller's place in the ACD
            c.next_due = None
            self._count(c, +1)
            self._dirty[c.id] = c
            return
        self._enter(c, e.due if e.due is not None else now, now)

    def _on_QueueCallbackStarted(self, e: QueueCallbackStarted, now: float, dials: list[Any]) -> None:
        c = self.contacts[e.contact or self.by_ref[e.ref]]
        if c.state is not ContactState.HELD:
            raise ValueError(f"contact {c.id} is {c.state}, not held")
        a = self._begin(c, now, e.agent)
        a.call = e.call

    def _on_HeldReleased(self, e: HeldReleased, now: float, dials: list[Any]) -> None:
        c = self.contacts[e.contact or self.by_ref[e.ref]]
        if c.state is not ContactState.HELD:
            return
        self._count(c, -1)
        c.move(ContactState.WAITING)
        self._count(c, +1)
        self._enter_due(c, now)

    def _on_AttemptEnded(self, e: AttemptEnded, now: float, dials: list[Any]) -> None:
        number = e.attempt
        if not number:
            c = self.contacts.get(e.contact or self.by_ref.get(e.ref, 0))
            number = c.attempt if c is not None and c.state is ContactState.DIALLING else 0
        a = self.attempts.pop(number, None)
        if a is None:
            return
        c = a.contact
        self.in_flight[c.campaign] = self.in_flight.get(c.campaign, 1) - 1
        self._attempt_rows.append(AttemptRow(a.id, c.id, c.campaign, c.number, a.started, now,
                                             e.result.value if e.counted else "not_dialled", e.agent or a.agent,
                                             e.call or a.call, e.amd))
        f = self.figures[c.campaign]
        if not e.counted:  # the agent never answered: the customer was not called; due again at once
            self._count(c, -1)
            c.attempts -= 1
            c.day_attempts = max(0, c.day_attempts - 1)
            f.attempts -= 1
            if c.kind == "queue" and c.attempts == 0:
                c.move(ContactState.HELD)
            else:
                c.move(ContactState.WAITING)
                c.next_due = now
                self._lane(c).push(c)
            self._count(c, +1)
            self._dirty[c.id] = c
            return
        answered = e.result in REACHED or e.abandoned
        if answered:
            f.answered += 1
        if e.abandoned:
            f.abandoned += 1
        camp = self._campaigns.get(c.campaign)
        if camp is not None and camp.mode == "predictive":
            self.recent.setdefault(c.campaign, deque(maxlen=100)).append((answered, e.abandoned))
        if e.result in REACHED:
            f.reached += 1
        if e.result is Result.MACHINE:
            f.machines += 1
        if e.amd:
            f.amd += 1
        self._settle(c, e.result, a.started, now)

    def _on_ResultCode(self, e: ResultCode, now: float, dials: list[Any]) -> None:
        """The agent's code replaces what the switch concluded (a "completed" call that was a fax)."""
        c = self.contacts.get(e.contact)
        if c is None:
            raise KeyError(e.contact)
        if c.state is ContactState.DIALLING:
            raise ValueError("the call is still in progress: set the result at wrap-up")
        f = self.figures[c.campaign]
        was = Result(c.last_result) if c.last_result in Result._value2member_map_ else None
        if (was in REACHED) != (e.result in REACHED):
            f.reached += 1 if e.result in REACHED else -1
        if (was is Result.MACHINE) != (e.result is Result.MACHINE):   # the agent corrected it (either way)
            f.machines += 1 if e.result is Result.MACHINE else -1
        if e.due is not None and e.result is Result.CALLBACK:
            c.last_result = e.result.value
            self._count(c, -1)
            if c.state is not ContactState.WAITING:
                c.move(ContactState.WAITING)
            self._count(c, +1)
            self._enter_due(c, e.due)
            return
        self._settle(c, e.result, c.last_attempt if c.last_attempt is not None else now, now)

    def _on_DncChanged(self, e: DncChanged, now: float, dials: list[Any]) -> None:
        n = self.normalise(e.number)
        if e.add:
            self.dnc.add(n)
        else:
            self.dnc.discard(n)
        self._dnc_rows.append((n, e.add))

    def _on_CampaignStarted(self, e: CampaignStarted, now: float, dials: list[Any]) -> None:
        if e.campaign not in self._campaigns:
            raise ValueError(f"no campaign {e.campaign!r}")
        self.running.add(e.campaign)
        self._figures_dirty.add(e.campaign)

    def _on_CampaignStopped(self, e: CampaignStopped, now: float, dials: list[Any]) -> None:
        if e.campaign not in self._campaigns:
            raise ValueError(f"no campaign {e.campaign!r}")
        self.running.discard(e.campaign)
        self._figures_dirty.add(e.campaign)

    def _on_Tick(self, e: Tick, now: float, dials: list[Any]) -> None:
        """One pacing pass: agent-first lanes take the queue's free agents (callbacks first, then campaigns
        by priority); notification campaigns fill their channels; predictive ones dial ahead."""
        for queue, free in e.free.items():
            for lane in self._queue_lanes.get(queue, ()):
                if free <= 0:
                    break
                camp = self._campaigns[lane.campaign]
                if lane.campaign not in self.running or (camp is not None and camp.mode == "predictive"):
                    continue
                free -= self._dial_lane(lane, free, now, dials)
            for lane in self._queue_lanes.get(queue, ()):
                camp = self._campaigns[lane.campaign]
                if free > 0 and camp is not None and camp.mode == "predictive" and lane.campaign in self.running:
                    self._dial_lane(lane, self._predictive_room(camp, free), now, dials)
        for camp in self.config.campaigns:
            if camp.mode == "notification" and camp.name in self.running:
                room = camp.max_channels - self.in_flight.get(camp.name, 0)
                for lane in self._queue_lanes.get(camp.queue, ()):
                    if lane.campaign == camp.name and room > 0:
                        room -= self._dial_lane(lane, room, now, dials)

    def _predictive_room(self, camp: Campaign, free: int) -> int:
        """Calls to place now: the free agents divided by the measured answer rate, no more than
        ``max_ratio`` per agent, less the calls already ringing; back to one per agent while the abandon
        rate over the last 100 answered calls is above target."""
        recent = self.recent.get(camp.name, deque())
        answered = sum(1 for a, _ in recent if a)
        abandoned = sum(1 for _, x in recent if x)
        ratio = 1.0
        if len(recent) >= 20 and answered:
            if abandoned / answered <= camp.abandon_target:
                ratio = min(camp.max_ratio, len(recent) / answered)
        want = math.floor(free * ratio)
        return min(camp.max_channels, want) - self.in_flight.get(camp.name, 0)

    # --------------------------------------------------------------------------- helpers
    def _new(self, campaign: str, number: str, queue: str, kind: str, now: float) -> Contact:
        c = Contact(self.next_contact, campaign, number, queue, kind, created=now)
        self.next_contact += 1
        self.contacts[c.id] = c
        self.figures[campaign].contacts += 1
        return c

    def _enter(self, c: Contact, due: float, now: float) -> None:
        """A new contact waits for its first attempt (or is finished at once: do-not-call)."""
        if c.number in self.dnc or not c.number:
            c.state = ContactState.DONE
            c.last_result = Result.DNC.value if c.number else Result.WRONG_NUMBER.value
            self._count(c, +1)
            self._dirty[c.id] = c
            return
        self._count(c, +1)
        self._enter_due(c, due)

    def _enter_due(self, c: Contact, due: float) -> None:
        nxt = self._hours[c.campaign].next_open(due, self._tz(c))
        if nxt is None:
            self._count(c, -1)
            c.state = ContactState.DONE
            c.last_result = Result.EXHAUSTED.value
            self._count(c, +1)
        else:
            c.next_due = nxt
            self._lane(c).push(c)
        self._dirty[c.id] = c

    def _tz(self, c: Contact) -> ZoneInfo:
        try:
            return zone(c.timezone or self._zone[c.campaign])
        except ValueError:
            return zone(self._zone[c.campaign])

    def _lane(self, c: Contact) -> _Lane:
        key = (c.campaign, c.queue)
        lane = self.lanes.get(key)
        if lane is None:
            lane = self.lanes[key] = _Lane(c.campaign, c.queue)
            lanes = self._queue_lanes.setdefault(c.queue, [])
            lanes.append(lane)

            def rank(x: _Lane) -> tuple[int, str]:
                camp = self._campaigns.get(x.campaign)
                return (-1000 if camp is None else -camp.priority, x.campaign)
            lanes.sort(key=rank)
        return lane

    def _dial_lane(self, lane: _Lane, room: int, now: float, dials: list[Any]) -> int:
        """Up to ``room`` due contacts of ``lane`` dialled; returns how many."""
        placed = 0
        hours = self._hours[lane.campaign]
        while placed < room:
            c = lane.top()
            if c is None or c.next_due is None or c.next_due > now:
                break
            heapq.heappop(lane.heap)
            if c.number in self.dnc:
                self._finish(c, Result.DNC)
                continue
            tz = self._tz(c)
            if not hours.open_at(now, tz):  # its window closed while it waited for an agent
                nxt = hours.next_open(now, tz)
                if nxt is None:
                    self._finish(c, Result.EXHAUSTED)
                else:
                    c.next_due = nxt
                    lane.push(c)
                    self._dirty[c.id] = c
                continue
            a = self._begin(c, now, "")
            dials.append(self._dial(c, a))
            placed += 1
        return placed

    def _begin(self, c: Contact, now: float, agent: str) -> _Attempt:
        self._count(c, -1)
        c.move(ContactState.DIALLING)
        self._count(c, +1)
        day = local_day(now, self._tz(c))
        if day != c.day:
            c.day, c.day_attempts = day, 0
        c.day_attempts += 1
        c.attempts += 1
        c.last_attempt = now
        c.next_due = None
        a = _Attempt(self.next_attempt, c, now, agent)
        self.next_attempt += 1
        c.attempt = a.id
        self.attempts[a.id] = a
        self.last_attempt_of[c.id] = a.id
        self.in_flight[c.campaign] = self.in_flight.get(c.campaign, 0) + 1
        self.figures[c.campaign].attempts += 1
        self._attempt_rows.append(AttemptRow(a.id, c.id, c.campaign, c.number, now, agent=agent))
        self._dirty[c.id] = c
        self._figures_dirty.add(c.campaign)
        return a

    def _dial(self, c: Contact, a: _Attempt) -> Dial:
        camp = self._campaigns[c.campaign]
        mode = "callback" if camp is None else camp.mode
        caller_id = self.config.presented(camp, self.queue_caller_id(c.queue) if c.queue else "")
        return Dial(a.id, c.id, c.campaign, mode, c.number, c.queue, caller_id, camp.flow if camp is not None else "",
                    c.name, c.kind, c.audio, c.note, dict(c.data))

    def _settle(self, c: Contact, result: Result, last: float, now: float) -> None:
        """After an attempt (or an agent's code): finished, or due again by the result's rule."""
        if result is Result.REFUSED and c.number not in self.dnc:
            self.dnc.add(c.number)
            self._dnc_rows.append((c.number, True))
        self._schedule(c, result, last, now)
        self._dirty[c.id] = c
        self._figures_dirty.add(c.campaign)

    def _schedule(self, c: Contact, result: Result, last: float, now: float) -> None:
        self._count(c, -1)
        rule = self._rules[c.campaign].get(result, RetryRule())
        limit = self._limit[c.campaign]
        due = next_due(last, result, rule, self._hours[c.campaign], self._tz(c), day_attempts=c.day_attempts,
                       attempts=c.attempts, max_attempts=limit)
        c.last_result = result.value
        if due is None:
            if rule.retry and c.attempts >= limit:
                c.last_result = Result.EXHAUSTED.value if result is not Result.COMPLETED else result.value
            if c.state is not ContactState.DONE:
                c.move(ContactState.DONE)
            c.next_due = None
        else:
            if c.state is not ContactState.WAITING:
                c.move(ContactState.WAITING)
            c.next_due = due
            self._lane(c).push(c)
        self._count(c, +1)

    def _finish(self, c: Contact, result: Result) -> None:
        self._count(c, -1)
        c.move(ContactState.DONE)
        c.last_result = result.value
        c.next_due = None
        self._count(c, +1)
        self._dirty[c.id] = c
        self._figures_dirty.add(c.campaign)

    def _count(self, c: Contact, d: int) -> None:
        f = self.figures[c.campaign]
        s = c.state
        if s is ContactState.WAITING:
            f.waiting += d
        elif s is ContactState.HELD:
            f.held += d
        elif s is ContactState.DIALLING:
            f.dialling += d
        else:
            f.done += d
        self._figures_dirty.add(c.campaign)

    def _flush(self) -> list[Any]:
        if not (self._dirty or self._attempt_rows or self._dnc_rows):
            return []
        save = Save(tuple(c.row() for c in self._dirty.values()), tuple(self._attempt_rows), tuple(self._dnc_rows))
        self._dirty = {}
        self._attempt_rows = []
        self._dnc_rows = []
        return [save]

    def _figures_out(self) -> list[Any]:
        out = [FiguresChanged(n, self.campaign_figures(n)) for n in sorted(self._figures_dirty) if n in self.figures]
        self._figures_dirty.clear()
        return out
