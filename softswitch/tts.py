"""Runtime speech at the edge: an IVR ``Say`` (``events.SpeakRequest``) becomes a WAV played to the caller.

The text is the flow's (a campaign contact's appointment time...) or, for ``lookup = "order_status"``, the
status of the work order whose number the caller typed, read from the store. It is rendered by
``ivr.tts.SpeechCache`` (espeak-ng, the prompts' voices) in one worker thread, cached on disk under
``var/tts`` (a text said before costs a file lookup), loaded into the media engine's sound bank, and handed
back to call control (``SwitchCore.speech_rendered``). Requests are bounded: at most ``MAX_PENDING``
wait; more are answered at once with nothing to say (the flow goes on), never queued without limit.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ivr.tts import SpeechCache, order_status_text

from .events import SpeakRequest

log = logging.getLogger("softswitch.tts")

MAX_PENDING = 64


class RuntimeSpeech:
    def __init__(self, server: Any, directory: Path | None = None):
        self.server = server
        store_dir = Path(server.config.store.path).parent
        self.cache = SpeechCache(directory or store_dir / "tts")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tts")
        self._pending: set[asyncio.Task[None]] = set()

    def request(self, req: SpeakRequest) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.warning("call %s: runtime speech skipped: %d requests waiting", req.call, len(self._pending))
            self._answer(req, None)
            return
        task = asyncio.ensure_future(self._speak(req))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def text_for(self, req: SpeakRequest) -> str:
        if req.lookup != "order_status":
            return req.text
        digits = "".join(c for c in req.value if c.isdigit())[:18]
        centre = self.server.centre
        order = await centre.get_order(int(digits)) if centre is not None and digits else None
        if order is None:
            return order_status_text(req.language, digits or "-", None)
        due_at = getattr(order, "due_at", None)
        due = SpeechCache.day(due_at, req.language) if due_at else ""
        return order_status_text(req.language, str(order.id), order.status, due)

    async def _speak(self, req: SpeakRequest) -> None:
        file: str | None = None
        try:
            text = await self.text_for(req)
            if text.strip():
                loop = asyncio.get_running_loop()
                path = await loop.run_in_executor(self._pool, self.cache.render, text, req.language)
                file = str(path)
                media = self.server.core.media
                if media is not None and media.bank.find(file) is None:
                    media.bank.load(file)
                log.info("call %s: says %r", req.call, text[:80])
        except Exception:
            log.exception("call %s: runtime speech failed", req.call)
            file = None
        self._answer(req, file)

    def _answer(self, req: SpeakRequest, file: str | None) -> None:
        server = self.server
        server._execute(server.core.speech_rendered(req.call, req.id, file, server.now()))
        server._rearm()

    async def stop(self) -> None:
        for t in list(self._pending):
            t.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)


def wire(server: Any, item: Any) -> bool:
    if isinstance(item, SpeakRequest):
        tts = getattr(server, "tts", None)
        if tts is None:
            server._execute(server.core.speech_rendered(item.call, item.id, None, server.now()))
        else:
            tts.request(item)
        return True
    return False
