"""The asyncio edge of the media engine: UDP sockets and the 20 ms tick.

Per-packet asyncio callbacks cost ~40 µs a packet on this machine (see /work/shared/bench/README.md);
instead, one task wakes every 20 ms, asks epoll which RTP/RTCP sockets have data (one ``poll(0)``
call, no reader callbacks registered with the loop), drains each of those with non-blocking
``recvfrom`` until EAGAIN, runs ``engine.tick`` and sends what it returns.

The engine does no I/O: ``allocate`` only reserves a port and ``release`` only frees it. ``sync_ports``
binds the reserved ports and closes the released ones (``engine.take_port_changes``); it runs at the
start of every tick and after the tick's events went to call control, and the switch's edge calls it
right after executing call control's actions, so a port named in an SDP answer is bound within the
same loop iteration.

Ports are bound ahead of need: ``sync_ports`` keeps ``spare_ports`` pairs bound (``engine.spare_to_bind``),
and ``allocate`` hands those out first, so the port an SDP names is one known to be open. A port that will
not bind because another program holds it (EADDRINUSE) or it is forbidden (EACCES) is quarantined for a
while and another one is tried; when the process has no file descriptors left (EMFILE/ENFILE, ENOBUFS,
ENOMEM) no port is blamed: the engine refuses new legs (503) until sockets open again, and media works as
soon as descriptors are free. Only a leg that found no spare can still fail (``engine.port_failed``: a
``PortFailed`` event tells call control to hang that leg up).

File work (recordings) runs on a ``media.jobs.ThreadRunner`` the edge gives the engine, never on the loop.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import select
import socket
import time
from typing import Callable

from .engine import Datagram, MediaEngine, MediaEvent, TickOutput
from .jobs import JobRunner, ThreadRunner

log = logging.getLogger("softswitch.media")
TICK = 0.020
DRAIN_ROUNDS = 64    # poll rounds per drain at most (each takes one datagram from every ready socket)
RELAY_STEP = 0.005    # while calls are relayed (media.relay): drain and forward this often between ticks
# Bind errors that say something about the port (another program holds it, or it is forbidden): that port is
# retired for a while. Any other error (EMFILE/ENFILE: too many open files, ENOBUFS, ENOMEM) is the process's
# state, not the port's, and retires nothing.
PORT_ERRORS = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EPERM, errno.EADDRNOTAVAIL})


class MediaEdge:
    def __init__(self, engine: MediaEngine, on_events: Callable[[list[MediaEvent]], None] | None = None,
                 bind_address: str | None = None, jobs: JobRunner | None = None, preload: bool = True):
        """``jobs``: where recording files are written (default: a ``ThreadRunner`` owned by the edge, unless
        the engine's recorder is threaded already). ``preload``: load the configured hold music now."""
        self.engine = engine
        self.on_events = on_events
        self.bind_address = bind_address or engine.config.bind_address
        self.socks: dict[int, socket.socket] = {}
        self._fd: dict[int, tuple[socket.socket, int]] = {}
        self._poll = select.epoll() if hasattr(select, "epoll") else None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.received = self.sent = self.send_drops = self.send_errors = 0
        self.ports_failed = 0
        self.socket_errors = 0                # binds that failed for want of descriptors (nothing retired)
        engine.spares_wanted = max(0, engine.config.spare_ports)
        self._own_jobs: ThreadRunner | None = None
        if jobs is not None:
            engine.use_jobs(jobs)
        elif not getattr(engine.jobs, "threaded", False):
            self._own_jobs = ThreadRunner("media-files")
            engine.use_jobs(self._own_jobs)
        if preload and engine.config.hold_music:
            try:
                engine.preload()
            except (OSError, RuntimeError, ValueError) as e:    # config validation saw the file; keep calls working
                log.error("hold music %s not loaded: %s", engine.config.hold_music, e)
        self.sync_ports()                         # ports reserved before the edge existed

    # ------------------------------------------------------------------ sockets
    def sync_ports(self) -> int:
        """Bind the ports the engine reserved and close the ones it released since the last call; a port
        that will not bind is handed back (``engine.port_failed``). Returns how many ports failed.

        Cheap when nothing changed. Call it right after call control ran (the switch's edge, after
        executing actions); ``step`` calls it at the start of every tick and after delivering events."""
        engine = self.engine
        to_open, to_close = engine.take_port_changes()
        for port in to_close:
            self._close(port)
        failed = 0
        for port in to_open:
            if port in self.socks:                # released and reserved again before a sync: still bound
                continue
            err = self._open(port)
            if err is not None:
                failed += 1
                retire = err.errno in PORT_ERRORS
                if not retire:
                    self.socket_errors += 1
                engine.port_failed(port, f"{type(err).__name__}: {err}", retire=retire)
        self.ports_failed += failed
        for _ in range(4 * max(1, engine.spares_wanted)):    # top the spares up (bounded: a range full of held ports)
            spare = engine.spare_to_bind()
            if spare is None:
                break
            err = self._open(spare)
            if err is None:
                engine.spare_bound(spare)
            else:
                retire = err.errno in PORT_ERRORS
                if not retire:
                    self.socket_errors += 1
                engine.spare_failed(spare, f"{type(err).__name__}: {err}", retire)
        return failed

    def _open(self, port: int) -> OSError | None:
        """Bind the RTP port and the RTCP port above it; the error on failure (nothing left open)."""
        opened = []
        try:
            for p in (port, port + 1):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                opened.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
                s.bind((self.bind_address, p))
                s.setblocking(False)
        except OSError as e:
            if e.errno in PORT_ERRORS:
                log.warning("media port %d unusable: %s (tried again later; another port is used)", port, e)
            else:
                log.warning("media port %d not opened: %s (no port retired; calls get 503 until sockets open)",
                            port, e)
            for s in opened:
                s.close()
            return e
        for p, s in zip((port, port + 1), opened):
            self.socks[p] = s
            self._fd[s.fileno()] = (s, p)
            if self._poll is not None:
                self._poll.register(s.fileno(), select.EPOLLIN)
        return None

    def _close(self, port: int) -> None:
        for p in (port, port + 1):
            s = self.socks.pop(p, None)
            if s is not None:
                self._fd.pop(s.fileno(), None)
                if self._poll is not None:
                    try:
                        self._poll.unregister(s.fileno())
                    except (OSError, ValueError):
                        pass
                s.close()

    # ------------------------------------------------------------------ one tick
    def drain(self, now: float) -> int:
        """Read every waiting datagram into the engine; returns how many.

        With epoll: rounds of one ``poll(0)`` and one ``recvfrom`` per ready socket, until a poll finds none
        (at most ``DRAIN_ROUNDS``: a flooded socket cannot hold the loop). A leg's socket holds one or two
        packets per tick, so this costs one poll per round instead of a failing ``recvfrom`` (and its
        BlockingIOError) per socket: ~30 % of the relay's socket calls (bench/MEDIA.md)."""
        batch: list[tuple[int, bytes, tuple[str, int], float]] = []
        add = batch.append
        clock = time.monotonic  # the tick's clock (loop.time()); per packet, so jitter is not quantised to 20 ms
        if self._poll is not None:
            fds, poll = self._fd, self._poll.poll
            for _ in range(DRAIN_ROUNDS):
                events = poll(0)
                if not events:
                    break
                for fd, _ev in events:
                    entry = fds.get(fd)
                    if entry is None:
                        continue
                    try:
                        data, addr = entry[0].recvfrom(2048)
                    except OSError:           # EAGAIN, or an ICMP error reported on this recv: next round
                        continue
                    add((entry[1], data, addr, clock()))
        else:
            for port, sock in list(self.socks.items()):
                recv = sock.recvfrom
                while True:
                    try:
                        data, addr = recv(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:           # ICMP port unreachable reported on a later recv: ignore
                        continue
                    add((port, data, addr, clock()))
        if batch:
            self.engine.datagrams_received(batch)    # one call: the common packets are taken in with numpy
        n = len(batch)
        self.received += n
        return n

    def send(self, out: TickOutput) -> None:
        self.send_datagrams(out.datagrams)

    def send_datagrams(self, datagrams: list[Datagram]) -> None:
        socks = self.socks
        for port, data, addr in datagrams:
            s = socks.get(port)
            if s is None:
                continue
            try:
                s.sendto(data, addr)
                self.sent += 1
            except BlockingIOError:
                self.send_drops += 1
            except OSError:
                self.send_errors += 1

    def relay_step(self, now: float) -> int:
        """Between ticks, while calls are on the fast path: take in what arrived and send what the relay
        forwarded at once, so a relayed packet waits at most ``RELAY_STEP`` (not a whole tick: 30 ms packets
        sent on a 20 ms grid would reach the far end with 10 ms of jitter). Returns the packets taken in."""
        n = self.drain(now)
        if n:
            self.send_datagrams(self.engine.take_datagrams())
        return n

    def step(self, now: float, due: float | None = None) -> TickOutput:
        self.sync_ports()                         # ports call control reserved/released since the last tick
        self.drain(now)
        out = self.engine.tick(now, due)
        self.send(out)
        if out.events and self.on_events is not None:
            self.on_events(out.events)
            self.sync_ports()                     # call control may have allocated or released legs
        return out

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        engine = self.engine
        while not self._stop.is_set():
            due += TICK
            while engine.relay_pairs and due - loop.time() > RELAY_STEP * 1.5:
                await asyncio.sleep(RELAY_STEP)
                if self._stop.is_set():
                    return
                try:
                    self.relay_step(loop.time())
                except Exception:             # as for the tick: media goes on
                    log.exception("media relay step failed")
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                if self._stop.is_set():
                    break
            elif delay < -10 * TICK:          # stalled (debugger, overload): skip ahead, do not burst
                due = loop.time()
            try:
                self.step(loop.time(), due)
            except Exception:                 # a bug in one tick must not stop all media
                log.exception("media tick failed")

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self.run(), name="media-tick")
        return self._task

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        self.engine.close(wait=False)             # recordings stopped; their files close in the runner
        self.engine.spares_wanted = 0
        self.sync_ports()
        for port in self.engine.ports.drop_spares():
            self._close(port)
        for port in [p for p in list(self.socks) if p % 2 == 0]:
            self._close(port)
        if self._poll is not None:
            self._poll.close()
        jobs = self.engine.jobs
        if jobs is not None:
            await asyncio.get_running_loop().run_in_executor(None, jobs.wait)   # not on the loop
        if self._own_jobs is not None:
            self._own_jobs.close()
