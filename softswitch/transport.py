"""The asyncio edge: sockets, connections, the timer and the store around the sans-IO ``SwitchCore``.

Nothing here knows SIP beyond framing a stream. Every datagram or framed message goes to
``core.receive``; the returned actions are executed at once, except ``PersistBindings``, which go to
the store's group-commit writer (all registrations that arrive while one commit runs share the next
commit), and the 200 OKs go out only after their commit.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import os
import itertools
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Hashable, TextIO
from dataclasses import replace

from acd import events as acd_events
from store.db import Store
from store.keyfile import derive, key_path, load_or_create

from ivr.voicemail_index import add_message
from media.jobs import ThreadRunner

from .config import Config, ListenAddress, config_warnings
from .connections import ConnectionGuard, ConnectionLimits
from .core import PersistBindings, SwitchCore, media_worker_count
from .events import (
    AgentStateChanged, DiallerInput, SaveVoicemailIndex, SpeakRequest, SpeechAudio, SpeechStart, SpeechStop, SwitchEvent,
    WriteQueueLog,
)
from .metrics import SwitchMetrics
from .records import Records, centre_for
from .vip import VipTable

if TYPE_CHECKING:
    from ivr.asr_worker import SpeechWorker
    from media.edge import MediaEdge
    from store.crm import CallCentre
from .sip.framing import FramingError, KeepAlive, StreamFramer
from .sip.transaction import Peer, Send
from .trunks.locate import ResolveTrunk

log = logging.getLogger("softswitch.transport")


UDP_RECEIVE_BUFFER = 4 << 20


def _enlarge_receive_buffer(sock) -> None:
    """A burst (thousands of phones re-registering after a power cut, a load test) must wait in the
    kernel while the loop is busy, not be dropped: the default 208 kB holds ~70 ms of traffic at
    5,000 messages/s. Capped by net.core.rmem_max (4 MB here) unless we may force it."""
    if sock is None:
        return
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, UDP_RECEIVE_BUFFER)
            return
        except (OSError, PermissionError):
            continue


def _secret_key(store_path: str | os.PathLike[str]) -> bytes:
    """The switch's key from the file beside the database (created on first start); a random one for an
    in-memory store."""
    path = key_path(store_path)
    if path is None:
        import secrets
        return secrets.token_bytes(32)
    return load_or_create(path)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: "Server"):
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # type: ignore[override]
        self.server.process(data, Peer("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP port unreachable etc.: not fatal
        log.debug("udp error: %s", exc)


class _Stream(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound."""

    def __init__(self, server: "Server", transport_name: str, max_message: int, inbound: bool = False):
        self.server = server
        self.name = transport_name
        self.framer = StreamFramer(max_message)
        self.transport: asyncio.Transport | None = None
        self.conn_id = next(server._conn_ids)
        self.addr: tuple[str, int] = ("", 0)
        self.inbound = inbound
        self.refused = False

    def connection_made(self, transport):  # type: ignore[override]
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.addr = (peer[0], peer[1])
        server = self.server
        why = server.admit(self)
        if why is not None:
            self.refused = True
            transport.abort()  # no FIN handshake to wait for: the descriptor is free at once
            return
        server._conns[self.conn_id] = self
        server._conn_by_addr[(self.name, *self.addr)] = self.conn_id

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        try:
            items = self.framer.feed(data)
        except FramingError as e:
            log.info("closing %s connection from %s:%s: %s", self.name, *self.addr, e)
            assert self.transport is not None
            self.transport.abort()
            self.refused = True
            return
        self.server.guard.received(self.conn_id, self.server.now(), self.framer.buffered)
        for item in items:
            if isinstance(item, KeepAlive):
                self.transport.write(b"\r\n")  # type: ignore[union-attr]  # RFC 5626 pong
            else:
                self.server.process(item, Peer(self.name, self.addr[0], self.addr[1], self.conn_id))

    def connection_lost(self, exc) -> None:  # type: ignore[override]
        self.server.guard.gone(self.conn_id)
        self.server._conns.pop(self.conn_id, None)
        key = (self.name, *self.addr)
        if self.server._conn_by_addr.get(key) == self.conn_id:
            del self.server._conn_by_addr[key]


