"""A new ACD configuration while calls are in progress (a config reload), sans-IO.

The engine keeps agents, queues and skills by position (numpy rows and columns), so a new
``AcdConfig`` cannot be patched in: ``reconfigured(old, config, now)`` builds a new ``Acd`` from it
and carries over, by agent id and queue name, everything that is live — agent states and where
they are logged in, the calls waiting, ringing and connected, wrap-up, timers, counters, the
round-robin positions and sticky agents — so a reload is invisible to callers and agents, and the
next routing decision follows the new rules (strategy, skills, members, ring time...).

What cannot simply disappear is kept until it is idle, as a commercial ACD does:

- an agent removed from the config is logged out at once if idle (ready, not ready, ringing: the
  offer goes back to the queue), or after the call it is on (it takes no new calls);
- a queue removed from the config keeps the calls already in it (no number reaches it any more);
  the next reload drops it once it is empty. Its skill stays for those calls if it was removed too.
"""
from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from .actions import Action
from .config import AcdAgent, AcdConfig, AcdSkill
from .engine import Acd, _TimerKey
from .routing import AgentState

__all__ = ["reconfigured"]


def reconfigured(old: Acd, config: AcdConfig, now: float) -> tuple[Acd, list[Action]]:
    """A new engine on ``config`` holding ``old``'s live state; the actions of what changed (agents
    logged out because they were removed, offers to agents that serve a queue now)."""
    out: list[Action] = []
    new_ids = {a.id for a in config.agents}
    for a, agent in enumerate(old.agents):  # removed agents: logged out now, or once their call ends
        if agent.id not in new_ids and old.matrix.state[a] != AgentState.LOGGED_OUT:
            old._logout(a, now, out)
    retiring = [old.config.agents[a] if a < len(old.config.agents) else AcdAgent(ag.id, ag.name, ag.home)
                for a, ag in enumerate(old.agents)
                if ag.id not in new_ids and old.matrix.state[a] != AgentState.LOGGED_OUT]
    queue_names = {q.name for q in config.queues}
    busy_queues = {old.queues[c.queue].name for c in old.calls.values()}
    kept_queues = [q for q in old.queues if q.name not in queue_names and q.name in busy_queues]
    skill_names = {s.name for s in config.skills}
    kept_skills = [AcdSkill(n) for n in dict.fromkeys(q.skill for q in kept_queues) if n not in skill_names]
    full = dataclasses.replace(
        config, skills=list(config.skills) + kept_skills, queues=list(config.queues) + kept_queues,
        agents=list(config.agents) + [dataclasses.replace(a, skills={}) for a in retiring])
    new = Acd(full, wall_offset=old.wall_offset)
    new.pins = old.pins  # a reload does not forgive a phone its wrong PINs (acd.identity)
    new.router.rng = old.router.rng
    new._seq = old._seq

    amap = np.full(len(old.agents), -1, np.int64)  # old agent index -> new
    for a, agent in enumerate(old.agents):
        amap[a] = new.agent_index.get(agent.id, -1)
    qmap = [new.queue_index.get(q.name, -1) for q in old.queues]  # old queue index -> new (all kept)

    # agents: runtime fields and matrix rows
    om, nm = old.matrix, new.matrix
    for a, agent in enumerate(old.agents):
        b = int(amap[a])
        if b < 0:
            continue
        dst = new.agents[b]
        for f in ("extension", "login_at", "reason", "call", "after_call", "wrap_start", "wrap_call", "misses"):
            setattr(dst, f, getattr(agent, f))
        dst.wrap_queue = qmap[agent.wrap_queue] if agent.wrap_queue >= 0 else -1
        for col in ("state", "phone_busy", "phone_down", "ready_since", "calls", "talk_time"):
            getattr(nm, col)[b] = getattr(om, col)[a]
        if agent.id not in new_ids:
            dst.after_call = (AgentState.LOGGED_OUT, "")   # removed: gone once the call is over
        if dst.extension:
            new.by_extension[dst.extension] = b
    new.busy_extensions = set(old.busy_extensions)
    new.down_extensions = set(old.down_extensions)
    for q, nq in enumerate(qmap):  # per-queue pauses (autopause = "yes") of agents still members
        for pa in np.flatnonzero(old.queue_paused[q]):
            b = int(amap[pa])
            if b >= 0 and new.base_member[nq, b]:
                new.queue_paused[nq, b] = True
    new.router.member = new.base_member & ~new.queue_paused
    for q, nq in enumerate(qmap):
        new.counters[nq] = old.counters[q]
        last = int(old.router.rr_last[q])
        new.router.rr_last[nq] = int(amap[last]) if last >= 0 else -1
    new.last_agent = {caller: (int(amap[a]), t) for caller, (a, t) in old.last_agent.items() if amap[a] >= 0}

    # calls: re-indexed; the waiting ones get new routing columns
    for call in old.calls.values():
        call.queue = qmap[call.queue]
        call.ringing = {int(amap[a]): t for a, t in call.ringing.items() if amap[a] >= 0}
        call.agent = int(amap[call.agent]) if call.agent >= 0 else -1
        if call.sticky_agent >= 0:
            call.sticky_agent = int(amap[call.sticky_agent])
            if call.sticky_agent < 0:
                call.sticky_until = 0.0
        if call.skill and call.skill not in new.skill_index:
            call.skill = ""
        new.calls[call.id] = call
        if call.state != "connected":
            new.present[call.queue][call.id] = call
        call.slot = -1
    for call in old.calls.values():
        if call.id in old.waiting:
            new._wait(call)

    # timers: the same deadlines, agent keys re-indexed
    for (kind, ident), when in old._timers.items():
        key: _TimerKey = (kind, ident)
        if kind == "wrap":
            b = int(amap[int(ident)])
            if b < 0:
                continue
            key = (kind, b)
        new._timers[key] = when
        new._seq += 1
        heapq.heappush(new._heap, (when, new._seq, key))

    new._empty_queues(now, out)  # a queue left without members gives its callers its no-agents treatment
    new._dispatch(now, out)      # new members, new strategy: route now
    return new, out

