"""Call recording: stereo 8 kHz 16-bit WAV per call (caller left, agent/callee right) via soundfile; a
one-sided recording (nothing on the right at its start: a voicemail, the caller alone) is a mono WAV.

Every tick the recorded legs' decoded frames go into one ring array for all recordings (one
vectorised copy). Each recording is flushed to its file about once a second, staggered over the
ticks so 1,000 recordings do not all write in the same tick; after each write the WAV header is
rewritten so the file is valid up to that point, so a crash loses at most about a second. An index
line per recording (file, call, parties, start, duration) goes to ``index.jsonl`` in the directory.
Every file operation is a job for a runner (``media.jobs``): run at once by default, or in a background
thread (``threaded=True`` or a ``ThreadRunner``, as the asyncio edge installs; libsndfile releases the GIL).
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .jobs import JobRunner, SyncRunner, ThreadRunner
from .rtp import FRAME

log = logging.getLogger("softswitch.media")

RATE = 8000
FLUSH_TICKS = 50          # one second
RING_TICKS = 2 * FLUSH_TICKS
_SFC_UPDATE_HEADER_NOW = 0x1060


def _update_header(f: Any) -> None:     # a soundfile.SoundFile: its libsndfile handle
    try:
        from soundfile import _ffi, _snd
        _snd.sf_command(f._file, _SFC_UPDATE_HEADER_NOW, _ffi.NULL, 0)
    except Exception:            # pragma: no cover - older soundfile without these internals
        pass


class WavFile(Protocol):
    """What the recorder does with the ``soundfile.SoundFile`` it opens."""
    def write(self, data: np.ndarray) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


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
    file: WavFile | None = None             # set by the open job (in the runner's thread)
    closed: bool = False
    error: str | None = None                # why the file could not be opened or written
    extra: dict[str, Any] = field(default_factory=dict)
    channels: int = 2                       # 1: one-sided (the left channel alone)

    @property
    def duration(self) -> float:
        return self.frames / RATE


class Recorder:
    """All recordings of one media engine.

    Sans-IO with respect to files: every file operation (folders, opening a WAV, writing a second of
    audio and its header, closing, the index line) is a job for ``runner`` (``media.jobs``), run in
    order. ``SyncRunner`` (the default) runs them at once in the caller's thread; ``threaded=True`` or a
    ``ThreadRunner`` runs them in a background thread, so ``start``/``stop``/the tick never wait for the
    disk. A file that cannot be opened or written is reported through ``failed`` (``take_failed``), which
    the engine turns into ``RecordingFailed`` events.
    """

    def __init__(self, directory: str | os.PathLike[str], threaded: bool = False, fsync: bool = False,
                 capacity: int = 16, runner: JobRunner | None = None):
        self.dir = Path(directory)                  # made by the first recording's open job, not here
        self.fsync = fsync
        self.ring = np.zeros((capacity, RING_TICKS * FRAME, 2), dtype=np.int16)
        self.active: dict[int, Recording] = {}
        self._free_slots = list(range(capacity - 1, -1, -1))
        self._next_id = 1
        if runner is None:
            runner = ThreadRunner("recording-writer") if threaded else SyncRunner()
            self._owns_runner = threaded
        else:
            self._owns_runner = False
        self.runner: JobRunner = runner
        self.failed: deque[Recording] = deque()     # appended by jobs (any thread), drained by take_failed
        self._plan: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._plan_zero = -1
        self.index_path = self.dir / "index.jsonl"

    @property
    def threaded(self) -> bool:
        return bool(getattr(self.runner, "threaded", False))

    def use_runner(self, runner: JobRunner) -> None:
        """Run file jobs on ``runner`` from now on (the jobs already handed over finish first)."""
        if runner is self.runner:
            return
        old = self.runner
        old.wait()
        if self._owns_runner:
            old.close()
        self.runner = runner
        self._owns_runner = False

    # -------------------------------------------------------------------------------- control
    def start(self, call_id: str, left: list[int], right: list[int], parties: dict[str, str], tick: int,
              name: str | None = None, now_wall: float | None = None) -> Recording:
        """Begin a recording; the file is opened by a job (this returns at once, whatever the disk does)."""
        if not self._free_slots:
            n = len(self.ring)
            self.ring = np.concatenate([self.ring, np.zeros_like(self.ring)])
            self._free_slots = list(range(2 * n - 1, n - 1, -1))
        rid = self._next_id
        self._next_id += 1
        wall = time.time() if now_wall is None else now_wall
        fname = name or f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime(wall))}-{_safe(call_id)}-{rid}.wav"
        path = self.dir / fname  # ``name`` may be a path elsewhere (a voicemail box)
        rec = Recording(rid, path, call_id, parties, list(left), list(right), wall, tick,
                        self._free_slots.pop(), rid % FLUSH_TICKS, tick, channels=2 if right else 1)
        self.active[rid] = rec
        self._plan = None
        entry = {"file": path.name, "call": call_id, "parties": parties, "start": _iso(wall),
                 "duration": None, "status": "recording"}
        self._run(lambda: self._open(rec, entry))
        return rec

    def _open(self, rec: Recording, entry: dict[str, Any]) -> None:
        """Job: create the folders, open the WAV, append the 'recording' index line."""
        try:
            import soundfile as sf
            self.dir.mkdir(parents=True, exist_ok=True)
            rec.path.parent.mkdir(parents=True, exist_ok=True)
            rec.file = sf.SoundFile(str(rec.path), "w", samplerate=RATE, channels=rec.channels, subtype="PCM_16",
                                    format="WAV")
        except (OSError, RuntimeError, ValueError) as e:   # soundfile errors are RuntimeErrors
            self._fail(rec, e)
            return
        self._index(entry)

    def _fail(self, rec: Recording, e: BaseException) -> None:
        if rec.error is None:
            rec.error = f"{type(e).__name__}: {e}"
            log.error("recording %s (%s) failed: %s", rec.path, rec.call_id, rec.error)
            self.failed.append(rec)

    def take_failed(self) -> list[Recording]:
        """Recordings whose file could not be opened or written since the last call (each once)."""
        out = []
        while self.failed:
            out.append(self.failed.popleft())
        return out

    def stop(self, rec: Recording, tick: int) -> None:
        """End a recording: its last audio, the close and the 'complete' index line are jobs."""
        if rec.closed:
            return
        self._flush(rec, tick)
        rec.closed = True
        del self.active[rec.id]
        self._free_slots.append(rec.slot)
        self._plan = None
        entry = {"file": rec.path.name, "call": rec.call_id, "parties": rec.parties, "start": _iso(rec.start_wall),
                 "duration": round(rec.duration, 3), "status": "complete"}

        def close() -> None:
            f = rec.file
            if f is None:                          # never opened (the failure was reported)
                return
            try:
                f.close()
            except (OSError, RuntimeError, ValueError) as e:
                self._fail(rec, e)
            if rec.error is not None:
                entry["status"], entry["error"] = "failed", rec.error
            self._index(entry)
        self._run(close)

    def drop_rows(self, rows: set[int]) -> None:
        """A released leg stops contributing (its channel goes silent) without ending the recording."""
        for rec in self.active.values():
            rec.left = [r for r in rec.left if r not in rows]
            rec.right = [r for r in rec.right if r not in rows]
        self._plan = None

    def close(self, tick: int, wait: bool = True) -> None:
        """Stop every recording; ``wait``: block until their files are closed (the runner stays usable)."""
        for rec in list(self.active.values()):
            self.stop(rec, tick)
        if wait:
            self.wait()

    def wait(self) -> None:
        """Block until the file jobs handed over so far have run (tests, shutdown)."""
        self.runner.wait()

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
            jobs: list[Callable[[], None]] = []        # one hand-over to the writer per tick, not one per file
            for rec in list(self.active.values()):
                if rec.phase == due:
                    self._flush(rec, tick, jobs)
            if jobs:
                def run_all() -> None:
                    for job in jobs:
                        job()
                self._run(run_all)

    def _flush(self, rec: Recording, tick: int, jobs: list[Callable[[], None]] | None = None) -> None:
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
        if rec.channels == 1:
            chunk = np.ascontiguousarray(chunk[:, 0])
        rec.flushed_tick = tick
        rec.frames += len(chunk)
        fsync = self.fsync

        def job() -> None:                 # runs after the open job (jobs run in order): rec.file is set
            f = rec.file
            if f is None or rec.error is not None:
                return
            try:
                f.write(chunk)
                _update_header(f)
                if fsync:
                    f.flush()
            except (OSError, RuntimeError, ValueError) as e:
                self._fail(rec, e)
        if jobs is None:
            self._run(job)
        else:
            jobs.append(job)

    def _run(self, job: Callable[[], None]) -> None:
        self.runner(job)

    def _index(self, entry: dict[str, Any]) -> None:
        """Job: append one line to index.jsonl."""
        try:
            with open(self.index_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True) + "\n")
        except OSError as e:
            log.error("recordings index %s not written: %s", self.index_path, e)


def read_index(directory: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The index of a recordings directory: the latest record of each file (interrupted ones stay 'recording')."""
    out: dict[str, dict[str, Any]] = {}
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
