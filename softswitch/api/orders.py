"""The work-order loop in the API: a task looks for overdue orders every ``[work_orders] overdue_check``
seconds (the decisions are ``softswitch.workorders.overdue``'s), alerts supervisors on their desks'
WebSocket (``order_overdue``) and on the wallboard, escalates orders overdue for ``escalate_after`` to the
named supervisor (a note in the order's history, a complaint's level raised, ``order_escalated`` to her);
and the /orders page (filter, assign, close) with ``GET /api/overdue-orders``. A mixin of ``ApiServer``."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from store.crm import MAX_ESCALATION

from ..workorders.overdue import Alert, Escalate, OverdueOrder, OverdueWatch
from .context import Ctx, reply

log = logging.getLogger("softswitch.orders")

ACTOR = "overdue-watch"     # who the order history says escalated it


def _overdue_rows(conn: Any, now: float) -> list[OverdueOrder]:
    return [OverdueOrder(i, k, s, r or "", a or "", d, e) for i, k, s, r, a, d, e in conn.execute(
        "SELECT id, kind, status, region, assignee, due_at, escalation FROM work_orders WHERE due_at IS NOT NULL "
        "AND due_at < ? AND status NOT IN ('resolved', 'closed') ORDER BY due_at LIMIT 5000", (now,))]


class OrdersApi:
    server: Any
    centre: Any
    floor: Any

    def _orders_routes(self, app: web.Application) -> None:
        app.router.add_get("/orders", self._orders_page)
        app.on_startup.append(self._orders_start)
        app.on_cleanup.append(self._orders_stop)

    async def _orders_page(self, request: web.Request) -> web.StreamResponse:
        return self._file("orders.html")  # type: ignore[attr-defined]

    async def _orders_start(self, app: web.Application) -> None:
        self.orders_watch: OverdueWatch | None = None
        self._orders_task: asyncio.Task | None = None
        centre = getattr(self.server, "centre", None)
        if centre is None:
            return
        escalated = await centre.store.read_sync(lambda conn: [r[0] for r in conn.execute(
            "SELECT DISTINCT order_id FROM order_events WHERE actor = ? AND action IN ('note', 'escalated')",
            (ACTOR,))])
        self.orders_watch = OverdueWatch(self.server.config.work_orders, escalated)
        self.server.on_reload.add(self._orders_reloaded)
        self._orders_task = asyncio.ensure_future(self._orders_loop())

    async def _orders_stop(self, app: web.Application) -> None:
        task = getattr(self, "_orders_task", None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _orders_reloaded(self, config: Any) -> None:
        if self.orders_watch is not None:
            self.orders_watch.config = config.work_orders

    async def _orders_loop(self) -> None:
        while True:
            try:
                await self.check_overdue(time.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("work orders: overdue check failed")
            assert self.orders_watch is not None
            await asyncio.sleep(self.orders_watch.config.overdue_check)

    async def check_overdue(self, now: float) -> list[Alert | Escalate]:
        """One look: alerts, escalations, the wallboard's alarm. Returns what it did."""
        watch = self.orders_watch
        if watch is None:
            return []
        orders = await self.centre.store.read_sync(lambda conn: _overdue_rows(conn, now))
        actions = watch.check(orders, now)
        for a in actions:
            o = a.order
            info = {"order": o.id, "kind": o.kind, "status": o.status, "region": o.region, "assignee": o.assignee,
                    "due_at": o.due_at, "overdue_s": round(a.overdue_s)}
            if isinstance(a, Alert):
                log.info("work order %d (%s) is overdue by %d s", o.id, o.kind, a.overdue_s)
                self._send(set(), {"type": "order_overdue", **info})  # type: ignore[attr-defined]
            else:
                await self._escalate(a)
                self._send({a.to} if a.to else set(),  # type: ignore[attr-defined]
                           {"type": "order_escalated", "to": a.to, **info})
        self.floor.set_external("work_orders", watch.alarms(orders, now))
        if actions:
            self._floor_stale()  # type: ignore[attr-defined]
        return actions

    async def _escalate(self, a: Escalate) -> None:
        o = a.order
        hours = a.overdue_s / 3600
        note = f"overdue by {hours:.1f} h: escalated to {a.to or '(no [work_orders] escalate_to configured)'}"
        log.warning("work order %d (%s, %s) %s", o.id, o.kind, o.region or "no region", note)
        await self.centre.add_order_note(o.id, actor=ACTOR, note=note)
        if o.kind == "complaint" and o.escalation < MAX_ESCALATION:
            await self.centre.escalate(o.id, actor=ACTOR, note=note)

    async def op_overdue_orders(self, ctx: "Ctx") -> web.Response:
        now = time.time()
        watch = self.orders_watch
        orders = await self.centre.store.read_sync(lambda conn: _overdue_rows(conn, now))
        return reply([{"id": o.id, "kind": o.kind, "status": o.status, "region": o.region, "assignee": o.assignee,
                       "due_at": o.due_at, "overdue_s": round(now - o.due_at), "escalation": o.escalation,
                       "escalated_to": (watch.supervisor_for(o) if watch is not None and o.id in watch.escalated
                                        else None)} for o in orders])
