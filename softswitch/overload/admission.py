"""Admission control: what the switch serves, in which order, and what it sheds when it cannot keep up.

Sans-IO. The edge (``softswitch.overload.udp``) drains the UDP socket in batches and ``offer``s every
datagram with the time the kernel received it; it then asks ``next(now)`` for the next thing to do
(``Process`` a datagram through the full stack, or send an ``Answer``: a cheap 503) until there is
nothing left or its time slice is over, and reports the event loop's lag (``lag``) and the time it spent
(``busy``). No socket, clock or loop in here: tests drive it with a fake clock.

Why it works. Past its capacity a server that serves requests in arrival order spends its one core on
requests that will time out anyway: every request waits longer than the phone's retransmission timer,
the phone retransmits, and the queue fills with copies whose answers come too late (bench/OVERLOAD.md:
at twice its capacity the switch used to complete a fifth of its clean rate). So:

* **Rank** (``Rank``): responses and in-dialog requests (a To tag; ACK, BYE, CANCEL, PRACK, UPDATE,
  INFO) are *urgent*: served at once, in order, never shed: calls already up are never dropped. Then the
  call centre's own traffic (``CENTRE``: calls to queue and IVR numbers and configured numbers, calls
  from the trunks' carriers; REGISTERs of agents' phones and configured extensions), then requests answering our digest challenge (``ANSWER``:
  the work is half done), then REGISTERs of phones refreshing a live binding from the same address
  (``REFRESH``), then everything else (``NEW``: bulk registrations, calls between phones, OPTIONS...).
* **Overloaded** (``Mode``) when a new request has waited a quarter of ``max_delay_ms`` (its age is
  measured from the kernel's receive time, so time spent in the socket buffer counts), when the loop lags
  ``max_lag_ms``, or when the backlog reaches half of ``max_backlog``. Then the newest requests are served
  first (LIFO: the newest are the ones whose senders still wait; the oldest have been retransmitted or
  given up) and every new request or refresh that has waited ``max_delay_ms`` (the call centre's
  traffic and answers to challenges: twice that) is answered 503 with a Retry-After spread over
  ``[retry_after_min, retry_after_max]`` seconds: a few microseconds instead of a parse, a digest and a
  store write. Once overload has lasted long enough to measure the rate the switch serves at, what
  cannot be served before the phones' first retransmission (0.8 x T1) at that rate is answered at once
  instead of after waiting for it: the phones get their 503 before they retransmit, and the backlog stays
  small. Back to normal (FIFO, nothing shed) after ``CALM`` seconds with no request waiting long,
  nothing shed and the loop on time.
* **Retransmissions** (recognised byte for byte from the same sender without a second look, else by
  branch and method) of a request still waiting are absorbed; of a request whose transaction has
  answered, given that answer again from the transaction layer without parsing; of a request served but
  not answered yet (or answered statelessly, a challenge), absorbed while overloaded (served again
  otherwise); of a request we answered 503, answered with the same 503 again (its ACK absorbed). **Stale** datagrams, older than a transaction lives
  (64*T1), are dropped unread.

What is shed, and why, is counted (``shed``) and logged when overload starts, every ``REPORT`` seconds
while it lasts, and when it ends.
"""
from __future__ import annotations

import logging
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Callable, Mapping

from ..states import move
from .config import OverloadConfig
from .peek import Peek, answer, peek, reject

__all__ = ["Admission", "Answer", "Mode", "Process", "Rank", "SHED_REASONS"]

log = logging.getLogger("softswitch.overload")


class Mode(str, Enum):
    NORMAL = "normal"            # first come, first served; nothing shed but stale datagrams
    OVERLOADED = "overloaded"    # newest first; requests that waited max_delay answered 503

    def __str__(self) -> str:
        return self.value


MODE_TRANSITIONS: Mapping[Mode, frozenset[Mode]] = {
    Mode.NORMAL: frozenset({Mode.OVERLOADED}),
    Mode.OVERLOADED: frozenset({Mode.NORMAL}),
}


