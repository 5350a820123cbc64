"""DTMF: RFC 4733 telephone-events in and out, and in-band tone detection over all legs at once.

Both sources produce the same ``DtmfDigit`` (digit, duration), emitted once per key press when the
press ends: at the RFC 4733 end packet (its two redundant repeats are ignored), or, in-band, when the
tone pair has gone for 40 ms. The in-band detector is a Goertzel bank computed for every leg in one
matrix product (``legs × 160`` samples @ ``160 × 32`` cos/sin basis), followed by the usual checks,
all as array operations: level, twist, the peak standing clear of the other tones of its group,
tone-to-total energy, and the second harmonics (speech and music have them, DTMF does not).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .rtp import FRAME

EVENTS = "0123456789*#ABCD"
EVENT_CODE = {d: i for i, d in enumerate(EVENTS)}
ROWS = (697.0, 770.0, 852.0, 941.0)
COLS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
_KEY_INDEX = np.array([[EVENT_CODE[KEYPAD[r][c]] for c in range(4)] for r in range(4)], dtype=np.int8)
RATE = 8000


@dataclass(frozen=True)
class DtmfDigit:
    digit: str
    source: str            # "rfc4733" | "inband"
    duration_ms: int


def digit_tone(digit: str, ms: int, level: float = 8000.0, twist_db: float = 0.0, rate: int = RATE) -> np.ndarray:
    """A DTMF tone pair as float samples (``twist_db`` > 0: row louder than column), for tests and prompts."""
    d = digit.upper()
    r = next(i for i, row in enumerate(KEYPAD) if d in row)
    c = KEYPAD[r].index(d)
    t = np.arange(int(rate * ms / 1000)) / rate
    col_level = level * 10 ** (-twist_db / 20)
    return level * np.sin(2 * np.pi * ROWS[r] * t) + col_level * np.sin(2 * np.pi * COLS[c] * t)


# ------------------------------------------------------------------------------------------- RFC 4733

def parse_event(payload: bytes) -> tuple[int, bool, int, int]:
    """(event, end, volume, duration) of a telephone-event payload."""
    ev, flags, duration = struct.unpack_from("!BBH", payload)
    return ev, bool(flags & 0x80), flags & 0x3F, duration


def build_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    return struct.pack("!BBH", event, (0x80 if end else 0) | (volume & 0x3F), min(duration, 0xFFFF))


class Rfc4733Receiver:
    """One leg's incoming telephone-events: one digit per event (keyed by its RTP timestamp)."""

    __slots__ = ("cur_ts", "event", "duration", "ended", "last_seen", "events_received")

    def __init__(self) -> None:
        self.cur_ts: int | None = None
        self.event = 0
        self.duration = 0
        self.ended = True
        self.last_seen = 0.0
        self.events_received = 0

    def _finish(self) -> DtmfDigit | None:
        self.ended = True
        if self.event < len(EVENTS):
            return DtmfDigit(EVENTS[self.event], "rfc4733", self.duration * 1000 // RATE)
        return None                                  # flash and other events: not a digit

    def on_packet(self, ts: int, payload: bytes, now: float) -> list[DtmfDigit]:
        if len(payload) < 4:
            return []
        ev, end, _vol, duration = parse_event(payload)
        out: list[DtmfDigit] = []
        self.last_seen = now
        if ts == self.cur_ts:
            if self.ended:
                return out                           # end-of-event redundancy, or a late repeat
            self.duration = max(self.duration, duration)
        else:
            if self.cur_ts is not None and ts < self.cur_ts and self.cur_ts - ts < 16000:
                return out                           # a straggler of an older event (within 2 s)
            # further back than that is a timestamp discontinuity (a restarted or spliced stream,
            # SIPp replaying pcaps): a new event
            if not self.ended:                       # the previous event never got its end packet
                d = self._finish()
                if d:
                    out.append(d)
            self.cur_ts, self.event, self.duration, self.ended = ts, ev, duration, False
            self.events_received += 1
        if end:
            d = self._finish()
            if d:
                out.append(d)
        return out

    def poll(self, now: float, timeout: float = 0.5) -> DtmfDigit | None:
        """An event whose end packets were all lost ends after ``timeout`` without packets."""
        if not self.ended and now - self.last_seen > timeout:
            return self._finish()
        return None


class Rfc4733Sender:
    """Queue of digits to send as telephone-events, one packet per tick, the end packet three times."""

    __slots__ = ("queue", "event", "start_ts", "elapsed", "total", "gap", "volume")

    def __init__(self, volume: int = 10) -> None:
        self.queue: list[tuple[int, int]] = []
        self.event: int | None = None
        self.start_ts = 0
        self.elapsed = 0
        self.total = 0
        self.gap = 0
        self.volume = volume

    def send(self, digits: str, duration_ms: int = 100) -> None:
        for d in digits.upper():
            if d not in EVENT_CODE:
                raise ValueError(f"not a DTMF digit: {d!r}")
            self.queue.append((EVENT_CODE[d], max(40, duration_ms) * RATE // 1000))

    @property
    def busy(self) -> bool:
        return self.event is not None or bool(self.queue) or self.gap > 0

    def tick(self, ts: int) -> list[tuple[bytes, bool, int]] | None:
        """Packets (payload, marker, rtp timestamp) to send this tick instead of audio, or None for audio."""
        if self.event is None:
            if self.gap > 0:                         # a little audio between digits
                self.gap -= 1
                return None
            if not self.queue:
                return None
            self.event, self.total = self.queue.pop(0)
            self.start_ts, self.elapsed = ts, 0
            self.elapsed = FRAME
            return [(build_event(self.event, False, self.volume, self.elapsed), True, self.start_ts)]
        self.elapsed += FRAME
        if self.elapsed < self.total:
            return [(build_event(self.event, False, self.volume, self.elapsed), False, self.start_ts)]
        p = build_event(self.event, True, self.volume, self.elapsed)
        self.event = None
        self.gap = 3
        return [(p, False, self.start_ts)] * 3


# ------------------------------------------------------------------------------------------- in-band

def _basis(n: int = FRAME) -> np.ndarray:
    freqs = np.array(ROWS + COLS + tuple(2 * f for f in ROWS + COLS))
    t = np.arange(n)[:, None]
    w = 2 * np.pi * freqs[None, :] / RATE
    return np.concatenate([np.cos(w * t), np.sin(w * t)], axis=1).astype(np.float32)   # n × 32


class ToneDetector:
    """Vectorised DTMF detection for a fixed-capacity set of legs (rows), one 20 ms block per tick."""

    MIN_AMPLITUDE = 700.0         # per tone, ≈ -30 dBm0
    NORMAL_TWIST_DB = 8.0         # row (low group) louder than column
    REVERSE_TWIST_DB = 4.0        # column louder than row
    PEAK_RATIO = 4.0              # peak ≥ 6 dB above the other tones of its group
    TONE_SHARE = 0.75             # the two tones carry ≥ 75 % of the block's energy
    HARMONIC_RATIO = 0.1          # second harmonic ≥ 10 dB below its fundamental
    MIN_BLOCKS = 2                # 40 ms present to accept
    END_BLOCKS = 2                # 40 ms absent to end

    # per-row state, made and grown by _grow
    cand: NDArray[np.int8]        # digit code of the last block (-1: none)
    run: NDArray[np.int32]        # blocks in a row that showed it
    active: NDArray[np.int8]      # the digit being pressed (-1: none)
    gap: NDArray[np.int32]        # blocks since it was last seen
    start: NDArray[np.int64]      # tick the press began

    def __init__(self, capacity: int):
        self.basis = _basis()
        self.capacity = 0
        self._grow(capacity)
        self.tick_no = 0

    def _grow(self, capacity: int) -> None:
        def ext(a: np.ndarray | None, fill: int, dtype: DTypeLike) -> np.ndarray:
            new = np.full(capacity, fill, dtype=dtype)
            if a is not None:
                new[:len(a)] = a
            return new
        old = self.capacity > 0
        self.cand = ext(self.cand if old else None, -1, np.int8)
        self.run = ext(self.run if old else None, 0, np.int32)
        self.active = ext(self.active if old else None, -1, np.int8)
        self.gap = ext(self.gap if old else None, 0, np.int32)
        self.start = ext(self.start if old else None, 0, np.int64)
        self.capacity = capacity

    def ensure(self, capacity: int) -> None:
        if capacity > self.capacity:
            self._grow(max(capacity, 2 * self.capacity))

    def reset_rows(self, rows: np.ndarray | list[int]) -> None:
        self.cand[rows] = -1
        self.run[rows] = 0
        self.active[rows] = -1
        self.gap[rows] = 0

    def classify(self, x: np.ndarray) -> np.ndarray:
        """The digit code (0-15) each row's block shows, or -1, by the per-block checks alone."""
        n = x.shape[1]
        y = x @ self.basis                                         # rows × 32: cos and sin parts
        p = y[:, :16] ** 2 + y[:, 16:] ** 2                        # Goertzel power at 16 frequencies
        energy = np.einsum("ij,ij->i", x, x) + 1e-3
        row_p, col_p = p[:, 0:4], p[:, 4:8]
        r = row_p.argmax(axis=1)
        c = col_p.argmax(axis=1)
        ar = np.arange(len(x))
        pr = row_p[ar, r]
        pc = col_p[ar, c]
        scale = 4.0 / (n * n)                                      # |X|² → amplitude²
        ok = (pr * scale >= self.MIN_AMPLITUDE ** 2) & (pc * scale >= self.MIN_AMPLITUDE ** 2)
        ok &= pr <= pc * 10 ** (self.NORMAL_TWIST_DB / 10)
        ok &= pc <= pr * 10 ** (self.REVERSE_TWIST_DB / 10)
        row_sorted = np.sort(row_p, axis=1)
        col_sorted = np.sort(col_p, axis=1)
        ok &= row_sorted[:, 2] * self.PEAK_RATIO <= pr
        ok &= col_sorted[:, 2] * self.PEAK_RATIO <= pc
        ok &= (pr + pc) * (2.0 / n) >= self.TONE_SHARE * energy    # 2|X|²/N of a sine = its energy
        ok &= p[:, 8:12][ar, r] <= self.HARMONIC_RATIO * pr
        ok &= p[:, 12:16][ar, c] <= self.HARMONIC_RATIO * pc
        return np.where(ok, _KEY_INDEX[r, c], -1).astype(np.int8)

    def process(self, x: np.ndarray, rows: np.ndarray | None = None) -> list[tuple[int, DtmfDigit]]:
        """Feed one block per row (``x`` is ``len(rows) × 160``); returns (row, digit) for presses that ended."""
        self.tick_no += 1
        if rows is None:
            rows = np.arange(len(x))
        if len(rows) == 0:
            return []
        d = self.classify(x)
        cand, run, active, gap, start = (self.cand[rows], self.run[rows], self.active[rows], self.gap[rows],
                                         self.start[rows])
        same = d == cand
        run = np.where(same, run + 1, 1)
        cand = d
        begin = (d >= 0) & (run >= self.MIN_BLOCKS) & (active < 0)
        start = np.where(begin, self.tick_no - run + 1, start)
        active = np.where(begin, d, active)
        present = (active >= 0) & (d == active)
        gap = np.where(present | (active < 0), 0, gap + 1)
        ended = (active >= 0) & (gap >= self.END_BLOCKS)
        out: list[tuple[int, DtmfDigit]] = []
        if ended.any():
            for i in np.nonzero(ended)[0]:
                ms = int(self.tick_no - gap[i] - start[i] + 1) * 20
                out.append((int(rows[i]), DtmfDigit(EVENTS[int(active[i])], "inband", ms)))
            active = np.where(ended, -1, active)
            gap = np.where(ended, 0, gap)
            # a tone still present when the previous press ended must be re-qualified from scratch
        self.cand[rows], self.run[rows], self.active[rows], self.gap[rows], self.start[rows] = (
            cand, run, active, gap, start)
        return out
