"""The routing decision: which waiting call goes to which free agent, computed in numpy.

Agents are rows of fixed arrays (the agent list comes from the config): an agents x skills int8
level matrix, a state vector, the phone-busy vector and the per-agent figures the strategies sort on.
A queue's membership is a boolean column (level of its skill >= its minimum level), precomputed once.
A decision is then a few vector operations per queue with waiting calls (mask, ``lexsort``), never a
Python loop over agents: with 5000 agents that is the difference between microseconds and
milliseconds per event (bench/ACD.md).

The greedy pass serves calls in priority order (priority, queue weight, head-of-queue flag, arrival,
arrival sequence) and gives each the best remaining agent of its queue's ranking; the only Python
loop is over the calls that actually get an agent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np

__all__ = ["AgentMatrix", "AgentState", "Assignment", "CallColumns", "QueueRule", "Router", "WaitingCalls"]


class AgentState(IntEnum):
    LOGGED_OUT = 0
    READY = 1
    NOT_READY = 2
    RINGING = 3
    ON_CALL = 4
    WRAPUP = 5

    @property
    def label(self) -> str:
        return "wrap-up" if self is AgentState.WRAPUP else self.name.lower().replace("_", "-")


STRATEGY_CODES = {"longest-idle": 0, "round-robin": 1, "fewest-calls": 2, "least-talk-time": 3, "ring-all": 4,
                  "random": 5}


@dataclass
class AgentMatrix:
    """Per-agent arrays, row i = agent i of the config. Mutated in place by the engine."""

    level: np.ndarray  # int8 [agents, skills]; 0 = skill not held
    state: np.ndarray = field(init=False)  # int8 AgentState
    phone_busy: np.ndarray = field(init=False)  # bool: the switch says the extension is on a call
    phone_down: np.ndarray = field(init=False)  # bool: the extension is not registered (or did not answer offers)
    ready_since: np.ndarray = field(init=False)  # float64: when the agent last became ready (longest-idle)
    calls: np.ndarray = field(init=False)  # int64: calls answered since start (fewest-calls)
    talk_time: np.ndarray = field(init=False)  # float64: seconds talked since start (least-talk-time)

    def __post_init__(self) -> None:
        n = self.level.shape[0]
        self.state = np.zeros(n, np.int8)
        self.phone_busy = np.zeros(n, bool)
        self.phone_down = np.zeros(n, bool)
        self.ready_since = np.zeros(n, np.float64)
        self.calls = np.zeros(n, np.int64)
        self.talk_time = np.zeros(n, np.float64)

    @property
    def size(self) -> int:
        return int(self.level.shape[0])

    def available(self) -> np.ndarray:
        """Ready in the ACD *and* idle on the switch: both, so agent state can never route a call to a
        phone that is busy with something the ACD did not place."""
        free: np.ndarray = (self.state == AgentState.READY) & ~self.phone_busy & ~self.phone_down
        return free


@dataclass(frozen=True)
class QueueRule:
    """The routing-relevant part of a queue's config, with the skill as a column index."""

    skill: int
    min_level: int
    strategy: str
    skill_level_first: bool = False
    weight: int = 0


@dataclass
class WaitingCalls:
    """Columns of the calls waiting for an agent (row j = one call). ``sticky_agent`` is -1 or the agent
    the caller spoke to last; ``sticky_until`` the time before which only that agent may take it."""

    queue: np.ndarray  # int32 queue index
    priority: np.ndarray  # int32, higher first
    head: np.ndarray  # bool: put back at the head after a failed offer
    arrived: np.ndarray  # float64
    seq: np.ndarray  # int64, arrival order (ties at equal times)
    sticky_agent: np.ndarray  # int32
    sticky_until: np.ndarray  # float64
    need: np.ndarray | None = None  # int32 skill the call requires (an IVR node's skill...), -1 none
    want: np.ndarray | None = None  # int32 skill the call prefers (the caller's language), -1 none

    def __len__(self) -> int:
        return int(self.queue.shape[0])

    @classmethod
    def build(cls, rows: list[tuple[int, int, bool, float, int, int, float]]) -> WaitingCalls:
        if not rows:
            z = np.zeros(0)
            return cls(z.astype(np.int32), z.astype(np.int32), z.astype(bool), z, z.astype(np.int64),
                       z.astype(np.int32), z)
        q, p, h, a, s, sa, su = zip(*rows)
        return cls(np.array(q, np.int32), np.array(p, np.int32), np.array(h, bool), np.array(a, np.float64),
                   np.array(s, np.int64), np.array(sa, np.int32), np.array(su, np.float64))