class Rank(IntEnum):
    URGENT = 0   # responses, in-dialog requests, ACK/BYE/CANCEL: never shed
    CENTRE = 1   # the call centre's own traffic: calls to queues and the hotline, agents' phones registering
    ANSWER = 2   # a request carrying credentials: the answer to a challenge of ours (the work is half done)
    REFRESH = 3  # a REGISTER of a phone with a live binding from the same address (not a newcomer)
    NEW = 4      # any other new out-of-dialog request (bulk registrations, calls between phones, OPTIONS...)


DEFERRED = (Rank.CENTRE, Rank.ANSWER, Rank.REFRESH, Rank.NEW)   # best first
PATIENT = frozenset({Rank.CENTRE, Rank.ANSWER})   # given twice max_delay before a 503 (a storm of refreshes is
# bulk: it gets its 503 before the phones' retransmission timer fires, like newcomers)


# Why a datagram was not served: "rejected" (answered 503 after waiting too long while overloaded),
# "backlog" (answered 503: the backlog was full), "retransmission" (a copy of a request already waiting
# or served), "stale" (older than a transaction lives), "refused_dialog" (a request in the dialog a 503 of
# ours named: its ACK absorbed; anything else, a BYE of a client that takes a 503 for an answer to hang up
# (SIPp does), answered 481 at once).
SHED_REASONS = ("rejected", "backlog", "retransmission", "stale", "refused_dialog")

URGENT_METHODS = frozenset({"ACK", "BYE", "CANCEL", "PRACK", "UPDATE", "INFO"})
CALM = 2.0          # seconds without a long wait, shedding or lag before the switch counts as normal again
REPORT = 10.0       # seconds between log lines while overloaded
RATE_WINDOW = 0.5   # seconds over which the service rate is measured while overloaded
MIN_ALLOWANCE = 20  # requests that may always wait (the service rate estimate is noisy)
SEEN_CAP = 50_000   # requests remembered for retransmission matching (older ones: the transaction layer's job)
REJECTED_CAP = 20_000   # 503s remembered to answer retransmissions alike
WRITE_BUDGET = 0.4      # x T1: a registration's commit older than this holds back first legs (see ``write_started``)
HOUSEKEEPING = 0.002    # seconds between looks over the queues (mode, rate, what waited too long) while serving
# with nothing new offered: a few requests' worth of service, far below the 250 ms that counts as strain


@dataclass(frozen=True, slots=True)
class Process:
    """Serve this datagram: the full parser, the transaction layer, the registrar or call control."""

    data: bytes
    source: tuple[str, int]
    rank: Rank
    waited: float   # seconds since the kernel received it


@dataclass(frozen=True, slots=True)
class Answer:
    """Send these bytes (a 503, or a 481 in the dialog of one) to ``source`` instead of serving a request."""

    data: bytes
    source: tuple[str, int]


@dataclass(slots=True, eq=False)
class _Item:
    data: bytes
    source: tuple[str, int]
    arrived: float
    peek: Peek
    rank: Rank
    waiting: bool = True    # False once taken (served or shed); ``_seen`` keeps the item to tell a copy of a
    # waiting request from a copy of a served one (its bytes are dropped then)


@dataclass(slots=True, eq=False)
class Write:
    """A registration being committed by the store: its 200 OK waits for the commit (``write_started``)."""

    started: float
    done: bool = False


@dataclass
class Figures:
    """What the API, the metrics and the logs show."""

    mode: Mode = Mode.NORMAL
    lag: float = 0.0            # seconds, the last probe of the event loop
    delay: float = 0.0          # seconds the oldest waiting request has waited
    backlog: int = 0            # requests waiting (all ranks)
    load: float = 0.0           # share of the last second the edge spent serving SIP (0..1)
    offered: int = 0            # datagrams offered since start
    served: int = 0             # datagrams served (Process) since start
    shed: dict[str, int] = field(default_factory=lambda: {r: 0 for r in SHED_REASONS})
    refused: dict[str, int] = field(default_factory=lambda: {r.name.lower(): 0 for r in Rank})  # 503s by rank
    write_delay: float = 0.0    # seconds the oldest registration still being committed has waited
    held: int = 0               # times first legs were held back because the store lagged
    overloads: int = 0          # times the switch entered overload
    overloaded_since: float | None = None


