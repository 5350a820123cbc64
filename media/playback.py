"""Prompts and music: WAV (or anything libsndfile reads) at any rate and channel count, converted once
at load to 8 kHz mono and kept in one sound bank.

The bank is a single float32 array holding every loaded sound back to back (each followed by a frame
of silence), plus its µ-law and A-law encodings. A tick reads the next 20 ms of every active player
with one fancy index over the bank; a music channel is one player shared by all its listeners, and a
listener that hears nothing but the music gets the pre-encoded bytes without any mixing or encoding.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .g711 import ENCODE
from .rtp import FRAME

RATE = 8000


def resample(x: np.ndarray, rate: int, new_rate: int = RATE) -> np.ndarray:
    """Band-limited resampling by FFT (done once per file at load, so exactness beats speed)."""
    if rate == new_rate or len(x) == 0:
        return x.astype(np.float64)
    n = len(x)
    m = max(1, int(round(n * new_rate / rate)))
    pad = min(4096, n)                                   # limit circular wrap-around at the ends
    xp = np.concatenate([x, np.zeros(pad)])
    npad = len(xp)
    mp = int(round(npad * new_rate / rate))
    spec = np.fft.rfft(xp)
    keep = min(len(spec), mp // 2 + 1)
    out_spec = np.zeros(mp // 2 + 1, dtype=complex)
    out_spec[:keep] = spec[:keep]
    if mp % 2 == 0 and keep == mp // 2 + 1 and mp < npad:
        out_spec[-1] = out_spec[-1].real                 # the new Nyquist bin must be real
    y = np.fft.irfft(out_spec, mp) * (mp / npad)
    return y[:m]


def load_audio(path: str | os.PathLike[str], gain_db: float = 0.0) -> np.ndarray:
    """Any sound file → 8 kHz mono float samples on the int16 scale."""
    import soundfile as sf
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    mono = data.mean(axis=1)
    y = resample(mono, rate) * 32767.0 * (10 ** (gain_db / 20))
    return np.clip(y, -32768, 32767)


@dataclass(frozen=True)
class Sound:
    name: str
    offset: int        # first sample in the bank
    length: int        # samples (8 kHz)

    @property
    def duration(self) -> float:
        return self.length / RATE


class SoundBank:
    """All prompts and music, loaded once and cached by path (``load`` reloads a file that changed).

    Sans-IO use: ``preload`` every file at start; at play time ``lookup``/``find`` (never the disk)."""

    def __init__(self) -> None:
        self.pcm = np.zeros(FRAME, dtype=np.float32)           # starts with a frame of silence
        self.encoded = np.empty((2, FRAME), dtype=np.uint8)
        self.encoded[:, :] = ENCODE[:, 0][:, None]
        self.sounds: dict[str, Sound] = {}
        self._stamp: dict[str, tuple[float, int]] = {}
        self._alias: dict[str, Sound] = {}                      # path as given / absolute -> sound
        self.silence = Sound("<silence>", 0, 0)

    def add(self, name: str, samples: np.ndarray) -> Sound:
        """Add 8 kHz float samples (int16 scale) under a name."""
        s = np.clip(np.asarray(samples, dtype=np.float32), -32768, 32767)
        snd = Sound(name, len(self.pcm), len(s))
        block = np.concatenate([s, np.zeros(FRAME, dtype=np.float32)])
        s16 = np.rint(block).astype(np.int16).view(np.uint16)
        self.pcm = np.concatenate([self.pcm, block])
        self.encoded = np.concatenate([self.encoded, ENCODE[:, s16]], axis=1)
        self.sounds[name] = snd
        return snd

    def load(self, path: str | os.PathLike[str], gain_db: float = 0.0) -> Sound:
        """Read a sound file (reads the disk: at start-up, or for a file changed since it was loaded).
        Afterwards ``lookup`` finds it by the path as given here, its absolute and its resolved path."""
        key = str(Path(path).resolve())
        st = os.stat(key)
        stamp = (st.st_mtime, st.st_size)
        if key in self.sounds and self._stamp.get(key) == stamp:
            snd = self.sounds[key]
        else:
            snd = self.add(key, load_audio(key, gain_db))
            self._stamp[key] = stamp
        name = os.fspath(path)
        self._alias[name] = snd
        self._alias[os.path.abspath(name)] = snd
        return snd

    def preload(self, paths: Iterable[str | os.PathLike[str]], gain_db: float = 0.0) -> list[Sound]:
        """Load every file now (call control at start: every prompt, the hold music), so that playing them
        never reads the disk. Raises (OSError, soundfile.LibsndfileError) for a file that cannot be read."""
        return [self.load(p, gain_db) for p in paths]

    def find(self, sound: Sound | str | os.PathLike[str]) -> Sound | None:
        """A loaded sound by name or path (as loaded, absolute or resolved), or None. Never reads the disk."""
        if isinstance(sound, Sound):
            return sound
        name = os.fspath(sound)
        snd = self.sounds.get(name) or self._alias.get(name)
        if snd is None and not name.startswith(("<", "seq:")):
            snd = self._alias.get(os.path.abspath(name))      # string work only: no file is looked at
        return snd

    def lookup(self, sound: Sound | str | os.PathLike[str]) -> Sound:
        """Like ``find``, but a sound that was not loaded raises KeyError. Never reads the disk."""
        snd = self.find(sound)
        if snd is None:
            raise KeyError(f"sound {sound!r} was not preloaded (SoundBank.preload)")
        return snd

    get = lookup


_AR = np.arange(FRAME)


class Players:
    """The active players (prompts to one leg, shared music channels) as parallel arrays, one row each."""

    def __init__(self, bank: SoundBank, capacity: int = 64):
        self.bank = bank
        self.offset = np.zeros(capacity, dtype=np.int64)
        self.length = np.ones(capacity, dtype=np.int64)
        self.pos = np.zeros(capacity, dtype=np.int64)
        self.loop = np.zeros(capacity, dtype=bool)
        self.used = np.zeros(capacity, dtype=bool)
        self._free = list(range(capacity - 1, -1, -1))

    @property
    def capacity(self) -> int:
        return len(self.offset)

    def start(self, sound: Sound, loop: bool) -> int:
        if not self._free:
            n = self.capacity
            for name in ("offset", "length", "pos", "loop", "used"):
                a = getattr(self, name)
                setattr(self, name, np.concatenate([a, np.zeros_like(a)]))
            self.length[n:] = 1
            self._free = list(range(2 * n - 1, n - 1, -1))
        r = self._free.pop()
        self.offset[r], self.length[r], self.pos[r], self.loop[r], self.used[r] = (
            sound.offset, max(1, sound.length), 0, loop, True)
        if sound.length == 0:
            self.loop[r] = False
        return r

    def stop(self, row: int) -> None:
        if self.used[row]:
            self.used[row] = False
            self.offset[row], self.length[row], self.pos[row] = 0, 1, 0
            self._free.append(row)

    def frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frames P×160 float32, bank indices P×160, rows that finished this tick) and advance."""
        k = self.pos[:, None] + _AR
        ln = self.length[:, None]
        k = np.where(self.loop[:, None], k % ln, np.minimum(k, ln))    # past the end: the padding silence
        idx = self.offset[:, None] + k
        out = self.bank.pcm[idx]
        self.pos += FRAME
        self.pos = np.where(self.loop, self.pos % self.length, self.pos)
        finished = np.nonzero(self.used & ~self.loop & (self.pos >= self.length))[0]
        return out, idx, finished