class CallColumns:
    """The waiting calls as persistent numpy columns (one slot per call, reused), so a routing decision
    takes a view of the active slots instead of rebuilding arrays from Python objects each event."""

    def __init__(self, capacity: int = 64):
        self.queue = np.zeros(capacity, np.int32)
        self.priority = np.zeros(capacity, np.int32)
        self.head = np.zeros(capacity, bool)
        self.arrived = np.zeros(capacity, np.float64)
        self.seq = np.zeros(capacity, np.int64)
        self.sticky_agent = np.full(capacity, -1, np.int32)
        self.sticky_until = np.zeros(capacity, np.float64)
        self.need = np.full(capacity, -1, np.int32)
        self.want = np.full(capacity, -1, np.int32)
        self.active = np.zeros(capacity, bool)
        self._free = list(range(capacity - 1, -1, -1))

    _COLUMNS = ("queue", "priority", "head", "arrived", "seq", "sticky_agent", "sticky_until", "need", "want",
                "active")

    def add(self, queue: int, priority: int, head: bool, arrived: float, seq: int, sticky_agent: int,
            sticky_until: float, need: int = -1, want: int = -1) -> int:
        if not self._free:
            cap = self.active.size
            for name in self._COLUMNS:
                old = getattr(self, name)
                new = np.zeros(cap * 2, old.dtype)
                new[:cap] = old
                setattr(self, name, new)
            self._free = list(range(cap * 2 - 1, cap - 1, -1))
        i = self._free.pop()
        self.queue[i], self.priority[i], self.head[i], self.arrived[i] = queue, priority, head, arrived
        self.seq[i], self.sticky_agent[i], self.sticky_until[i] = seq, sticky_agent, sticky_until
        self.need[i], self.want[i] = need, want
        self.active[i] = True
        return i

    def remove(self, slot: int) -> None:
        self.active[slot] = False
        self._free.append(slot)

    def view(self) -> tuple[np.ndarray, WaitingCalls]:
        """(slot of each row, the active calls as WaitingCalls)."""
        slots = np.flatnonzero(self.active)
        return slots, WaitingCalls(self.queue[slots], self.priority[slots], self.head[slots], self.arrived[slots],
                                   self.seq[slots], self.sticky_agent[slots], self.sticky_until[slots],
                                   self.need[slots], self.want[slots])


@dataclass(frozen=True)
class Assignment:
    call: int  # row in WaitingCalls
    agents: tuple[int, ...]  # one agent, or every agent rung for a ring-all queue


