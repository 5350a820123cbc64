"""Call recording: stereo 8 kHz 16-bit WAV per call (caller left, agent/callee right) via soundfile.

Every tick the recorded legs' decoded frames go into one ring array for all recordings (one
vectorised copy). Each recording is flushed to its file about once a second, staggered over the
ticks so 1,000 recordings do not all write in the same tick; after each write the WAV header is
rewritten so the file is valid up to that point, so a crash loses at most about a second. An index
line per recording (file, call, parties, start, duration) goes to ``index.jsonl`` in the directory.
Writes can be handed to a background thread (``threaded=True``: libsndfile calls release the GIL).
"""
from __future__ import annotations

import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .rtp import FRAME

RATE = 8000
FLUSH_TICKS = 50          # one second
RING_TICKS = 2 * FLUSH_TICKS
_SFC_UPDATE_HEADER_NOW = 0x1060


def _update_header(f) -> None:
    try:
        from soundfile import _ffi, _snd
        _snd.sf_command(f._file, _SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)
    except Exception:            # pragma: no cover - older soundfile without these internals
        pass


@dataclass(eq=False)
class Recording:
    id: int
    path: Path
    call_id: str
    parties: dict[str, str]                 # {"left": "caller 1001", "right": "agent 2001"}
    left: list[int]                         # leg rows mixed into each channel
    right: list[int]
    start_wall: float
    start_tick: int
    slot: int                               # row in the ring
    phase: int                              # tick (mod FLUSH_TICKS) at which it flushes
    flushed_tick: int                       # last tick written to the file
    frames: int = 0
    file: object = None
    closed: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.frames / RATE


class _Writer(threading.Thread):
    """Background file writer: the tick never waits for the disk."""

    def __init__(self) -> None:
        super().__init__(name="recording-writer", daemon=True)
        self.q: queue.Queue = queue.Queue()
        self.start()

    def run(self) -> None:
        while True:
            job = self.q.get()
            if job is None:
                return
            try:
                job()
            finally:
                self.q.task_done()


