"""The jitter buffers of all legs as arrays: one tick's playout for every leg is a few numpy operations.

``JitterTable`` behaves, row by row, like ``media.rtp.JitterBuffer`` (same priming, loss, underrun,
stop, shrink and target rules; the engine's results are the same frame for frame), but keeps its state
as vectors with one entry per engine row and its payload in a ``rows × RING × 80`` byte ring of 10 ms
halves, slot ``((ts - base) // 80) % RING`` where ``base`` is the timestamp the buffer (re)started at.

Ingest (``put``) is per packet, scalar and short: it reads and writes the row's state through
memoryviews of the arrays (Python ints, no numpy scalars) and copies the payload into the ring with one
slice assignment. Playout (``pop_rows``) gathers one frame for every listed row with fancy indexing and
does the loss / late / underrun / adaptive-target bookkeeping on vectors.

Differences from ``JitterBuffer``, only for streams no phone sends: audio more than ``RING`` halves
(1.28 s) past the playout point is not buffered (a jump of over 50 frames restarts the buffer anyway),
and a 20 ms packet whose timestamp is 10 ms off the playout grid is played as two halves instead of
producing a 30 ms frame.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .rtp import FRAME, HALF, IDLE, LOST, PLAY

RING = 128                      # halves buffered per leg: 1.28 s ahead of the playout point
_RESTART_JUMP = 50 * FRAME      # a forward jump larger than this restarts the buffer
_WIN = 50                       # playout frames per shrink window (1 s)
_BIG = 1 << 30

_INT_FIELDS = ("po", "end", "base", "count", "target", "min_delay", "max_delay", "played", "lost", "late",
               "dropped", "duplicates", "underruns", "empty_run", "win_n", "win_min")
_BOOL_FIELDS = ("active", "primed")


class JitterTable:
    """Adaptive playout buffers for rows ``0 .. cap-1`` (see ``media.rtp.JitterBuffer`` for the rules)."""

    # The state vectors, made (and grown) by ``_alloc`` with setattr from _INT_FIELDS and _BOOL_FIELDS, and
    # their memoryviews (``_`` + name) for the per-packet path; declared here for the type checker.
    po: NDArray[np.int64]               # playout point (unwrapped timestamp)
    end: NDArray[np.int64]              # end of the buffered audio
    base: NDArray[np.int64]             # timestamp the buffer (re)started at: ring slot 0
    count: NDArray[np.int64]            # halves buffered
    target: NDArray[np.int64]           # playout delay in frames
    min_delay: NDArray[np.int64]
    max_delay: NDArray[np.int64]
    played: NDArray[np.int64]
    lost: NDArray[np.int64]
    late: NDArray[np.int64]
    dropped: NDArray[np.int64]
    duplicates: NDArray[np.int64]
    underruns: NDArray[np.int64]
    empty_run: NDArray[np.int64]
    win_n: NDArray[np.int64]
    win_min: NDArray[np.int64]
    active: NDArray[np.bool_]
    primed: NDArray[np.bool_]
    _po: memoryview[int]
    _end: memoryview[int]
    _base: memoryview[int]
    _count: memoryview[int]
    _target: memoryview[int]
    _min_delay: memoryview[int]
    _max_delay: memoryview[int]
    _played: memoryview[int]
    _lost: memoryview[int]
    _late: memoryview[int]
    _dropped: memoryview[int]
    _duplicates: memoryview[int]
    _underruns: memoryview[int]
    _empty_run: memoryview[int]
    _win_n: memoryview[int]
    _win_min: memoryview[int]
    _active: memoryview[bool]
    _primed: memoryview[bool]
    silence: NDArray[np.uint8]          # per row: the codec's silence byte
    ring: NDArray[np.uint8]             # rows × RING × HALF payload
    present: NDArray[np.uint8]          # rows × RING: 1 where a half is buffered
    _silence: memoryview[int]
    _ring: memoryview[int]              # flat
    _present: memoryview[int]           # flat

    def __init__(self, cap: int = 0):
        self.cap = 0
        self._alloc(cap)

    # ------------------------------------------------------------------ storage
    def _alloc(self, cap: int) -> None:
        old = self.cap
        for name in _INT_FIELDS:
            new = np.zeros(cap, np.int64)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        for name in _BOOL_FIELDS:
            new = np.zeros(cap, bool)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        silence = np.full(cap, 0xFF, np.uint8)
        ring = np.zeros((cap, RING, HALF), np.uint8)
        present = np.zeros((cap, RING), np.uint8)
        if old:
            silence[:old] = self.silence
            ring[:old] = self.ring
            present[:old] = self.present
        self.silence, self.ring, self.present = silence, ring, present
        self.win_min[old:] = _BIG
        self.cap = cap
        # scalar access for the per-packet path: memoryview items are plain Python ints / bools
        for name in _INT_FIELDS + _BOOL_FIELDS:
            setattr(self, "_" + name, memoryview(getattr(self, name)))
        # (``.data`` is ``memoryview(array)``; numpy's stubs declare ndarray a Buffer only for Python 3.12+)
        self._silence = self.silence.data
        self._ring = self.ring.reshape(-1).data
        self._present = self.present.reshape(-1).data

    def grow(self, cap: int) -> None:
        if cap > self.cap:
            self._alloc(cap)

    def init_row(self, r: int, min_delay: int, max_delay: int, silence: int = 0xFF) -> None:
        """A fresh buffer on row ``r`` (a new leg): ``JitterBuffer(min_delay, max_delay, silence)``."""
        for name in _INT_FIELDS:
            getattr(self, "_" + name)[r] = 0
        self._active[r] = self._primed[r] = False
        self._min_delay[r] = self._target[r] = min_delay
        self._max_delay[r] = max_delay
        self._win_min[r] = _BIG
        self._silence[r] = silence
        self.present[r] = 0

    def reset(self, r: int) -> None:
        """``JitterBuffer.reset``: drop what is buffered; the next packet restarts playout."""
        if self._count[r]:
            self.present[r] = 0
            self._count[r] = 0
        self._active[r] = False
        self._primed[r] = False

    def set_silence(self, r: int, silence: int) -> None:
        self._silence[r] = silence

    def set_jitter(self, r: int, jitter_units: float) -> None:
        self._target[r] = max(self._min_delay[r], min(self._max_delay[r], 1 + int(-(-3 * jitter_units // FRAME))))

    def depth(self, r: int) -> int:
        """Buffered frames ahead of the playout point (including gaps)."""
        return max(0, self._end[r] - self._po[r]) // FRAME if self._active[r] else 0

    # ------------------------------------------------------------------ per packet
    def put(self, r: int, ts: int, payload: bytes, marker: int = False) -> None:
        """``JitterBuffer.put`` for row ``r`` (``ts`` unwrapped; ``marker`` true: the RTP marker bit, a bool
        or the header byte masked with 0x80)."""
        n = len(payload)
        if n == 0:
            return
        po = self._po[r]
        if not self._active[r] or ts - po > _RESTART_JUMP or (marker and not self._count[r] and ts > po):
            if self._count[r]:                        # (re)start: first packet, a jump, a new talk-spurt
                self.present[r] = 0
                self._count[r] = 0
            self._po[r] = self._base[r] = self._end[r] = po = ts
            self._active[r] = True
            self._primed[r] = False
        if ts + n <= po:
            self._late[r] += 1
            return
        rel = ts - self._base[r]
        pres = self._present
        row0 = r * RING
        if n == FRAME:
            if ts >= po and not rel % HALF:           # else off the playout grid: never played
                s = (rel // HALF) % RING
                if pres[row0 + s]:
                    self._duplicates[r] += 1
                    return
                s2 = s + 1 if s + 1 < RING else 0
                off = (row0 + s) * HALF
                if s2:
                    self._ring[off:off + FRAME] = payload
                else:
                    self._ring[off:off + HALF] = payload[:HALF]
                    self._ring[row0 * HALF:row0 * HALF + HALF] = payload[HALF:]
                pres[row0 + s] = 1
                self._count[r] += 1 + (not pres[row0 + s2])
                pres[row0 + s2] = 1
        elif not rel % HALF:
            limit = po + RING * HALF
            for off in range(0, n - n % HALF or n, HALF):
                t = ts + off
                if po < t + HALF and t + HALF <= limit:
                    piece = payload[off:off + HALF]
                    if len(piece) < HALF:
                        piece = piece + bytes([self._silence[r]]) * (HALF - len(piece))
                    s = row0 + ((rel + off) // HALF) % RING
                    self._ring[s * HALF:(s + 1) * HALF] = piece
                    if not pres[s]:
                        pres[s] = 1
                        self._count[r] += 1
        if ts + n > self._end[r]:
            self._end[r] = ts + n

    def accepts(self, rows: NDArray[np.int64], ts: NDArray[np.int64], marker: NDArray[np.bool_]) -> NDArray[np.bool_]:
        """Which 20 ms packets (distinct ``rows``, unwrapped ``ts``) ``put_batch`` may take: the buffer is
        playing, the packet neither restarts it nor is late, sits on the playout grid and is new."""
        po = self.po[rows]
        rel = ts - self.base[rows]
        ok = self.active[rows] & (ts >= po) & (ts - po <= _RESTART_JUMP) & ~marker & (rel % HALF == 0)
        slot = (rel // HALF) % RING
        new: NDArray[np.bool_] = ok & (self.present[rows, slot] == 0)    # (numpy types this as Any)
        return new

    def put_batch(self, rows: np.ndarray, ts: np.ndarray, payload: np.ndarray) -> None:
        """``put`` for packets that passed ``accepts``: ``payload`` is ``len(rows) × 160``."""
        s0 = ((ts - self.base[rows]) // HALF) % RING
        s1 = s0 + 1
        s1[s1 == RING] = 0
        self.ring[rows, s0] = payload[:, :HALF]
        self.ring[rows, s1] = payload[:, HALF:]
        self.count[rows] += 2 - self.present[rows, s1].astype(np.int64)
        self.present[rows, s0] = 1
        self.present[rows, s1] = 1
        self.end[rows] = np.maximum(self.end[rows], ts + FRAME)

    # ------------------------------------------------------------------ per tick
    def pop_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``JitterBuffer.pop`` for every row in ``rows`` at once.

        Returns the ``len(rows) × 160`` payload codes (rows that do not PLAY hold silence) and the
        per-row state (PLAY, LOST: conceal it, IDLE: silence) as uint8.
        """
        n = len(rows)
        codes = np.empty((n, FRAME), np.uint8)
        states = np.full(n, IDLE, np.uint8)
        if not n:
            return codes, states
        codes, states = self._pop(rows, codes, states)
        quiet = states != PLAY
        if quiet.any():
            codes[quiet] = self.silence[rows[quiet], None]
        return codes, states

    def _pop(self, rows: np.ndarray, codes: np.ndarray, states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        po = self.po[rows]
        end = self.end[rows]
        ready = self.active[rows] & (self.primed[rows] | (end - po >= self.target[rows] * FRAME))
        if not ready.all():
            ri = np.flatnonzero(ready)
            rr, po, end = rows[ri], po[ri], end[ri]
        else:
            ri, rr = None, rows
        if not len(rr):
            return codes, states
        self.primed[rr] = True
        s0 = ((po - self.base[rr]) // HALF) % RING
        s1 = s0 + 1
        s1[s1 == RING] = 0
        h0 = self.present[rr, s0].view(bool)
        h1 = self.present[rr, s1].view(bool)
        have = h0 | h1
        allhave = have.all()

        # PLAY: gather the two halves, clear them, advance, shrink a delay that was not needed
        if allhave:
            pi, rp, pp, ep, a0, a1, g0, g1 = ri, rr, po, end, s0, s1, h0, h1
        else:
            hi = np.flatnonzero(have)
            pi = hi if ri is None else ri[hi]
            rp, pp, ep, a0, a1, g0, g1 = rr[hi], po[hi], end[hi], s0[hi], s1[hi], h0[hi], h1[hi]
        if len(rp):
            out = codes if pi is None else np.empty((len(rp), FRAME), np.uint8)
            out[:, :HALF] = self.ring[rp, a0]
            out[:, HALF:] = self.ring[rp, a1]
            if not g0.all():
                m = ~g0
                out[m, :HALF] = self.silence[rp[m], None]
            if not g1.all():
                m = ~g1
                out[m, HALF:] = self.silence[rp[m], None]
            if pi is not None:
                codes[pi] = out
                states[pi] = PLAY
            else:
                states[:] = PLAY
            self.present[rp, a0] = 0
            self.present[rp, a1] = 0
            self.count[rp] -= g0.astype(np.int64) + g1
            npo = pp + FRAME
            self.played[rp] += 1
            self.empty_run[rp] = 0
            wmin = np.minimum(self.win_min[rp], (ep - pp) // FRAME)
            wn = self.win_n[rp] + 1
            full = wn >= _WIN
            if full.any():
                shrink = full & (wmin > self.target[rp])
                if shrink.any():
                    rs = rp[shrink]
                    b0 = ((npo[shrink] - self.base[rs]) // HALF) % RING
                    b1 = b0 + 1
                    b1[b1 == RING] = 0
                    self.count[rs] -= self.present[rs, b0].astype(np.int64) + self.present[rs, b1]
                    self.present[rs, b0] = 0
                    self.present[rs, b1] = 0
                    npo[shrink] += FRAME
                    self.dropped[rs] += 1
                wn[full] = 0
                wmin[full] = _BIG
            self.win_n[rp] = wn
            self.win_min[rp] = wmin
            self.po[rp] = npo
        if allhave:
            return codes, states

        # nothing to play: LOST when later audio is buffered, else an underrun that holds the playout point
        mi = np.flatnonzero(~have)
        qi = mi if ri is None else ri[mi]
        rm, pm, em = rr[mi], po[mi], end[mi]
        later = em > pm + FRAME
        if later.any():
            rl = rm[later]
            self.po[rl] = pm[later] + FRAME
            self.lost[rl] += 1
            self.empty_run[rl] = 0
            states[qi[later]] = LOST
        if not later.all():
            under = ~later
            ru, qu = rm[under], qi[under]
            self.underruns[ru] += 1
            er = self.empty_run[ru] + 1
            stop = er > self.max_delay[ru]
            er[stop] = 0
            self.empty_run[ru] = er
            if stop.any():
                rst = ru[stop]
                self.active[rst] = False
                self.primed[rst] = False
            states[qu] = np.where(~stop & (er <= 3), LOST, IDLE)
        return codes, states


class JitterView:
    """One row of a ``JitterTable`` with the attributes of a ``JitterBuffer`` (statistics, debugging)."""

    __slots__ = ("table", "row")

    def __init__(self, table: JitterTable, row: int):
        self.table = table
        self.row = row

    def __getattr__(self, name: str) -> Any:       # an int, a bool, or the playout point (int | None)
        if name in _INT_FIELDS or name in _BOOL_FIELDS:
            v = getattr(self.table, "_" + name)[self.row]
            return v
        if name == "playout":
            return self.table._po[self.row] if self.table._active[self.row] else None
        raise AttributeError(name)

    def depth(self) -> int:
        return self.table.depth(self.row)

    def put(self, ts: int, payload: bytes, marker: bool = False) -> None:
        self.table.put(self.row, ts, payload, marker)

    def reset(self) -> None:
        self.table.reset(self.row)

    def set_jitter(self, jitter_units: float) -> None:
        self.table.set_jitter(self.row, jitter_units)
