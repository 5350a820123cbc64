"""``SpeechWorker``: speech recognition off the event loop.

Vosk is slow and blocking: loading a model takes seconds and each 200 ms chunk of audio 10-30 ms of CPU.
One worker thread does both (vosk's C++ code releases the GIL, so a thread is enough); the event loop
only queues work and gets results back on the loop::

    def heard(key, text):                        # runs on the loop
        ...feed ivr.events.SpeechResult(text) to the session of ``key``...

    worker = SpeechWorker(model_dir, heard, loop=asyncio.get_running_loop())
    worker.open(call_id, start_speech.keywords)  # StartSpeech: a recogniser on the menu's keywords
    worker.feed(call_id, samples)                # int16 at 8 kHz, e.g. each 200 ms chunk
    worker.close(call_id)                        # StopSpeech / hang-up
    worker.stop()                                # at shutdown: joins the thread

``open``, ``feed`` and ``close`` never block (they append to a queue and return; they are thread-safe).
The model is loaded in the worker on the first ``open`` (or ``preload()``), never on the loop. One
recogniser per key; ``open`` on a key that is already open replaces its recogniser (the next menu).

Results arrive by ``on_result(key, text)``, called on the loop through ``loop.call_soon_threadsafe`` (or
the ``post(fn)`` given instead of a loop). A result is only delivered while the session that produced it
is still the open one: once ``close(key)`` (or a new ``open(key, ...)``) has returned on the loop, no
result of the old recogniser reaches ``on_result``, even one already on its way.

The queue is bounded by ``max_pending`` chunks of audio (all keys together; open/close are never
dropped): when the worker falls behind, the oldest audio is dropped, with a warning at most every
``warn_interval`` seconds, and counted in ``dropped``.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Hashable

import numpy as np

from . import asr

__all__ = ["SpeechWorker"]

_OPEN, _FEED, _CLOSE, _LOAD = "open", "feed", "close", "load"


class SpeechWorker:
    """One thread running vosk recognisers for many sessions.

    ``model``: a vosk model directory (loaded in the worker thread when first needed) or an already
    loaded ``vosk.Model`` (e.g. from ``ivr.asr.load_model``; shared, recognisers are per key).
    ``on_result(key, text)``: called on the loop with the final text of each utterance heard.
    ``loop`` or ``post``: where ``on_result`` runs; ``post(fn)`` must run ``fn()`` on the owner's thread and
    be callable from any thread (``loop.call_soon_threadsafe`` is what ``loop`` gives).
    ``sample_rate``: the rate of the fed audio. ``max_pending``: queued audio chunks before the oldest
    is dropped.
    """

    def __init__(self, model: str | Path | Any, on_result: Callable[[Hashable, str], None], *,
                 loop: asyncio.AbstractEventLoop | None = None, post: Callable[[Callable[[], None]], Any] | None = None,
                 sample_rate: int = 8000, max_pending: int = 500, warn_interval: float = 5.0,
                 log: logging.Logger | None = None, name: str = "speech-worker"):
        if (loop is None) == (post is None):
            raise ValueError("SpeechWorker needs exactly one of loop= and post=")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._model_source = model
        self._on_result = on_result
        self._post = post if post is not None else loop.call_soon_threadsafe  # type: ignore[union-attr]
        self.sample_rate = sample_rate
        self.max_pending = max_pending
        self.warn_interval = warn_interval
        self.log = log or logging.getLogger("softswitch.ivr")
        self.dropped = 0  # audio chunks dropped because the worker lagged (total)
        self._cv = threading.Condition()
        self._q: collections.deque[tuple[str, Hashable, int, Any]] = collections.deque()
        self._audio = 0  # feed items in _q
        self._live: dict[Hashable, int] = {}  # key -> generation of its open session (shared with the loop)
        self._gen = 0
        self._stopping = False
        self._dropped_unreported = 0
        self._last_warning = -float("inf")
        self._model: Any = None if isinstance(model, (str, Path)) else model
        self._model_failed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ the loop's side (any thread)
    def open(self, key: Hashable, keywords: list[str]) -> None:
        """Start (or restart) the recogniser of ``key`` on a keyword grammar."""
        with self._cv:
            if self._stopping:
                return
            self._gen += 1
            self._live[key] = self._gen
            self._q.append((_OPEN, key, self._gen, list(keywords)))
            self._cv.notify()

    def feed(self, key: Hashable, samples: np.ndarray | bytes) -> None:
        """Queue audio (int16 at ``sample_rate``) for ``key``'s recogniser; ignored if ``key`` is not open.
        The samples are copied: the caller may reuse its buffer."""
        if isinstance(samples, (bytes, bytearray, memoryview)):
            chunk = np.frombuffer(samples, dtype="<i2").copy()
        else:
            chunk = np.asarray(samples).astype(np.int16, copy=True)
        report = 0
        with self._cv:
            gen = self._live.get(key)
            if gen is None or self._stopping:
                return
            self._q.append((_FEED, key, gen, chunk))
            self._audio += 1
            if self._audio > self.max_pending:
                for i, item in enumerate(self._q):
                    if item[0] == _FEED:
                        del self._q[i]
                        break
                self._audio -= 1
                self.dropped += 1
                self._dropped_unreported += 1
                now = time.monotonic()
                if now - self._last_warning >= self.warn_interval:
                    report, self._dropped_unreported, self._last_warning = self._dropped_unreported, 0, now
            self._cv.notify()
        if report:
            self.log.warning("ivr: speech worker is behind: dropped the oldest %d audio chunk(s) (%d queued, "
                             "%d dropped in all)", report, self.max_pending, self.dropped)

    def close(self, key: Hashable) -> None:
        """End ``key``'s recogniser; its queued audio is skipped and no further result is delivered."""
        with self._cv:
            gen = self._live.pop(key, None)
            if gen is None or self._stopping:
                return
            self._q.append((_CLOSE, key, gen, None))
            self._cv.notify()

    def preload(self) -> None:
        """Load the model now (in the worker) rather than on the first ``open``."""
        with self._cv:
            if not self._stopping:
                self._q.append((_LOAD, None, 0, None))
                self._cv.notify()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Drop all queued work and sessions and join the thread (a chunk or model load in progress is
        finished first). Idempotent; after it the other methods do nothing."""
        with self._cv:
            self._stopping = True
            self._q.clear()
            self._audio = 0
            self._live.clear()
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.log.warning("ivr: speech worker did not stop within %s s", timeout)

    @property
    def pending(self) -> int:
        """Queued audio chunks (for stats and tests)."""
        with self._cv:
            return self._audio

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ the worker thread
    def _run(self) -> None:
        recs: dict[Hashable, tuple[int, asr.VoskRecognizer]] = {}
        while True:
            with self._cv:
                while not self._q and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    break
                op, key, gen, payload = self._q.popleft()
                if op == _FEED:
                    self._audio -= 1
                live = op == _LOAD or self._live.get(key) == gen
            try:
                if op == _FEED:
                    r = recs.get(key)
                    if live and r is not None and r[0] == gen:
                        text = r[1].feed(payload)
                        if text:
                            self._deliver(key, gen, text)
                elif op == _OPEN:
                    recs.pop(key, None)
                    if live and self._load():
                        recs[key] = (gen, asr.VoskRecognizer(self._model, payload, sample_rate=self.sample_rate))
                elif op == _CLOSE:
                    if key in recs and recs[key][0] == gen:
                        del recs[key]
                elif op == _LOAD:
                    self._load()
            except Exception:
                self.log.exception("ivr: speech recogniser for %r failed; it stops listening", key)
                recs.pop(key, None)
        recs.clear()

    def _load(self) -> bool:
        if self._model is None and not self._model_failed:
            started = time.monotonic()
            try:
                self._model = asr.load_model(self._model_source)
            except Exception:
                self._model_failed = True
                self.log.exception("ivr: could not load the vosk model %s; speech input stays off",
                                   self._model_source)
            else:
                self.log.info("ivr: vosk model %s loaded in %.1f s", self._model_source, time.monotonic() - started)
        return self._model is not None

    def _deliver(self, key: Hashable, gen: int, text: str) -> None:
        try:
            self._post(functools.partial(self._result, key, gen, text))
        except RuntimeError:  # the loop is closed: shutting down
            self.log.debug("ivr: speech result for %r after the loop closed: %r", key, text)

    def _result(self, key: Hashable, gen: int, text: str) -> None:
        """On the loop: hand the text over if the session that heard it is still the open one."""
        with self._cv:
            live = self._live.get(key) == gen
        if live:
            self._on_result(key, text)
