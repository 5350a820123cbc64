"""What leaves call control besides SIP: typed events for the outside world and work for the edge.

Call control appends these to the core's outbox next to the SIP messages it sends (one output path);
the asyncio edge does the work (queue_log lines, the voicemail index, speech recognition in a worker)
and hands each ``SwitchEvent`` to its subscribers (the records service that writes call records, agent history and
voicemails to the store; the API's WebSockets for the screen pop and the desk). Nothing here
imports call control: the module is neutral so that every layer above the SIP stack can use it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from .agentparts import AgentPart


class Disposition(str, Enum):
    """How a call ended, as the call record and the reports count it (the store's vocabulary)."""
    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    ABANDONED = "abandoned"
    VOICEMAIL = "voicemail"
    TRANSFERRED = "transferred"
    OVERFLOWED = "overflow"
    BLOCKED = "blocked"
    FAILED = "failed"
    # the queue gave up on the caller - the switch ended the call, it is not an abandon (docs/reports.md)
    TIMEOUT = "timeout"                  # left on the queue's max_wait (queue_log EXITWITHTIMEOUT)
    NO_AGENTS = "no_agents"              # left because nobody served the queue (EXITEMPTY)

    def __str__(self) -> str:
        return self.value


def disposition_for_status(status: int) -> Disposition:
    """The disposition of an unanswered call whose callee answered with this final status."""
    if status in (486, 600):
        return Disposition.BUSY
    if status in (408, 480, 487):
        return Disposition.NO_ANSWER
    return Disposition.FAILED


@dataclass(frozen=True)
class SwitchEvent:
    """Base of every event for the outside; ``as_dict`` is the JSON the desk's WebSocket gets."""
    type = "event"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["type"] = self.type
        return d


@dataclass(frozen=True)
class CallEnded(SwitchEvent):
    type = "call_end"
    call: str
    caller: str
    callee: str
    disposition: Disposition
    arrived: float                       # wall-clock times (Unix seconds)
    answered: float | None
    ended: float
    reason: str = ""
    queue: str = ""
    agent: str = ""
    ivr: str = ""
    hung_up_by: str = ""                 # "caller" | "callee" | "" (the switch)
    recordings: tuple[tuple[str, float, float], ...] = ()   # (file, started, stopped), wall clock
    survey_score: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)   # role -> media leg statistics
    service: bool = False                # a feature code or a supervisor's monitoring call: no call record
    queued: float | None = None          # wall clock: entered the queue it is recorded under (wait, SL from here)
    talk_ended: float | None = None      # wall clock: the agent's part ended (the caller may stay for a survey)
    direction: str = ""                  # "inbound" (from a trunk) | "outbound" (to a trunk) | "" (internal)
    trunk: str = ""                      # the trunk it came in on or went out on
    did: str = ""                        # the carrier's number the customer dialled (inbound)
    external: str = ""                   # the external party's number, E.164 ("anonymous" if withheld)
    transfers: int = 0                   # blind or attended transfers of the answered call
    hold_seconds: float = 0.0            # time on hold (desk hold or a phone's own hold; part of the talk)
    holds: int = 0                       # times the call was put on hold
    parts: tuple[AgentPart, ...] = ()    # each agent's part: who answered, talked, held, transferred on

    def as_dict(self) -> dict[str, Any]:
        d = super().as_dict()
        d["disposition"] = self.disposition.value
        d["recording"] = self.recordings[-1][0] if self.recordings else ""
        return d


@dataclass(frozen=True)
class OfferPresented(SwitchEvent):
    """A queue call rings an agent (the desk pops the customer's record now)."""
    type = "offer"
    agent: str
    call: str
    caller: str
    queue: str
    variables: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AmdDetected(SwitchEvent):
    """Answering-machine detection (dialler.amd) decided on an answered campaign call: what it heard and
    what the switch does (docs/outbound.md). Sent to the agent on the line (agent-first campaigns)."""
    type = "amd"
    call: str
    campaign: str
    contact: int
    verdict: str                         # HUMAN | MACHINE | NOTSURE
    cause: str                           # Asterisk's AMDCAUSE, e.g. "LONGGREETING-1500-1500"
    action: str                          # agent | flow | hangup | message | shown (agent-first: to the agent)
    agent: str = ""                      # the agent already on the line (progressive), else ""


