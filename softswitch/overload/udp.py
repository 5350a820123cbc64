"""The UDP edge with admission control: the switch's SIP socket, drained in batches.

asyncio's datagram transport reads one datagram per loop iteration and hands it on at once, so the
switch never sees how much is waiting: under a flood the backlog sits invisible in the kernel buffer and
everything is served first come, first served, long after its sender gave up. Here one reader callback
drains the socket (up to ``BATCH`` datagrams, each with the kernel's receive time from SO_TIMESTAMPNS) into
``Admission``, then serves what admission hands back for at most ``SLICE`` seconds before giving the loop
back (timers, the store's commits, the API, the media tick); what is left is served on the next turn,
after the next drain, so the newest datagrams are always in view. Sending is a plain non-blocking
``sendto`` (queued on EAGAIN). The object stands in for the asyncio transport the rest of the edge knows
(``sendto``, ``close``, ``is_closing``, ``get_extra_info``).

A probe every ``PROBE`` seconds measures the event loop's lag and reports it to admission.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import struct
import sys
import time
from collections import deque
from typing import Any, Callable, Protocol

from ..sip.transaction import Peer
from .admission import Admission, Answer



class _Counters(Protocol):
    def sip_in(self, data: bytes) -> None: ...
    def sip_out(self, data: bytes) -> None: ...


class Server(Protocol):
    """What the intake needs of ``softswitch.transport.Server`` (not imported: it imports this module)."""
    @property
    def metrics(self) -> _Counters: ...

log = logging.getLogger("softswitch.overload")

BATCH = 2000        # datagrams read per wake at most (the loop must not starve while a flood arrives)
SLICE = 0.008       # seconds of serving per loop turn (media ticks every 20 ms and must not start late)
PROBE = 0.1         # seconds between event-loop lag probes
# the kernel's receive time of each datagram (Linux; Python 3.11 lacks the constant): elsewhere, the read time
SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
_TIMESPEC = struct.Struct("@qq")
_ANC = socket.CMSG_SPACE(_TIMESPEC.size)
_MAX = 65535
OUT_CAP = 10_000    # datagrams queued for sending while the socket is full, at most (then dropped: UDP)


class UdpIntake:
    """One UDP listener of the switch, served through ``admission``."""

    def __init__(self, server: Server, admission: Admission, process: Callable[[bytes, Peer], None]):
        self.server = server
        self.admission = admission
        self.process = process          # Server.process: the full stack for one datagram
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timestamps = False
        self._scheduled = False
        self._closing = False
        self._out: deque[tuple[bytes, Any]] = deque()
        self._probe: asyncio.TimerHandle | None = None
        self._probe_due = 0.0

    # ------------------------------------------------------------------------ lifecycle
    def open(self, host: str, port: int, receive_buffer: Callable[[socket.socket], None]) -> int:
        """Bind ``host:port`` and start reading; returns the bound port."""
        self.loop = asyncio.get_running_loop()
        # a host name resolves as asyncio's endpoint would resolve it (first address)
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind(address)
            receive_buffer(sock)
            try:
                if SO_TIMESTAMPNS is None:
                    raise OSError("not Linux")
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                self._timestamps = True
            except OSError:
                log.info("no kernel receive timestamps: queueing delay measured from the read")
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._readable)
        self._schedule_probe()
        return int(sock.getsockname()[1])

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if self._probe is not None:
            self._probe.cancel()
        fig = self.admission.figures
        if any(fig.shed.values()):
            log.warning("overload totals since start: %d datagrams, %d served, %d overload episode(s); shed %s; "
                        "503s by rank: %s", fig.offered, fig.served, fig.overloads,
                        ", ".join(f"{n} {reason}" for reason, n in fig.shed.items() if n),
                        ", ".join(f"{n} {rank}" for rank, n in fig.refused.items() if n) or "none")
        if self.sock is not None and self.loop is not None:
            self.loop.remove_reader(self.sock.fileno())
            if self._out:
                self.loop.remove_writer(self.sock.fileno())
            self.sock.close()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if self.sock is None:
            return default
        if name == "socket":
            return self.sock
        if name == "sockname":
            return self.sock.getsockname()
        return default

    # ---------------------------------------------------------------------------- input
    def _readable(self) -> None:
        self._serve()

    def _drain(self) -> None:
        """Everything the kernel holds (up to ``BATCH``) into admission, with its receive time."""
        sock, adm = self.sock, self.admission
        if sock is None or self._closing:
            return
        now = time.monotonic()
        offset = time.time() - now       # kernel timestamps are wall clock; admission works on monotonic
        ts = self._timestamps
        unpack = _TIMESPEC.unpack
        offer, count_in = adm.offer, self.server.metrics.sip_in   # per datagram: no attribute lookups
        for _ in range(BATCH):
            try:
                if ts:
                    data, anc, _flags, addr = sock.recvmsg(_MAX, _ANC)
                    arrived = now
                    if anc:   # the one ancillary item asked for (SO_TIMESTAMPNS is the only option set)
                        cdata = anc[0][2]
                        if len(cdata) >= 16:
                            sec, ns = unpack(cdata[:16])
                            arrived = min(now, sec + ns * 1e-9 - offset)
                else:
                    data, addr = sock.recvfrom(_MAX)
                    arrived = now
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:   # an ICMP error reported on the socket: not fatal
                log.debug("udp receive error: %s", e)
                continue
            if data:
                count_in(data)
                offer(data, addr[:2], arrived, now)

    def _serve(self) -> None:
        """Drain the socket, then serve for at most ``SLICE``; come back on the next loop turn if work is
        left (each turn drains again first, so the newest datagrams are always in view)."""
        self._scheduled = False
        adm = self.admission
        start = time.perf_counter()
        self._drain()
        deadline = start + SLICE
        now = time.monotonic()
        count_out = self.server.metrics.sip_out
        while True:
            act = adm.next(now)
            if act is None:
                break
            if isinstance(act, Answer):   # a 503 (or the same answer again): from the socket it came to
                count_out(act.data)
                self.sendto(act.data, act.source)
            else:
                self.process(act.data, Peer("udp", act.source[0], act.source[1]))
            if time.perf_counter() > deadline:
                break
            now = time.monotonic()
        now = time.monotonic()
        adm.busy(time.perf_counter() - start, now)
        if adm.ready(now) and not self._scheduled and not self._closing and self.loop is not None:
            self._scheduled = True
            self.loop.call_soon(self._serve)

    # --------------------------------------------------------------------------- output
    def sendto(self, data: bytes, addr: Any) -> None:
        sock = self.sock
        if sock is None or self._closing:
            return
        if self._out:
            if len(self._out) < OUT_CAP:
                self._out.append((data, addr))
            return
        try:
            sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            self._out.append((data, addr))
            assert self.loop is not None
            self.loop.add_writer(sock.fileno(), self._writable)
        except OSError as e:
            log.debug("udp send to %s failed: %s", addr, e)

    def _writable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        while self._out:
            data, addr = self._out[0]
            try:
                sock.sendto(data, addr)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log.debug("udp send to %s failed: %s", addr, e)
            self._out.popleft()
        assert self.loop is not None
        self.loop.remove_writer(sock.fileno())

    # ---------------------------------------------------------------------------- probe
    def _schedule_probe(self) -> None:
        if self.loop is None or self._closing:
            return
        self._probe_due = self.loop.time() + PROBE
        self._probe = self.loop.call_at(self._probe_due, self._on_probe)

    def _on_probe(self) -> None:
        if self.loop is None:
            return
        self.admission.lag(max(0.0, self.loop.time() - self._probe_due), time.monotonic())
        if self.admission.pending and not self._scheduled:
            self._serve()
        self._schedule_probe()
