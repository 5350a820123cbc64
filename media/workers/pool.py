"""The controller: the media facade call control talks to when ``[media] workers`` ≥ 1.

``WorkerMedia`` has the ``MediaEngine`` methods the B2BUA uses. Per worker it keeps a *shadow* engine that
never ticks and owns no socket: it allocates the worker's ports (its ``rtp_ports`` is the worker's slice),
builds offers and answers, and keeps what call control reads synchronously (``holding``, the codec); every
change of a leg's media goes to the worker as a command. The two legs of a call go to the same worker (a
bridge, the fast path and recording need both in one engine), a new call to the live worker with fewest legs.

A worker's death (EOF on its channel): every leg it carried gets a ``MediaLost`` event (call control hangs
the call up like an RTP time-out), its legs are released in the shadow (ports free for the new worker, which
binds them afresh: the kernel closed the dead one's sockets), and a new worker starts after a back-off
(0.5 s doubling to 10 s; reset after 30 s of life). Commands for a dead worker's legs are dropped.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..engine import Endpoint, LegStats, MediaConfig, MediaEngine, MediaEvent, MediaLost, RecordingFailed, TickStats
from ..g711 import ULAW
from ..mixer import Bridge
from ..sdp import StreamParams
from ..playback import Sound, SoundBank
from ..edge import PORT_ERRORS
from ..ports import PortsExhausted, parse_port_range
from . import messages as W
from .channel import FrameDecoder, FrameError, encode

log = logging.getLogger("softswitch.media")
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
# a worker reports every second (``worker.STATS_EVERY``); one silent this long has a stuck loop or tick and is
# killed (its calls end as for a crash); before its first message it may take longer (imports on a busy host)
HUNG_AFTER = 5.0
HUNG_AFTER_START = 30.0


def split_ports(spec: str, n: int) -> list[str]:
    """``rtp_ports`` cut into ``n`` slices of whole even/odd pairs ("10000-20000", 2 → two 2,500-pair slices)."""
    low, high = parse_port_range(spec)
    first = low + (low & 1)
    pairs = len(range(first, high, 2))        # as PortAllocator counts them (RTCP = RTP + 1 <= high)
    if pairs < n:
        raise ValueError(f"rtp_ports {spec} has {pairs} pair(s): too few for {n} media worker(s)")
    out = []
    for i in range(n):
        a = first + 2 * (pairs * i // n)
        b = first + 2 * (pairs * (i + 1) // n)
        out.append(f"{a}-{b - 1}")               # the last pair's RTCP port is b - 1
    return out


@dataclass
class RemoteRecording:
    """What call control holds for a recording running in a worker (it reads ``path``)."""
    id: int
    path: Path
    call_id: str
    worker: int
    generation: int


@dataclass
class WorkerSlot:
    index: int
    config: MediaConfig
    shadow: MediaEngine
    generation: int = 0
    alive: bool = False
    proc: subprocess.Popen[bytes] | None = None
    writer: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None
    started: float = 0.0
    backoff: float = BACKOFF_FIRST
    restarts: int = 0
    received: int = 0
    sent: int = 0
    heard: float = 0.0                  # monotonic time of its last message (or of its start)
    heard_any: bool = False             # it has sent something since it started
    hung: str = ""                      # why the watchdog killed it (the death line says so)
    counters: dict[str, int] = field(default_factory=dict)    # W.COUNTERS as last reported by this generation
    gen_of: dict[int, int] = field(default_factory=dict)     # leg -> generation it was allocated in
    sounds: set[str] = field(default_factory=set)            # AddSound sent to this generation


class _Ports:
    """The pool's port figures, summed over the shadows (ops checks and the shutdown line read these)."""

    def __init__(self, pool: "WorkerMedia"):
        self._pool = pool

    @property
    def in_use(self) -> int:
        return sum(s.shadow.ports.in_use for s in self._pool.slots)

    @property
    def available(self) -> int:
        return sum(s.shadow.ports.available for s in self._pool.slots if s.alive)

    @property
    def capacity(self) -> int:
        return sum(s.shadow.ports.capacity for s in self._pool.slots)

    @property
    def quarantined(self) -> frozenset[int]:
        return frozenset()


