"""Answering-machine detection (AMD): is the party that answered an outbound call a person or a machine?

Sans-IO: ``AmdDetector`` is fed the answered leg's decoded audio (8 kHz, int16 scale, any chunk size; the
switch's ``Listen`` gives 200 ms chunks) with the time it arrived and returns a ``Decision`` (HUMAN /
MACHINE / NOTSURE and its cause) once; no clocks or sockets inside.

The algorithm is Asterisk's ``app_amd`` (Aheeva, 2006; apps/app_amd.c), the energy-based detector most
predictive diallers started from, with its parameters and causes, re-written here from its state machine:

- each 20 ms frame is *silence* when its mean absolute level is below ``silence_threshold`` (256 of
  32767), else *voice* (Asterisk's ``ast_dsp_silence``);
- a run of voice of ``min_word_length`` ms after silence is a *word*; ``between_words_silence`` ms of
  silence ends one; the first word ends the *initial silence* and starts the *greeting*;
- MACHINE ``INITIALSILENCE``: ``initial_silence`` ms of silence before any word (a machine's pause before
  its greeting, or a dead line); MACHINE ``LONGGREETING``: ``greeting`` ms of voice in all (a person says
  "Hello?", a machine "Hi, you have reached ..."); MACHINE ``MAXWORDS``: more than
  ``maximum_number_of_words`` words (Asterisk >= 14 counts "more than 2"; 1.8-13 had 3 with "at least",
  the same third word); MACHINE ``MAXWORDLENGTH``: one word longer than ``maximum_word_length``;
- HUMAN ``HUMAN``: ``after_greeting_silence`` ms of silence after the greeting started (a person said
  hello and waits for an answer);
- NOTSURE ``TOOLONG``: ``total_analysis_time`` passed (counted both in audio and on the clock, as Asterisk
  does, so a stalled RTP stream cannot keep the caller waiting), ``NOAUDIODATA`` when no audio came at all.

After a MACHINE decision a campaign that leaves a message must wait for the greeting to end (and for the
machine's beep) before speaking: ``GreetingEnd`` watches for that (silence after voice, or the end of a
pure tone), which is the "wait for the beep" of commercial diallers.

Energy-based AMD is the industry's cheap baseline (~80-90 % right): a person answering with a long
"Good morning, Acme Limited, Li speaking" is a MACHINE to it, and a machine with a one-word greeting is
a HUMAN. docs/outbound.md says what it does and does not do.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

__all__ = ["AmdDetector", "AmdParams", "Cause", "Decision", "GreetingEnd", "Phase", "Verdict", "FRAME_MS", "RATE"]

RATE = 8000
FRAME_MS = 20                    # Asterisk analyses the channel's frames: 20 ms of 8 kHz audio
FRAME = RATE * FRAME_MS // 1000  # 160 samples


class Verdict(str, Enum):
    HUMAN = "HUMAN"
    MACHINE = "MACHINE"
    NOTSURE = "NOTSURE"

    def __str__(self) -> str:
        return self.value


class Cause(str, Enum):
    """Asterisk's ``AMDCAUSE`` names (it appends the figures: ``LONGGREETING-1500-1500``)."""
    HUMAN = "HUMAN"                        # silence after the greeting
    INITIALSILENCE = "INITIALSILENCE"      # nothing said for initial_silence
    LONGGREETING = "LONGGREETING"          # voice for longer than greeting
    MAXWORDS = "MAXWORDS"                  # more words than maximum_number_of_words
    MAXWORDLENGTH = "MAXWORDLENGTH"        # one word longer than maximum_word_length
    TOOLONG = "TOOLONG"                    # total_analysis_time without a decision
    NOAUDIODATA = "NOAUDIODATA"            # no audio at all within total_analysis_time

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class AmdParams:
    """Asterisk's amd.conf, its names and defaults (milliseconds; the threshold is a mean |sample| of 32767)."""
    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 2
    maximum_word_length: int = 5000
    silence_threshold: int = 256


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    cause: Cause
    detail: str          # Asterisk's AMDCAUSE with its figures, e.g. "LONGGREETING-1500-1500"
    analysed_ms: int     # audio analysed when it was decided
    words: int
    voice_ms: int

    def __str__(self) -> str:
        return f"{self.verdict.value} {self.detail}"


