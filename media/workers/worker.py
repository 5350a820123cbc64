"""The media worker process: one ``MediaEngine`` + ``MediaEdge`` driven by commands from the controller.

Started by ``pool.WorkerMedia`` as ``python -m media.workers.worker FD`` with one end of a Unix socket pair
inherited as FD. It reads ``messages`` frames, executes them on its engine, and sends back the engine's events
(keyed by the controller's leg ids) and leg statistics every second. EOF on the channel (the switch went
away) or ``Shutdown`` ends it; SIGINT is ignored (a Ctrl-C on the switch reaches the whole process group,
and the controller decides when media stops).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys
from typing import Any

from ..edge import MediaEdge
from ..engine import Endpoint, MediaEngine, MediaEvent, RecordingFailed
from ..recording import Recording
from . import messages as W
from .channel import FrameDecoder, encode

log = logging.getLogger("softswitch.media")
STATS_EVERY = 1.0


class Worker:
    """Sans-socket core of the worker: executes commands on an engine, translates its events."""

    def __init__(self, engine: MediaEngine, send: Any):
        self.engine = engine
        self.send = send
        self.eps: dict[int, Endpoint] = {}              # controller leg id -> our endpoint
        self.legs: dict[int, int] = {}                  # our endpoint id -> controller leg id
        self.bridges: dict[int, Any] = {}
        self.recs: dict[int, Recording] = {}
        self.rec_ids: dict[int, int] = {}               # id(our Recording) -> controller id
        self.playbacks: dict[tuple[int, int], int] = {}  # (leg, engine playback) -> controller playback
        self.edge: MediaEdge | None = None              # its packet counters go out with the stats
        self.ticks_reported = 0                         # engine.stats.ticks at the last Stats

    def handle(self, m: Any) -> bool:
        """Execute one command; False for Shutdown."""
        e = self.engine
        if isinstance(m, W.Shutdown):
            return False
        if isinstance(m, W.Allocate):
            ep = e.allocate(m.call_id, m.label, source=m.source, srtp=m.srtp, port=m.port)
            self.eps[m.leg] = ep
            self.legs[ep.id] = m.leg
            return True
        if isinstance(m, W.AddSound):
            e.bank.add(m.name, m.samples)
            return True
        if isinstance(m, W.MakeBridge):
            eps = [self.eps[x] for x in m.legs if x in self.eps]
            self.bridges[m.bridge] = e.bridge(*eps)
            return True
        if isinstance(m, W.StartRecording):
            rec = e.start_recording(m.call_id, [self.eps[x] for x in m.left if x in self.eps],
                                    [self.eps[x] for x in m.right if x in self.eps], m.parties, m.name)
            self.recs[m.recording] = rec
            self.rec_ids[id(rec)] = m.recording
            return True
        if isinstance(m, W.StopRecording):
            if m.recording in self.recs:
                e.stop_recording(self.recs.pop(m.recording))
            return True
        found = self.eps.get(getattr(m, "leg", -1))
        if found is None:
            return True                                  # a leg already gone (released, or port failed)
        ep = found
        if isinstance(m, W.Apply):
            e._apply(ep, m.params)
        elif isinstance(m, W.Release):
            self._stats([m.leg])
            e.release(ep)
            del self.eps[m.leg]
            self.legs.pop(ep.id, None)
        elif isinstance(m, (W.Join, W.SetMode)):
            b = self.bridges.get(m.bridge)
            if b is not None:
                whisper = [self.eps[x] for x in m.whisper_to if x in self.eps]
                if isinstance(m, W.Join):
                    e.join(b, ep, m.mode, whisper)
                else:
                    e.set_mode(b, ep, m.mode, whisper)
        elif isinstance(m, W.Leave):
            e.leave(ep)
        elif isinstance(m, W.Hold):
            e.hold(ep, m.on)
        elif isinstance(m, W.Play):
            self._load(m.sound)
            pb = e.play(ep, m.sound, m.loop, m.mix)
            self.playbacks[(m.leg, pb)] = m.playback
        elif isinstance(m, W.StopPlayback):
            e.stop_playback(ep)
        elif isinstance(m, W.Music):
            if m.sound is not None:
                self._load(m.sound)
            e.play_music(ep, m.sound)
        elif isinstance(m, W.StopMusic):
            e.stop_music(ep)
        elif isinstance(m, W.Listen):
            e.listen(ep, m.on)
        elif isinstance(m, W.SendDtmf):
            e.send_dtmf(ep, m.digits, m.duration_ms)
        return True

    def _load(self, name: str) -> None:
        """A file sound from disk (cached; reloaded when changed); a sound sent by ``AddSound`` is in the bank."""
        if name not in self.engine.bank.sounds:
            self.engine.load(name)

    def events(self, events: list[MediaEvent]) -> None:
        """The engine's events, their endpoints replaced by leg ids, to the controller."""
        for ev in events:
            if isinstance(ev, RecordingFailed):
                rid = self.rec_ids.get(id(ev.recording))
                if rid is not None:
                    self.send(W.Event(dataclasses.replace(ev, recording=rid)))   # type: ignore[arg-type]
                continue
            ep = getattr(ev, "endpoint", None)
            leg = self.legs.get(ep.id) if ep is not None else None
            if leg is None:
                continue
            if hasattr(ev, "playback"):
                pb = self.playbacks.pop((leg, ev.playback), ev.playback)
                ev = dataclasses.replace(ev, playback=pb)  # type: ignore[arg-type]
            self.send(W.Event(dataclasses.replace(ev, endpoint=leg)))  # type: ignore[arg-type]

    def _stats(self, legs: list[int] | None = None) -> None:
        e = self.engine
        ids = list(self.eps) if legs is None else legs
        out = tuple((x, e.leg_stats(self.eps[x])) for x in ids if x in self.eps)
        edge = self.edge
        st = e.stats
        new = min(st.ticks - self.ticks_reported, len(st.recent))   # the tick times since the last report
        self.ticks_reported = st.ticks
        ticks = tuple(st.recent[i] for i in range(len(st.recent) - new, len(st.recent))) if new > 0 else ()
        counters = {"late_ticks": st.late_ticks, "relay_pairs": e.relay_pairs, "relayed_packets": e.relayed_packets,
                    "dropped_packets": e.dropped_packets, "foreign_packets": e.foreign_packets,
                    "srtp_rejected": e.srtp_rejected,
                    "send_failures": (edge.send_drops + edge.send_errors) if edge else 0}
        self.send(W.Stats(out, edge.received if edge else 0, edge.sent if edge else 0, ticks,
                          tuple((k, int(counters[k])) for k in W.COUNTERS)))


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    decoder = FrameDecoder()

    def send(m: Any) -> None:
        if not writer.is_closing():
            writer.write(encode(m))

    first: list[Any] = []
    while not first:
        data = await reader.read(65536)
        if not data:
            return
        first = decoder.feed(data)
    init = first.pop(0)
    assert isinstance(init, W.Init), init
    engine = MediaEngine(init.config)
    worker = Worker(engine, send)
    edge = MediaEdge(engine, worker.events)
    worker.edge = edge
    edge.start()
    send(W.Ready(init.index, os.getpid()))
    log.info("media worker %d (pid %d): RTP ports %s", init.index, os.getpid(), init.config.rtp_ports)

    async def stats() -> None:
        while True:
            await asyncio.sleep(STATS_EVERY)
            worker._stats()

    stats_task = loop.create_task(stats())
    pending = first
    running = True
    try:
        while running:
            for m in pending:
                try:
                    if not worker.handle(m):
                        running = False
                        break
                except Exception:  # one bad command must not take the other legs down
                    log.exception("media worker %d: command %s failed", init.index, type(m).__name__)
            edge.sync_ports()
            worker.events(engine.take_events())      # PortFailed from the sync
            if not running:
                break
            data = await reader.read(65536)
            if not data:
                break
            pending = decoder.feed(data)
    finally:
        stats_task.cancel()
        for leg in list(worker.eps):
            worker.handle(W.Release(leg))
        edge.sync_ports()
        log.info("media worker %d: %d endpoint(s) open, %d RTP port(s) in use at shutdown",
                 init.index, len(engine.endpoints), engine.ports.in_use)
        await edge.stop()
        writer.close()


def main(argv: list[str]) -> None:
    """``worker FD [LEVEL [FORMAT]]``: LEVEL and FORMAT ("plain" or "json") are the switch's ``[log]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    level = int(argv[2]) if len(argv) > 2 and argv[2].isdigit() else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if len(argv) > 3 and argv[3] == "json":      # the same lines as the switch's own (base.logfmt)
        from base.logfmt import JsonFormatter
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    sock = socket.socket(fileno=int(argv[1]))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(sock))


if __name__ == "__main__":
    main(sys.argv)
