"""``Ivr``: one per switch. Holds the validated config, decides once whether speech input is on (and says
so in one log line), loads the vosk model once, and creates sessions."""
from __future__ import annotations

import logging
from typing import Any

from .asr import VoskRecognizer, vosk_available
from .config import IvrConfig
from .engine import IvrSession

__all__ = ["Ivr"]


class Ivr:
    def __init__(self, config: IvrConfig, log: logging.Logger | None = None):
        self.config = config
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
        return IvrSession(f, self.config, caller, now, call_id, speech=self.speech)

    def recognizer(self, keywords: list[str]) -> VoskRecognizer:
        """A recogniser for one ``StartSpeech``; the model is loaded on first use and shared."""
        if not self.speech:
            raise RuntimeError("speech input is off")
        if self._model is None:
            import vosk
            vosk.SetLogLevel(-1)
            self._model = vosk.Model(str(self.config.asr.model))
            from .asr import model_sample_rate
            self._model.sample_rate = model_sample_rate(self.config.asr.model)
        return VoskRecognizer(self._model, keywords)
