"""``Ivr``: one per switch. Holds the validated config, decides once whether speech input is on (and says
so in one log line), and creates sessions and the speech worker.

Sessions take a monotonic ``now``; ``Ivr.wall_offset`` (seconds to add to ``now`` for Unix time, kept
current by the owner, e.g. ``ivr.wall_offset = time.time() - time.monotonic()``) is handed to each new
session for the decisions that need the date (business hours, holidays, voicemail stamps). With the
default 0.0, ``now`` must be Unix time."""
from __future__ import annotations

import logging
import asyncio
from typing import Any, Callable, Hashable

from .asr import VoskRecognizer, load_model, vosk_available
from .asr_worker import SpeechWorker
from .config import IvrConfig
from .engine import IvrSession, Screen

__all__ = ["Ivr"]


class Ivr:
    def __init__(self, config: IvrConfig, log: logging.Logger | None = None, wall_offset: float = 0.0):
        self.config = config
        self.wall_offset = wall_offset
        self.screen: Screen | None = None  # the switch's caller lists (IvrSession's ``screen``); None: config only
        self.log = log or logging.getLogger("softswitch.ivr")
        self._model: Any = None
        model = config.asr.model
        if model is None:
            self.speech = False
            self.log.info("ivr: speech input off (no [ivr.asr] model configured); menus take DTMF only")
        elif not vosk_available():
            self.speech = False
            self.log.warning("ivr: speech input off: [ivr.asr] model is set but the vosk package is not installed "
                             "(pip install vosk); menus take DTMF only")
        elif not (model / "conf").is_dir() and not (model / "am").is_dir():
            self.speech = False
            self.log.warning("ivr: speech input off: %s is not a vosk model directory; menus take DTMF only", model)
        else:
            self.speech = True
            self.log.info("ivr: speech input on (vosk model %s)", model)

    def session(self, flow: str, caller: str, now: float, call_id: str = "") -> IvrSession:
        """A session on the flow named ``flow`` (or the flow of the dialled number ``flow``)."""
        f = self.config.flows.get(flow) or self.config.flow_for_number(flow)
        if f is None:
            raise KeyError(f"no IVR flow or number {flow!r}")
        return IvrSession(f, self.config, caller, now, call_id, speech=self.speech, wall_offset=self.wall_offset,
                          screen=self.screen)

    def speech_worker(self, on_result: Callable[[Hashable, str], None], *,
                      loop: asyncio.AbstractEventLoop | None = None,
                      post: Callable[[Callable[[], None]], Any] | None = None, **options: Any) -> SpeechWorker:
        """The thread that runs the recognisers (``ivr.asr_worker.SpeechWorker``) on the configured model,
        loaded in that thread on first use. ``options``: ``SpeechWorker``'s keyword arguments."""
        if not self.speech:
            raise RuntimeError("speech input is off")
        options.setdefault("log", self.log)
        return SpeechWorker(self.config.asr.model, on_result, loop=loop, post=post, **options)

    def recognizer(self, keywords: list[str]) -> VoskRecognizer:
        """A recogniser for one ``StartSpeech``; the model is loaded on first use and shared. This blocks
        (seconds for the model, then each ``feed``): on the switch use ``speech_worker`` instead."""
        if not self.speech:
            raise RuntimeError("speech input is off")
        if self._model is None:
            model = self.config.asr.model
            assert model is not None  # speech is on: a model is configured
            self._model = load_model(model)
        return VoskRecognizer(self._model, keywords)
