"""RTP (RFC 3550): packets, per-source reception statistics and the adaptive jitter buffer.

Reception is per packet (parse, statistics, into the jitter buffer); playout is per 20 ms tick
(one frame out of each buffer). Sending headers for all legs are built in one numpy operation by
``build_headers``; the scalar ``build`` is for the odd packet (DTMF events, unusual ptimes).

``ReceptionStats``, ``JitterBuffer`` and ``TimestampUnwrapper`` are the per-leg reference versions:
the engine keeps the same state for all legs as arrays (``media.reception``, ``media.jitter``) and is
tested to behave exactly like them.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

FRAME = 160                     # samples per 20 ms tick at 8 kHz (= bytes of G.711)
HALF = FRAME // 2               # 10 ms: the jitter buffer's unit for packets that are not 20 ms
_HDR = struct.Struct("!BBHII")
MAX_DROPOUT = 3000
MAX_MISORDER = 100
SEQ_MOD = 1 << 16


class RtpError(ValueError):
    pass


@dataclass(slots=True)
class RtpPacket:
    pt: int
    seq: int
    ts: int
    ssrc: int
    payload: bytes
    marker: bool = False


def parse(data: bytes) -> RtpPacket:
    """Parse an RTP packet; raises RtpError on anything that is not RTP version 2."""
    if len(data) < 12:
        raise RtpError("short packet")
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != 2:
        raise RtpError("not RTP v2")
    off = 12 + 4 * (b0 & 0x0F)
    if b0 & 0x10:                                   # header extension
        if len(data) < off + 4:
            raise RtpError("truncated extension")
        off += 4 + 4 * int.from_bytes(data[off + 2:off + 4], "big")
    end = len(data)
    if b0 & 0x20:                                   # padding
        end -= data[-1]
    if off > end:
        raise RtpError("truncated packet")
    return RtpPacket(b1 & 0x7F, seq, ts, ssrc, data[off:end], bool(b1 & 0x80))


def build(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return _HDR.pack(0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


def build_headers(pt: np.ndarray, seq: np.ndarray, ts: np.ndarray, ssrc: np.ndarray,
                  marker: np.ndarray) -> np.ndarray:
    """12-byte RTP headers for many legs at once, as an ``n × 12`` uint8 array."""
    n = len(pt)
    h = np.empty((n, 12), dtype=np.uint8)
    h[:, 0] = 0x80
    h[:, 1] = pt.astype(np.uint8) | (marker.astype(np.uint8) << 7)
    h[:, 2:4] = seq.astype(">u2").view(np.uint8).reshape(n, 2)
    h[:, 4:8] = ts.astype(">u4").view(np.uint8).reshape(n, 4)
    h[:, 8:12] = ssrc.astype(">u4").view(np.uint8).reshape(n, 4)
    return h


class ReceptionStats:
    """RFC 3550 appendix A.1 sequence tracking, A.3 loss and A.8 interarrival jitter for one source."""

    __slots__ = ("base_seq", "max_seq", "bad_seq", "cycles", "received", "expected_prior", "received_prior",
                 "transit", "jitter", "duplicates", "started")

    def __init__(self) -> None:
        self.started = False
        self.jitter = 0.0            # in timestamp units (1/8000 s)
        self.duplicates = 0
        self.init_seq(0)
        self.received = 0

    def init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = SEQ_MOD + 1
        self.cycles = 0
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0
        self.transit: int | None = None

    def update(self, seq: int, ts: int, arrival_units: int) -> bool:
        """Account one packet; False when it looks like a stray from elsewhere (large jump, not yet confirmed)."""
        if not self.started:
            self.started = True
            self.init_seq(seq)
            self.max_seq = seq
        else:
            udelta = (seq - self.max_seq) & 0xFFFF
            if 0 < udelta < MAX_DROPOUT:
                if seq < self.max_seq:
                    self.cycles += SEQ_MOD
                self.max_seq = seq
            elif udelta == 0:
                self.duplicates += 1
            elif udelta > SEQ_MOD - MAX_MISORDER:
                pass                                  # reordered: counts as received, max_seq unchanged
            else:                                     # a jump: accept it only if the next packet follows it
                if seq == self.bad_seq:
                    self.init_seq(seq)
                else:
                    self.bad_seq = (seq + 1) & 0xFFFF
                    return False
        self.received += 1
        transit = arrival_units - ts
        if self.transit is not None:
            d = abs(((transit - self.transit + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
            self.jitter += (d - self.jitter) / 16.0
        self.transit = transit
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.started else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost (can be negative with duplicates, as RFC 3550 says)."""
        return self.expected - self.received

    def interval_fraction_lost(self) -> int:
        """Fraction lost since the last call, as the 8-bit fixed point of a report block (A.3)."""
        expected = self.expected
        exp_int = expected - self.expected_prior
        rec_int = self.received - self.received_prior
        self.expected_prior = expected
        self.received_prior = self.received
        lost_int = exp_int - rec_int
        if exp_int == 0 or lost_int <= 0:
            return 0
        return min(255, (lost_int << 8) // exp_int)


# jitter buffer pop() results
PLAY, LOST, IDLE = 0, 1, 2


class JitterBuffer:
    """Adaptive playout buffer keyed by (unwrapped) RTP timestamp, one 20 ms frame per tick.

    Starts playing once ``target`` frames are buffered. A missing frame with later frames present is
    lost: the caller conceals it. An empty buffer holds the playout point (the delay grows by one
    frame: adaptation to a late burst); a buffer that stays deeper than the target for a second
    drops a frame (the delay shrinks). The target follows the measured interarrival jitter.
    Packets of 10/30/40/60 ms are cut into 10 ms units so playout stays frame by frame.
    """

    __slots__ = ("slots", "playout", "end", "primed", "target", "min_delay", "max_delay", "silence",
                 "played", "lost", "late", "dropped", "duplicates", "underruns", "_empty_run", "_win_n",
                 "_win_min")

    def __init__(self, min_delay: int = 2, max_delay: int = 12, silence: int = 0xFF):
        self.slots: dict[int, bytes] = {}
        self.playout: int | None = None
        self.end = 0                  # timestamp just past the newest buffered sample
        self.primed = False
        self.min_delay, self.max_delay = min_delay, max_delay
        self.target = min_delay
        self.silence = silence
        self.played = self.lost = self.late = self.dropped = self.duplicates = self.underruns = 0
        self._empty_run = 0
        self._win_n = 0
        self._win_min = 1 << 30

    def reset(self) -> None:
        self.slots.clear()
        self.playout = None
        self.primed = False

    def depth(self) -> int:
        """Buffered frames ahead of the playout point (including gaps)."""
        return 0 if self.playout is None else max(0, self.end - self.playout) // FRAME

    def set_jitter(self, jitter_units: float) -> None:
        self.target = max(self.min_delay, min(self.max_delay, 1 + int(-(-3 * jitter_units // FRAME))))

    def put(self, ts: int, payload: bytes, marker: bool = False) -> None:
        n = len(payload)
        if n == 0:
            return
        po = self.playout
        if po is None or (ts - po) > 50 * FRAME or (marker and not self.slots and ts > po):
            self.slots.clear()                         # (re)start: first packet, a jump, a new talk-spurt
            self.playout = po = ts
            self.primed = False
            self.end = ts
        if ts + n <= po:
            self.late += 1
            return
        if n == FRAME:
            if ts in self.slots:
                self.duplicates += 1
                return
            self.slots[ts] = payload
        else:
            for off in range(0, n - n % HALF or n, HALF):
                piece = payload[off:off + HALF]
                if len(piece) < HALF:
                    piece = piece + bytes([self.silence]) * (HALF - len(piece))
                if ts + off + HALF > po:
                    self.slots[ts + off] = piece
        if ts + n > self.end:
            self.end = ts + n

    def pop(self) -> tuple[bytes | None, int]:
        """The next 20 ms of payload, with PLAY, LOST (conceal it) or IDLE (play silence)."""
        po = self.playout
        if po is None:
            return None, IDLE
        if not self.primed:
            if (self.end - po) < self.target * FRAME:
                return None, IDLE
            self.primed = True
        slots = self.slots
        depth = (self.end - po) // FRAME
        x = slots.pop(po, None)
        if x is None or len(x) != FRAME:
            y = slots.pop(po + HALF, None)
            if x is not None or y is not None:
                sil = bytes([self.silence]) * HALF
                x = (x or sil) + (y or sil)
        if x is not None:
            self.playout = po + FRAME
            self.played += 1
            self._empty_run = 0
            if depth < self._win_min:
                self._win_min = depth
            self._win_n += 1
            if self._win_n >= 50:                      # once a second: shrink a delay that is not needed
                if self._win_min > self.target:
                    slots.pop(self.playout, None)
                    slots.pop(self.playout + HALF, None)
                    self.playout += FRAME
                    self.dropped += 1
                self._win_n = 0
                self._win_min = 1 << 30
            return x, PLAY
        if self.end > po + FRAME:                      # later audio is here: this frame is lost
            self.playout = po + FRAME
            self.lost += 1
            self._empty_run = 0
            return None, LOST
        self.underruns += 1                            # nothing buffered: hold the playout point
        self._empty_run += 1
        if self._empty_run > self.max_delay:           # the stream stopped (hold, silence suppression)
            self.playout = None
            self.primed = False
            self._empty_run = 0
            return None, IDLE
        return None, (LOST if self._empty_run <= 3 else IDLE)


class TimestampUnwrapper:
    """32-bit RTP timestamps to a monotonic-ish integer (wraps every 6 days at 8 kHz, but start is random)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    def __call__(self, ts: int) -> int:
        if self.last is None:
            self.last = ts
            return ts
        delta = ((ts - self.last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        ext = self.last + delta
        if delta > 0:
            self.last = ext
        return ext
