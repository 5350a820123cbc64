"""The browser phone's audio path: a local RTP hop per call, and the track aiortc sends to the browser.

Why a hop over 127.0.0.1 rather than frames handed to the engine directly: the engine's leg for the
browser is then exactly a phone's leg, with its jitter buffer, RFC 4733 DTMF detection, RTCP, time-out,
latching (the hop sends from the address its SDP names), recording, monitoring and statistics, and
the 20 ms tick keeps no per-leg Python. The price is one G.711 encode, one decode and two loopback
datagrams per 20 ms and direction: measured in bench/browser_phone.py against what aiortc costs
anyway (Opus, SRTP, its own RTP stack), it is a few per cent of the browser leg.

Directions:

* engine → browser: ``Hop.datagram_received`` decodes G.711 into 20 ms frames (8 kHz int16);
  ``EngineTrack.recv`` paces itself on the clock (as aiortc's own tracks do) and hands aiortc the
  active call's next frame (or silence), which aiortc encodes as Opus or G.711 for the browser.
* browser → engine: ``Uplink`` reads the browser's track, resamples to 8 kHz mono with PyAV and
  hands 160-sample frames to the active call's hop, which sends them as RTP (or RFC 4733 events
  while a DTMF digit plays).
* a three-way conference is mixed here, as a desk phone mixes its own (``mix``): the agent hears
  both calls, and each call gets the agent's voice plus the other call's party. Each call stays an
  ordinary two-party call in the switch (recorded, monitored, transferred as such).
"""
from __future__ import annotations

import asyncio
import fractions
import logging
import random
import time
from collections import deque
from typing import Any, Callable

import numpy as np

from media import g711
from media import rtp as rtp_mod

log = logging.getLogger("softswitch.browserphone")

RATE = 8000
FRAME = 160                     # 20 ms at 8 kHz
MAX_QUEUE = 5                   # frames from the engine waiting for the browser track (100 ms)
DTMF_EVENTS = {d: i for i, d in enumerate("0123456789*#ABCD")}
SILENCE = np.zeros(FRAME, dtype=np.int16)


class Hop(asyncio.DatagramProtocol):
    """One call's local RTP endpoint, talking to the engine leg of the browser phone."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.target: tuple[str, int] | None = None
        self.codec = g711.ULAW
        self.pt = 0
        self.te_pt: int | None = None
        self.sending = False
        self.muted = False
        self.rx: deque[np.ndarray] = deque(maxlen=MAX_QUEUE)
        self.rx_packets = 0
        self.tx_packets = 0
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1, 1 << 32)
        self._dtmf: deque[str] = deque()
        self._dtmf_frames = 0          # frames sent of the current digit
        self._dtmf_ts = 0
        self.last = SILENCE             # the frame last taken from the engine (a conference feeds it across)

    # ------------------------------------------------------------------------------ lifecycle
    @classmethod
    async def open(cls, host: str = "127.0.0.1") -> "Hop":
        loop = asyncio.get_running_loop()
        transport, hop = await loop.create_datagram_endpoint(cls, local_addr=(host, 0))
        return hop

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def configure(self, host: str, port: int, codec: int, pt: int, te_pt: int | None, sending: bool) -> None:
        self.target = (host, port) if host and host != "0.0.0.0" and port else None
        self.codec, self.pt, self.te_pt, self.sending = codec, pt, te_pt, sending

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # ------------------------------------------------------------------------- engine → browser
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.target is None or addr[1] != self.target[1] or addr[0] not in (self.target[0], "127.0.0.1", "::1"):
            return                          # only the engine's leg (the port its SDP named) is heard
        try:
            pkt = rtp_mod.parse(data)
        except rtp_mod.RtpError:
            return
        if pkt.pt != self.pt or not pkt.payload:
            return
        self.rx_packets += 1
        pcm = g711.decode(pkt.payload, self.codec)
        for i in range(0, len(pcm) - FRAME + 1, FRAME):
            self.rx.append(pcm[i:i + FRAME])

    def pop(self) -> np.ndarray:
        """The next 20 ms from the engine (silence when none came: the engine's tick lost a race)."""
        while len(self.rx) > 3:             # more than 60 ms waiting: catch up (latency over completeness)
            self.rx.popleft()
        self.last = self.rx.popleft() if self.rx else SILENCE
        return self.last

    # ------------------------------------------------------------------------- browser → engine
    def dtmf(self, digits: str) -> None:
        for d in digits.upper():
            if d in DTMF_EVENTS:
                self._dtmf.append(d)

    def send(self, pcm: np.ndarray) -> None:
        """One 20 ms frame of the browser's voice (or, while a digit plays, an RFC 4733 event instead)."""
        if self.transport is None or self.target is None or not self.sending:
            return
        self._ts = (self._ts + FRAME) & 0xFFFFFFFF
        if self._dtmf and self.te_pt is not None:
            self._send_event()
            return
        if self._dtmf:                      # no telephone-event agreed: the engine detects tones in-band
            pcm = _tone(self._dtmf[0], self._dtmf_frames)
            self._dtmf_frames += 1
            if self._dtmf_frames >= 8:
                self._dtmf.popleft()
                self._dtmf_frames = 0
        elif self.muted:
            pcm = SILENCE
        payload = g711.encode(pcm, self.codec).tobytes()
        self._emit(self.pt, self._ts, payload, False)

    def _send_event(self) -> None:
        """RFC 4733: 100 ms of event packets with one timestamp, the last three marked end, then a 60 ms gap."""
        n = self._dtmf_frames
        if n == 0:
            self._dtmf_ts = self._ts
        ev = DTMF_EVENTS[self._dtmf[0]]
        if n < 5:
            dur = FRAME * (n + 1)
            self._emit(self.te_pt or 101, self._dtmf_ts, bytes([ev, 10, dur >> 8, dur & 0xFF]), n == 0)
        elif n < 8:
            dur = FRAME * 5
            self._emit(self.te_pt or 101, self._dtmf_ts, bytes([ev, 0x80 | 10, dur >> 8, dur & 0xFF]), False)
        self._dtmf_frames += 1
        if self._dtmf_frames >= 11:
            self._dtmf.popleft()
            self._dtmf_frames = 0

    def _emit(self, pt: int, ts: int, payload: bytes, marker: bool) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        assert self.transport is not None and self.target is not None
        self.transport.sendto(rtp_mod.build(pt, self._seq, ts, self._ssrc, payload, marker), self.target)
        self.tx_packets += 1


_DTMF_FREQ = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
              "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
              "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
              "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633)}


def mix(*frames: np.ndarray) -> np.ndarray:
    """Sum of 20 ms frames, saturated to int16 (a three-way conference's mix)."""
    total = np.zeros(FRAME, dtype=np.int32)
    for f in frames:
        total += f
    return np.clip(total, -32768, 32767).astype(np.int16)


def _tone(digit: str, frame: int) -> np.ndarray:
    """160 samples of a DTMF digit's tone (5 frames on, 3 off), for legs without telephone-event."""
    if frame >= 5:
        return SILENCE
    lo, hi = _DTMF_FREQ[digit]
    t = (np.arange(FRAME) + frame * FRAME) / RATE
    return (6000 * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t))).astype(np.int16)