class WorkerMedia:
    """The media facade over worker processes (the B2BUA's ``media``)."""

    remote = True

    def __init__(self, config: MediaConfig, n: int, log_format: str = "plain"):
        """``log_format``: the switch's ``[log] format``, so the workers' lines read like its own."""
        self.config = config
        self.log_format = log_format
        self.bank = SoundBank()
        self.stats = TickStats()
        self.slots: list[WorkerSlot] = []
        for i, rng in enumerate(split_ports(config.rtp_ports, n)):
            cfg = dataclasses.replace(config, rtp_ports=rng, workers=0, spare_ports=0)
            shadow = MediaEngine(cfg, bank=self.bank)
            self.slots.append(WorkerSlot(i, cfg, shadow))
        self.ports = _Ports(self)
        self._next_id = 1
        self._next_bridge = 1
        self._next_playback = 1
        self._next_rec = 1
        self._worker_of: dict[int, int] = {}          # leg -> worker index
        self._call_worker: dict[str, tuple[int, int]] = {}   # call id -> (worker, legs of it allocated)
        self._bridge_worker: dict[int, int] = {}
        self._trunks: dict[int, list[tuple[Endpoint, Endpoint]]] = {}   # leg -> its (near, far) trunk pairs
        self._partner: dict[int, Endpoint] = {}          # trunk leg -> the other half (another worker)
        self._stats: dict[int, LegStats] = {}
        self._events: list[MediaEvent] = []
        self.on_events: Callable[[list[MediaEvent]], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.restarts = 0
        self._retired: dict[str, int] = {}             # counters of worker generations that died or stopped
        self._recordings: dict[int, RemoteRecording] = {}   # running, by id: a RecordingFailed names one
        self._last_check: float | None = None          # check_hung's last run

    # ------------------------------------------------------------------ the workers' counters (metrics)
    def _counter(self, name: str) -> int:
        """A worker counter summed over the live generations and the ones before them (so it never goes back)."""
        return self._retired.get(name, 0) + sum(s.counters.get(name, 0) for s in self.slots)

    @property
    def relay_pairs(self) -> int:
        return sum(s.counters.get("relay_pairs", 0) for s in self.slots if s.alive)

    @property
    def relayed_packets(self) -> int:
        return self._counter("relayed_packets")

    @property
    def dropped_packets(self) -> int:
        return self._counter("dropped_packets")

    @property
    def foreign_packets(self) -> int:
        return self._counter("foreign_packets")

    @property
    def srtp_rejected(self) -> int:
        return self._counter("srtp_rejected")

    @property
    def send_failures(self) -> int:
        return self._counter("send_failures")

    # ------------------------------------------------------------------ engine surface (call control)
    @property
    def endpoints(self) -> dict[int, Endpoint]:
        out: dict[int, Endpoint] = {}
        for s in self.slots:
            out.update(s.shadow.endpoints)
        return out

    def _pick(self, call_id: str) -> WorkerSlot:
        if call_id and call_id in self._call_worker:
            i = self._call_worker[call_id][0]
            if self.slots[i].alive:
                return self.slots[i]
        live = [s for s in self.slots if s.alive]
        if not live:
            raise PortsExhausted("no media worker is running (one is being restarted)")
        return min(live, key=lambda s: (len(s.shadow.endpoints), s.index))

    def allocate(self, call_id: str = "", label: str = "", source: str | None = None,
                 use_reserve: bool = True, srtp: str = "off", worker: int | None = None,
                 codecs: Sequence[str] = ()) -> Endpoint:
        slot = self._pick(call_id) if worker is None else self.slots[worker]
        if not slot.alive:
            raise PortsExhausted(f"media worker {slot.index} is being restarted")
        try:
            port = self._usable_port(slot, use_reserve)
        except PortsExhausted:
            # a call's first leg may go to any live worker with a port (its later legs follow it); a later leg
            # stays with its call: a bridge across workers would need a trunk port in the full one anyway
            placed = call_id in self._call_worker and self.slots[self._call_worker[call_id][0]].alive
            others = [s for s in self.slots if s.alive and s is not slot]
            if worker is not None or placed or not others:
                raise
            for other in sorted(others, key=lambda s: (len(s.shadow.endpoints), s.index)):
                try:
                    port = self._usable_port(other, use_reserve)
                except PortsExhausted:
                    continue
                slot = other
                break
            else:
                raise
        slot.shadow._next_id = self._next_id              # one id space over all workers
        # SDP is negotiated on the shadow (codecs restrict its offers and answers); the worker gets the result
        ep = slot.shadow.allocate(call_id, label, source, use_reserve, srtp, port=port, codecs=codecs)
        slot.shadow.take_port_changes()                    # the shadow binds nothing
        self._next_id += 1
        self._worker_of[ep.id] = slot.index
        slot.gen_of[ep.id] = slot.generation
        if call_id:
            w, n = self._call_worker.get(call_id, (slot.index, 0))
            self._call_worker[call_id] = (slot.index, n + 1)
        self._send(slot, W.Allocate(ep.id, ep.port, call_id, label, source, srtp))
        log.debug("media: leg %d (%s %s) on worker %d, port %d", ep.id, call_id, label, slot.index, ep.port)
        return ep

    def _usable_port(self, slot: WorkerSlot, use_reserve: bool) -> int:
        """A port of the worker's slice that binds now: the worker has no spares to offer across the channel,
        so the controller test-binds the pair (and closes it again: the worker binds it within milliseconds)
        and quarantines a port another program holds, as the in-process edge does with its spares — an SDP
        should never name a port that will not open. Raises PortsExhausted."""
        ports = slot.shadow.ports
        now = time.monotonic()
        for _ in range(16):
            port, _bound = ports.allocate(now, use_reserve)
            err = probe_bind(self.config.bind_address or self.config.address, port)
            if err is None:
                ports.release(port)
                return port                              # taken again by allocate(port=) at once
            if err.errno in PORT_ERRORS:
                log.warning("media: RTP port %d unusable (%s): not handed out for %.0f s", port, err,
                            ports.retry_after)
                ports.quarantine(port, now)
            else:
                ports.unbindable(port)
                raise PortsExhausted(f"no RTP socket can be opened now: {err}")
        raise PortsExhausted("no bindable RTP port found in 16 tries")

    def release(self, ep: Endpoint) -> None:
        if ep.released:
            return
        self._drop_trunks(ep)
        slot = self._slot(ep)
        self._to(ep, W.Release(ep.id))
        slot.shadow.release(ep)
        slot.shadow.take_port_changes()
        slot.shadow.take_datagrams()
        self._forget(ep)

    def _forget(self, ep: Endpoint) -> None:
        i = self._worker_of.pop(ep.id, None)
        if i is not None:
            self.slots[i].gen_of.pop(ep.id, None)
        self._stats.pop(ep.id, None)
        if ep.call_id in self._call_worker:
            w, n = self._call_worker[ep.call_id]
            if n <= 1:
                del self._call_worker[ep.call_id]
            else:
                self._call_worker[ep.call_id] = (w, n - 1)

    def offer(self, ep: Endpoint, direction: str = "sendrecv", prefer: str | Endpoint | None = None) -> str:
        return self._slot(ep).shadow.offer(ep, direction, prefer)

    def accept_answer(self, ep: Endpoint, answer: str | bytes, offered_direction: str = "sendrecv") -> None:
        self._slot(ep).shadow.accept_answer(ep, answer, offered_direction)
        self._apply(ep)

    def answer(self, ep: Endpoint, offer: str | bytes) -> str:
        body = self._slot(ep).shadow.answer(ep, offer)
        self._apply(ep)
        return body

    def _apply(self, ep: Endpoint) -> None:
        if ep.params is not None:
            self._to(ep, W.Apply(ep.id, ep.params))

    def bridge(self, *eps: Endpoint) -> Bridge:
        """Legs in one worker are bridged there; legs in other workers reach the bridge's worker (the one with
        most of them) over a *trunk*: a pair of plain RTP legs, one in each worker, sending to each other."""
        b = Bridge(self._next_bridge)
        self._next_bridge += 1
        if not eps or any(e.id not in self._worker_of for e in eps):
            return b
        by_worker: dict[int, list[Endpoint]] = {}
        for e in eps:
            by_worker.setdefault(self._worker_of[e.id], []).append(e)
        home = max(by_worker, key=lambda i: len(by_worker[i]))
        self._bridge_worker[b.id] = home
        members = [e.id for e in by_worker[home]]
        for e in eps:
            if self._worker_of[e.id] != home:
                near, far = self._trunk(e, home)
                self._to(e, W.MakeBridge(b.id, (e.id, near.id)))
                members.append(far.id)
        self._send(self.slots[home], W.MakeBridge(b.id, tuple(members)))
        return b

    def join(self, b: Bridge, ep: Endpoint, mode: str = "full", whisper_to: Endpoint | Iterable[Endpoint] = ()) -> None:
        home = self._bridge_worker.get(b.id)
        if home is None or self._worker_of.get(ep.id) in (home, None):
            self._to(ep, W.Join(b.id, ep.id, mode, _ids(whisper_to)))
            return
        near, far = self._trunk(ep, home)                # a leg of another worker (a supervisor's): over a trunk
        self._to(ep, W.MakeBridge(b.id, (ep.id, near.id)))
        self._to(far, W.Join(b.id, far.id, mode, _ids(whisper_to)))

    def set_mode(self, b: Bridge, ep: Endpoint, mode: str, whisper_to: Endpoint | Iterable[Endpoint] = (),
                 **_: Any) -> None:
        far = self._far(ep, self._bridge_worker.get(b.id))
        target = far if far is not None else ep
        self._to(target, W.SetMode(b.id, target.id, mode, _ids(whisper_to)))

    def leave(self, ep: Endpoint) -> None:
        self._drop_trunks(ep)
        self._to(ep, W.Leave(ep.id))

    def _trunk(self, ep: Endpoint, home: int) -> tuple[Endpoint, Endpoint]:
        """A trunk between ``ep``'s worker and ``home``: (near: in ep's worker, far: in home)."""
        pair = []
        for i in (self._worker_of[ep.id], home):
            leg = self.allocate("", f"trunk {ep.id}", source=self.config.address, worker=i)
            pair.append(leg)
        near, far = pair
        for a, z in ((near, far), (far, near)):
            self._slot(a).shadow._apply(a, StreamParams(self.config.address, z.port, ULAW, 0, None, 20,
                                                         "sendrecv", "sendrecv"))
            self._apply(a)
        self._partner[near.id], self._partner[far.id] = far, near
        self._trunks.setdefault(ep.id, []).append((near, far))
        return near, far

    def _far(self, ep: Endpoint, home: int | None) -> Endpoint | None:
        for _near, far in self._trunks.get(ep.id, ()):
            if self._worker_of.get(far.id) == home:
                return far
        return None

    def _drop_trunks(self, ep: Endpoint) -> None:
        for near, far in self._trunks.pop(ep.id, ()):
            for t in (near, far):
                self._partner.pop(t.id, None)
                self.release(t)

    def hold(self, ep: Endpoint, on: bool = True) -> None:
        ep.held = on                   # the shadow's endpoint says so too (the API's on_hold reads it)
        self._to(ep, W.Hold(ep.id, on))

    def load(self, path: str) -> Sound:
        return self.bank.load(path)

    def preload(self, paths: Iterable[str] = ()) -> list[Sound]:
        return [self.bank.load(p) for p in paths]

    def _sound(self, ep: Endpoint, sound: Sound | str) -> str:
        """The name the worker knows the sound by; a sound made here (no file behind it) is sent first."""
        snd = self.bank.lookup(sound)          # KeyError for a sound not loaded, as the engine's play
        name = snd.name
        slot = self._slot(ep)
        if name not in slot.sounds and (name.startswith(("<", "seq:")) or not os.path.isfile(name)):
            samples = self.bank.pcm[snd.offset:snd.offset + snd.length].copy()
            self._to(ep, W.AddSound(name, samples))
            slot.sounds.add(name)
        return name

    def play(self, ep: Endpoint, sound: Sound | str, loop: bool = False, mix: bool = False) -> int:
        pb = self._next_playback
        self._next_playback += 1
        self._to(ep, W.Play(ep.id, self._sound(ep, sound), loop, mix, pb))
        return pb

    def stop_playback(self, ep: Endpoint) -> None:
        self._to(ep, W.StopPlayback(ep.id))

    def listen(self, ep: Endpoint, on: bool = True) -> None:
        self._to(ep, W.Listen(ep.id, on))

    def play_music(self, ep: Endpoint, sound: Sound | str | None = None) -> None:
        self._to(ep, W.Music(ep.id, self._sound(ep, sound) if sound is not None else None))

    def stop_music(self, ep: Endpoint) -> None:
        self._to(ep, W.StopMusic(ep.id))

    def send_dtmf(self, ep: Endpoint, digits: str, duration_ms: int = 100) -> None:
        self._to(ep, W.SendDtmf(ep.id, digits, duration_ms))

    def start_recording(self, call_id: str, left: Endpoint | list[Endpoint], right: Endpoint | list[Endpoint],
                        parties: dict[str, str] | None = None, name: str | None = None) -> RemoteRecording:
        lt = [left] if isinstance(left, Endpoint) else list(left)
        rt = [right] if isinstance(right, Endpoint) else list(right)
        rid = self._next_rec
        self._next_rec += 1
        fname = name or f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{_safe(call_id)}-w{rid}.wav"
        path = (Path(self.config.recordings_dir) / fname).absolute()
        first = (lt + rt)[0]
        slot = self._slot(first)
        rec = RemoteRecording(rid, path, call_id, slot.index, slot.generation)
        self._recordings[rid] = rec
        self._to(first, W.StartRecording(rid, call_id, tuple(e.id for e in lt), tuple(e.id for e in rt), parties,
                                         str(path)))
        return rec

    def stop_recording(self, rec: RemoteRecording) -> None:
        self._recordings.pop(rec.id, None)
        slot = self.slots[rec.worker]
        if slot.alive and slot.generation == rec.generation:
            self._send(slot, W.StopRecording(rec.id))

    def leg_stats(self, ep: Endpoint) -> LegStats:
        """The last statistics the worker reported for the leg (every second, and at release)."""
        st = self._stats.get(ep.id)
        if st is not None:
            return st
        return LegStats(ep.codec, ep.remote, 0, 0, 0.0, 0, 0, 0, 0, 0, None, None, None)

    def take_events(self) -> list[MediaEvent]:
        ev, self._events = self._events, []
        return ev

    # ------------------------------------------------------------------ commands
    def _slot(self, ep: Endpoint) -> WorkerSlot:
        return self.slots[self._worker_of.get(ep.id, _shadow_index(self, ep))]

    def _to(self, ep: Endpoint, m: Any) -> None:
        i = self._worker_of.get(ep.id)
        if i is None or ep.released:
            return
        slot = self.slots[i]
        if slot.gen_of.get(ep.id) != slot.generation:
            return                                      # a leg of a worker that died: nothing to tell
        self._send(slot, m)

    def _send(self, slot: WorkerSlot, m: Any, leg: int | None = None) -> None:
        if slot.alive and slot.writer is not None and not slot.writer.is_closing():
            slot.writer.write(encode(m))

    # ------------------------------------------------------------------ processes
    async def start(self, on_events: Callable[[list[MediaEvent]], None]) -> None:
        self.on_events = on_events
        self._loop = asyncio.get_running_loop()
        log.info("media: %d worker process(es), RTP ports %s split %s", len(self.slots), self.config.rtp_ports,
                 ", ".join(s.config.rtp_ports for s in self.slots))
        for s in self.slots:
            await self._spawn(s)

    async def _spawn(self, slot: WorkerSlot) -> None:
        if self._stopping:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            level = str(logging.getLogger().getEffectiveLevel())     # the switch's [log] level
            proc = subprocess.Popen([sys.executable, "-m", "media.workers.worker", str(theirs.fileno()), level,
                                     self.log_format],
                                    pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
        except OSError as e:
            ours.close()
            theirs.close()
            log.error("media worker %d could not start: %s", slot.index, e)
            self._schedule_restart(slot)
            return
        theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        slot.proc, slot.writer, slot.alive = proc, writer, True
        slot.generation += 1
        slot.sounds = set()
        slot.started = slot.heard = time.monotonic()
        slot.heard_any, slot.hung = False, ""
        writer.write(encode(W.Init(slot.index, slot.config)))
        log.info("media worker %d started (pid %d), RTP ports %s", slot.index, proc.pid, slot.config.rtp_ports)
        assert self._loop is not None
        slot.task = self._loop.create_task(self._read(slot, reader, slot.generation))

    async def _read(self, slot: WorkerSlot, reader: asyncio.StreamReader, gen: int) -> None:
        decoder = FrameDecoder()
        why = "channel closed"
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                self._deliver(slot, decoder.feed(data))
        except FrameError as e:
            why = f"bad frame: {e}"
        except (ConnectionError, OSError) as e:
            why = f"channel error: {e}"
        if slot.generation == gen:
            self._died(slot, f"hung, {slot.hung}" if slot.hung else why)

    def _deliver(self, slot: WorkerSlot, msgs: list[Any], now: float | None = None) -> None:
        slot.heard = time.monotonic() if now is None else now
        slot.heard_any = True
        events: list[MediaEvent] = []
        for m in msgs:
            if isinstance(m, W.Event):
                ev = m.event
                if isinstance(ev, RecordingFailed):      # the worker names the recording by our id
                    rec = self._recordings.pop(ev.recording, None)   # type: ignore[call-overload]
                    if rec is not None:
                        events.append(dataclasses.replace(ev, recording=rec))
                    continue
                ep = slot.shadow.endpoints.get(ev.endpoint)
                if ep is None or slot.gen_of.get(ep.id) != slot.generation:
                    continue
                events.append(dataclasses.replace(ev, endpoint=ep))
            elif isinstance(m, W.Stats):
                slot.received, slot.sent = m.received, m.sent
                slot.counters = dict(m.counters)
                for dt in m.ticks:
                    self.stats.add(dt, None)
                self.stats.late_ticks = self._counter("late_ticks")
                for leg, st in m.legs:
                    if leg in slot.gen_of:
                        self._stats[leg] = st
            elif isinstance(m, W.Ready):
                slot.backoff = slot.backoff if time.monotonic() - slot.started < STABLE_AFTER else BACKOFF_FIRST
        if events:
            self._emit(events)

    def _emit(self, events: list[MediaEvent]) -> None:
        if self.on_events is not None:
            self.on_events(events)
        else:
            self._events.extend(events)

    def check_hung(self, now: float) -> list[int]:
        """Kill every live worker that has said nothing for ``HUNG_AFTER`` s (``HUNG_AFTER_START`` before its
        first message): a stopped or spinning worker would otherwise hold its calls' media silently. The
        channel's EOF then runs the usual death path (calls ended with records, restart). Returns the indexes."""
        killed: list[int] = []
        last, self._last_check = self._last_check, now
        if last is not None and now - last > HUNG_AFTER / 2:
            # this process itself stalled (the checks run every second): the workers' reports may be waiting
            # unread in the channel — give them the time back instead of killing healthy workers
            for slot in self.slots:
                slot.heard = max(slot.heard, now)
            return killed
        for slot in self.slots:
            limit = HUNG_AFTER if slot.heard_any else HUNG_AFTER_START
            if slot.alive and slot.proc is not None and not slot.hung and now - slot.heard > limit:
                slot.hung = f"no report for {now - slot.heard:.1f} s: killed"
                log.error("media worker %d (pid %d) has sent nothing for %.1f s: killing it", slot.index,
                          slot.proc.pid, now - slot.heard)
                try:
                    slot.proc.kill()
                except OSError:
                    pass
                killed.append(slot.index)
        return killed

    def _retire(self, slot: WorkerSlot) -> None:
        """A generation's counters move to the retired sums (its successor reports from zero)."""
        for k, v in [*slot.counters.items(), ("received", slot.received), ("sent", slot.sent)]:
            if k != "relay_pairs":
                self._retired[k] = self._retired.get(k, 0) + v
        slot.counters = {}
        slot.received = slot.sent = 0

    def _died(self, slot: WorkerSlot, why: str) -> None:
        slot.alive = False
        self._retire(slot)
        self._recordings = {k: r for k, r in self._recordings.items() if r.worker != slot.index}
        if slot.writer is not None:
            slot.writer.close()
        code = None
        if slot.proc is not None:
            try:
                code = slot.proc.wait(timeout=0.5)     # EOF: it is gone or going (a hung one is killed)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                code = slot.proc.wait()
        if self._stopping:
            return
        lost = list(slot.shadow.endpoints.values())
        if time.monotonic() - slot.started > STABLE_AFTER:
            slot.backoff = BACKOFF_FIRST
        log.error("media worker %d (pid %s) died (%s, exit %s): %d leg(s) lost; restarting in %.1f s",
                  slot.index, slot.proc.pid if slot.proc else "?", why, code, len(lost), slot.backoff)
        self._emit([MediaLost(ep, f"media worker {slot.index} died") for ep in lost])
        for ep in lost:                         # whatever call control did not release: free it now
            partner = self._partner.pop(ep.id, None)
            if partner is not None:             # a trunk's other half, in a live worker
                self._partner.pop(partner.id, None)
                self.release(partner)
            if not ep.released:
                slot.shadow.release(ep)
                self._forget(ep)
        slot.shadow.take_port_changes()
        slot.shadow.take_datagrams()
        self._schedule_restart(slot)

    def _schedule_restart(self, slot: WorkerSlot) -> None:
        if self._stopping or self._loop is None:
            return
        delay = slot.backoff
        slot.backoff = min(BACKOFF_MAX, slot.backoff * 2)
        slot.restarts += 1
        self.restarts += 1

        def again() -> None:
            if not self._stopping and self._loop is not None:
                self._loop.create_task(self._spawn(slot))
        self._loop.call_later(delay, again)

    async def stop(self) -> None:
        """Tell every worker to shut down (each logs its own shutdown line) and wait for it."""
        self._stopping = True
        for s in self.slots:
            if s.alive and s.writer is not None:
                s.writer.write(encode(W.Shutdown()))
                try:
                    await s.writer.drain()
                except (ConnectionError, OSError):
                    pass
        for s in self.slots:
            if s.proc is not None:
                deadline = time.monotonic() + 5.0
                while s.proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if s.proc.poll() is None:
                    s.proc.kill()
                    s.proc.wait()
            if s.writer is not None:
                s.writer.close()
            if s.task is not None:
                s.task.cancel()
            s.alive = False


class WorkerEdge:
    """Stands where ``MediaEdge`` stands in the switch (``transport``, ``metrics``): the pool's edge."""

    def __init__(self, pool: WorkerMedia, on_events: Callable[[list[MediaEvent]], None]):
        self.engine = pool
        self.on_events = on_events
        self._task: asyncio.Task[None] | None = None
        self.send_errors = 0                # the workers' send drops and errors are summed in send_drops
        self.ports_failed = self.socket_errors = 0

    async def start_async(self) -> None:
        await self.engine.start(self.on_events)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Alive while the switch runs (systemd's watchdog looks at it); kills hung workers (``check_hung``)."""
        while True:
            await asyncio.sleep(1.0)
            self.engine.check_hung(time.monotonic())

    @property
    def received(self) -> int:
        """RTP/RTCP packets the workers received (as last reported, every second; dead workers' included)."""
        return self.engine._retired.get("received", 0) + sum(s.received for s in self.engine.slots)

    @property
    def sent(self) -> int:
        return self.engine._retired.get("sent", 0) + sum(s.sent for s in self.engine.slots)

    @property
    def send_drops(self) -> int:
        return self.engine.send_failures

    def sync_ports(self) -> int:
        return 0

    async def stop(self) -> None:
        await self.engine.stop()
        if self._task is not None:
            self._task.cancel()


def probe_bind(address: str, port: int) -> OSError | None:
    """Bind the RTP port and the RTCP port above it and close them again: the error, or None."""
    opened = []
    try:
        for p in (port, port + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            opened.append(s)
            s.bind((address, p))
        return None
    except OSError as e:
        return e
    finally:
        for s in opened:
            s.close()


def _ids(eps: Endpoint | Iterable[Endpoint]) -> tuple[int, ...]:
    return (eps.id,) if isinstance(eps, Endpoint) else tuple(e.id for e in eps)


def _shadow_index(pool: WorkerMedia, ep: Endpoint) -> int:
    for s in pool.slots:
        if ep.id in s.shadow.endpoints:
            return s.index
    return 0


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)[:40]