class Admission:
    """Ranks, queues and sheds SIP datagrams; see the module docstring."""

    def __init__(self, config: OverloadConfig, *, t1: float = 0.5,
                 centre_numbers: frozenset[str] = frozenset(), centre_extensions: frozenset[str] = frozenset(),
                 known_phone: Callable[[str, str], bool] | None = None,
                 carrier: Callable[[str], bool] | None = None,
                 resend: Callable[[str, tuple[str, int | None], str], bytes | None] | None = None,
                 rng: random.Random | None = None):
        """``centre_numbers``: dialled numbers whose calls go first (queue and IVR numbers); ``centre_extensions``:
        AORs whose REGISTERs go first (agents' phones); ``known_phone(aor, host)``: whether ``aor`` has a live
        binding registered from ``host`` (a refresh, not a newcomer); ``carrier(host)``: whether ``host`` is a
        trunk's (its calls are customers calling in); ``resend(branch, sent_by, method)``: the response a
        retransmission of that request gets from its server transaction, if any (the transaction layer's
        ``answer_to_retransmission``)."""
        self.lifetime = 64 * t1                      # a transaction's life (Timers B, F): older is stale
        self.t1 = t1
        self.write_budget = WRITE_BUDGET * t1
        self.configure(config, centre_numbers=centre_numbers, centre_extensions=centre_extensions, carrier=carrier)
        self.known_phone = known_phone
        self.resend = resend
        self.rng = rng or random.Random()
        self.figures = Figures()
        self._queues: list[deque[_Item]] = [deque() for _ in Rank]
        self._waiting = 0                            # items in the queues, all ranks
        self._seen: OrderedDict[tuple[str, str], _Item] = OrderedDict()
        self._copies: OrderedDict[int, _Item] = OrderedDict()   # hash of a request's bytes -> its item
        self._rejected: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._refused: OrderedDict[tuple[str, str], float] = OrderedDict()   # (Call-ID, To tag) of our 503s
        self._answers: deque[Answer] = deque()
        self._writes: deque[Write] = deque()   # registrations being committed, oldest first
        self._held = False                  # first legs held back: the store lags (``_holding``)
        self._fresh = False                 # offered since the queues were last looked over (``_update``)
        self._housekept = -1e9
        self._calm_since = 0.0
        self._last_shed = -1e9
        self._next_report = 0.0
        self._shed_at_start: dict[str, int] = {}
        self._busy = 0.0
        self._window: float | None = None   # start of the current second of ``busy`` accounting
        self._served_deferred = 0           # non-urgent requests served: the service rate
        self._rate_mark: tuple[float, int] | None = None
        self._saturated = False             # no moment without a request waiting since the mark
        self.rate: float | None = None      # non-urgent requests served per second while overloaded (EWMA)

    def configure(self, config: OverloadConfig, *, centre_numbers: frozenset[str] = frozenset(),
                  centre_extensions: frozenset[str] = frozenset(), carrier: Callable[[str], bool] | None = None) -> None:
        """Limits and priorities (at start, and after a config reload); what waits stays where it is."""
        self.config = config
        self.max_delay = config.max_delay_ms / 1000     # shed when overloaded
        self.strain_delay = self.max_delay / 4           # overloaded from here: a transient stall (GC, a
        # busy neighbour) switches to newest-first without shedding what can still be served in time
        self.max_lag = config.max_lag_ms / 1000
        self.centre_numbers = centre_numbers | frozenset(config.priority_numbers)
        self.centre_extensions = centre_extensions | frozenset(config.priority_extensions)
        self.carrier = carrier

    @property
    def mode(self) -> Mode:
        return self.figures.mode

    @property
    def pending(self) -> bool:
        """Something waits to be served or sent."""
        return self._waiting > 0 or bool(self._answers)

    def ready(self, now: float) -> bool:
        """Something can be served or sent now: the edge comes back at once only then (what is held back
        while the store lags waits for the next datagram or the next probe, without a busy loop)."""
        if self._answers or self._queues[Rank.URGENT]:
            return True
        if not self._waiting:
            return False
        if not self._holding(now):
            return True
        return any(self._queues[r] for r in PATIENT)

    # ------------------------------------------------------------------- the store's lag
    def write_started(self, now: float) -> Write:
        """A served REGISTER's binding goes to the store; its 200 OK waits for the commit. Under a flood the
        store's thread gets little of the interpreter, commits fall behind, and a phone whose 200 OK comes
        after its retransmission timer (T1) retransmits, then gives up at its own time-out: the work done
        for it (a challenge, a digest, a write) is lost. So while the oldest commit has waited more than
        ``WRITE_BUDGET`` x T1, first legs (refreshes and new requests: each one a challenge now and a write
        later) are held back, and refused 503 as they age; answers to challenges go on (their challenge is
        paid for) and the store catches up. Tell ``write_done`` when it is committed (or failed)."""
        w = Write(now)
        self._writes.append(w)
        return w

    def write_done(self, write: Write, now: float) -> None:
        write.done = True
        writes = self._writes
        while writes and writes[0].done:
            writes.popleft()

    def _holding(self, now: float) -> bool:
        writes = self._writes
        held = bool(writes) and now - writes[0].started > self.write_budget
        if held and not self._held:
            self.figures.held += 1
        self._held = held
        return held

    # --------------------------------------------------------------------------- input
    def offer(self, data: bytes, source: tuple[str, int], arrived: float, now: float) -> None:
        """A datagram received by the kernel at ``arrived`` (same clock as ``now``)."""
        fig = self.figures
        fig.offered += 1
        if now - arrived > self.lifetime:
            self._shed("stale")
            return
        digest = hash(data)
        copy = self._copies.get(digest)
        if copy is not None and copy.source == source:   # byte for byte a request seen: a retransmission
            if copy.waiting:          # of one still waiting: nothing to learn, nothing to look up (the
                self._shed("retransmission")   # commonest copy under a flood, made as cheap as can be)
                return
            p, rank = copy.peek, copy.rank               # (no second look at it: that is most of its cost)
        else:
            p = peek(data)
            rank = self._rank(p, source)
        if p.to_tag and (p.call_id, p.to_tag) in self._refused:   # no dialog can exist: a 503 named it
            self._shed("refused_dialog")
            if p.method != "ACK":
                reply = answer(data, 481, "Call/Transaction Does Not Exist")
                if reply is not None:
                    self._answers.append(Answer(reply, source))
            return
        if p.ok and not p.response and p.branch:
            key = p.key
            rejected = self._rejected.get(key)
            if rejected is not None:          # we answered it 503: the same again; its ACK ends it
                if p.method == "ACK":
                    self._shed("refused_dialog")
                else:
                    self._answers.append(Answer(rejected[1], source))
                return
            first = self._seen.get(key) if rank is not Rank.URGENT else None
            if first is not None and first.waiting:      # a copy of a request still waiting
                self._shed("retransmission")
                return
            # answered already: the same answer, unparsed. Asked only of a request served before (or one
            # ``_seen`` may have forgotten, or an in-dialog one, which ``_seen`` does not keep): for a new
            # request, most of a flood, the lookup would be wasted
            if (self.resend is not None and p.method != "ACK"
                    and (first is not None or rank is Rank.URGENT or len(self._seen) >= SEEN_CAP)):
                again = self.resend(p.branch, p.sent_by, p.method)
                if again is not None:
                    self._shed("retransmission")
                    self._answers.append(Answer(again, source))
                    return
            if first is not None and fig.mode is Mode.OVERLOADED:
                self._shed("retransmission")
                return
        item = _Item(data, source, arrived, p, rank)
        self._fresh = True
        self._queues[rank].append(item)
        self._waiting += 1
        if rank is not Rank.URGENT and p.ok and p.branch:
            self._remember(p.key, item, digest)
        if self._waiting > self.config.max_backlog:
            self._shed_oldest(now)

    def _rank(self, p: Peek, source: tuple[str, int]) -> Rank:
        if not p.ok:
            return Rank.NEW       # the full parser will say what is wrong with it, when there is time
        if p.response:
            return Rank.URGENT
        method = p.method
        if method == "REGISTER":  # never in a dialog, even with a To tag (some phones put one on refreshes)
            if p.to_user in self.centre_extensions:
                return Rank.CENTRE
            if p.credentials:
                return Rank.ANSWER
            if self.known_phone is not None and self.known_phone(p.to_user, source[0]):
                return Rank.REFRESH
            return Rank.NEW
        if p.to_tag or method in URGENT_METHODS:
            return Rank.URGENT
        if method == "INVITE" and (p.ruri_user in self.centre_numbers
                                   or (self.carrier is not None and self.carrier(source[0]))):
            return Rank.CENTRE
        return Rank.ANSWER if p.credentials else Rank.NEW

    def _remember(self, key: tuple[str, str], item: _Item, digest: int) -> None:
        seen = self._seen
        seen[key] = item
        seen.move_to_end(key)
        while len(seen) > SEEN_CAP:
            seen.popitem(last=False)
        copies = self._copies
        copies[digest] = item
        copies.move_to_end(digest)
        while len(copies) > SEEN_CAP:
            copies.popitem(last=False)

    # ------------------------------------------------------------------------- measures
    def lag(self, seconds: float, now: float) -> None:
        """The event loop's lag: how late the edge's periodic probe fired."""
        self.figures.lag = seconds

    def busy(self, seconds: float, now: float) -> None:
        """The edge spent ``seconds`` serving datagrams; folded into ``figures.load`` once a second."""
        if self._window is None:
            self._window = now - seconds
        self._busy += seconds
        if now - self._window >= 1.0:
            self.figures.load = min(1.0, self._busy / (now - self._window))
            self._window = now
            self._busy = 0.0

    # -------------------------------------------------------------------------- output
    def next(self, now: float) -> Process | Answer | None:
        """The next thing to do, or None when nothing waits. Urgent datagrams first, in order; then, when
        normal, the others by rank in order of arrival; when overloaded, first the 503s of every request
        that has waited too long, then the newest of the best rank."""
        if self._answers:
            return self._answers.popleft()
        queues = self._queues
        urgent = queues[Rank.URGENT]
        while urgent:
            item = urgent.popleft()
            if item.waiting:
                if now - item.arrived > self.lifetime:
                    self._drop(item, "stale")
                    continue
                return self._take(item, now)
        if self._fresh or now - self._housekept >= HOUSEKEEPING:   # not before every request: a flood is
            self._fresh = False                                     # served a few hundred µs apiece, and
            self._housekept = now                                   # these walk every queue
            self._update(now)
            if self.figures.mode is Mode.OVERLOADED:
                self._shed_waited(now)
                self._shed_excess(now)
                if self._answers:
                    return self._answers.popleft()
        overloaded = self.figures.mode is Mode.OVERLOADED
        holding = self._holding(now)
        for rank in DEFERRED:
            if holding and rank not in PATIENT:
                break                           # the store lags: first legs wait (or are refused as they age)
            q = queues[rank]
            while q:
                item = q.pop() if overloaded else q.popleft()
                if item.waiting:
                    if now - item.arrived > self.lifetime:
                        self._drop(item, "stale")
                        continue
                    return self._take(item, now)
        if holding and self._waiting:
            return None      # held back, not idle: the service rate measured now is the switch's capacity
        self._saturated = False
        fig = self.figures                   # nothing waits: the figures say so (``_update`` may not have run)
        fig.backlog, fig.delay = self._waiting, 0.0
        return None

    def _take(self, item: _Item, now: float) -> Process:
        item.waiting = False
        self._waiting -= 1
        self.figures.served += 1
        if item.rank is not Rank.URGENT:
            self._served_deferred += 1
        data, item.data = item.data, b""    # ``_seen`` may keep the item a while: not its bytes
        return Process(data, item.source, item.rank, now - item.arrived)

    def _drop(self, item: _Item, reason: str) -> None:
        item.waiting = False
        item.data = b""
        self._waiting -= 1
        self._shed(reason)

    def _shed(self, reason: str) -> None:
        self.figures.shed[reason] += 1

    def _refuse(self, item: _Item, reason: str, now: float) -> None:
        """Answer ``item`` 503 (remembered, so that its retransmissions get the same) and forget it."""
        data = item.data
        self._drop(item, reason)
        self.figures.refused[item.rank.name.lower()] += 1
        self._last_shed = now
        retry = self.rng.randint(self.config.retry_after_min, self.config.retry_after_max)
        p = item.peek
        tag = p.to_tag or f"{self.rng.getrandbits(48):012x}"   # unique enough for a To tag; no syscall
        reply = reject(data, retry, tag)
        if reply is None:
            return
        self._answers.append(Answer(reply, item.source))
        if not p.ok:
            return
        horizon = now - self.lifetime
        if p.branch:
            rejected = self._rejected
            rejected[p.key] = (now, reply)
            while rejected and (len(rejected) > REJECTED_CAP or next(iter(rejected.values()))[0] < horizon):
                rejected.popitem(last=False)
        if not p.to_tag:
            refused = self._refused
            refused[(p.call_id, tag)] = now
            while refused and (len(refused) > REJECTED_CAP or next(iter(refused.values())) < horizon):
                refused.popitem(last=False)

    def _shed_waited(self, now: float) -> None:
        """Overloaded: every new request or refresh that has waited ``max_delay`` is answered 503 (oldest
        first); the call centre's traffic and answers to challenges are given twice as long."""
        for rank in reversed(DEFERRED):
            limit = now - (2 * self.max_delay if rank in PATIENT else self.max_delay)
            q = self._queues[rank]
            while q and (not q[0].waiting or q[0].arrived < limit):
                item = q.popleft()
                if item.waiting:
                    self._refuse(item, "rejected", now)

    def _shed_excess(self, now: float) -> None:
        """Overloaded for a while (a service rate measured in this episode): what cannot be served before
        the phone's first retransmission (0.8 x T1, or ``max_delay`` if shorter) at that rate is answered
        503 at once, oldest and lowest first, instead of after waiting ``max_delay`` for it: the phone learns
        it before it retransmits, no copy comes to be absorbed, and the backlog stays small. (A stall that
        the switch catches up with has no measured rate yet: ``max_delay`` alone applies.)"""
        rate = self.rate
        if rate is None:
            return
        allowance = max(MIN_ALLOWANCE, rate * min(self.max_delay, 0.8 * self.t1))
        queues = self._queues
        total = sum(len(queues[r]) for r in DEFERRED)
        for rank in reversed(DEFERRED):
            cap = 2 * allowance if rank in PATIENT else allowance
            q = queues[rank]
            while total > cap and q:
                item = q.popleft()
                total -= 1
                if item.waiting:
                    self._refuse(item, "rejected", now)

    def _measure_rate(self, now: float) -> None:
        """Requests served per second, over windows in which some always waited: what the switch can do
        now (a window with idle moments measures the demand, not the capacity, and is not counted)."""
        mark = self._rate_mark
        if mark is None or now - mark[0] >= RATE_WINDOW:
            if mark is not None and self.figures.mode is Mode.OVERLOADED:
                if self._saturated:
                    sample = (self._served_deferred - mark[1]) / (now - mark[0])
                    self.rate = sample if self.rate is None else 0.5 * self.rate + 0.5 * sample
                elif self.rate is not None:   # it ran dry while refusing: the estimate is low, allow more
                    self.rate *= 1.25         # (else a low estimate would never be corrected upwards)
            self._rate_mark = (now, self._served_deferred)
            self._saturated = True

    def _shed_oldest(self, now: float) -> None:
        """The backlog is full: the oldest request of the lowest rank goes (answered 503); urgent ones only
        when nothing else is left (a flood of in-dialog requests must not grow memory without bound)."""
        for rank in (*reversed(DEFERRED), Rank.URGENT):
            q = self._queues[rank]
            while q:
                item = q.popleft()
                if item.waiting:
                    if rank is Rank.URGENT:
                        self._drop(item, "backlog")
                    else:
                        self._refuse(item, "backlog", now)
                    return

    # --------------------------------------------------------------------------- state
    def _oldest(self) -> float | None:
        oldest: float | None = None
        for rank in DEFERRED:
            q = self._queues[rank]
            while q and not q[0].waiting:
                q.popleft()
            if q and (oldest is None or q[0].arrived < oldest):
                oldest = q[0].arrived
        return oldest

    def _update(self, now: float) -> None:
        fig = self.figures
        self._measure_rate(now)
        oldest = self._oldest()
        fig.delay = now - oldest if oldest is not None else 0.0
        fig.backlog = self._waiting
        fig.write_delay = now - self._writes[0].started if self._writes else 0.0
        strained = (fig.delay > self.strain_delay or fig.lag > self.max_lag or fig.write_delay > self.write_budget
                    or self._waiting > self.config.max_backlog // 2)
        if fig.mode is Mode.NORMAL:
            if strained:
                self._enter(now)
            return
        if strained or now - self._last_shed < CALM:
            self._calm_since = now
        elif now - self._calm_since >= CALM:
            self._leave(now)
            return
        if now >= self._next_report:
            self._next_report = now + REPORT
            log.warning("overload: %s", self.describe(now))

    def _enter(self, now: float) -> None:
        fig = self.figures
        fig.mode = move(fig.mode, Mode.OVERLOADED, MODE_TRANSITIONS, "overload")
        fig.overloads += 1
        fig.overloaded_since = now
        self._calm_since = now
        self._shed_at_start = dict(fig.shed)
        self._next_report = now + REPORT
        log.warning("overload: shedding new requests (oldest waited %.0f ms, loop lag %.0f ms, %d waiting); "
                    "in-dialog requests and the call centre's traffic go first", fig.delay * 1000, fig.lag * 1000,
                    self._waiting)

    def _leave(self, now: float) -> None:
        fig = self.figures
        since = fig.overloaded_since or now
        fig.mode = move(fig.mode, Mode.NORMAL, MODE_TRANSITIONS, "overload")
        fig.overloaded_since = None
        self.rate = None              # the next episode measures its own (the load may differ)
        log.warning("overload over after %.1f s: %s", now - since, self._shed_summary())

    def _shed_summary(self) -> str:
        shed = self.figures.shed
        parts = [f"{shed[r] - self._shed_at_start.get(r, 0)} {r}" for r in SHED_REASONS
                 if shed[r] - self._shed_at_start.get(r, 0)]
        return "shed " + (", ".join(parts) if parts else "nothing")

    def describe(self, now: float) -> str:
        fig = self.figures
        rate = f"serving {self.rate:.0f}/s, " if self.rate is not None else ""
        return (f"{fig.mode}, oldest waiting {fig.delay * 1000:.0f} ms, loop lag {fig.lag * 1000:.0f} ms, "
                f"oldest commit {fig.write_delay * 1000:.0f} ms, "
                f"{fig.backlog} waiting, {rate}load {fig.load:.0%}; {self._shed_summary()} since it began")

    def snapshot(self, now: float) -> dict[str, object]:
        """The figures as plain data (the API)."""
        fig = self.figures
        return {"mode": fig.mode.value, "load": round(fig.load, 3), "lag_ms": round(fig.lag * 1000, 1),
                "delay_ms": round(fig.delay * 1000, 1), "backlog": fig.backlog, "offered": fig.offered,
                "served": fig.served, "shed": dict(fig.shed), "refused_by_rank": dict(fig.refused),
                "write_delay_ms": round(fig.write_delay * 1000, 1), "held_for_store": fig.held,
                "overloads": fig.overloads,
                "overloaded_for_s": round(now - fig.overloaded_since, 1) if fig.overloaded_since is not None
                else None}
