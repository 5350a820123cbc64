"""The ACD engine: queues, agent states, offers and timers, sans-IO.

``Acd.handle(event, now)`` takes one event from the switch (``acd.events``) and returns the actions
for it (``acd.actions``); ``next_deadline()`` says when to call ``handle(TimerFired(), now)`` (or
``on_timer(now)``). It knows nothing of SIP or RTP: the switch maps legs and extensions to these
events and executes the actions, exactly like the SIP transaction layer.

After every event that can free an agent or queue a call the engine runs one routing pass
(``Router.assign``), so the decision is always "best pair for the state right now".

``now`` is a monotonic clock (``time.monotonic()`` from the switch): the engine only takes differences
of it (hold, ring and talk times, timers). The one place that needs wall-clock time, the queue_log
timestamp, uses ``now + wall_offset``; the owner keeps ``Acd.wall_offset`` current
(``acd.wall_offset = time.time() - time.monotonic()``). With the default 0.0, ``now`` must be Unix time.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

import numpy as np

from . import events as ev
from . import queuelog
from .actions import (
    Action, AgentStateChanged, Announce, CancelRing, Connect, FeatureCodeReply, HangupWithPrompt, Overflow,
    QueueLogLine, RingAgent, SendToVoicemail, StartMusic, WrapUpDone,
)
from .config import AcdConfig, AcdQueue, Fallback
from .featurecodes import parse_feature_code
from .identity import WRONG_PIN, PinGuard, login_refusal
from .routing import AgentMatrix, AgentState, CallColumns, QueueRule, Router
from .stats import QueueCounters, QueueStats

__all__ = ["Acd", "DEFAULT_HANDLE_TIME", "RING_NO_ANSWER"]

RING_NO_ANSWER = "ring-no-answer"  # not-ready reason of an agent whose phone did not answer an offer
DEFAULT_HANDLE_TIME = 180.0  # seconds, for the expected-wait announcement until a queue has history
_TimerKey = tuple[str, str | int]  # (kind, call id) or ("wrap", agent index); handled by _timer_<kind>


@dataclass(eq=False)
class _Call:
    id: str
    caller: str
    queue: int
    priority: int
    arrived: float  # first arrival at the ACD: keeps an overflowed call's place in line
    entered: float  # entry into the current queue: hold time, max wait
    seq: int
    orig_position: int
    state: str = "waiting"  # waiting | ringing | connected
    head: bool = False
    ringing: dict[int, float] = field(default_factory=dict)  # agent -> ring start
    agent: int = -1
    answered: float = 0.0
    sticky_agent: int = -1
    sticky_until: float = 0.0
    slot: int = -1  # row in the CallColumns while waiting
    skill: str = ""  # a skill it needs besides its queue's (an IVR node's)
    language: str = ""  # the caller's language


@dataclass(eq=False)
class _Agent:
    id: str
    name: str
    home: str  # configured extension
    extension: str | None = None  # where logged in
    login_at: float = 0.0
    reason: str = ""
    call: str | None = None
    after_call: tuple[AgentState, str] | None = None  # state requested while on a call
    wrap_queue: int = -1
    wrap_start: float = 0.0
    wrap_call: str = ""  # the call whose after-call work this is
    misses: int = 0  # consecutive offers not answered (autopause)


class Acd:
    def __init__(self, config: AcdConfig, seed: int | None = None, wall_offset: float = 0.0):
        self.config = config
        self.wall_offset = wall_offset  # seconds to add to ``now`` for Unix time (queue_log only)
        self.skill_index = {s.name: i for i, s in enumerate(config.skills)}
        self.queue_index = {q.name: i for i, q in enumerate(config.queues)}
        self.queues: list[AcdQueue] = list(config.queues)
        level = np.zeros((len(config.agents), max(1, len(config.skills))), np.int8)
        for i, a in enumerate(config.agents):
            for s, lv in a.skills.items():
                level[i, self.skill_index[s]] = lv
        self.matrix = AgentMatrix(level)
        self.router = Router(self.matrix, [
            QueueRule(self.skill_index[q.skill], q.min_level, q.strategy, q.skill_level_first, q.weight)
            for q in config.queues], seed)
        self.base_member = self.router.member.copy()  # configured membership; router.member = it less pauses
        self.queue_paused = np.zeros_like(self.base_member)  # agent paused in one queue (autopause = "yes")
        self.agents = [_Agent(a.id, a.name, a.extension) for a in config.agents]
        self.pins = PinGuard()  # wrong agent PINs per dialling phone (acd.identity)
        self.agent_index = {a.id: i for i, a in enumerate(config.agents)}
        self.by_extension: dict[str, int] = {}  # logged-in extension -> agent
        self.busy_extensions: set[str] = set()
        self.down_extensions: set[str] = set()  # no registered phone (or the last offer could not reach it)
        self.calls: dict[str, _Call] = {}
        self.waiting: dict[str, _Call] = {}  # the calls in state "waiting"
        self.columns = CallColumns()  # the same calls as numpy columns, for the router
        self.slot_call: dict[int, _Call] = {}
        self.present: list[dict[str, _Call]] = [{} for _ in config.queues]  # per queue: not yet connected
        self.counters = [QueueCounters() for _ in config.queues]
        self.last_agent: dict[str, tuple[int, float]] = {}  # caller -> (agent, when last spoken to)
        self._seq = 0
        self._timers: dict[_TimerKey, float] = {}
        self._heap: list[tuple[float, int, _TimerKey]] = []

    # ------------------------------------------------------------------ public API

    def handle(self, event: ev.Event, now: float) -> list[Action]:
        out: list[Action] = []
        handler = getattr(self, "_on_" + type(event).__name__)
        handler(event, now, out)
        if not isinstance(event, ev.TimerFired):
            self._dispatch(now, out)
        return out

    def on_timer(self, now: float) -> list[Action]:
        return self.handle(ev.TimerFired(), now)

    def next_deadline(self) -> float | None:
        while self._heap:
            when, _, key = self._heap[0]
            if self._timers.get(key) == when:
                return when
            heapq.heappop(self._heap)  # cancelled or re-armed
        return None

    def queue_for_number(self, number: str) -> str | None:
        return self.config.queue_for_number(number)

    def agent_state(self, agent_id: str) -> tuple[str, str]:
        """(state label, not-ready reason) of an agent, for the control API and tests."""
        i = self.agent_index[agent_id]
        return AgentState(int(self.matrix.state[i])).label, self.agents[i].reason

    def queue_stats(self, queue: str, now: float) -> QueueStats:
        q = self.queue_index[queue]
        here = list(self.present[q].values())
        members = self.router.member[q]
        counts = np.bincount(self.matrix.state[members], minlength=len(AgentState))
        agents = {s.label: int(counts[s]) for s in AgentState}
        agents["phone-busy"] = int(np.count_nonzero(
            members & self.matrix.phone_busy & (self.matrix.state == AgentState.READY)))
        return QueueStats.of(queue, self.counters[q], len(here), max((now - c.entered for c in here), default=0.0),
                             agents)

    # ------------------------------------------------------------------ calls

    def _on_CallArrived(self, e: ev.CallArrived, now: float, out: list[Action]) -> None:
        if e.call_id in self.calls:
            return  # a retransmitted event; the call is already queued
        if e.queue not in self.queue_index:
            raise ValueError(f"unknown queue {e.queue!r}")
        self._seq += 1
        if e.skill and e.skill not in self.skill_index:
            raise ValueError(f"unknown skill {e.skill!r}")
        call = _Call(e.call_id, e.caller, self.queue_index[e.queue], e.priority, now, now, self._seq, 0,
                     skill=e.skill, language=e.language)
        self.calls[call.id] = call
        self._enter(call, now, out, hops=0)

    def _enter(self, call: _Call, now: float, out: list[Action], hops: int) -> None:
        """Put a call into ``call.queue`` (on arrival or overflow)."""
        q = self.queues[call.queue]
        call.priority = max(call.priority, self._rule_priority(q, call.caller))
        call.entered, call.state, call.head = now, "waiting", False
        self.present[call.queue][call.id] = call
        call.orig_position = self._position(call)  # in service order: a VIP enters ahead of others
        self.counters[call.queue].offered += 1
        self._log(out, now, call.id, q.name, None, "ENTERQUEUE", "", call.caller)
        if not self._staffed(call.queue) and q.on_no_agents.action != "wait":
            self._exit(call, now, out, "EXITEMPTY", q.on_no_agents, hops)
            return
        out.append(StartMusic(call.id, q.music_class))
        if q.max_wait:
            self._arm(("maxwait", call.id), now + q.max_wait)
        if q.announce_interval and (q.announce_position or q.announce_wait):
            self._arm(("announce", call.id), now + q.announce_interval)
        call.sticky_agent, call.sticky_until = -1, 0.0
        last = self.last_agent.get(call.caller) if q.sticky_window and call.caller else None
        if last and now - last[1] <= q.sticky_window:
            a = last[0]
            if self.matrix.state[a] != AgentState.LOGGED_OUT and self.router.member[call.queue, a]:
                call.sticky_agent, call.sticky_until = a, now + q.sticky_wait
                if q.sticky_wait:
                    self._arm(("sticky", call.id), call.sticky_until)
        self._wait(call)

    def _wait(self, call: _Call) -> None:
        self.waiting[call.id] = call
        need, want = self._skills_of(call)
        call.slot = self.columns.add(call.queue, call.priority, call.head, call.arrived, call.seq, call.sticky_agent,
                                     call.sticky_until, need, want)
        self.slot_call[call.slot] = call

    def _skills_of(self, call: _Call) -> tuple[int, int]:
        """(needed, wanted) skill columns of the call beyond its queue's: the IVR node's skill is needed;
        the caller's language skill is needed or preferred as the queue says (preferred if both)."""
        q = self.queues[call.queue]
        need = self.skill_index[call.skill] if call.skill else -1
        lang = q.languages.get(call.language) if call.language else None
        want = -1
        if lang is not None:
            if q.language_routing == "require" and need < 0:
                need = self.skill_index[lang]
            else:
                want = self.skill_index[lang]
        return need, want

    def _unwait(self, call: _Call) -> None:
        self.waiting.pop(call.id, None)
        if call.slot >= 0:
            self.columns.remove(call.slot)
            del self.slot_call[call.slot]
            call.slot = -1

    def _rule_priority(self, q: AcdQueue, caller: str) -> int:
        best = 0
        for rule in q.priority_rules:
            if any(fnmatchcase(caller, pattern) for pattern in rule.numbers):
                best = max(best, rule.priority)
        return best

    def _exit(self, call: _Call, now: float, out: list[Action], event: str, fb: Fallback, hops: int) -> None:
        """The call leaves its queue without an agent (time-out, nobody logged in): log, then fallback."""
        q = self.queues[call.queue]
        c = self.counters[call.queue]
        if event == "EXITEMPTY":
            c.exited_empty += 1
        else:
            c.timed_out += 1
        self._log(out, now, call.id, q.name, None, event, self._position(call), call.orig_position,
                  int(now - call.entered))
        self._forget(call)
        if fb.action == "overflow" and hops < len(self.queues):
            target = self.queue_index[fb.queue]
            out.append(Overflow(call.id, q.name, fb.queue))
            call.queue = target
            self.calls[call.id] = call
            self._enter(call, now, out, hops + 1)
        elif fb.action == "voicemail":
            out.append(SendToVoicemail(call.id, fb.mailbox, "no_agents" if event == "EXITEMPTY" else "timeout"))
        else:  # hangup; also "wait" reached here only via an overflow loop guard
            out.append(HangupWithPrompt(call.id, fb.prompt, "no_agents" if event == "EXITEMPTY" else "timeout"))

    def _forget(self, call: _Call) -> None:
        self.calls.pop(call.id, None)
        self.present[call.queue].pop(call.id, None)
        self._unwait(call)
        for kind in ("ring", "maxwait", "announce", "sticky"):
            self._timers.pop((kind, call.id), None)

    def _position(self, call: _Call) -> int:
        """1-based place in its queue among calls not yet connected, in service order."""
        def key(c: _Call) -> tuple[int, bool, float, int]:
            return (-c.priority, not c.head, c.arrived, c.seq)
        mine = key(call)
        return 1 + sum(1 for c in self.present[call.queue].values() if c is not call and key(c) < mine)

    def _on_CallbackHeld(self, e: ev.CallbackHeld, now: float, out: list[Action]) -> None:
        self._timers.pop(("maxwait", e.call_id), None)
        self._timers.pop(("announce", e.call_id), None)

    def free_agents(self, queue: str) -> int:
        """Agents of ``queue`` free right now (ready, phone idle and registered): the dialler's pacing."""
        q = self.queue_index.get(queue)
        if q is None:
            return 0
        return int((self.matrix.available() & self.router.member[q]).sum())

    def _on_CallAbandoned(self, e: ev.CallAbandoned, now: float, out: list[Action]) -> None:
        call = self.calls.get(e.call_id)
        if call is None:
            return
        if call.state == "connected":
            self._on_CallEnded(ev.CallEnded(e.call_id, by_agent=False), now, out)
            return
        self._cancel_rings(call, now, out, "RINGCANCELED")
        q = self.queues[call.queue]
        self.counters[call.queue].abandoned += 1
        self._log(out, now, call.id, q.name, None, "ABANDON", self._position(call), call.orig_position,
                  int(now - call.entered))
        self._forget(call)

    def _on_CallEnded(self, e: ev.CallEnded, now: float, out: list[Action]) -> None:
        self._complete(e.call_id, now, out, "COMPLETEAGENT" if e.by_agent else "COMPLETECALLER")

    def _on_CallTransferred(self, e: ev.CallTransferred, now: float, out: list[Action]) -> None:
        self._complete(e.call_id, now, out, "TRANSFER", e.extension, e.context)

    def _complete(self, call_id: str, now: float, out: list[Action], event: str, *head: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != "connected":
            return
        a, q = call.agent, self.queues[call.queue]
        talk = now - call.answered
        c = self.counters[call.queue]
        c.talk_total += talk
        c.talk_count += 1
        self.matrix.talk_time[a] += talk
        self._log(out, now, call.id, q.name, self.agents[a].id, event, *head, int(call.answered - call.entered),
                  int(talk), call.orig_position)
        if call.caller:
            self.last_agent[call.caller] = (a, now)
        self._forget(call)
        agent = self.agents[a]
        agent.call = None
        if q.wrapup_time:
            agent.wrap_queue, agent.wrap_start, agent.wrap_call = call.queue, now, call.id
            self._set_state(a, AgentState.WRAPUP, now, out)
            self._arm(("wrap", a), now + q.wrapup_time)
        else:
            self._after_call(a, now, out)

    # ------------------------------------------------------------------ offers

    def _ring(self, call: _Call, agents: tuple[int, ...], now: float, out: list[Action]) -> None:
        q = self.queues[call.queue]
        self._unwait(call)
        call.state = "ringing"
        for a in agents:
            agent = self.agents[a]
            agent.call = call.id
            call.ringing[a] = now
            self._set_state(a, AgentState.RINGING, now, out)
            out.append(RingAgent(call.id, agent.id, agent.extension or agent.home, q.ring_time, q.name, call.caller))
        self._arm(("ring", call.id), now + q.ring_time)

    def _on_OfferAnswered(self, e: ev.OfferAnswered, now: float, out: list[Action]) -> None:
        call = self.calls.get(e.call_id)
        a = self.agent_index.get(e.agent_id)
        if a is None:
            return
        if call is None or call.state != "ringing" or a not in call.ringing:
            # a late answer after the offer was withdrawn: the switch must drop the agent leg
            out.append(CancelRing(e.call_id, e.agent_id, self.agents[a].extension or self.agents[a].home))
            return
        ring_start = call.ringing.pop(a)
        self.agents[a].misses = 0
        for other in list(call.ringing):  # ring-all: the others stop ringing and are free again (Asterisk
            self._withdraw(call, other, now, out, back_to=AgentState.READY, event=None)  # logs nothing for them)
        self._timers.pop(("ring", call.id), None)
        self._timers.pop(("maxwait", call.id), None)
        self._timers.pop(("announce", call.id), None)
        self._timers.pop(("sticky", call.id), None)
        q = self.queues[call.queue]
        hold = now - call.entered
        c = self.counters[call.queue]
        c.answered += 1
        c.hold_total += hold
        if hold <= q.service_level_threshold:
            c.answered_within += 1
        call.state, call.agent, call.answered = "connected", a, now
        self.present[call.queue].pop(call.id, None)
        self.matrix.calls[a] += 1
        agent = self.agents[a]
        self._set_state(a, AgentState.ON_CALL, now, out)
        self._log(out, now, call.id, q.name, agent.id, "CONNECT", int(hold), e.agent_leg, int(now - ring_start))
        out.append(Connect(call.id, agent.id, agent.extension or agent.home,
                           announce_agent=agent.id if q.announce_agent else None,
                           whisper=q.name if q.whisper else None))
        if call.caller:
            self.last_agent[call.caller] = (a, now)

    def _on_OfferRejected(self, e: ev.OfferRejected, now: float, out: list[Action]) -> None:
        call = self.calls.get(e.call_id)
        a = self.agent_index.get(e.agent_id)
        if call is None or a is None or call.state != "ringing" or a not in call.ringing:
            return
        self._no_answer(call, a, now, out, cancel=False)
        if not call.ringing:
            self._requeue(call, now, out)

    def _no_answer(self, call: _Call, a: int, now: float, out: list[Action], cancel: bool,
                   blame: bool = True) -> None:
        """Ring-no-answer: log it; the queue's autopause decides whether the agent is paused (in all
        queues, in this queue only, or not at all). ``blame`` False: rung with others (ring-all), the
        agent is never paused for it."""
        start = call.ringing.pop(a)
        agent = self.agents[a]
        agent.call = None
        q = self.queues[call.queue]
        if cancel:
            out.append(CancelRing(call.id, agent.id, agent.extension or agent.home))
        self._log(out, now, call.id, q.name, agent.id, "RINGNOANSWER", int(round((now - start) * 1000)))
        agent.misses += 1 if blame else 0
        if blame and q.autopause == "all" and agent.misses >= q.autopause_after:
            self._set_state(a, AgentState.NOT_READY, now, out, RING_NO_ANSWER)
            return
        if blame and q.autopause == "yes" and agent.misses >= q.autopause_after:
            self._pause_in(call.queue, a, True, now, out, RING_NO_ANSWER)
        self._set_state(a, AgentState.READY, now, out, keep_idle=True)

    def _pause_in(self, q: int, a: int, paused: bool, now: float, out: list[Action], reason: str = "") -> None:
        """Pause or unpause agent ``a`` in queue ``q`` only (the agent stays ready for other queues)."""
        if bool(self.queue_paused[q, a]) == paused:
            return
        self.queue_paused[q, a] = paused
        self.router.member[q, a] = self.base_member[q, a] and not paused
        self._log(out, now, None, self.queues[q].name, self.agents[a].id, "PAUSE" if paused else "UNPAUSE", reason)

    def _withdraw(self, call: _Call, a: int, now: float, out: list[Action], back_to: AgentState | None,
                  event: str | None) -> None:
        """Stop ringing agent ``a`` for ``call`` without blaming the agent; ``back_to`` None leaves the
        state to the caller (the agent is logging out or going not-ready). ``event``: the queue_log line
        (RINGCANCELED when the caller gave up, as Asterisk writes it; None for none)."""
        start = call.ringing.pop(a)
        agent = self.agents[a]
        agent.call = None
        out.append(CancelRing(call.id, agent.id, agent.extension or agent.home))
        if event:
            self._log(out, now, call.id, self.queues[call.queue].name, agent.id, event,
                      int(round((now - start) * 1000)))
        if back_to is not None:
            self._set_state(a, back_to, now, out, keep_idle=True)

    def _cancel_rings(self, call: _Call, now: float, out: list[Action], event: str | None = None) -> None:
        for a in list(call.ringing):
            self._withdraw(call, a, now, out, back_to=AgentState.READY, event=event)
        self._timers.pop(("ring", call.id), None)

    def _requeue(self, call: _Call, now: float, out: list[Action]) -> None:
        """Back to waiting, ahead of every call of the same priority (it already had its turn)."""
        self._timers.pop(("ring", call.id), None)
        call.state, call.head = "waiting", True
        self._wait(call)

    # ------------------------------------------------------------------ agents

    def _set_state(self, a: int, state: AgentState, now: float, out: list[Action], reason: str = "",
                   keep_idle: bool = False) -> None:
        m = self.matrix
        old = AgentState(int(m.state[a]))
        agent = self.agents[a]
        if state == AgentState.READY and old != AgentState.READY and not keep_idle:
            m.ready_since[a] = now
        if state == AgentState.NOT_READY and old != AgentState.NOT_READY:  # every queue: Asterisk's PAUSEALL
            self._log(out, now, None, None, agent.id, "PAUSEALL", reason)
        elif old == AgentState.NOT_READY and state not in (AgentState.LOGGED_OUT, AgentState.NOT_READY):
            self._log(out, now, None, None, agent.id, "UNPAUSEALL", agent.reason)
        m.state[a] = state
        agent.reason = reason if state == AgentState.NOT_READY else ""
        if old != state or state == AgentState.NOT_READY:
            out.append(AgentStateChanged(agent.id, state.label, agent.reason))

    def _after_call(self, a: int, now: float, out: list[Action]) -> None:
        """Wrap-up is over (or there was none): the state asked for during the call, else ready."""
        agent = self.agents[a]
        if agent.wrap_queue >= 0 and self.matrix.state[a] == AgentState.WRAPUP:
            c = self.counters[agent.wrap_queue]
            c.wrap_total += now - agent.wrap_start
            c.wrap_count += 1
            out.append(WrapUpDone(agent.wrap_call, agent.id, self.queues[agent.wrap_queue].name,
                                  now - agent.wrap_start))
        agent.wrap_queue = -1
        self._timers.pop(("wrap", a), None)
        state, reason = agent.after_call or (AgentState.READY, "")
        agent.after_call = None
        if state == AgentState.LOGGED_OUT:
            self._logout(a, now, out)
        else:
            self._set_state(a, state, now, out, reason)

    def _login(self, a: int, extension: str | None, now: float, out: list[Action]) -> tuple[bool, str]:
        agent = self.agents[a]
        ext = extension or agent.home
        other = self.by_extension.get(ext)
        if other is not None and other != a:
            return False, f"agent {self.agents[other].id} is logged in at {ext}"
        if self.matrix.state[a] != AgentState.LOGGED_OUT:
            if agent.extension == ext:
                return True, "already logged in"
            return False, f"already logged in at {agent.extension}"
        agent.extension, agent.login_at = ext, now
        self.by_extension[ext] = a
        self.matrix.phone_busy[a] = ext in self.busy_extensions
        self.matrix.phone_down[a] = ext in self.down_extensions
        self._log(out, now, None, None, agent.id, "AGENTLOGIN", f"SIP/{ext}")
        self._set_state(a, AgentState.READY, now, out)
        return True, "logged in"

    def _logout(self, a: int, now: float, out: list[Action]) -> tuple[bool, str]:
        agent = self.agents[a]
        state = AgentState(int(self.matrix.state[a]))
        if state == AgentState.LOGGED_OUT:
            return False, "not logged in"
        if state == AgentState.ON_CALL and agent.call is not None:
            agent.after_call = (AgentState.LOGGED_OUT, "")
            return True, "logging out after this call"
        if state == AgentState.RINGING:
            self._take_back_offer(a, now, out)
        if state == AgentState.WRAPUP:
            self._timers.pop(("wrap", a), None)
        self._log(out, now, None, None, agent.id, "AGENTLOGOFF", f"SIP/{agent.extension}", int(now - agent.login_at))
        self.by_extension.pop(agent.extension or "", None)
        agent.extension, agent.after_call, agent.wrap_queue = None, None, -1
        self._set_state(a, AgentState.LOGGED_OUT, now, out)
        self.matrix.phone_busy[a] = self.matrix.phone_down[a] = False
        self.queue_paused[:, a] = False
        self.router.member[:, a] = self.base_member[:, a]
        for call in list(self.calls.values()):  # nobody waits for an agent who has gone home
            if call.sticky_agent == a and call.state == "waiting":
                call.sticky_agent, call.sticky_until = -1, 0.0
                self.columns.sticky_agent[call.slot], self.columns.sticky_until[call.slot] = -1, 0.0
                self._timers.pop(("sticky", call.id), None)
        self._empty_queues(now, out)
        return True, "logged out"

    def _empty_queues(self, now: float, out: list[Action]) -> None:
        """Calls in a queue whose last agent logged out get the queue's no-agents treatment."""
        for call in list(self.calls.values()):
            if call.state == "connected" or call.id not in self.calls:
                continue
            q = self.queues[call.queue]
            if q.on_no_agents.action != "wait" and not self._staffed(call.queue):
                self._cancel_rings(call, now, out)
                self._exit(call, now, out, "EXITEMPTY", q.on_no_agents, 0)

    def _staffed(self, q: int) -> bool:
        return bool(np.any(self.router.member[q] & (self.matrix.state != AgentState.LOGGED_OUT)))

    def _take_back_offer(self, a: int, now: float, out: list[Action]) -> None:
        """The agent left while ringing (logout, not-ready): the call goes back to the head."""
        call = self.calls.get(self.agents[a].call or "")
        if call is not None and a in call.ringing:
            self._withdraw(call, a, now, out, back_to=None, event=None)
            if not call.ringing:
                self._requeue(call, now, out)

    def _not_ready(self, a: int, reason: str, now: float, out: list[Action]) -> tuple[bool, str]:
        state = AgentState(int(self.matrix.state[a]))
        agent = self.agents[a]
        if state == AgentState.LOGGED_OUT:
            return False, "not logged in"
        if state == AgentState.ON_CALL:
            agent.after_call = (AgentState.NOT_READY, reason)
            return True, "not ready after this call"
        if state == AgentState.RINGING:
            self._take_back_offer(a, now, out)
        if state == AgentState.WRAPUP:
            agent.after_call = (AgentState.NOT_READY, reason)
            self._after_call(a, now, out)
        else:
            self._set_state(a, AgentState.NOT_READY, now, out, reason)
        return True, "not ready"

    def _ready(self, a: int, now: float, out: list[Action]) -> tuple[bool, str]:
        state = AgentState(int(self.matrix.state[a]))
        agent = self.agents[a]
        if state == AgentState.LOGGED_OUT:
            return False, "not logged in"
        if state == AgentState.ON_CALL:
            agent.after_call = None
            return True, "ready after this call"
        if state == AgentState.WRAPUP:
            agent.after_call = None
            self._after_call(a, now, out)
        elif state == AgentState.NOT_READY:
            self._set_state(a, AgentState.READY, now, out)
        agent.misses = 0
        for q in np.flatnonzero(self.queue_paused[:, a]):  # "ready" also ends pauses in single queues
            self._pause_in(int(q), a, False, now, out)
        return True, "ready"

    def _agent(self, agent_id: str) -> int:
        try:
            return self.agent_index[agent_id]
        except KeyError:
            raise ValueError(f"unknown agent {agent_id!r}") from None

    def _on_AgentLogin(self, e: ev.AgentLogin, now: float, out: list[Action]) -> None:
        self._login(self._agent(e.agent_id), e.extension, now, out)

    def _on_AgentLogout(self, e: ev.AgentLogout, now: float, out: list[Action]) -> None:
        self._logout(self._agent(e.agent_id), now, out)

    def _on_AgentReady(self, e: ev.AgentReady, now: float, out: list[Action]) -> None:
        self._ready(self._agent(e.agent_id), now, out)

    def _on_AgentNotReady(self, e: ev.AgentNotReady, now: float, out: list[Action]) -> None:
        self._not_ready(self._agent(e.agent_id), e.reason, now, out)

    def _on_WrapUpEnd(self, e: ev.WrapUpEnd, now: float, out: list[Action]) -> None:
        a = self._agent(e.agent_id)
        if self.matrix.state[a] == AgentState.WRAPUP:
            self._after_call(a, now, out)

    def _on_FeatureCodeDialled(self, e: ev.FeatureCodeDialled, now: float, out: list[Action]) -> None:
        cmd = parse_feature_code(e.digits, self.config.feature_codes)
        if cmd is None:
            out.append(FeatureCodeReply(e.extension, False, "not a feature code"))
            return
        if cmd.command == "login":
            a = self.agent_index.get(cmd.agent_id) if cmd.agent_id else next(
                (i for i, x in enumerate(self.agents) if x.home == e.extension), None)
            if a is None:
                out.append(FeatureCodeReply(e.extension, False, "unknown agent"))
                return
            if cmd.pin is not None and self.pins.locked(e.extension, now):
                out.append(FeatureCodeReply(e.extension, False, "too many wrong PINs from this phone; try later"))
                return
            refusal = login_refusal(self.config.agents[a], e.extension, cmd.pin)
            if refusal is not None:
                if refusal == WRONG_PIN and self.pins.failed(e.extension, now):
                    refusal += f"; PIN logins from {e.extension} locked for {int(self.pins.lockout)} s"
                out.append(FeatureCodeReply(e.extension, False, refusal))
                return
            ok, msg = self._login(a, e.extension, now, out)
        else:
            a = self.by_extension.get(e.extension)
            if a is None:
                out.append(FeatureCodeReply(e.extension, False, "no agent logged in at this phone"))
                return
            if cmd.command == "logout":
                ok, msg = self._logout(a, now, out)
            elif cmd.command == "ready":
                ok, msg = self._ready(a, now, out)
            else:
                reasons = self.config.not_ready_reasons
                code = cmd.reason or ""
                if code and reasons and code not in reasons:
                    out.append(FeatureCodeReply(e.extension, False, f"unknown reason code {code}"))
                    return
                ok, msg = self._not_ready(a, reasons.get(code, code), now, out)
        out.append(FeatureCodeReply(e.extension, ok, msg))

    def _on_OfferFailed(self, e: ev.OfferFailed, now: float, out: list[Action]) -> None:
        """The offer never reached the phone: no missed ring; the agent is skipped until it registers."""
        call = self.calls.get(e.call_id)
        a = self.agent_index.get(e.agent_id)
        if call is None or a is None or call.state != "ringing" or a not in call.ringing:
            return
        call.ringing.pop(a)
        agent = self.agents[a]
        agent.call = None
        self._phone_down(agent.extension or agent.home, True)
        self._set_state(a, AgentState.READY, now, out, keep_idle=True)
        if not call.ringing:
            self._requeue(call, now, out)

    def _on_PhoneRegistered(self, e: ev.PhoneRegistered, now: float, out: list[Action]) -> None:
        self._phone_down(e.extension, False)

    def _on_PhoneUnregistered(self, e: ev.PhoneUnregistered, now: float, out: list[Action]) -> None:
        self._phone_down(e.extension, True)

    def _phone_down(self, extension: str, down: bool) -> None:
        (self.down_extensions.add if down else self.down_extensions.discard)(extension)
        a = self.by_extension.get(extension)
        if a is not None:
            self.matrix.phone_down[a] = down

    def phone_down(self, agent_id: str) -> bool:
        """The agent is logged in at a phone that is not registered (or could not be reached)."""
        return bool(self.matrix.phone_down[self.agent_index[agent_id]])

    def _on_PhoneBusy(self, e: ev.PhoneBusy, now: float, out: list[Action]) -> None:
        self.busy_extensions.add(e.extension)
        a = self.by_extension.get(e.extension)
        if a is not None:
            self.matrix.phone_busy[a] = True

    def _on_PhoneFree(self, e: ev.PhoneFree, now: float, out: list[Action]) -> None:
        self.busy_extensions.discard(e.extension)
        a = self.by_extension.get(e.extension)
        if a is not None:
            self.matrix.phone_busy[a] = False

    # ------------------------------------------------------------------ timers

    def _arm(self, key: _TimerKey, when: float) -> None:
        self._timers[key] = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, key))

    def _on_TimerFired(self, e: ev.TimerFired, now: float, out: list[Action]) -> None:
        while True:
            when = self.next_deadline()
            if when is None or when > now:
                break
            _, _, key = heapq.heappop(self._heap)
            del self._timers[key]
            kind, ident = key
            getattr(self, "_timer_" + kind)(ident, now, out)
            self._dispatch(now, out)  # each expiry may free an agent or release a call

    def _timer_ring(self, call_id: str, now: float, out: list[Action]) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state != "ringing":
            return
        blame = len(call.ringing) == 1  # a ring-all miss pauses none of the agents merely rung
        for a in list(call.ringing):
            self._no_answer(call, a, now, out, cancel=True, blame=blame)
        self._requeue(call, now, out)

    def _timer_wrap(self, a: int, now: float, out: list[Action]) -> None:
        if self.matrix.state[a] == AgentState.WRAPUP:
            self._after_call(a, now, out)

    def _timer_maxwait(self, call_id: str, now: float, out: list[Action]) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state == "connected":
            return
        self._cancel_rings(call, now, out)
        self._exit(call, now, out, "EXITWITHTIMEOUT", self.queues[call.queue].on_timeout, 0)

    def _timer_announce(self, call_id: str, now: float, out: list[Action]) -> None:
        call = self.calls.get(call_id)
        if call is None or call.state == "connected":
            return
        q = self.queues[call.queue]
        position = self._position(call)
        wait = None
        if q.announce_wait:
            wait = self._expected_wait(call.queue, position)
        out.append(Announce(call.id, position if q.announce_position else None, wait))
        self._arm(("announce", call.id), now + q.announce_interval)

    def _expected_wait(self, q: int, position: int) -> int:
        """Position x handle time / agents working the queue: crude, but what callers are told
        everywhere, and it never promises less than one handle time per call ahead per agent."""
        stats = QueueStats.of("", self.counters[q], 0, 0.0, {})
        aht = stats.aht or DEFAULT_HANDLE_TIME
        working = np.count_nonzero(self.router.member[q] & np.isin(
            self.matrix.state, (AgentState.READY, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAPUP)))
        return int(math.ceil(position * aht / max(1, int(working))))

    def _timer_sticky(self, call_id: str, now: float, out: list[Action]) -> None:
        pass  # the sticky wait is over: the routing pass after every timer now lets anyone take the call

    # ------------------------------------------------------------------ routing

    def _dispatch(self, now: float, out: list[Action]) -> None:
        if not self.waiting:
            return
        free = self.matrix.available()
        if not free.any():
            return
        slots, calls = self.columns.view()
        for x in self.router.assign(calls, now, free):
            self._ring(self.slot_call[int(slots[x.call])], x.agents, now, out)

    def _log(self, out: list[Action], now: float, call_id: str | None, queue: str | None, agent_id: str | None,
             event: str, *data: object) -> None:
        out.append(QueueLogLine(queuelog.line(now + self.wall_offset, call_id, queue, agent_id, event, *data)))
