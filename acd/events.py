"""What the switch tells the ACD. Every event is handled with the current time (``Acd.handle(event,
now)``); the ACD never reads a clock, so a fake clock drives the tests."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AgentLogin", "AgentLogout", "AgentNotReady", "AgentReady", "CallAbandoned", "CallArrived", "CallEnded",
    "CallTransferred", "Event", "FeatureCodeDialled", "OfferAnswered", "OfferRejected", "PhoneBusy", "PhoneFree",
    "TimerFired", "WrapUpEnd",
]


@dataclass(frozen=True)
class CallArrived:
    """A caller reached a queue (dialplan entry, IVR choice). ``priority`` comes from the IVR or the
    trunk; the queue's priority rules may raise it."""

    call_id: str
    queue: str
    caller: str = ""
    priority: int = 0
    skill: str = ""      # a skill the call needs besides the queue's (an IVR queue node's skill)
    language: str = ""   # the caller's language (the queue's language skills route on it)


@dataclass(frozen=True)
class CallbackHeld:
    """The caller hung up to be called back but keeps his place (``dialler``): the entry stays in line with no
    wait limit and no announcements, and is offered to an agent like any waiting call."""

    call_id: str


@dataclass(frozen=True)
class CallAbandoned:
    """The caller hung up before an agent answered."""

    call_id: str


@dataclass(frozen=True)
class CallEnded:
    """A connected call ended; ``by_agent`` picks COMPLETEAGENT or COMPLETECALLER."""

    call_id: str
    by_agent: bool = False


@dataclass(frozen=True)
class CallTransferred:
    """The agent transferred the caller elsewhere; for the ACD the call is over (agent to wrap-up)."""

    call_id: str
    extension: str
    context: str = "default"


@dataclass(frozen=True)
class OfferAnswered:
    call_id: str
    agent_id: str
    agent_leg: str = ""  # the agent leg's call id, logged as CONNECT's bridged channel


@dataclass(frozen=True)
class OfferRejected:
    """The agent's phone declined (486/603/480), failed, or rang out at the switch's own timer."""

    call_id: str
    agent_id: str


@dataclass(frozen=True)
class AgentLogin:
    agent_id: str
    extension: str | None = None  # None: the agent's configured extension


@dataclass(frozen=True)
class AgentLogout:
    agent_id: str


@dataclass(frozen=True)
class AgentReady:
    agent_id: str


@dataclass(frozen=True)
class AgentNotReady:
    agent_id: str
    reason: str = ""


@dataclass(frozen=True)
class WrapUpEnd:
    """The agent ended wrap-up early (desk button); the wrap-up timer ends it otherwise."""

    agent_id: str


@dataclass(frozen=True)
class FeatureCodeDialled:
    """An extension dialled a feature code (``*11 2001``); the ACD parses and applies it."""

    extension: str
    digits: str


@dataclass(frozen=True)
class PhoneBusy:
    """The switch's real call state: this extension is on a call (or ringing) that the ACD did not
    place. A busy phone is never offered a queue call, whatever the agent state says."""

    extension: str


@dataclass(frozen=True)
class PhoneRegistered:
    """The extension has a registered phone again: an agent there can be offered calls."""
    extension: str


@dataclass(frozen=True)
class PhoneUnregistered:
    """The extension has no registered phone: an agent logged in there is skipped (shown unregistered)."""
    extension: str


@dataclass(frozen=True)
class OfferFailed:
    """The offer never reached the agent's phone (404/480/503, or a time-out before any response): not a
    missed ring; the phone is treated as unreachable until it registers again."""
    call_id: str
    agent_id: str
    status: int = 0


@dataclass(frozen=True)
class PhoneFree:
    extension: str


@dataclass(frozen=True)
class TimerFired:
    """The deadline from ``Acd.next_deadline()`` passed; every timer due at ``now`` runs."""


Event = (CallArrived | CallAbandoned | CallEnded | CallTransferred | OfferAnswered | OfferRejected | AgentLogin
         | AgentLogout | AgentReady | AgentNotReady | WrapUpEnd | FeatureCodeDialled | PhoneBusy | PhoneFree
         | PhoneRegistered | PhoneUnregistered | OfferFailed | CallbackHeld | TimerFired)
