"""What an IVR session tells the switch to do, in order. Terminal actions (``ToQueue``, ``Transfer``,
``Hangup``) end the session; after one the switch no longer sends it events."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Action", "CallerFlagged", "CollectDigits", "Hangup", "Log", "Play", "Say", "SetLanguage", "StartRecording",
    "StartSpeech", "StopPlayback", "StopRecording", "StopSpeech", "SurveyResult", "ToQueue", "ToVoicemail",
    "Transfer", "VoicemailLeft",
]


@dataclass(frozen=True)
class Play:
    """Play these WAV files one after the other (8 kHz mono, from ``softswitch prompts build``) and send
    ``PlaybackFinished(id)`` after the last. ``barge_in``: a key press stops it (the session sends
    ``StopPlayback`` itself; the flag tells the edge it may also cut it on speech)."""

    prompt_files: list[str]
    barge_in: bool
    id: int


@dataclass(frozen=True)
class Say:
    """Speak text made at call time (runtime TTS, ``ivr.tts``): ``text``, or with ``lookup``
    ("order_status") what the switch finds for ``value`` (the work order number typed), in ``language``.
    The switch renders it in a worker (cached) and sends ``PlaybackFinished(id)`` after it played (also
    when there was nothing to say)."""

    text: str
    lookup: str
    value: str
    language: str
    id: int


@dataclass(frozen=True)
class StopPlayback:
    id: int


@dataclass(frozen=True)
class CollectDigits:
    """Digits are wanted now (informational: the edge may flush type-ahead or enable in-band DTMF)."""

    max_digits: int
    terminator: str
    timeout: float


@dataclass(frozen=True)
class StartSpeech:
    """Feed the caller's audio to the recogniser with this grammar; send ``SpeechResult`` on a final result."""

    keywords: list[str]
    language: str


@dataclass(frozen=True)
class StopSpeech:
    pass


@dataclass(frozen=True)
class StartRecording:
    """Record the caller to ``path`` (relative to ``[ivr] voicemail_dir``). The edge stops on its own after
    ``silence`` seconds of silence or ``max_length`` seconds and sends ``RecordingStopped``."""

    path: str
    max_length: float
    silence: float


@dataclass(frozen=True)
class StopRecording:
    path: str


@dataclass(frozen=True)
class ToQueue:
    """Terminal: hand the call to the ACD (``acd.events.CallArrived``); ``variables`` for the screen pop
    (collected digits, ``language``, ``warning`` flag, menu choices)."""

    queue: str
    priority: int
    skill: str
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToVoicemail:
    """The call entered the voicemail node of ``mailbox`` (for the CDR / wallboard); recording follows."""

    mailbox: str


@dataclass(frozen=True)
class Transfer:
    """Terminal: blind transfer to an extension."""

    extension: str


@dataclass(frozen=True)
class Hangup:
    """Terminal: release the call (``reason`` for the CDR: "normal", "blacklisted", "retries", "loop", ...)."""

    reason: str


@dataclass(frozen=True)
class SetLanguage:
    """The caller's language changed (prompts, the ACD's announcements and the agent's screen follow it)."""

    language: str


@dataclass(frozen=True)
class SurveyResult:
    score: int  # 1-5
    flow: str
    node: str


@dataclass(frozen=True)
class VoicemailLeft:
    """A message was recorded: store it (``ivr.voicemail_index`` for now). ``file`` as in ``StartRecording``."""

    file: str
    mailbox: str
    callback_number: str
    caller: str
    duration: float
    time: float  # the session's ``now`` when the recording started


@dataclass(frozen=True)
class CallerFlagged:
    """The caller is on the warning list: the ACD / agent screen pop shows it."""

    flag: str
    caller: str


@dataclass(frozen=True)
class Log:
    level: str  # "debug" | "info" | "warning"
    message: str


Action = (Play | Say | StopPlayback | CollectDigits | StartSpeech | StopSpeech | StartRecording | StopRecording | ToQueue
          | ToVoicemail | Transfer | Hangup | SetLanguage | SurveyResult | VoicemailLeft | CallerFlagged | Log)