class Server:
    def __init__(self, config: Config):
        self.config = config
        # the process topology is the edge's choice: "auto" workers counted on this machine (core.media_worker_count)
        self.core = SwitchCore(config, media_workers=media_worker_count(config.media.workers))
        self.store: Store | None = None
        self._udp: dict[str, _Udp] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: dict[int, _Stream] = {}
        self._conn_by_addr: dict[tuple[str, str, int], int] = {}
        self._conn_ids = itertools.count(1)
        sec = config.security
        self.guard = ConnectionGuard(ConnectionLimits(
            max_connections=sec.tcp_max_connections, max_per_address=sec.tcp_max_per_address,
            message_timeout=float(sec.tcp_message_timeout), idle_timeout=float(sec.tcp_idle_timeout),
            max_write_buffer=max(1 << 20, 16 * config.sip.max_message_size)))
        self._guard_timer: asyncio.TimerHandle | None = None
        self._refused_logged = 0
        self._refused_why = ""
        self._security_path: Any = None  # softswitch.security.json (store.securitystate)
        self.security_state: dict[str, dict[str, float]] = {"bans": {}, "revoked": {}}
        self._connecting: dict[tuple[str, str, int], list[bytes]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._persisting: set[asyncio.Task] = set()   # registrations being committed, trunks being looked up
        self.resolver: Any = None   # softswitch.trunks.resolver.Resolver, made at the first trunk look-up
        self._tls_client: ssl.SSLContext | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.media_edge: MediaEdge | None = None  # when [media] enabled
        self._queue_log: TextIO | None = None  # open queue_log file (used in the file thread only)
        self.subscribers: set = set()  # callables taking each SwitchEvent (records, the API's WebSockets)
        self.api = None  # softswitch.api.ApiServer when [api] enabled
        self.outbound: Any = None  # softswitch.outbound.DiallerService (campaigns, callbacks)
        self.tts: Any = None  # softswitch.tts.RuntimeSpeech: text spoken at call time
        self.centre: CallCentre | None = None  # the call-centre store (records, the API)
        self.records: Records | None = None
        self.speech: SpeechWorker | None = None  # when speech menus are configured
        self._wall_offset = 0.0
        self._lists_timer: asyncio.TimerHandle | None = None
        self.vip = VipTable()  # the store's VIP customers: queue priority (softswitch.vip)
        self.files = ThreadRunner("switch-files")  # queue_log and voicemail index appends, off the loop
        self.key = b""  # the switch's secret key (store.keyfile): nonce and session keys derive from it
        self.metrics = SwitchMetrics(self)  # Prometheus /metrics (softswitch.metrics)
        self.subscribers.add(self.metrics.on_event)
        self.ops: Any = None  # softswitch.api.ops.OpsServer: /metrics, /health, /ready on a listener of their own
        self.running = False  # started and not stopping (/ready)
        self.nightly: Any = None  # softswitch.reports.nightly.NightlyExport when [reports] export_dir is set
        self.on_reload: set = set()  # callables taking the new Config after a reload (the API's users...)
        from .sdnotify import Notifier
        self.systemd = Notifier.from_env()  # READY=1, watchdog pings, STOPPING=1 under systemd (Type=notify)
        # [overload] admission control in front of the UDP path (softswitch.overload); None when disabled
        from .overload import Admission, for_switch
        self.overload: Admission | None = (for_switch(config, self.core, self.now)
                                           if config.overload.enabled else None)
        if self.overload is not None:  # a reload brings new limits and priorities (queue numbers, agents...)
            from .overload import reconfigure
            self.on_reload.add(functools.partial(reconfigure, self.overload))

    # ---------------------------------------------------------------------------- clock
    # One monotonic clock for SIP, media and call control (a wall-clock step never fires or stalls a
    # timer); Unix time only where a date is needed, as now + offset (records, queue_log, business
    # hours, registrations in the store, which must outlive the process).
    now = staticmethod(time.monotonic)

    def _sync_wall(self) -> None:
        self._wall_offset = time.time() - time.monotonic()
        self.core.set_wall_offset(self._wall_offset)

    def _wall_change(self, change: tuple) -> tuple:
        op, item = change
        if op != "put":
            return change
        off = self._wall_offset
        return op, replace(item, expires_at=item.expires_at + off, updated_at=item.updated_at + off)

    # ------------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = await Store.open(self.config.store.path)
        self.key = await self.loop.run_in_executor(None, _secret_key, self.config.store.path)
        self.core.set_nonce_secret(derive(self.key, "sip-nonce"))  # nonces of the last run stay good
        self._sync_wall()
        await self._load_security_state()
        bindings = await self.store.load_bindings(time.time())
        self.core.registrar.load([replace(b, expires_at=b.expires_at - self._wall_offset,
                                          updated_at=b.updated_at - self._wall_offset) for b in bindings])
        log.info("store %s opened; %d registration(s) restored", self.config.store.path, len(bindings))
        self._execute(self.core.sync_registrations(self.now()))  # agents at unregistered phones are skipped
        self.centre = centre = centre_for(self.store, self.config)
        self.records = Records(centre)
        self.core.lists.normalise = centre.normalise
        await self._load_lists()
        self.vip.normalise = centre.normalise
        await self.vip.start(centre)  # now and every minute
        self.core.router.queue.priority_of = self.vip.priority
        if self.config.ivr is not None:
            await self.records.import_voicemail_index(self.config.ivr.voicemail_dir)
        self.records.start()
        self.subscribers.add(self.records)
        logins = await self._agent_logins()
        n = self.core.router.sounds.preload()
        if n:
            log.info("%d prompt(s) loaded", n)
        for warning in config_warnings(self.config, str(self.config.source)):
            log.warning("%s", warning)
        ivr = self.core.router.ivr.ivr
        if ivr is not None and ivr.speech:
            self.speech = ivr.speech_worker(self._speech_heard, loop=self.loop)
        for la in self.config.sip.listen:
            await self._listen(la)
        self._restore_agents(logins)  # once the ports are ours (a second instance must not touch them)
        self._guard_timer = self.loop.call_later(1.0, self._sweep_connections)
        from .outbound import DiallerService

        self.outbound = DiallerService(self)  # campaigns and callbacks: after the agents are back
        await self.outbound.start()
        from .tts import RuntimeSpeech

        self.tts = RuntimeSpeech(self)
        if self.core.media is not None:
            from media.edge import MediaEdge

            if getattr(self.core.media, "remote", False):  # [media] workers >= 1 (media.workers)
                from media.workers.pool import WorkerEdge

                wedge = WorkerEdge(self.core.media, self._on_media_events)
                await wedge.start_async()
                self.media_edge = wedge  # type: ignore[assignment]
                log.info("media anchored on %s, RTP ports %s; media tick in %d worker process(es)%s; fast path %s",
                         self.core.media.config.address, self.config.media.rtp_ports, self.core.media.config.workers,
                         " (auto: one per spare core)" if self.config.media.workers < 0 else "",
                         "on (plain two-party calls relayed)" if self.config.media.fast_path else "off")
            else:
                self.media_edge = MediaEdge(self.core.media, self._on_media_events)
                self.media_edge.start()
                log.info("media anchored on %s, RTP ports %s; one media tick in this process%s; fast path %s",
                         self.core.media.config.address, self.config.media.rtp_ports,
                         " (auto: no spare core for a media worker)" if self.config.media.workers < 0 else "",
                         "on (plain two-party calls relayed)" if self.config.media.fast_path else "off")
        self._start_nightly_export()
        if self.config.api.enabled:
            await self._start_api()
        await self._start_ops()
        self.metrics.start(self.loop)
        self.running = True
        self.systemd.ready(self.loop, f"{len(self.config.extensions)} extension(s), "
                           f"{self.core.registrar.count()} registration(s)", alive=self._media_alive)
        self._rearm()

    async def _start_api(self) -> None:
        """The HTTP API and agent desk. A failure to start it (port taken) is a failure to start: a switch
        whose agents cannot log in to their desks is not running (``[api] enabled = false`` runs without)."""
        from .api import ApiServer

        api = ApiServer(self)
        try:
            await api.start()
        except OSError as e:
            raise OSError(f"api cannot listen on {self.config.api.listen}: {e.strerror or e} (another softswitch "
                          "running? set [api] listen, or [api] enabled = false)") from e
        self.api = api

    def _start_nightly_export(self) -> None:
        """``[reports] export_dir``: the day's (week's, month's) report written there each night."""
        rc = self.config.reports
        if rc.export_dir is None or self.centre is None:
            return
        from .reports.build import switch_report
        from .reports.nightly import NightlyExport

        centre = self.centre
        self.nightly = NightlyExport(rc.export_dir, rc.export_time, rc.formats,
                                     lambda period, since, until: switch_report(centre, self.config, period, since,
                                                                                until))
        self.nightly.start()

    async def _agent_logins(self) -> dict[str, tuple[str, str, str | None]]:
        """Each agent's state when the switch last stopped (agent -> state, reason, extension)."""
        assert self.centre is not None
        try:
            return await self.centre.current_agent_logins()
        except Exception:
            log.exception("agent states not restored")
            return {}

    def _restore_agents(self, last: dict[str, tuple[str, str, str | None]]) -> None:
        """Agents logged in when the switch last stopped are logged in again at the same phone, ready or not
        ready as they were (a call they were on is gone: ready). Their history already says so: the
        restored states are not written again, nor queue_log login lines (the session goes on)."""
        acd = self.core.router.queue.acd
        events: list = []
        for agent_id, (state, reason, extension) in last.items():
            if agent_id not in acd.agent_index or state in ("logged-out", "unknown"):
                continue
            events.append(acd_events.AgentLogin(agent_id, extension or None))
            if state == "not-ready":
                events.append(acd_events.AgentNotReady(agent_id, reason))
        if not events:
            return
        now = self.now()
        queue = self.core.router.queue
        def feed() -> None:
            for e in events:
                queue.feed(e, now)

        actions = self.core.run(feed, now=now)
        final: dict[str, AgentStateChanged] = {}
        for a in actions:
            if isinstance(a, AgentStateChanged):
                final[a.agent] = a
        kept = [a for a in actions if not isinstance(a, (AgentStateChanged, WriteQueueLog))]
        kept += [a for a in final.values() if last[a.agent][:2] != (a.state, a.reason)]
        self._execute(kept)
        log.info("%d agent(s) logged in again as they were: %s", len(final),
                 ", ".join(f"{a.agent} {a.state}" for a in final.values()))

    async def _start_ops(self) -> None:
        """/metrics, /health and /ready on their own listener when [metrics] listen is set or [api] is off
        (otherwise the API serves them). A failure to start it leaves calls working."""
        listen = self.config.metrics.listen
        if not listen and (self.api is not None or not self.config.metrics.enabled):
            return
        if not listen and self.config.api.enabled:
            return  # the API should have served them but did not start (logged)
        try:
            from .api.ops import OpsServer

            ops = OpsServer(self, listen or "127.0.0.1:9090")
            await ops.start()
        except (OSError, ImportError) as e:
            log.error("metrics not served on %s: %s", listen or "127.0.0.1:9090", e)
            return
        self.ops = ops

    async def _listen(self, la: ListenAddress) -> None:
        try:
            await self._bind(la)
        except OSError as e:
            reason = e.strerror or str(e)
            if e.errno == errno.EADDRINUSE or "bind" in reason:
                reason += " (the port is taken: another softswitch running? see `ss -lunpt`)"
            raise OSError(f"cannot listen on {la}: {reason}") from e

    async def _bind(self, la: ListenAddress) -> None:
        loop = self.loop
        assert loop is not None
        max_msg = self.config.sip.max_message_size
        if la.transport == "udp" and self.overload is not None:
            from .overload.udp import UdpIntake  # batch reads, admission control (softswitch.overload)

            intake = UdpIntake(self, self.overload, functools.partial(self.process, counted=True))
            port = intake.open(la.host, la.port, _enlarge_receive_buffer)
            proto = _Udp(self)
            proto.transport = intake  # type: ignore[assignment]  # sendto/close/is_closing, like asyncio's
            self._udp.setdefault("udp", proto)
        elif la.transport == "udp":
            transport, proto = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(la.host, la.port))
            port = transport.get_extra_info("sockname")[1]
            _enlarge_receive_buffer(transport.get_extra_info("socket"))
            self._udp.setdefault("udp", proto)
        else:
            ctx = None
            if la.transport == "tls":
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.load_cert_chain(str(self.config.sip.tls.certificate), str(self.config.sip.tls.key))
            extra: dict[str, Any] = {}
            if ctx is not None:  # a handshake that never finishes holds a descriptor like a slow header
                extra["ssl_handshake_timeout"] = self.guard.limits.message_timeout
            srv = await loop.create_server(lambda: _Stream(self, la.transport, max_msg, inbound=True), la.host,
                                           la.port, ssl=ctx, reuse_address=True, **extra)
            self._servers.append(srv)
            port = srv.sockets[0].getsockname()[1]
        self.core.set_local(la.transport, la.host, port)
        log.info("listening on %s:%s:%d", la.transport, la.host, port)

    # ------------------------------------------------------------ bans across restarts
    async def _load_security_state(self) -> None:
        """Bans (and the API's revoked sessions) of the last run, from softswitch.security.json."""
        from store import securitystate

        self._security_path = securitystate.state_path(self.config.store.path)
        if self._security_path is None:
            return
        assert self.loop is not None
        state = await self.loop.run_in_executor(None, securitystate.load, self._security_path)
        self.security_state = state
        if not self.config.security.persist_bans:
            return
        now, off = self.now(), self._wall_offset
        for key, until in state["bans"].items():
            self.core.bans.ban(key, until - off)
        active = self.core.bans.banned(now)
        if active:
            log.warning("%d ban(s) of the last run still served: %s", len(active),
                        ", ".join(f"{k} for {int(u - now)} s" for k, u in list(active.items())[:5])
                        + (" ..." if len(active) > 5 else ""))

    def save_security_state(self) -> None:
        """Active bans and revoked sessions to the file beside the database (from the file thread)."""
        if self._security_path is None:
            return
        from store import securitystate

        now, off = self.now(), self._wall_offset
        bans = ({k: u + off for k, u in self.core.bans.banned(now).items()}
                if self.config.security.persist_bans else {})
        revoked = dict(self.api.signer.revoked) if self.api is not None else self.security_state.get("revoked", {})
        state = {"bans": bans, "revoked": revoked}
        path = self._security_path

        def write() -> None:
            try:
                securitystate.save(path, state)
            except OSError as e:
                log.error("cannot write %s: %s", path, e)

        self.files(write)

    def _new_bans(self) -> None:
        """The core banned someone: drop its open connections too, and remember the ban."""
        banned = self.core.banned_now[:]
        self.core.banned_now.clear()
        now = self.now()
        for conn in list(self._conns.values()):
            if banned and conn.transport is not None and self.core.bans.is_banned(conn.addr[0], now):
                conn.transport.abort()
        self.save_security_state()

    # ----------------------------------------------------------------- connection limits
    def admit(self, conn: "_Stream") -> str | None:
        """A new stream connection: None to keep it, else why it is dropped (banned, over a limit)."""
        host, now = conn.addr[0], self.now()
        if conn.inbound and self.core.bans.is_banned(host, now):
            self.core.stats.dropped_banned += 1
            return "banned"
        why = self.guard.admit(conn.conn_id, host, now, inbound=conn.inbound, exempt=self.core.bans.exempt(host))
        if why is not None:
            self._refused_why = why  # logged once a second by _sweep_connections, not once per connection
        return why

    def _sweep_connections(self) -> None:
        """Once a second: close stream connections that hold a half message too long or idle without a
        registration or a call (softswitch.connections), and say how many were refused."""
        assert self.loop is not None
        self._guard_timer = self.loop.call_later(1.0, self._sweep_connections)
        now = self.now()
        in_use: set[int] | None = None
        if self.guard.idle_candidates(now):
            streams = self.core.streams_in_use(now)
            in_use = {cid for cid, c in self._conns.items() if (c.name, *c.addr) in streams}
            for cid in in_use:  # needed: not a candidate again for another idle_timeout
                self.guard.sent(cid, now)
        closing = self.guard.sweep(now, in_use)
        for cid, why in closing:
            conn = self._conns.get(cid)
            if conn is not None and conn.transport is not None:
                if len(closing) <= 5:
                    log.info("closing %s connection from %s:%s: %s", conn.name, *conn.addr, why)
                conn.transport.abort()
            else:
                self.guard.gone(cid)
        if len(closing) > 5:
            log.info("closed %d stream connections (%s, ...)", len(closing), closing[0][1])
        if self.guard.refused > self._refused_logged:
            log.warning("refused %d %s connection(s) in the last second: %s", self.guard.refused - self._refused_logged,
                        "stream", self._refused_why)
            self._refused_logged = self.guard.refused

    def bound_port(self, transport: str) -> int:
        return self.core.local[transport][1]

    def _on_media_events(self, events: list) -> None:
        self._execute(self.core.on_media_events(events, self.now()))
        self._rearm()

    def _media_alive(self) -> bool:
        task = getattr(self.media_edge, "_task", None)
        return self.media_edge is None or (task is not None and not task.done())

    async def stop(self) -> None:
        self.running = False
        self.systemd.stopping("shutting down")
        self.metrics.stop()
        if self.ops is not None:
            await self.ops.stop()
        if self._timer is not None:
            self._timer.cancel()
        if self._lists_timer is not None:
            self._lists_timer.cancel()
        if self._guard_timer is not None:
            self._guard_timer.cancel()
        self.vip.stop()
        if self.nightly is not None:
            await self.nightly.stop()
        if self.outbound is not None:
            await self.outbound.stop()
        if self.tts is not None:
            await self.tts.stop()
        if self.api is not None:
            await self.api.stop()
        if self.speech is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.speech.stop)
        if self.media_edge is not None:
            media = self.media_edge.engine
            log.info("media: %d endpoint(s) open, %d RTP port(s) in use at shutdown",
                     len(media.endpoints), media.ports.in_use)
            await self.media_edge.stop()
        self._execute(self.core.unregister_trunks(self.now()))  # carriers stop sending calls to us
        give_up = time.monotonic() + 2.0   # (their digest challenge answered; at most 2 s)
        while self.core.trunk_runtime.unregistering() and time.monotonic() < give_up:
            await asyncio.sleep(0.02)
        for srv in self._servers:
            srv.close()
        for proto in self._udp.values():
            if proto.transport is not None:
                proto.transport.close()
        for conn in list(self._conns.values()):
            if conn.transport is not None:
                conn.transport.close()
        if self._persisting:
            await asyncio.gather(*self._persisting, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.files.close)
        if self.records is not None:
            await self.records.stop()  # before the store closes: the last call records are written
        if self.centre is not None:
            await self.centre.close()
        if self.store is not None:
            await self.store.close()
        log.info("stopped")

    # ---------------------------------------------------------------------------- input
    def process(self, data: bytes, peer: Peer, counted: bool = False) -> None:
        if not counted:  # the overload edge counts each datagram as it reads it, served or shed
            self.metrics.sip_in(data)
        try:
            actions = self.core.receive(data, peer, self.now())
        except Exception:  # the core guards itself; this is the last line of defence
            log.exception("unhandled error processing a message from %s:%s", peer.host, peer.port)
            return
        self._execute(actions)
        if self.core.banned_now:
            self._new_bans()
        self._rearm()

    def _execute(self, actions: list) -> None:
        failed = 0
        if self.media_edge is not None:
            failed = self.media_edge.sync_ports()  # ports named in the SDP we are about to send are bound first
        for a in actions:
            if isinstance(a, Send):
                self._send(a.data, a.peer)
            elif isinstance(a, SwitchEvent):
                for fn in list(self.subscribers):
                    try:
                        fn(a)
                    except Exception:
                        log.exception("event subscriber failed")
            elif isinstance(a, PersistBindings):
                task = asyncio.ensure_future(self._persist(a))
                self._persisting.add(task)
                task.add_done_callback(self._persisting.discard)
            elif isinstance(a, WriteQueueLog):
                self.files(functools.partial(self._write_queue_log, a))
            elif isinstance(a, SaveVoicemailIndex):
                self.files(functools.partial(self._index_voicemail, a))
            elif isinstance(a, SpeechAudio):
                if self.speech is not None:
                    self.speech.feed(a.call, a.samples)
            elif isinstance(a, SpeechStart):
                if self.speech is not None:
                    self.speech.open(a.call, list(a.keywords))
            elif isinstance(a, SpeechStop):
                if self.speech is not None:
                    self.speech.close(a.call)
            elif isinstance(a, DiallerInput):
                from .outbound import wire
                wire(self, a)
            elif isinstance(a, SpeakRequest):
                from .tts import wire as speak
                speak(self, a)
            elif isinstance(a, ResolveTrunk):
                task = asyncio.ensure_future(self._locate_trunk(a))
                self._persisting.add(task)   # kept referenced until done (and awaited at stop)
                task.add_done_callback(self._persisting.discard)
        if failed and self.media_edge is not None:
            # a leg's port would not open (no spare was left): its caller gets 503 now, not after the next
            # tick, when the callee may have answered already
            self._on_media_events(self.media_edge.engine.take_events())

    def reload(self) -> Any:
        """Re-read the config file (SIGHUP, ``POST /api/admin/reload``): valid, it is applied to new calls
        while calls in progress go on (``softswitch.reload``); with an error, it is refused with the file,
        key and reason, and the running config stays. Returns the ``ReloadResult`` (logged)."""
        from .config import ConfigError, load_config
        from .reload import ReloadResult

        try:
            new = load_config(self.config.source)
        except ConfigError as e:
            result = ReloadResult(ok=False, error=str(e))
            log.error("%s", result.summary())
            return result
        try:
            result = self.core.reload(new, self.now())
        except Exception as e:  # a bug in applying: the tables may be half swapped; say so loudly
            log.exception("configuration reload failed while applying")
            return ReloadResult(ok=False, error=f"{self.config.source}: internal error while applying: {e}")
        if new.dns != self.config.dns:
            self.resolver = None   # [dns] changed: a new resolver (and cache) for the next look-up
        self.config = new
        self._execute(result.actions)
        self._rearm()
        for fn in list(self.on_reload):
            try:
                fn(new)
            except Exception:
                log.exception("reload subscriber failed")
        for warning in config_warnings(new, str(new.source)):
            log.warning("%s", warning)
        log.info("%s", result.summary())
        return result

    async def _locate_trunk(self, a: ResolveTrunk) -> None:
        """A trunk's host name looked up (RFC 3263, dnspython) off the core; the answer goes in as data."""
        from .trunks.locate import Located
        from .trunks.resolver import Resolver

        if self.resolver is None:
            self.resolver = Resolver.from_config(self.config.dns, clock=self.now)
        try:
            loc = await self.resolver.locate(a.query)
        except Exception as e:   # a bug or an odd answer: the trunk stays unresolved and is retried
            log.exception("looking up trunk %s (%s) failed", a.trunk, a.query.host)
            loc = Located((), self.now() + float(self.config.dns.negative_ttl), str(e))
        self._execute(self.core.trunk_located(a.trunk, a.query, loc, self.now()))
        self._rearm()

    LISTS_REFRESH = 60.0  # seconds: the store's block/warning lists as agents and tools change them

    async def _load_lists(self) -> None:
        """The store's block and warning lists into the core's caller lists, now and every minute (tools
        writing the database directly); an edit through the API refreshes them at once (``refresh_lists``)."""
        await self.refresh_lists()
        if self.loop is not None and self.store is not None:
            self._lists_timer = self.loop.call_later(self.LISTS_REFRESH,
                                                     lambda: asyncio.ensure_future(self._load_lists()))

    async def refresh_lists(self) -> None:
        """The store's block and warning lists into the core's caller lists now: the next call sees them."""
        assert self.centre is not None
        try:
            block = [(e.pattern, e.expires_at) for e in await self.centre.list_entries("block")]
            warn = [(e.pattern, e.expires_at) for e in await self.centre.list_entries("warn")]
        except Exception:
            log.exception("caller lists not loaded from the store")
        else:
            self.core.lists.set_store_entries(block, warn)

    def _speech_heard(self, call_id: Hashable, text: str) -> None:
        self._execute(self.core.speech_heard(str(call_id), text, self.now()))
        self._rearm()

    @staticmethod
    def _index_voicemail(a: SaveVoicemailIndex) -> None:
        try:
            add_message(a.voicemail_dir, a.message)
        except OSError as e:
            log.error("cannot index voicemail %s: %s", a.message.file, e)

    def _write_queue_log(self, a: WriteQueueLog) -> None:
        """queue_log lines, appended and flushed at once (reporting tools tail the file)."""
        try:
            if self._queue_log is None or self._queue_log.name != str(a.path):
                a.path.parent.mkdir(parents=True, exist_ok=True)
                self._queue_log = open(a.path, "a", encoding="utf-8")
            self._queue_log.write(a.line + "\n")
            self._queue_log.flush()
        except OSError as e:
            log.error("cannot write queue_log %s: %s", a.path, e)

    async def _persist(self, p: PersistBindings) -> None:
        """Registrations to the store, then their 200 OKs: the store's group-commit writer puts every
        REGISTER that arrives while a commit runs into the next one (one fsync per burst)."""
        adm = self.overload   # admission holds back new REGISTERs while commits lag (softswitch.overload)
        write = adm.write_started(self.now()) if adm is not None else None
        try:
            assert self.store is not None
            await self.store.save_bindings([self._wall_change(c) for c in p.changes])
        except Exception:
            log.exception("store write failed; registration not acknowledged")
            return  # no 200 OK: the phone retransmits or retries
        finally:
            if write is not None and adm is not None:
                adm.write_done(write, self.now())
        self._execute(self.core.after_persist(p, self.now()))
        self._rearm()

    # --------------------------------------------------------------------------- output
    def _send(self, data: bytes, peer: Peer) -> None:
        self.metrics.sip_out(data)
        if peer.transport == "udp":
            proto = self._udp.get("udp")
            if proto is not None and proto.transport is not None:
                proto.transport.sendto(data, (peer.host, peer.port))
            return
        conn_id = peer.conn_id if peer.conn_id in self._conns else self._conn_by_addr.get(
            (peer.transport, peer.host, peer.port))
        conn = self._conns.get(conn_id) if conn_id is not None else None
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            self.guard.sent(conn.conn_id, self.now())
            if conn.transport.get_write_buffer_size() > self.guard.limits.max_write_buffer:
                log.info("closing %s connection to %s:%s: it does not read what is sent (%d bytes waiting)",
                         conn.name, *conn.addr, conn.transport.get_write_buffer_size())
                conn.transport.abort()
            return
        key = (peer.transport, peer.host, peer.port)
        if key in self._connecting:
            self._connecting[key].append(data)
            return
        self._connecting[key] = [data]
        asyncio.ensure_future(self._connect(key))

    async def _connect(self, key: tuple[str, str, int]) -> None:
        transport_name, host, port = key
        ctx = None
        if transport_name == "tls":
            if self._tls_client is None:
                self._tls_client = ssl.create_default_context()
                self._tls_client.check_hostname = False
                self._tls_client.verify_mode = ssl.CERT_NONE  # phones present self-signed certificates
            ctx = self._tls_client
        loop = self.loop
        assert loop is not None
        try:
            _, proto = await asyncio.wait_for(loop.create_connection(
                lambda: _Stream(self, transport_name, self.config.sip.max_message_size), host, port, ssl=ctx), 5.0)
        except (OSError, asyncio.TimeoutError) as e:
            log.info("cannot connect to %s:%s:%d: %s", transport_name, host, port, e)
            self._connecting.pop(key, None)  # the transaction's timer reports the failure
            return
        for data in self._connecting.pop(key, []):
            proto.transport.write(data)  # type: ignore[union-attr]

    # ---------------------------------------------------------------------------- timer
    def _rearm(self) -> None:
        deadline = self.core.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = self.loop
        assert loop is not None
        self._timer_at = deadline
        self._timer = loop.call_at(loop.time() + max(0.0, deadline - self.now()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self._sync_wall()
            actions = self.core.on_timer(self.now())
        except Exception:
            log.exception("timer handling failed")
            actions = []
        self._execute(actions)
        self._rearm()
