"""Speech input for menus: a keyword matcher over recogniser output, and a small vosk wrapper.

Vosk is optional and imported lazily: without ``[ivr.asr] model`` (or without the vosk package) menus
take DTMF only, and ``ivr.runtime.Ivr`` says so in one log line at start. Loading a model and feeding a
recogniser block for a while (seconds, and 10-30 ms per 200 ms chunk): on the switch they run in
``ivr.asr_worker.SpeechWorker``'s thread, not on the event loop.

The matcher works on what recognisers actually print: lower-case words separated by spaces for English,
and Chinese characters often separated by spaces too ("自 助 服务"), so CJK keywords are compared with
all spaces removed while Latin keywords must match whole words.
"""
from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KeywordMatcher", "VoskRecognizer", "load_model", "model_sample_rate", "vosk_available"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _is_cjk(s: str) -> bool:
    return any(unicodedata.east_asian_width(c) in ("W", "F") for c in s)


def _norm(s: str) -> str:
    return unicodedata.normalize("NFKC", s).lower()


class KeywordMatcher:
    """Maps a recognised phrase to a menu choice. ``keywords``: choice (a DTMF key) -> words/phrases.
    The longest keyword found wins (so "customer service" beats "service"); a tie between different
    choices is ambiguous and matches nothing (the caller is asked again)."""

    def __init__(self, keywords: dict[str, list[str]]):
        self._latin: list[tuple[tuple[str, ...], str]] = []
        self._cjk: list[tuple[str, str]] = []
        for choice, words in keywords.items():
            for w in words:
                w = _norm(w)
                if _is_cjk(w):
                    self._cjk.append(("".join(w.split()), choice))
                else:
                    toks = tuple(_WORD.findall(w))
                    if toks:
                        self._latin.append((toks, choice))
            # the digit itself, spoken as a digit ("1") by some recognisers
            self._latin.append(((choice,), choice))

    def match(self, text: str) -> str | None:
        text = _norm(text)
        if not text.strip() or text.strip() == "[unk]":
            return None
        tokens = _WORD.findall(text)
        squashed = "".join(text.split())
        best: list[tuple[int, str]] = []
        for toks, choice in self._latin:
            n = len(toks)
            if any(tuple(tokens[i:i + n]) == toks for i in range(len(tokens) - n + 1)):
                best.append((sum(map(len, toks)), choice))
        for w, choice in self._cjk:
            if w in squashed:
                best.append((len(w) * 3, choice))  # a CJK character carries about a word
        if not best:
            return None
        top = max(b[0] for b in best)
        choices = {c for score, c in best if score == top}
        return choices.pop() if len(choices) == 1 else None


def vosk_available() -> bool:
    try:
        import vosk  # noqa: F401
    except ImportError:
        return False
    return True


def model_sample_rate(model_dir: Path) -> int:
    """The rate the model's features were trained at (``--sample-frequency`` in conf/mfcc.conf; 16 kHz default)."""
    conf = Path(model_dir) / "conf" / "mfcc.conf"
    if conf.exists():
        m = re.search(r"--sample-frequency=(\d+)", conf.read_text())
        if m:
            return int(m.group(1))
    return 16000


def load_model(model_dir: Path | str) -> Any:
    """A ``vosk.Model`` from a model directory, with ``sample_rate`` set to the rate of its features.
    Slow (seconds) and blocking: call it off the event loop."""
    import vosk  # lazy: optional dependency
    vosk.SetLogLevel(-1)
    model = vosk.Model(str(model_dir))
    model.sample_rate = model_sample_rate(Path(model_dir))
    return model


class VoskRecognizer:
    """One utterance stream of one caller, restricted to a menu's keywords (a vosk grammar: faster and far
    more accurate than open dictation on 8 kHz phone audio). Feed 8 kHz int16 audio; a final text comes back
    when vosk detects the end of an utterance. ``model`` is a ``vosk.Model`` (load it once and share it) or
    a model directory."""

    def __init__(self, model: Any, keywords: list[str], sample_rate: int = 8000):
        import vosk  # lazy: optional dependency
        if isinstance(model, (str, Path)):
            model = load_model(model)
        self.model_rate = getattr(model, "sample_rate", 16000)
        self.sample_rate = sample_rate
        grammar = sorted({k for k in keywords if k}) + ["[unk]"]
        self._rec = vosk.KaldiRecognizer(model, self.model_rate, json.dumps(grammar, ensure_ascii=False))

    def _resampled(self, pcm: bytes | np.ndarray) -> bytes:
        x = np.frombuffer(pcm, dtype="<i2") if isinstance(pcm, (bytes, bytearray)) else np.asarray(pcm)
        if self.model_rate != self.sample_rate and len(x):
            from media.playback import resample  # the engine's band-limited resampler
            x = resample(x.astype(np.float64), self.sample_rate, self.model_rate)
        return np.clip(np.round(x), -32768, 32767).astype("<i2").tobytes()

    def feed(self, pcm: bytes | np.ndarray) -> str | None:
        """Audio in (int16 at ``sample_rate``); the final text if an utterance just ended, else None."""
        if self._rec.AcceptWaveform(self._resampled(pcm)):
            return self._text(self._rec.Result())
        return None

    def final(self) -> str:
        """Flush: the text of whatever was said since the last result ("" if nothing)."""
        return self._text(self._rec.FinalResult()) or ""

    @staticmethod
    def _text(result: str) -> str | None:
        text = json.loads(result).get("text", "").replace("[unk]", "").strip()
        return text or None
