"""What the switch tells the dialler (``Dialler.handle(event, now)``) and what the dialler asks of it.

Events and actions are small frozen dataclasses, dispatched by type. ``now`` is wall-clock Unix time
(see ``dialler.rules``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .rules import Result

__all__ = [
    "AttemptEnded", "AttemptRow", "CallbackRequested", "CampaignStarted", "CampaignStopped", "ContactRow",
    "ContactsAdded", "Dial", "DncChanged", "FiguresChanged", "HeldReleased", "NewContact", "QueueCallbackStarted", "ResultCode",
    "Save", "Tick",
]


# ================================================================================== events

@dataclass(frozen=True)
class NewContact:
    number: str                          # normalised by the caller (store.numbers)
    name: str = ""
    timezone: str = ""                   # IANA zone; "" = the campaign's
    data: Mapping[str, Any] = field(default_factory=dict)   # shown on the agent's screen, read by TTS
    due: float | None = None             # not before (an appointment reminder's time); None = now
    key: str = ""                        # the source's id (work order 4711): the same key is added once


@dataclass(frozen=True)
class ContactsAdded:
    campaign: str
    contacts: tuple[NewContact, ...]


@dataclass(frozen=True)
class CallbackRequested:
    """A callback task for ``queue``: from a voicemail (``audio`` is the message), the web/API, or a
    queue caller who pressed 1 (``kind="queue"``): that one already keeps its place in the ACD (held
    until the switch dials it), ``position`` is when it entered the queue (restores the order)."""
    queue: str
    number: str
    kind: str = "web"                    # voicemail | queue | web
    name: str = ""
    note: str = ""
    audio: str = ""
    due: float | None = None
    position: float = 0.0
    ref: str = ""                        # the call it came from (a held queue callback is known by it)


@dataclass(frozen=True)
class QueueCallbackStarted:
    """A held queue callback reached an agent: the switch dials the customer now (an attempt starts)."""
    contact: int
    agent: str = ""
    call: str = ""
    ref: str = ""                        # or the held callback's call id (call control does not know its contact)


@dataclass(frozen=True)
class HeldReleased:
    """A held queue callback lost its place (its queue closed, nobody logged in): it becomes an ordinary
    callback task, dialled when an agent of the queue is free."""
    contact: int = 0
    ref: str = ""


@dataclass(frozen=True)
class AttemptEnded:
    """``attempt`` 0: the attempt in progress on ``contact`` (or on the held callback ``ref``)."""
    attempt: int
    result: Result
    call: str = ""                       # the switch's call id (the call record)
    agent: str = ""
    abandoned: bool = False              # answered, but no agent took it in time (predictive)
    counted: bool = True                 # False: the customer was never dialled (the agent did not answer)
    contact: int = 0
    ref: str = ""
    amd: str = ""                        # answering-machine detection: "MACHINE LONGGREETING-1500-1500" ("" = none)


@dataclass(frozen=True)
class ResultCode:
    """An agent's result code at wrap-up, for the last attempt on ``contact``; ``due``: "call back at"."""
    contact: int
    result: Result
    due: float | None = None


@dataclass(frozen=True)
class DncChanged:
    number: str
    add: bool = True


@dataclass(frozen=True)
class CampaignStarted:
    campaign: str


@dataclass(frozen=True)
class CampaignStopped:
    campaign: str


@dataclass(frozen=True)
class Tick:
    """Pace the campaigns: ``free[queue]`` agents of each queue are free and not yet reserved by a
    virtual call of the dialler waiting in the ACD (the switch computes it from the ACD)."""
    free: Mapping[str, int] = field(default_factory=dict)


# ================================================================================= actions

@dataclass(frozen=True)
class ContactRow:
    """A contact (or callback task) as the store keeps it."""
    id: int
    campaign: str
    kind: str
    queue: str
    number: str
    name: str
    timezone: str
    data: Mapping[str, Any]
    audio: str
    note: str
    key: str
    position: float
    state: str
    attempts: int
    day: str
    day_attempts: int
    next_due: float | None
    last_result: str
    last_attempt: float | None
    created: float


@dataclass(frozen=True)
class AttemptRow:
    id: int
    contact: int
    campaign: str
    number: str
    started: float
    ended: float | None = None
    result: str = ""
    agent: str = ""
    call: str = ""
    amd: str = ""                        # the answering-machine detector's decision and cause


@dataclass(frozen=True)
class Save:
    """Rows to commit. The switch must commit a ``Save`` before it executes the ``Dial`` actions that
    follow it in the same batch: a dial is only made once its attempt is durable (kill -9 safe)."""
    contacts: tuple[ContactRow, ...] = ()
    attempts: tuple[AttemptRow, ...] = ()
    dnc: tuple[tuple[str, bool], ...] = ()


@dataclass(frozen=True)
class Dial:
    """Call a contact. ``mode``: progressive / preview / callback (a virtual call in ``queue``: agent
    first, then the customer), notification (the customer, then ``flow`` in the IVR), predictive (the
    customer, then ``queue``)."""
    attempt: int
    contact: int
    campaign: str
    mode: str
    number: str
    queue: str = ""
    caller_id: str = ""
    flow: str = ""
    name: str = ""
    kind: str = ""
    audio: str = ""
    note: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FiguresChanged:
    """A campaign's live figures (the wallboard's hook: ``softswitch.events.CampaignFigures``)."""
    campaign: str
    figures: Mapping[str, float]
