"""The call centre's figures, defined once: the live queue statistics (``acd.stats``) and the store's
queue report (``store.crm.CallCentre.queue_report``) both compute them here, so a wallboard and a
report over the same calls show the same numbers (docs/reports.md).

* **Service level** = answered within the queue's threshold ÷ (answered + abandoned). Abandoned: the
  caller hung up while waiting or while an agent's phone rang. Every abandon counts, however soon the
  caller gave up (short abandons are *not* excluded). Calls the switch ended — a max-wait time-out,
  no agent logged in — and calls still waiting are neither answered nor abandoned: they are not in
  the formula.
* **ASA** (average speed of answer) = time waited in the queue by answered calls ÷ answered.
* **AHT** (average handle time) = (talk time + hold time + wrap-up time) ÷ calls whose talk ended. The live
  figures measure talk as the connected time (hold inside it); the reports give talk without hold and hold
  apart (the call records' ``hold_seconds``): the same sum, so the same AHT.
"""
from __future__ import annotations

__all__ = ["service_level", "average_speed_of_answer", "average_handle_time"]


def service_level(answered_within: int, answered: int, abandoned: int) -> float | None:
    """The fraction (0..1) of answered + abandoned calls that were answered within the threshold;
    None when no call was answered or abandoned yet."""
    finished = answered + abandoned
    return answered_within / finished if finished else None


def average_speed_of_answer(wait_total: float, answered: int) -> float | None:
    return wait_total / answered if answered else None


def average_handle_time(talk_total: float, wrap_total: float, handled: int, hold_total: float = 0.0) -> float | None:
    """Talk plus hold plus wrap-up per handled call (a call whose talk ended); None before the first.
    ``hold_total`` is for talk measured without hold; talk measured as connected time has it inside already."""
    return (talk_total + hold_total + wrap_total) / handled if handled else None
