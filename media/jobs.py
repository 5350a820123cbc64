"""Job runners: where the media engine's file work (recording) runs.

The engine and the recorder never touch a file themselves: each file operation (make a folder, open a
WAV, write a second of audio and update its header, close it, append to the recordings index) is a
zero-argument callable handed to a *job runner*. Jobs run in the order they were handed over.

- ``SyncRunner`` runs each job at once in the caller's thread: the sans-IO default, for unit tests and
  tools that have no event loop to keep free.
- ``ThreadRunner`` runs them in one background thread (libsndfile releases the GIL while it writes):
  what the asyncio edge (``media.edge.MediaEdge``) installs, so no file operation runs on the event loop.

The engine starts no threads itself: whoever builds the engine (or the edge) passes a runner in.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("softswitch.media")

Job = Callable[[], None]


class JobRunner(Protocol):
    def __call__(self, job: Job) -> None: ...          # hand a job over (never blocks on the job itself)

    def wait(self) -> None: ...                        # block until every job handed over so far has run

    def close(self) -> None: ...                       # wait, then release the runner's resources


def _run_logged(job: Job) -> None:
    try:
        job()
    except Exception:   # one failed write must not stop the others (the job reports its own failures)
        log.exception("media file job failed")


class SyncRunner:
    """Runs every job immediately, in the calling thread."""

    threaded = False

    def __call__(self, job: Job) -> None:
        _run_logged(job)

    def wait(self) -> None:
        pass

    def close(self) -> None:
        pass


class ThreadRunner:
    """Runs jobs in order in one daemon thread; ``wait`` blocks until the queue is empty."""

    threaded = True

    def __init__(self, name: str = "media-files") -> None:
        self.q: queue.Queue[Job | None] = queue.Queue()   # None: stop
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()
        self._closed = False

    def __call__(self, job: Job) -> None:
        if self._closed:
            raise RuntimeError("job runner is closed")
        self.q.put(job)

    def _run(self) -> None:
        while True:
            job = self.q.get()
            try:
                if job is None:
                    return
                _run_logged(job)
            finally:
                self.q.task_done()

    def wait(self) -> None:
        self.q.join()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.q.put(None)
            self.thread.join()
