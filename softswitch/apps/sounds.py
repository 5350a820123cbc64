"""The applications' prompts: names to files, files to sounds in the media engine's bank.

Every prompt WAV under ``[ivr] sounds_dir`` is loaded once at start (``preload``, called by the edge),
so that playing a prompt or a sequence of prompts never reads the disk in a handler; a file the
preload did not see is loaded on first use with a warning (a prompt added while running).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("softswitch.sounds")


def tone(parts: list[tuple[float, float]]) -> np.ndarray:
    """(frequency Hz or 0 for a pause, seconds) pieces as 8 kHz samples at int16 scale."""
    out = []
    for freq, secs in parts:
        t = np.arange(int(secs * 8000)) / 8000
        out.append(np.zeros_like(t) if freq == 0 else 9000 * np.sin(2 * np.pi * freq * t) * np.minimum(1, t * 200))
    return np.concatenate(out).astype(np.float32)


class Sounds:
    def __init__(self, config: Any, media: Any):
        self.media = media
        ivr = config.ivr
        self.sounds_dir = Path(ivr.sounds_dir) if ivr is not None else config.source.parent / "var" / "prompts"
        self.language = ivr.default_language if ivr is not None else "en"
        self.languages = set(ivr.languages) if ivr is not None else {self.language}
        self._known: set[str] = set()

    def preload(self) -> int:
        """Load every prompt file (at start, by the edge); returns how many."""
        if self.media is None or not self.sounds_dir.is_dir():
            return 0
        files = sorted(str(p) for p in self.sounds_dir.rglob("*.wav"))
        for f in files:
            try:
                self.media.bank.load(f)
                self._known.add(f)
            except Exception as e:  # a broken file is reported, the others still load
                log.warning("prompt %s not loaded: %s", f, e)
        return len(self._known)

    def files(self, names: list[str], language: str | None = None) -> list[str]:
        """Prompt files of ``names`` in ``language``; [] (with a warning) if one is missing."""
        files = [str(self.sounds_dir / (language or self.language) / f"{n}.wav") for n in names]
        missing = [f for f in files if not self.exists(f)]
        if missing:
            log.warning("prompt(s) missing, not played: %s (run: softswitch prompts build)", ", ".join(missing[:3]))
            return []
        return files

    def exists(self, file: str) -> bool:
        if file in self._known or (self.media is not None and self.media.bank.find(file) is not None):
            return True
        return Path(file).is_file()  # not preloaded (added while running, or no preload in a test)

    def sequence(self, files: list[str]) -> Any:
        """One sound that plays ``files`` one after the other (cached by the list of names)."""
        bank = self.media.bank
        name = "seq:" + "|".join(files)
        snd = bank.sounds.get(name)
        if snd is None:
            parts = []
            for f in files:
                s = bank.find(f)
                if s is None:
                    log.warning("prompt %s was not preloaded: reading it now", f)
                    s = bank.load(f)
                parts.append(bank.pcm[s.offset:s.offset + s.length])
            snd = bank.add(name, np.concatenate(parts))
        return snd

    def generated(self, name: str, parts: list[tuple[float, float]]) -> Any:
        """A tone made in memory (feature code confirmations), cached by name."""
        bank = self.media.bank
        return bank.sounds.get(name) or bank.add(name, tone(parts))
