"""Live per-queue figures for the wallboard and the control API.

Counters are cumulative since start (a reporting tool that wants intervals reads queue_log); the
snapshot adds what is true right now (waiting calls, longest wait, agents by state). Service level,
ASA and AHT are defined once, in ``base.figures``, for these figures and the store's queue report
alike (docs/reports.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from base.figures import average_handle_time, average_speed_of_answer, service_level

__all__ = ["QueueCounters", "QueueStats"]


@dataclass
class QueueCounters:
    offered: int = 0  # calls that entered the queue (ENTERQUEUE), overflowed-in ones included
    answered: int = 0
    answered_within: int = 0  # answered within the queue's service_level_threshold
    abandoned: int = 0
    timed_out: int = 0  # left on max_wait (EXITWITHTIMEOUT)
    exited_empty: int = 0  # left because no agent was logged in (EXITEMPTY)
    hold_total: float = 0.0  # seconds waited by answered calls (ASA)
    talk_total: float = 0.0
    talk_count: int = 0
    wrap_total: float = 0.0
    wrap_count: int = 0


@dataclass(frozen=True)
class QueueStats:
    queue: str
    waiting: int
    longest_wait: float  # seconds, 0 when nobody waits
    agents: dict[str, int]  # member agents by state label, plus "phone-busy" (ready but on a direct call)
    offered: int
    answered: int
    abandoned: int
    timed_out: int
    exited_empty: int
    service_level: float | None  # answered within threshold / (answered + abandoned); None before any
    asa: float | None  # average speed of answer, seconds
    aht: float | None  # average handle time = (talk, hold inside + wrap-up) / calls whose talk ended, seconds

    @classmethod
    def of(cls, queue: str, c: QueueCounters, waiting: int, longest_wait: float,
           agents: dict[str, int]) -> QueueStats:
        return cls(queue=queue, waiting=waiting, longest_wait=longest_wait, agents=agents, offered=c.offered,
                   answered=c.answered, abandoned=c.abandoned, timed_out=c.timed_out,
                   exited_empty=c.exited_empty,
                   service_level=service_level(c.answered_within, c.answered, c.abandoned),
                   asa=average_speed_of_answer(c.hold_total, c.answered),
                   aht=average_handle_time(c.talk_total, c.wrap_total, c.talk_count))