@dataclass(frozen=True)
class AgentConnected(SwitchEvent):
    type = "connected"
    agent: str
    call: str
    caller: str
    queue: str


@dataclass(frozen=True)
class AgentStateChanged(SwitchEvent):
    type = "agent_state"
    agent: str
    state: str
    reason: str = ""
    at: float = 0.0                      # wall clock
    extension: str = ""                  # the phone the agent is logged in at ("" once logged out)


@dataclass(frozen=True)
class QueueEntered(SwitchEvent):
    """A call starts waiting in a queue (arrival, transfer, overflow): the wallboard shows it at once."""
    type = "queue_entered"
    call: str
    queue: str
    caller: str
    at: float = 0.0                      # wall clock


@dataclass(frozen=True)
class QueueLeft(SwitchEvent):
    """A call leaves the queue's ACD: answered and done, abandoned, transferred or timed out."""
    type = "queue_left"
    call: str
    queue: str
    at: float = 0.0                      # wall clock
    reason: str = ""                     # "completed" | "abandoned" | "transferred"


@dataclass(frozen=True)
class TrunkStateChanged(SwitchEvent):
    """A trunk's OPTIONS keep-alive says it went down, or came back up (the wallboard's trunk alarm)."""
    type = "trunk_state"
    trunk: str
    up: bool
    reason: str = ""
    at: float = 0.0                      # wall clock


@dataclass(frozen=True)
class WrapUpEnded(SwitchEvent):
    """An agent's after-call work on ``call`` is over (its call record gets the wrap-up time)."""
    type = "wrapup_end"
    call: str
    agent: str
    queue: str
    seconds: float


@dataclass(frozen=True)
class VoicemailLeft(SwitchEvent):
    type = "voicemail"
    call: str
    caller: str
    file: str                            # absolute path of the WAV
    duration: float
    callback_number: str = ""
    mailbox: str = ""
    at: float = 0.0                      # wall clock


@dataclass(frozen=True)
class WriteQueueLog:
    """Append one line to the queue_log file (Asterisk format); the asyncio edge does the I/O."""
    path: Path
    line: str


@dataclass(frozen=True)
class SaveVoicemailIndex:
    """Append a left message to the voicemail folder's JSONL index (for tools reading the folder)."""
    voicemail_dir: Path
    message: Any                         # ivr.actions.VoicemailLeft


@dataclass(frozen=True)
class SpeechStart:
    """Start recognising the caller of ``call`` on these keywords (the edge's speech worker)."""
    call: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class SpeechAudio:
    call: str
    samples: Any                         # numpy int16, 8 kHz


@dataclass(frozen=True)
class SpeechStop:
    call: str


@dataclass(frozen=True)
class CampaignFigures(SwitchEvent):
    """A campaign's live figures changed (attempts, contacts reached, contact and abandon rates, remaining):
    the wallboard's hook, at most one a second per campaign (``softswitch.outbound``)."""
    type = "campaign"
    campaign: str
    figures: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DiallerInput:
    """An event for the dialler (``dialler.events``: an attempt's result, a callback request); the edge's
    ``softswitch.outbound.DiallerService`` feeds it and commits the dialler's state."""
    event: Any


@dataclass(frozen=True)
class SpeakRequest:
    """Runtime speech for an IVR ``Say`` (``ivr.actions.Say``): the edge (``softswitch.tts``) finds the text
    (``lookup``: "order_status" for the work order ``value``), renders it in a worker (cached) and answers
    with ``SwitchCore.speech_rendered(call, id, file)``."""
    call: str
    id: int
    text: str
    lookup: str = ""
    value: str = ""
    language: str = "en"