class Recorder:
    """All recordings of one media engine."""

    def __init__(self, directory: str | os.PathLike, threaded: bool = False, fsync: bool = False,
                 capacity: int = 16):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.ring = np.zeros((capacity, RING_TICKS * FRAME, 2), dtype=np.int16)
        self.active: dict[int, Recording] = {}
        self._free_slots = list(range(capacity - 1, -1, -1))
        self._next_id = 1
        self._writer = _Writer() if threaded else None
        self._plan: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._plan_zero = -1
        self.index_path = self.dir / "index.jsonl"

    # -------------------------------------------------------------------------------- control
    def start(self, call_id: str, left: list[int], right: list[int], parties: dict[str, str], tick: int,
              name: str | None = None, now_wall: float | None = None) -> Recording:
        import soundfile as sf
        if not self._free_slots:
            n = len(self.ring)
            self.ring = np.concatenate([self.ring, np.zeros_like(self.ring)])
            self._free_slots = list(range(2 * n - 1, n - 1, -1))
        rid = self._next_id
        self._next_id += 1
        wall = time.time() if now_wall is None else now_wall
        fname = name or f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(wall))}-{_safe(call_id)}-{rid}.wav"
        path = self.dir / fname  # ``name`` may be a path elsewhere (a voicemail box)
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = Recording(rid, path, call_id, parties, list(left), list(right), wall, tick,
                        self._free_slots.pop(), rid % FLUSH_TICKS, tick)
        rec.file = sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype="PCM_16", format="WAV")
        self.active[rid] = rec
        self._plan = None
        self._index({"file": path.name, "call": call_id, "parties": parties, "start": _iso(wall),
                     "duration": None, "status": "recording"})
        return rec

    def stop(self, rec: Recording, tick: int) -> None:
        if rec.closed:
            return
        self._flush(rec, tick)
        rec.closed = True
        del self.active[rec.id]
        self._free_slots.append(rec.slot)
        self._plan = None
        entry = {"file": rec.path.name, "call": rec.call_id, "parties": rec.parties, "start": _iso(rec.start_wall),
                 "duration": round(rec.duration, 3), "status": "complete"}
        f = rec.file

        def close() -> None:
            f.close()
            self._index(entry)
        self._run(close)

    def drop_rows(self, rows: set[int]) -> None:
        """A released leg stops contributing (its channel goes silent) without ending the recording."""
        for rec in self.active.values():
            rec.left = [r for r in rec.left if r not in rows]
            rec.right = [r for r in rec.right if r not in rows]
        self._plan = None

    def close(self, tick: int) -> None:
        for rec in list(self.active.values()):
            self.stop(rec, tick)
        if self._writer:
            self._writer.q.join()

    def wait(self) -> None:
        """Block until queued writes are done (tests, shutdown)."""
        if self._writer:
            self._writer.q.join()

    # -------------------------------------------------------------------------------- per tick
    def _build_plan(self, zero_row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        recs = list(self.active.values())
        k = max([1] + [max(len(r.left), len(r.right)) for r in recs])
        idx = np.full((len(recs), 2, k), zero_row, dtype=np.int64)
        for i, r in enumerate(recs):
            idx[i, 0, :len(r.left)] = r.left
            idx[i, 1, :len(r.right)] = r.right
        slots = np.array([r.slot for r in recs], dtype=np.int64)
        phases = np.array([r.phase for r in recs], dtype=np.int64)
        return idx, slots, phases

    def write(self, x: np.ndarray, tick: int) -> None:
        """Record tick ``tick``: ``x`` holds every leg row's decoded frame, plus a final zero row."""
        if not self.active:
            return
        zero_row = len(x) - 1
        if self._plan is None or self._plan_zero != zero_row:
            self._plan = self._build_plan(zero_row)
            self._plan_zero = zero_row
        idx, slots, phases = self._plan
        n = len(slots)
        if idx.shape[2] == 1:                                      # one leg per channel: no sum
            chans = x[idx[:, :, 0]]                                # recs × 2 × 160
        else:
            chans = x[idx].sum(axis=2)
        np.rint(chans, out=chans)
        np.clip(chans, -32768, 32767, out=chans)
        s16 = np.empty((n, FRAME, 2), np.int16)                   # interleave the channels: two strided
        s16[:, :, 0] = chans[:, 0]                                 # copies (a general transpose of the
        s16[:, :, 1] = chans[:, 1]                                 # small last axis is ~10x slower)
        ring = self.ring.reshape(len(self.ring), RING_TICKS, FRAME * 2)
        ring[slots, tick % RING_TICKS] = s16.reshape(n, FRAME * 2)
        due = tick % FLUSH_TICKS
        if (phases == due).any():
            jobs = []                                  # one hand-over to the writer per tick, not one per file
            for rec in list(self.active.values()):
                if rec.phase == due:
                    self._flush(rec, tick, jobs)
            if jobs:
                def run_all() -> None:
                    for job in jobs:
                        job()
                self._run(run_all)

    def _flush(self, rec: Recording, tick: int, jobs: list | None = None) -> None:
        first, last = rec.flushed_tick + 1, tick
        if last < first:
            return
        parts = []
        a, b = first % RING_TICKS, last % RING_TICKS
        if a <= b:
            parts.append(self.ring[rec.slot, a * FRAME:(b + 1) * FRAME].copy())
        else:
            parts.append(self.ring[rec.slot, a * FRAME:].copy())
            parts.append(self.ring[rec.slot, :(b + 1) * FRAME].copy())
        chunk = np.concatenate(parts) if len(parts) > 1 else parts[0]
        rec.flushed_tick = tick
        rec.frames += len(chunk)
        f, fsync = rec.file, self.fsync

        def job() -> None:
            f.write(chunk)
            _update_header(f)
            if fsync:
                f.flush()
        if jobs is None:
            self._run(job)
        else:
            jobs.append(job)

    def _run(self, job) -> None:
        if self._writer:
            self._writer.q.put(job)
        else:
            job()

    def _index(self, entry: dict) -> None:
        with open(self.index_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")


def read_index(directory: str | os.PathLike) -> dict[str, dict]:
    """The index of a recordings directory: the latest record of each file (interrupted ones stay 'recording')."""
    out: dict[str, dict] = {}
    p = Path(directory) / "index.jsonl"
    if p.exists():
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                e = json.loads(line)
                out[e["file"]] = e
    return out


def _safe(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in s)[:64]


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