class Phase(str, Enum):
    """Where the detector is: before any word, in the greeting, done."""
    INITIAL_SILENCE = "initial-silence"
    GREETING = "greeting"
    DECIDED = "decided"


TRANSITIONS = {
    Phase.INITIAL_SILENCE: frozenset({Phase.GREETING, Phase.DECIDED}),
    Phase.GREETING: frozenset({Phase.DECIDED}),
    Phase.DECIDED: frozenset(),
}


def _move(old: Phase, new: Phase) -> Phase:
    if new not in TRANSITIONS[old]:
        raise ValueError(f"AMD: no move from {old.value} to {new.value}")
    return new


def frame_levels(samples: Any) -> np.ndarray:
    """Mean absolute level of each whole 20 ms frame of ``samples`` (Asterisk's per-frame energy)."""
    x = np.asarray(samples, dtype=np.float32)
    n = len(x) // FRAME
    return np.abs(x[: n * FRAME]).reshape(n, FRAME).mean(axis=1) if n else np.zeros(0, np.float32)


class _Frames:
    """Cuts chunks of any size into whole 20 ms frames (a partial frame waits for the next chunk)."""

    def __init__(self) -> None:
        self.rest = np.zeros(0, np.float32)

    def cut(self, samples: Any) -> np.ndarray:
        x = np.asarray(samples, dtype=np.float32).ravel()
        if len(self.rest):
            x = np.concatenate((self.rest, x))
        n = len(x) // FRAME * FRAME
        self.rest = x[n:].copy()
        return x[:n]


class AmdDetector:
    """One call's detector, started when the call is answered (``now``: the switch's monotonic seconds)."""

    def __init__(self, params: AmdParams, now: float) -> None:
        self.p = params
        self.started = now
        self.phase = Phase.INITIAL_SILENCE
        self.decision: Decision | None = None
        self._frames = _Frames()
        self.frames = 0            # audio frames seen (NOAUDIODATA when none)
        self.total_ms = 0          # audio analysed (Asterisk's iTotalTime)
        self.silence_ms = 0        # the current run of silence (the DSP's totalsilence)
        self.word_ms = 0           # the current run of voice (consecutiveVoiceDuration)
        self.voice_ms = 0          # all voice so far (voiceDuration)
        self.words = 0
        self.in_word = False       # Asterisk's STATE_IN_WORD / STATE_IN_SILENCE; it starts in silence

    @property
    def deadline(self) -> float:
        """When the clock ends the analysis (``expired``), whatever the audio did."""
        return self.started + self.p.total_analysis_time / 1000

    def feed(self, samples: Any, now: float) -> Decision | None:
        """The next audio of the leg; the decision the first time there is one (None: not yet, or decided
        before: see ``decision``)."""
        if self.decision is not None:
            return None
        for level in frame_levels(self._frames.cut(samples)):
            self.frames += 1
            d = self._frame(float(level))
            if d is not None:
                return self._decide(d)
        return self.expired(now)

    def expired(self, now: float) -> Decision | None:
        """``total_analysis_time`` passed on the clock (no or too little audio): NOTSURE."""
        if self.decision is not None or now - self.started < self.p.total_analysis_time / 1000:
            return None
        cause = Cause.NOAUDIODATA if self.frames == 0 else Cause.TOOLONG
        return self._decide((Verdict.NOTSURE, cause, f"{cause.value}-{self.total_ms}"))

    def _decide(self, d: tuple[Verdict, Cause, str]) -> Decision:
        self.phase = _move(self.phase, Phase.DECIDED)
        self.decision = Decision(d[0], d[1], d[2], self.total_ms, self.words, self.voice_ms)
        return self.decision

    def _frame(self, level: float) -> tuple[Verdict, Cause, str] | None:
        """app_amd.c's loop body for one voice frame, in its order of checks."""
        p = self.p
        self.total_ms += FRAME_MS
        if self.total_ms >= p.total_analysis_time:
            return Verdict.NOTSURE, Cause.TOOLONG, f"TOOLONG-{self.total_ms}"
        if level < p.silence_threshold:
            self.silence_ms += FRAME_MS
            if self.silence_ms >= p.between_words_silence:
                self.in_word = False
                self.word_ms = 0
            if self.phase is Phase.INITIAL_SILENCE and self.silence_ms >= p.initial_silence:
                return (Verdict.MACHINE, Cause.INITIALSILENCE,
                        f"INITIALSILENCE-{self.silence_ms}-{p.initial_silence}")
            if self.phase is Phase.GREETING and self.silence_ms >= p.after_greeting_silence:
                return Verdict.HUMAN, Cause.HUMAN, f"HUMAN-{self.silence_ms}-{p.after_greeting_silence}"
            return None
        self.silence_ms = 0
        self.word_ms += FRAME_MS
        self.voice_ms += FRAME_MS
        if self.word_ms >= p.min_word_length and not self.in_word:
            self.words += 1
            self.in_word = True
        if self.word_ms >= p.maximum_word_length:
            return Verdict.MACHINE, Cause.MAXWORDLENGTH, f"MAXWORDLENGTH-{self.word_ms}"
        if self.words > p.maximum_number_of_words:
            return Verdict.MACHINE, Cause.MAXWORDS, f"MAXWORDS-{self.words}-{p.maximum_number_of_words}"
        if self.phase is Phase.GREETING and self.voice_ms >= p.greeting:
            return Verdict.MACHINE, Cause.LONGGREETING, f"LONGGREETING-{self.voice_ms}-{p.greeting}"
        if self.word_ms >= p.min_word_length and self.phase is Phase.INITIAL_SILENCE:
            self.phase = _move(self.phase, Phase.GREETING)
        return None


