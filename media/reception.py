"""RFC 3550 reception statistics and timestamp unwrapping for all legs as arrays (one entry per engine row).

``ReceptionTable`` keeps, per row, the state of ``media.rtp.ReceptionStats`` (A.1 sequence tracking, A.3
loss, A.8 jitter) and of ``media.rtp.TimestampUnwrapper``. The scalar methods (``update``, ``unwrap``) do
exactly what those classes do, for one packet, through memoryviews of the arrays; ``update_batch``
does the common case (the next packet of a known, in-order source) for many rows at once, bit for bit
the same. ``ReceptionView`` is one row with the ``ReceptionStats`` interface (RTCP reports, statistics).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .rtp import MAX_DROPOUT, MAX_MISORDER, SEQ_MOD

_INT = ("base_seq", "max_seq", "bad_seq", "cycles", "received", "expected_prior", "received_prior", "transit",
        "duplicates", "ts_last")
_BOOL = ("started", "has_transit", "has_ts")


class ReceptionTable:
    # The state vectors, made (and grown) by ``_alloc`` with setattr from _INT, _BOOL and "jitter", and their
    # memoryviews (``_`` + name) for the per-packet path; declared here for the type checker.
    base_seq: NDArray[np.int64]
    max_seq: NDArray[np.int64]
    bad_seq: NDArray[np.int64]
    cycles: NDArray[np.int64]
    received: NDArray[np.int64]
    expected_prior: NDArray[np.int64]
    received_prior: NDArray[np.int64]
    transit: NDArray[np.int64]
    duplicates: NDArray[np.int64]
    ts_last: NDArray[np.int64]
    started: NDArray[np.bool_]
    has_transit: NDArray[np.bool_]
    has_ts: NDArray[np.bool_]
    jitter: NDArray[np.float64]
    _base_seq: memoryview[int]
    _max_seq: memoryview[int]
    _bad_seq: memoryview[int]
    _cycles: memoryview[int]
    _received: memoryview[int]
    _expected_prior: memoryview[int]
    _received_prior: memoryview[int]
    _transit: memoryview[int]
    _duplicates: memoryview[int]
    _ts_last: memoryview[int]
    _started: memoryview[bool]
    _has_transit: memoryview[bool]
    _has_ts: memoryview[bool]
    _jitter: memoryview[float]

    def __init__(self, cap: int = 0):
        self.cap = 0
        self._alloc(cap)

    def _alloc(self, cap: int) -> None:
        old = self.cap
        for name in _INT:
            self._ext(name, cap, np.int64)
        for name in _BOOL:
            self._ext(name, cap, bool)
        self._ext("jitter", cap, np.float64)
        self.cap = cap
        for name in _INT + _BOOL + ("jitter",):
            setattr(self, "_" + name, memoryview(getattr(self, name)))
        if old < cap:
            self.bad_seq[old:] = SEQ_MOD + 1

    def _ext(self, name: str, cap: int, dtype: DTypeLike) -> None:
        new = np.zeros(cap, dtype)
        if self.cap:
            new[:self.cap] = getattr(self, name)
        setattr(self, name, new)

    def grow(self, cap: int) -> None:
        if cap > self.cap:
            self._alloc(cap)

    def reset(self, r: int) -> None:
        """A new source: ``ReceptionStats()`` and ``TimestampUnwrapper()`` afresh."""
        self._started[r] = False
        self._jitter[r] = 0.0
        self._duplicates[r] = 0
        self._init_seq(r, 0)
        self._has_ts[r] = False
        self._ts_last[r] = 0

    def _init_seq(self, r: int, seq: int) -> None:
        self._base_seq[r] = seq
        self._max_seq[r] = seq
        self._bad_seq[r] = SEQ_MOD + 1
        self._cycles[r] = 0
        self._received[r] = 0
        self._expected_prior[r] = 0
        self._received_prior[r] = 0
        self._has_transit[r] = False
        self._transit[r] = 0

    # ------------------------------------------------------------------ one packet
    def update(self, r: int, seq: int, ts: int, arrival_units: int) -> bool:
        """``ReceptionStats.update`` for row ``r``."""
        if not self._started[r]:
            self._started[r] = True
            self._init_seq(r, seq)
        else:
            max_seq = self._max_seq[r]
            udelta = (seq - max_seq) & 0xFFFF
            if 0 < udelta < MAX_DROPOUT:
                if seq < max_seq:
                    self._cycles[r] += SEQ_MOD
                self._max_seq[r] = seq
            elif udelta == 0:
                self._duplicates[r] += 1
            elif udelta > SEQ_MOD - MAX_MISORDER:
                pass
            else:
                if seq == self._bad_seq[r]:
                    self._init_seq(r, seq)
                else:
                    self._bad_seq[r] = (seq + 1) & 0xFFFF
                    return False
        self._received[r] += 1
        transit = arrival_units - ts
        if self._has_transit[r]:
            d = abs(((transit - self._transit[r] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
            j = self._jitter[r]
            self._jitter[r] = j + (d - j) / 16.0
        self._transit[r] = transit
        self._has_transit[r] = True
        return True

    def unwrap(self, r: int, ts: int) -> int:
        """``TimestampUnwrapper.__call__`` for row ``r``."""
        if not self._has_ts[r]:
            self._has_ts[r] = True
            self._ts_last[r] = ts
            return ts
        last = self._ts_last[r]
        delta = ((ts - last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        ext = last + delta
        if delta > 0:
            self._ts_last[r] = ext
        return ext

    # ------------------------------------------------------------------ many rows, one packet each
    def steady(self, rows: NDArray[np.int64], seq: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which packets take the in-order path of ``update`` (known source, 0 < seq step < MAX_DROPOUT)."""
        udelta = (seq - self.max_seq[rows]) & 0xFFFF
        return self.started[rows] & (udelta > 0) & (udelta < MAX_DROPOUT) & self.has_transit[rows] & self.has_ts[rows]

    def update_batch(self, rows: NDArray[np.int64], seq: NDArray[np.int64], ts: NDArray[np.int64],
                     arrival_units: NDArray[np.int64]) -> None:
        """``update`` for packets that passed ``steady``; ``rows`` distinct."""
        max_seq = self.max_seq[rows]
        self.cycles[rows] += np.where(seq < max_seq, SEQ_MOD, 0)
        self.max_seq[rows] = seq
        self.received[rows] += 1
        transit = arrival_units - ts
        d = np.abs(((transit - self.transit[rows] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
        j = self.jitter[rows]
        self.jitter[rows] = j + (d - j) / 16.0
        self.transit[rows] = transit

    def unwrap_batch(self, rows: NDArray[np.int64], ts: NDArray[np.int64]) -> NDArray[np.int64]:
        """``unwrap`` for rows that have a previous timestamp (``has_ts``); ``rows`` distinct."""
        last = self.ts_last[rows]
        delta = ((ts - last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        ext = last + delta
        self.ts_last[rows] = np.where(delta > 0, ext, last)
        return ext


class ReceptionView:
    """Row ``row`` of a ``ReceptionTable`` with the read interface of ``ReceptionStats``."""

    __slots__ = ("table", "row")

    def __init__(self, table: ReceptionTable, row: int):
        self.table = table
        self.row = row

    @property
    def started(self) -> bool:
        return bool(self.table._started[self.row])

    @property
    def jitter(self) -> float:
        return self.table._jitter[self.row]

    @property
    def received(self) -> int:
        return self.table._received[self.row]

    @property
    def duplicates(self) -> int:
        return self.table._duplicates[self.row]

    @property
    def base_seq(self) -> int:
        return self.table._base_seq[self.row]

    @property
    def max_seq(self) -> int:
        return self.table._max_seq[self.row]

    @property
    def cycles(self) -> int:
        return self.table._cycles[self.row]

    @property
    def transit(self) -> int | None:
        return self.table._transit[self.row] if self.table._has_transit[self.row] else None

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1 if self.started else 0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def interval_fraction_lost(self) -> int:
        t, r = self.table, self.row
        expected = self.expected
        exp_int = expected - t._expected_prior[r]
        rec_int = t._received[r] - t._received_prior[r]
        t._expected_prior[r] = expected
        t._received_prior[r] = t._received[r]
        lost_int = exp_int - rec_int
        if exp_int == 0 or lost_int <= 0:
            return 0
        return min(255, (lost_int << 8) // exp_int)

    def update(self, seq: int, ts: int, arrival_units: int) -> bool:
        return self.table.update(self.row, seq, ts, arrival_units)
