"""The supervisor's floor in the API: the /wallboard page and its WebSocket, supervisors joining agents'
calls, the block and warning lists, and the admin's config reload. A mixin of ``ApiServer``.

The wallboard is pushed, never polled: every switch event that can change it (a call entering or
leaving a queue, an offer, an agent's state, a call's end) marks it stale, and one push follows within
``[wallboard] push_interval_ms`` (events in that window share it). Time alone changes it too — a caller
waiting past a threshold, an agent stuck in a state, midnight — so after each push a timer is set for
the moment the model (``softswitch.wallboard.Floor``) says the picture would change next.

"Today" includes the calls before a restart: at start the edge reads the day's call records up to the
switch's start (``_floor_seed``, on the store's reader thread, summed by the queue report's own query) and
gives them to the model as a ``TodaySeed``; the live counters add to it.

Hooks for other modules: ``floor_extras[name] = fn`` adds ``fn()`` under ``name`` to every push
(campaigns' live figures); ``floor.set_external(source, alarms)`` adds alarms (overdue work orders);
an event of type ``trunk_state`` ({"trunk", "up", "reason", "at"}) raises or clears a trunk alarm.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict
from typing import Any, Callable

from aiohttp import WSMsgType, web

from ..reports.build import switch_queue_totals
from ..wallboard import Floor, TodaySeed
from .validate import ApiError
from .context import Ctx, reply


log = logging.getLogger("softswitch.api")

MAX_WALLBOARDS = 50     # open wallboard WebSockets (big screens, supervisors' desks)
MONITOR_CODES = {"listen": "*21*", "whisper": "*22*", "barge": "*23*"}


class FloorApi:
    """Mixed into ``ApiServer`` (which provides server, control, centre, session_of, spawn...)."""

    server: Any
    control: Any
    centre: Any

    def _floor_init(self) -> None:
        self.floor = Floor(self.server.config.wallboard)
        self.floor_extras: dict[str, Callable[[], Any]] = {"campaigns": self._floor_campaigns}
        self.wallboards: set[web.WebSocketResponse] = set()
        self._floor_push_at: asyncio.TimerHandle | None = None
        self._floor_timer: asyncio.TimerHandle | None = None
        on_reload = getattr(self.server, "on_reload", None)
        if on_reload is not None:
            on_reload.add(self._floor_reloaded)

    async def _floor_seed(self) -> None:
        """Today's calls before this switch started (a restart, a crash) from the store: the calls that
        arrived between local midnight and the process's start — every later one is counted live."""
        started = getattr(getattr(self.server, "metrics", None), "started", None) or time.time()
        day = self.floor.day_start(started)
        totals = await switch_queue_totals(self.centre, self.server.config, day, started)
        if self.floor.seed(TodaySeed.from_report(day, started, totals)):
            log.info("wallboard: today's figures include %d call(s) of %d queue(s) before the start",
                     sum(int(a["offered"]) for a in totals.values()), len(totals))
            self._floor_stale()

    def _floor_routes(self, app: web.Application) -> None:
        app.router.add_get("/wallboard", self._wallboard_page)
        app.router.add_get("/api/wallboard/ws", self._wallboard_ws)

    async def _floor_stop(self) -> None:
        for h in (self._floor_push_at, self._floor_timer):
            if h is not None:
                h.cancel()
        for ws in list(self.wallboards):
            await ws.close()

    def _floor_reloaded(self, config: Any) -> None:
        self.floor.config = config.wallboard
        users = {u.id: u for u in config.api.users}
        if users:   # (no users configured: the one-time admin of this run stays)
            self.users = users  # type: ignore[attr-defined]
        self._floor_stale()

    # --------------------------------------------------------------------------- the model
    def _floor_queues(self) -> list[dict[str, Any]]:
        acd = self.server.core.router.queue.acd
        now = self.server.now()
        queues = []
        for q in acd.queues:
            i = acd.queue_index[q.name]
            st = acd.queue_stats(q.name, now)
            queues.append({"queue": q.name, "waiting": st.waiting, "longest_wait": st.longest_wait,
                           "agents": st.agents, "counters": asdict(acd.counters[i]),
                           "sl_threshold": q.service_level_threshold})
        return queues

    def floor_snapshot(self) -> dict[str, Any]:
        queues = self._floor_queues()
        extras: dict[str, Any] = {}
        for name, fn in list(self.floor_extras.items()):
            try:
                extras[name] = fn()
            except Exception:
                log.exception("wallboard: figures of %s failed", name)
        return self.floor.snapshot(queues, self.control.agents(), time.time(), extras)

    def _floor_campaigns(self) -> list[dict[str, Any]]:
        """Each running campaign's live figures, flat (the page shows them as a table); [] without a dialler."""
        return [{"campaign": c["name"], "mode": c["mode"], **{k: round(v, 2) if isinstance(v, float) else v
                                                              for k, v in c.get("figures", {}).items()}}
                for c in self.control.campaigns()]

    def _floor_event(self, ev: dict) -> None:
        wall = time.time()
        if self.floor.on_event(ev, wall):
            if self.wallboards:
                self._floor_stale()
            else:   # nobody watching: today's baseline still follows the counters (see Floor.observe)
                self.floor.observe({q["queue"]: q["counters"] for q in self._floor_queues()}, wall)

    def _floor_stale(self) -> None:
        if not self.wallboards or self._floor_push_at is not None:
            return
        loop = asyncio.get_running_loop()
        self._floor_push_at = loop.call_later(self.floor.config.push_interval_ms / 1000, self._floor_push)

    def _floor_push(self) -> None:
        self._floor_push_at = None
        if self._floor_timer is not None:
            self._floor_timer.cancel()
            self._floor_timer = None
        if not self.wallboards:
            return
        snap = self.floor_snapshot()
        text = json.dumps(snap, ensure_ascii=False, separators=(",", ":"), default=str)
        for ws in list(self.wallboards):
            if not ws.closed:
                self.spawn(ws.send_str(text), "wallboard push")  # type: ignore[attr-defined]
        deadline = self.floor.next_deadline(snap)
        if deadline is not None:
            self._floor_timer = asyncio.get_running_loop().call_later(max(0.05, deadline - time.time()),
                                                                      self._floor_push)

    # ----------------------------------------------------------------------------- HTTP
    async def _wallboard_page(self, request: web.Request) -> web.StreamResponse:
        return self._file("wallboard.html")  # type: ignore[attr-defined]

    async def _wallboard_ws(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)  # type: ignore[attr-defined]
        if not session.supervisor:
            raise ApiError(403, "the wallboard is for supervisors")
        if len(self.wallboards) >= MAX_WALLBOARDS:
            raise ApiError(503, f"at most {MAX_WALLBOARDS} wallboards at once")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=4096)
        await ws.prepare(request)
        self.wallboards.add(ws)
        try:
            await ws.send_str(json.dumps(self.floor_snapshot(), ensure_ascii=False, default=str))
            self._floor_stale()   # arms the time-based updates
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.wallboards.discard(ws)
        return ws

    async def op_wallboard(self, ctx: "Ctx") -> web.Response:
        return reply(self.floor_snapshot())

    async def op_monitor(self, ctx: "Ctx") -> web.Response:
        """A supervisor listens to, whispers to or barges in on an agent's call from the wallboard or the
        desk: the switch rings her phone, and when she answers she joins as with ``*21``/``*22``/``*23``."""
        b = ctx.body
        agent, mode, ext = b["agent"], b["mode"], b["extension"]
        if ext not in self.server.config.acd.supervisors:
            raise ApiError(403, f"extension {ext} is not in [acd] supervisors", "extension")
        if self.server.core.router.queue.connected_call(agent) is None:
            raise ApiError(409, f"agent {agent} is not on a call", "agent")
        call_id = self.control.originate(ext, MONITOR_CODES[mode] + agent, f"{MONITOR_CODES[mode]}{agent}")
        if call_id is None:
            raise ApiError(409, f"extension {ext} cannot be rung (not registered?)", "extension")
        log.info("api: %s %s agent %s from extension %s (call %s)", ctx.user, mode, agent, ext, call_id)
        return reply({"id": call_id}, 201)

    # ---------------------------------------------------------------------- caller lists
    async def op_list_entries(self, ctx: "Ctx") -> web.Response:
        return reply(await self.centre.list_entries(ctx.path["list"]))

    async def op_add_list_entry(self, ctx: "Ctx") -> web.Response:
        b = ctx.body
        entry_id = await self.centre.add_to_list(ctx.path["list"], b["pattern"], reason=b.get("reason", ""),
                                                 added_by=ctx.user, expires_at=b.get("expires_at"))
        await self.server.refresh_lists()   # in force for the next call, not in a minute
        entry: Any = next((e for e in await self.centre.list_entries(ctx.path["list"], at=0.0) if e.id == entry_id),
                          None)
        if entry is None:   # already expired (an expiry in the past): not listed, but stored as asked
            entry = {"id": entry_id, "list": ctx.path["list"], "pattern": b["pattern"], "reason": b.get("reason", ""),
                     "added_by": ctx.user, "added_at": time.time(), "expires_at": b.get("expires_at")}
        return reply(entry, 201)

    async def op_remove_list_entry(self, ctx: "Ctx") -> web.Response:
        if not await self.centre.remove_from_list(ctx.path["id"]):
            raise ApiError(404, f"no list entry {ctx.path['id']}", "id")
        await self.server.refresh_lists()
        return reply({"ok": True})

    # ----------------------------------------------------------------------------- admin
    async def op_reload_config(self, ctx: "Ctx") -> web.Response:
        log.info("api: %s asks for a configuration reload", ctx.user)
        result = self.server.reload()
        return reply(result.as_dict(), 200 if result.ok else 422)