class GreetingEnd:
    """After a MACHINE decision: has the machine finished its greeting and beeped, so that a message
    spoken now is recorded whole? True once ``silence_ms`` of silence follow voice, or at once when a
    beep (a pure tone of 300-3000 Hz for at least ``BEEP_MS``) ends. A machine still talking keeps it False:
    the caller's time limit then decides (``[outbound] amd_message_wait``)."""

    BEEP_MS = 100
    TONALITY = 0.8   # share of a frame's energy in its strongest 150 Hz band: a beep, not a voice

    def __init__(self, silence_threshold: int = 256, silence_ms: int = 800) -> None:
        self.threshold = silence_threshold
        self.silence_ms = silence_ms
        self._frames = _Frames()
        self.heard = False        # any voice since the decision (a machine decided on initial silence has none)
        self.silent = 0
        self.tone = 0
        self.beeped = False
        self.done = False

    def feed(self, samples: Any) -> bool:
        if self.done:
            return True
        x = self._frames.cut(samples)
        if not len(x):
            return False
        frames = x.reshape(-1, FRAME)
        levels = np.abs(frames).mean(axis=1)
        spectra = np.abs(np.fft.rfft(frames * np.hanning(FRAME), axis=1)) ** 2
        for level, spec in zip(levels, spectra):
            if level < self.threshold:
                self.silent += FRAME_MS
                if self.tone >= self.BEEP_MS or (self.heard and self.silent >= self.silence_ms):
                    self.beeped = self.tone >= self.BEEP_MS
                    self.done = True
                    return True
                self.tone = 0
                continue
            self.heard, self.silent = True, 0
            k = int(np.argmax(spec[1:])) + 1
            hz = k * RATE / FRAME
            share = float(spec[max(1, k - 1): k + 2].sum() / max(float(spec[1:].sum()), 1e-9))
            if 300 <= hz <= 3000 and share >= self.TONALITY:
                self.tone += FRAME_MS
            elif self.tone >= self.BEEP_MS:   # the beep ended into anything but silence: speak now
                self.beeped = self.done = True
                return True
            else:
                self.tone = 0
        return False
