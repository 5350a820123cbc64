"""What the ACD tells the switch to do. The switch executes these in order; the ACD has already
updated its own state as if they succeeded, and learns otherwise from later events
(``OfferRejected``, ``CallAbandoned``...)."""
from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Action", "AgentStateChanged", "Announce", "CancelRing", "Connect", "FeatureCodeReply", "HangupWithPrompt",
    "Overflow", "QueueLogLine", "RingAgent", "SendToVoicemail", "StartMusic",
]


@dataclass(frozen=True)
class RingAgent:
    call_id: str
    agent_id: str
    extension: str
    timeout: int  # seconds; the ACD also runs this timer and sends CancelRing when it expires
    queue: str
    caller: str


@dataclass(frozen=True)
class CancelRing:
    call_id: str
    agent_id: str
    extension: str


@dataclass(frozen=True)
class Connect:
    """Bridge the caller to the agent who answered. ``announce_agent`` is the work number to play to
    the caller first; ``whisper`` the queue name to play to the agent first (None = nothing)."""

    call_id: str
    agent_id: str
    extension: str
    announce_agent: str | None
    whisper: str | None


@dataclass(frozen=True)
class StartMusic:
    """Hold music while queued (again after an announcement or a failed offer)."""

    call_id: str
    music_class: str


@dataclass(frozen=True)
class Announce:
    """Position (1 = next) and expected wait in seconds; None = not announced in this queue."""

    call_id: str
    position: int | None
    expected_wait: int | None


@dataclass(frozen=True)
class Overflow:
    """The call left ``from_queue`` for ``to_queue``; the ACD has already queued it there."""

    call_id: str
    from_queue: str
    to_queue: str


@dataclass(frozen=True)
class SendToVoicemail:
    call_id: str
    mailbox: str
    why: str = field(default="", compare=False)  # "timeout" (max wait) | "no_agents" (nobody serves the queue)


@dataclass(frozen=True)
class HangupWithPrompt:
    call_id: str
    prompt: str
    why: str = field(default="", compare=False)  # "timeout" (max wait) | "no_agents" (nobody serves the queue)


@dataclass(frozen=True)
class AgentStateChanged:
    agent_id: str
    state: str  # AgentState value
    reason: str = ""


@dataclass(frozen=True)
class FeatureCodeReply:
    """Confirm (``ok``) or refuse a feature code to the phone that dialled it (tone or prompt)."""

    extension: str
    ok: bool
    message: str


@dataclass(frozen=True)
class QueueLogLine:
    """One line for the queue_log file, without the newline."""

    line: str


@dataclass(frozen=True)
class WrapUpDone:
    """The agent's after-call work for ``call_id`` is over: ``seconds`` of wrap-up (counted in AHT)."""

    call_id: str
    agent_id: str
    queue: str
    seconds: float


Action = (RingAgent | CancelRing | Connect | StartMusic | Announce | Overflow | SendToVoicemail | HangupWithPrompt
          | AgentStateChanged | FeatureCodeReply | QueueLogLine | WrapUpDone)
