"""Audio helpers for end-to-end media tests: test signals, WAV I/O and "is this the same audio" checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 8000

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def melody(seconds: float = 4.0, rate: int = RATE, seed: int = 7) -> np.ndarray:
    """A signal no codec or jitter buffer can fake: random notes of random length with an envelope,
    so its cross-correlation has one sharp peak at the true delay."""
    rng = np.random.default_rng(seed)
    out = []
    total = int(seconds * rate)
    n = 0
    while n < total:
        dur = int(rng.uniform(0.08, 0.25) * rate)
        f = rng.uniform(300, 1800)
        t = np.arange(dur) / rate
        env = np.minimum(1, np.minimum(t, t[::-1]) * 40)
        out.append(0.35 * env * np.sin(2 * np.pi * f * t))
        n += dur
    return np.concatenate(out)[:total].astype(np.float32)


def dtmf_wav(digits: str, rate: int = RATE, on: float = 0.12, off: float = 0.12, lead: float = 0.5) -> np.ndarray:
    parts = [np.zeros(int(lead * rate), np.float32)]
    t = np.arange(int(on * rate)) / rate
    for d in digits:
        lo, hi = DTMF_FREQS[d]
        parts.append((0.25 * np.sin(2 * np.pi * lo * t) + 0.25 * np.sin(2 * np.pi * hi * t)).astype(np.float32))
        parts.append(np.zeros(int(off * rate), np.float32))
    parts.append(np.zeros(int(lead * rate), np.float32))
    return np.concatenate(parts)


def write_wav(path: Path, samples: np.ndarray, rate: int = RATE) -> Path:
    sf.write(str(path), samples, rate, subtype="PCM_16")
    return path


def seconds(path: Path) -> float:
    """How long a WAV (a built prompt) plays."""
    return float(sf.info(str(path)).duration)


def read_mono(path: Path, rate: int = RATE, channel: int | None = None) -> np.ndarray:
    """A WAV as float mono (or one channel) at ``rate`` (linear resampling is enough for correlation)."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = data[:, channel] if channel is not None else data.mean(axis=1)
    if sr != rate:
        n = int(len(x) * rate / sr)
        x = np.interp(np.arange(n) * (sr / rate), np.arange(len(x)), x).astype(np.float32)
    return x


def best_correlation(reference: np.ndarray, recorded: np.ndarray) -> tuple[float, int]:
    """Peak normalised cross-correlation of ``reference`` inside ``recorded`` and its lag (samples)."""
    ref = reference - reference.mean()
    n = len(recorded) + len(ref)
    size = 1 << (n - 1).bit_length()
    spec = np.fft.rfft(recorded, size) * np.conj(np.fft.rfft(ref, size))
    xc = np.fft.irfft(spec, size)[: len(recorded)]
    lag = int(np.argmax(xc))
    seg = recorded[lag: lag + len(ref)]
    if len(seg) < len(ref) // 2:
        return 0.0, lag
    r = ref[: len(seg)]
    denom = float(np.linalg.norm(r) * np.linalg.norm(seg - seg.mean())) or 1.0
    return float(np.dot(r, seg - seg.mean()) / denom), lag


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def windowed_correlation(reference: np.ndarray, recorded: np.ndarray, window: float = 0.5,
                         search: float = 0.2, rate: int = RATE) -> float:
    """Median over ``window``-second pieces of the reference of each piece's best normalised
    correlation in the recording near the overall alignment. A jitter buffer that adapts (drops or
    repeats a frame) shifts the audio by 20 ms steps; this measure is about what was heard, not about
    sample-exact timing."""
    _, lag = best_correlation(reference, recorded)
    w, sr = int(window * rate), int(search * rate)
    scores = []
    for start in range(0, len(reference) - w + 1, w):
        piece = reference[start:start + w]
        if rms(piece) < 1e-3:
            continue
        lo = max(0, lag + start - sr)
        region = recorded[lo: lag + start + w + sr]
        if len(region) < w:
            scores.append(0.0)
            continue
        scores.append(best_correlation(piece, region)[0])
    return float(np.median(scores)) if scores else 0.0
