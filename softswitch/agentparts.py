"""Each agent's part of a call, so that per-agent figures credit the agent who did the work: an agent who
answers and then transfers the caller on has a part that ends in a transfer (her ``transferred``, her talk
and hold); the agent who takes the caller next has her own part (her answer, talk and hold). The call
record keeps the call's totals (the queue's figures); ``call_agent_parts`` in the store keeps the parts
(docs/reports.md).

A part begins when an agent is connected to the caller (the ACD connects her; a transferred caller is
answered at an agent's extension; an attended transfer joins the caller to an agent) and ends when she
hands the caller on, her talk ends (she hangs up, the caller goes to the survey) or the call ends. Hold
is counted per part from the call's ``HoldTally`` (closed before a part ends).

Sans-IO: monotonic ``now`` in, wall-clock ``AgentPart`` rows out (``finish``). No clock here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .holds import HoldTally

__all__ = ["AgentPart", "AgentParts"]

MAX_PARTS = 32   # parts kept per call: a caller bounced between agents forever must not grow the record


@dataclass(frozen=True)
class AgentPart:
    """One agent's part of a call (wall-clock times)."""
    agent: str
    queue: str          # the queue she took it from ('' : a transfer to her extension)
    answered: float
    ended: float
    hold_seconds: float
    holds: int
    transferred: bool   # her part ended by handing the caller on (blind or attended)


@dataclass
class _Open:
    agent: str
    queue: str
    since: float
    hold_seconds: float     # the call's hold seconds and holds when the part began
    holds: int


@dataclass
class AgentParts:
    """The parts of one call so far (monotonic times)."""
    done: list[tuple[_Open, float, float, int, bool]] = field(default_factory=list)
    current: _Open | None = None

    @property
    def any(self) -> bool:
        return bool(self.done) or self.current is not None

    def begin(self, agent: str, queue: str, now: float, hold: HoldTally) -> None:
        """``agent`` talks to the caller from ``now`` (a part still open ends here, not transferred)."""
        if self.current is not None:
            if self.current.agent == agent:
                return      # the same agent again (a re-connect): one part
            self.end(now, hold, transferred=False)
        if len(self.done) < MAX_PARTS:
            self.current = _Open(agent, queue, now, hold.seconds, hold.holds)

    def end(self, now: float, hold: HoldTally, transferred: bool) -> None:
        """The open part (if any) ends at ``now``; the caller's hold must be closed first (``hold.close``)."""
        p = self.current
        if p is None:
            return
        self.current = None
        self.done.append((p, now, max(0.0, hold.seconds - p.hold_seconds), max(0, hold.holds - p.holds),
                          transferred))

    def finish(self, wall: Callable[[float], float]) -> tuple[AgentPart, ...]:
        """The closed parts, in wall-clock time (an open one must be ended first)."""
        return tuple(AgentPart(p.agent, p.queue, wall(p.since), wall(end), hold, holds, transferred)
                     for p, end, hold, holds, transferred in self.done)
