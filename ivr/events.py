"""What the switch tells an IVR session. Each is passed with the current time
(``IvrSession.handle(event, now)``); the session never reads a clock, so tests drive it with a fake one."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CallerHungUp", "DigitReceived", "Event", "PlaybackFinished", "RecordingStopped", "SpeechResult",
           "TimerFired"]


@dataclass(frozen=True)
class DigitReceived:
    """One DTMF key (RFC 4733 or in-band): "0"-"9", "*", "#"."""

    digit: str


@dataclass(frozen=True)
class PlaybackFinished:
    """The ``Play`` with this id played to its end (not sent for a playback the IVR stopped)."""

    id: int


@dataclass(frozen=True)
class SpeechResult:
    """Final text of the recogniser (``ivr.asr.VoskRecognizer``) while a ``StartSpeech`` is active."""

    text: str


@dataclass(frozen=True)
class TimerFired:
    """Sent at or after ``IvrSession.next_deadline()``; early or stale ones are ignored."""


@dataclass(frozen=True)
class RecordingStopped:
    """The recording ended: after ``StopRecording``, or on its own (``reason`` "silence", "max-length",
    "error"). ``duration`` in seconds of audio kept (None: the session measures it with its clock)."""

    reason: str = "stopped"
    duration: float | None = None


@dataclass(frozen=True)
class CallerHungUp:
    """The caller left; the session ends (a voicemail being recorded is still kept)."""


Event = DigitReceived | PlaybackFinished | SpeechResult | TimerFired | RecordingStopped | CallerHungUp
