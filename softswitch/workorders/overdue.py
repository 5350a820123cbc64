"""Overdue work orders, sans-IO: ``OverdueWatch.check(orders, now)`` takes the orders past their ``due_at``
that are not resolved or closed (the edge reads them from the store) and returns what to do:

- ``Alert``: the order became overdue since the last look: tell the supervisors (desk, wallboard);
- ``Escalate``: it has been overdue for ``escalate_after`` seconds: escalate it to the named supervisor
  (``escalate_to_by_region`` for its region, else ``escalate_to``) — once per order; the edge records it in
  the order's history, which is also how a restarted switch knows not to escalate it again.

``alarms`` gives the wallboard its work-order alarm. No clock, store or socket here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..wallboard.model import Alarm
from .config import WorkOrdersConfig

__all__ = ["Alert", "Escalate", "OverdueOrder", "OverdueWatch"]


@dataclass(frozen=True)
class OverdueOrder:
    id: int
    kind: str
    status: str
    region: str
    assignee: str
    due_at: float
    escalation: int = 0


@dataclass(frozen=True)
class Alert:
    order: OverdueOrder
    overdue_s: float


@dataclass(frozen=True)
class Escalate:
    order: OverdueOrder
    to: str                 # the supervisor's user id ("" when none is configured: recorded, nobody named)
    overdue_s: float


class OverdueWatch:
    def __init__(self, config: WorkOrdersConfig, escalated: Iterable[int] = ()):
        self.config = config
        self.seen: set[int] = set()                 # overdue at the last look
        self.escalated: set[int] = set(escalated)   # escalated for being overdue (from the orders' history)

    def supervisor_for(self, order: OverdueOrder) -> str:
        return self.config.escalate_to_by_region.get(order.region, self.config.escalate_to)

    def check(self, orders: list[OverdueOrder], now: float) -> list[Alert | Escalate]:
        out: list[Alert | Escalate] = []
        ids = {o.id for o in orders}
        for o in sorted(orders, key=lambda o: o.due_at):
            late = now - o.due_at
            if late < 0:
                continue
            if o.id not in self.seen:
                out.append(Alert(o, late))
            if o.id not in self.escalated and late >= self.config.escalate_after:
                self.escalated.add(o.id)
                out.append(Escalate(o, self.supervisor_for(o), late))
        self.seen = ids
        return out

    def alarms(self, orders: list[OverdueOrder], now: float) -> list[Alarm]:
        """One wallboard alarm for all overdue orders (red once one is escalated), naming the oldest."""
        if not orders:
            return []
        oldest = min(orders, key=lambda o: o.due_at)
        escalated = [o for o in orders if o.id in self.escalated]
        level = "alarm" if escalated else "warning"
        hours = (now - oldest.due_at) / 3600
        msg = f"{len(orders)} work order(s) overdue; oldest #{oldest.id} ({oldest.kind}) by {hours:.1f} h"
        if escalated:
            msg += f"; {len(escalated)} escalated"
        return [Alarm("overdue_orders", "work orders", level, msg, oldest.due_at)]