def _av() -> Any:
    import av  # PyAV comes with aiortc (the [webrtc] extra)
    return av


class EngineTrack:
    """The audio track aiortc sends to the browser: the active call's frames from the engine, paced at 20 ms.

    Made a ``MediaStreamTrack`` subclass at run time (``engine_track``) so that importing this module
    does not need aiortc."""

    kind = "audio"

    def __init__(self, source: Callable[[], np.ndarray | None], idle: Callable[[], bool] = lambda: False):
        self.source = source
        self.idle = idle                    # no call to hear: send nothing (no Opus encoding for silence)
        self.wake = asyncio.Event()         # set when a call's audio starts
        self._start: float | None = None
        self._pts = 0
        self.frames = 0

    async def next_frame(self) -> Any:
        av = _av()
        if self.idle():
            # an idle browser phone costs nothing per 20 ms: aiortc's sender waits here; the RTP
            # timestamps then jump by the time that passed, as after a hold (ICE keeps the path alive)
            paused = time.monotonic()
            self.wake.clear()
            while self.idle():
                await self.wake.wait()
                self.wake.clear()
            if self._start is not None:
                self._pts += int((time.monotonic() - paused) * RATE) // FRAME * FRAME
                self._start = time.monotonic() - self._pts / RATE
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME
            wait = self._start + self._pts / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:               # the loop stalled: do not burst 200 ms of frames to catch up
                self._start = time.monotonic() - self._pts / RATE
        return self.make_frame(av)

    def make_frame(self, av: Any) -> Any:
        """The next 20 ms as the ``AudioFrame`` aiortc wants (no waiting)."""
        pcm = self.source()
        if pcm is None:
            pcm = SILENCE
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self.frames += 1
        return frame


def engine_track(source: Callable[[], np.ndarray | None], idle: Callable[[], bool] = lambda: False) -> Any:
    """An aiortc ``MediaStreamTrack`` fed by ``source()``: the next 20 ms of what the agent hears (or None);
    while ``idle()`` it sends nothing (wake it with ``track.pacer.wake.set()``)."""
    from aiortc import MediaStreamTrack

    class _Track(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pacer = EngineTrack(source, idle)

        async def recv(self) -> Any:
            return await self.pacer.next_frame()

    return _Track()


class Uplink:
    """Reads the browser's microphone track and hands 20 ms frames (8 kHz int16) to ``sink``."""

    def __init__(self, track: Any, sink: Callable[[np.ndarray], None]):
        self.track = track
        self.sink = sink
        self.frames = 0
        self._resampler = _av().AudioResampler(format="s16", layout="mono", rate=RATE)
        self._buf = np.zeros(0, dtype=np.int16)

    async def run(self) -> None:
        from aiortc.mediastreams import MediaStreamError
        try:
            while True:
                frame = await self.track.recv()
                self.feed(frame)
        except MediaStreamError:
            return

    def feed(self, frame: Any) -> None:
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        if not parts:
            return
        buf = np.concatenate([self._buf, *parts]) if len(self._buf) else np.concatenate(parts)
        n = len(buf) // FRAME
        for i in range(n):
            self.frames += 1
            self.sink(buf[i * FRAME:(i + 1) * FRAME])
        self._buf = buf[n * FRAME:]
