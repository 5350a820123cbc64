"""States of calls and legs as enums with transition tables (h11's ``_state.py`` style).

One function, ``move``, changes a state and refuses a move the table does not allow: a bug that
would silently put a call in an impossible state raises at the place it happens instead of
surfacing later as a call that never ends. The values are strings (``str`` enums), so logs, the
API and tests see ``"answered"`` as before.
"""
from __future__ import annotations

from enum import Enum
from typing import Mapping, TypeVar


class IllegalTransition(RuntimeError):
    """A state change the transition table does not allow (a bug in call control)."""


class CallState(str, Enum):
    RINGING = "ringing"      # the caller's INVITE is not answered yet; callee phones ring
    QUEUED = "queued"        # answered by the switch, served by an application (IVR, queue, service, originate)
    ANSWERED = "answered"    # the caller talks to a party (bridged)
    ENDED = "ended"          # over; kept 32 s to absorb retransmissions

    def __str__(self) -> str:
        return self.value


class LegState(str, Enum):
    CALLING = "calling"      # INVITE sent or received, no provisional response with a tag yet
    EARLY = "early"          # ringing (a provisional response with a To tag)
    CONFIRMED = "confirmed"  # 2xx sent or received: the dialog exists
    TERMINATED = "terminated"

    def __str__(self) -> str:
        return self.value


CALL_TRANSITIONS: Mapping[CallState, frozenset[CallState]] = {
    CallState.RINGING: frozenset({CallState.QUEUED, CallState.ANSWERED, CallState.ENDED}),
    CallState.QUEUED: frozenset({CallState.ANSWERED, CallState.ENDED}),
    # an answered call goes back to the switch on a blind transfer or when the agent leaves for the survey
    CallState.ANSWERED: frozenset({CallState.QUEUED, CallState.ENDED}),
    CallState.ENDED: frozenset(),
}

LEG_TRANSITIONS: Mapping[LegState, frozenset[LegState]] = {
    LegState.CALLING: frozenset({LegState.EARLY, LegState.CONFIRMED, LegState.TERMINATED}),
    LegState.EARLY: frozenset({LegState.CONFIRMED, LegState.TERMINATED}),
    LegState.CONFIRMED: frozenset({LegState.TERMINATED}),
    LegState.TERMINATED: frozenset(),
}

S = TypeVar("S", bound=Enum)


def move(current: S, new: S, table: Mapping[S, frozenset[S]], what: str = "") -> S:
    """``new`` if the table allows ``current`` → ``new`` (staying put is always allowed), else raise."""
    if new is current or new in table[current]:
        return new
    raise IllegalTransition(f"{what or type(current).__name__}: {current.value} -> {new.value} is not allowed")