class Router:
    """Holds what the strategies remember between decisions (round-robin position, the random
    generator) and the precomputed queue membership masks."""

    def __init__(self, matrix: AgentMatrix, queues: list[QueueRule], seed: int | None = None):
        self.matrix = matrix
        self.queues = queues
        self.rr_last = np.full(len(queues), -1, np.int64)
        self.rng = np.random.default_rng(seed)
        # member[q, a]: agent a has queue q's skill at its minimum level or above (static: from config)
        if queues:
            skills = np.array([q.skill for q in queues], np.intp)
            mins = np.array([q.min_level for q in queues], np.int8)
            self.member = matrix.level[:, skills].T >= mins[:, None]
            self.weight = np.array([q.weight for q in queues], np.int32)
        else:
            self.member = np.zeros((0, matrix.size), bool)
            self.weight = np.zeros(0, np.int32)

    def order(self, calls: WaitingCalls) -> np.ndarray:
        """Call rows in service order: priority, queue weight, head flag (desc), arrival, seq (asc)."""
        return np.lexsort((calls.seq, calls.arrived, ~calls.head, -self.weight[calls.queue], -calls.priority))

    def rank(self, q: int, candidates: np.ndarray) -> np.ndarray:
        """Agent indices among ``candidates`` (bool mask) best first under queue q's strategy."""
        rule = self.queues[q]
        m = self.matrix
        idx = np.flatnonzero(candidates)
        if idx.size <= 1:
            return idx
        strategy = rule.strategy
        if strategy == "round-robin":
            key = (idx - self.rr_last[q] - 1) % m.size  # the agent after the last one served comes first
        elif strategy == "fewest-calls":
            key = m.calls[idx]
        elif strategy == "least-talk-time":
            key = m.talk_time[idx]
        elif strategy == "random":
            key = self.rng.random(idx.size)
        else:  # longest-idle; ring-all rings everyone but still lists them longest-idle first
            key = m.ready_since[idx]
        keys = [idx, m.ready_since[idx], key]  # np.lexsort: last key is the primary one
        if rule.skill_level_first:
            keys.append(-m.level[idx, rule.skill].astype(np.int16))
        return idx[np.lexsort(keys)]

    def assign(self, calls: WaitingCalls, now: float, free: np.ndarray | None = None) -> list[Assignment]:
        """Pair waiting calls with available agents (``free``: the caller's ``available()`` mask, which
        is consumed). Sticky calls first get their own agent when that agent is free; a sticky call still
        inside its wait is not offered to anyone else."""
        free = self.matrix.available() if free is None else free
        n_free = int(np.count_nonzero(free))
        if n_free == 0 or len(calls) == 0:
            return []
        out: list[Assignment] = []
        order = self.order(calls)
        # pass 1: callers who spoke to an agent recently get that agent if it is free now
        sticky_rows = order[calls.sticky_agent[order] >= 0]
        for j in sticky_rows:
            a = int(calls.sticky_agent[j])
            q = int(calls.queue[j])
            if free[a] and self.member[q, a]:
                free[a] = False
                n_free -= 1
                out.append(Assignment(int(j), (a,)))
        done = {x.call for x in out}
        if n_free == 0:
            return self._remember(out, calls)
        # pass 2: everyone else, greedy in service order over each queue's ranking
        blocked = (calls.sticky_agent >= 0) & (now < calls.sticky_until)
        # Only calls of queues that have a free member can be served in this pass: filter them with one
        # array operation instead of walking every waiting call in Python (one free agent whose skills
        # match no waiting call used to cost a walk over all 1,000 calls per event).
        servable = (self.member & free[None, :]).any(axis=1)
        order = order[servable[calls.queue[order]] & ~blocked[order]]
        ranked: dict[int, list[Any]] = {}  # queue -> [ranking, cursor]
        for j in order:
            j = int(j)
            if j in done:
                continue
            q = int(calls.queue[j])
            entry = ranked.get(q)
            if entry is None:
                entry = ranked[q] = [self.rank(q, free & self.member[q]), 0]
            ranking, cursor = entry
            need = int(calls.need[j]) if calls.need is not None else -1
            want = int(calls.want[j]) if calls.want is not None else -1
            if need >= 0 or want >= 0:  # this call's own skills narrow the queue's ranking (rare: no cursor)
                cands = ranking[free[ranking]]
                if need >= 0:
                    cands = cands[self.matrix.level[cands, need] > 0]
                if want >= 0:
                    preferred = cands[self.matrix.level[cands, want] > 0]
                    cands = preferred if preferred.size else cands
                if cands.size:
                    take = cands if self.queues[q].strategy == "ring-all" else cands[:1]
                    free[take] = False
                    n_free -= take.size
                    out.append(Assignment(j, tuple(int(a) for a in take)))
            elif self.queues[q].strategy == "ring-all":
                rest = ranking[cursor:]
                rest = rest[free[rest]]
                entry[1] = ranking.size
                if rest.size:
                    free[rest] = False
                    n_free -= rest.size
                    out.append(Assignment(j, tuple(int(a) for a in rest)))
            else:
                while cursor < ranking.size and not free[ranking[cursor]]:
                    cursor += 1  # taken by an earlier call of another queue in this same pass
                if cursor < ranking.size:
                    a = int(ranking[cursor])
                    free[a] = False
                    n_free -= 1
                    out.append(Assignment(j, (a,)))
                    cursor += 1
                entry[1] = cursor
            if n_free == 0:
                break
        return self._remember(out, calls)

    def _remember(self, out: list[Assignment], calls: WaitingCalls) -> list[Assignment]:
        for x in out:
            self.rr_last[int(calls.queue[x.call])] = x.agents[-1]
        return out
