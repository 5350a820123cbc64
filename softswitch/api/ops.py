"""Operations endpoints: ``/metrics`` (Prometheus text format), ``/health`` (alive) and ``/ready``
(listening, store open, media ports free). The API serves them (``ApiServer.op_metrics`` ...); with
``[api]`` disabled, or ``[metrics] listen`` set, ``OpsServer`` serves them on a listener of its own.

``/metrics`` answers only the source addresses in ``[metrics] allow`` (everyone when the list is empty)
and 404 when ``[metrics] enabled = false``. ``/health`` and ``/ready`` answer everyone: load balancers
and service managers probe them.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from typing import Any

from aiohttp import web

from ..metrics import CONTENT_TYPE

log = logging.getLogger("softswitch.api")

STORE_PROBE_TIMEOUT = 2.0     # seconds a "SELECT 1" may take before the store counts as not responding
MIN_FREE_PORTS = 2            # RTP port pairs a new call needs (its caller leg and one callee leg)


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    resp = web.json_response(data, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")))
    resp.headers["Cache-Control"] = "no-store"
    return resp


class Ops:
    """The three handlers, bound to the running switch (``transport.Server``)."""

    def __init__(self, server: Any):
        self.server = server
        settings = server.config.metrics
        self.enabled = settings.enabled
        self.allow = [ipaddress.ip_network(a, strict=False) for a in settings.allow]

    def allowed(self, request: web.Request) -> bool:
        if not self.allow:
            return True
        try:
            addr = ipaddress.ip_address((request.remote or "").split("%")[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self.allow)

    async def metrics(self, request: web.Request) -> web.Response:
        if not self.enabled:
            return _json({"error": "metrics are disabled ([metrics] enabled = false)", "status": 404}, 404)
        if not self.allowed(request):
            return _json({"error": f"{request.remote} may not read the metrics ([metrics] allow)", "status": 403},
                         403)
        text = self.server.metrics.expose()
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "alive", "uptime_s": round(time.time() - self.server.metrics.started, 3)})

    async def ready(self, request: web.Request) -> web.Response:
        reasons, checks = await readiness(self.server)
        if reasons:
            return _json({"ready": False, "reasons": reasons, "checks": checks}, 503)
        return _json({"ready": True, "checks": checks})


async def readiness(server: Any) -> tuple[list[str], dict[str, Any]]:
    """(reasons it is not ready, what was checked): SIP listening, store open and answering, media ports
    free and the media tick running."""
    reasons: list[str] = []
    checks: dict[str, Any] = {}
    listening = bool(getattr(server, "running", False))
    if not listening:
        reasons.append("not started yet, or shutting down")
    for la in server.config.sip.listen:
        if la.transport not in server.core.local:
            reasons.append(f"not listening on {la}")
            listening = False
    for proto in server._udp.values():
        if proto.transport is None or proto.transport.is_closing():
            reasons.append("the UDP socket is closed")
            listening = False
    checks["listening"] = listening

    store = server.store
    store_ok = False
    if store is None or store.closed:
        reasons.append("store not open")
    else:
        try:
            await asyncio.wait_for(store.fetchall("SELECT 1"), STORE_PROBE_TIMEOUT)
            store_ok = True
        except asyncio.TimeoutError:
            reasons.append(f"store not answering within {STORE_PROBE_TIMEOUT:g} s")
        except Exception as e:
            reasons.append(f"store error: {e}")
    checks["store"] = store_ok

    engine = server.core.media
    if engine is not None:
        free = engine.ports.available
        checks["media_ports_free"] = free
        if free < MIN_FREE_PORTS:
            reasons.append(f"media ports exhausted: {free} RTP port pair(s) free, {engine.ports.in_use} in use, "
                           f"{len(engine.ports.quarantined)} unusable")
        edge = server.media_edge
        task = getattr(edge, "_task", None)
        tick_ok = edge is not None and task is not None and not task.done()
        slots = getattr(engine, "slots", None)          # media worker processes ([media] workers)
        if slots:
            alive = sum(1 for s in slots if s.alive)
            checks["media_workers"] = f"{alive}/{len(slots)}"
            tick_ok = tick_ok and alive > 0
        checks["media_tick"] = tick_ok
        if not tick_ok:
            reasons.append("media tick not running" + (" (no media worker is up; restarting)" if slots else ""))
    return reasons, checks


class OpsServer:
    """``/metrics``, ``/health`` and ``/ready`` on a listener of their own (``[metrics] listen``)."""

    def __init__(self, server: Any, listen: str):
        self.ops = Ops(server)
        self.listen = listen
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.ops.metrics)
        app.router.add_get("/health", self.ops.health)
        app.router.add_get("/ready", self.ops.ready)
        host, _, port = self.listen.rpartition(":")
        host = host.strip("[]")
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, int(port), reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            self._runner = None
            raise
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("metrics listening on http://%s:%d/metrics", host if ":" not in host else f"[{host}]", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
