"""Hold time of a call, as commercial ACDs report it: how many times the call was put on hold and for how
long (AHT = talk + hold + wrap-up, hold shown on its own; docs/reports.md).

A call is on hold while at least one *holder* holds it:

* ``desk`` — the agent pressed hold on the desk or the API (``Control.hold``: the switch plays music to
  the caller);
* a leg (``caller:<number>`` / ``callee:<number>``) — that party's phone put the call on hold itself, with a
  re-INVITE whose SDP says ``sendonly`` / ``inactive`` (a desk phone's hold key, the desk's browser phone,
  which is a SIP phone inside the switch like any other).

Two holders at once (the agent holds from the desk while the phone holds too) are one hold: ``seconds``
is the union of the holders' intervals, ``holds`` counts the times the call went from not held to held.
``per_holder`` keeps each holder's own seconds (what a leg held), bounded by the handful of legs a call has.

Sans-IO: call control feeds the changes with its injected monotonic clock (``now``); no timer runs. The
interval still open when the agent's part ends or the call ends is closed then (``close``), so a call hung
up while on hold counts its hold up to the hang-up.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["DESK", "HoldTally", "leg_holder", "sdp_holds"]

DESK = "desk"


@dataclass
class HoldTally:
    """One call's holds: who holds it now (holder → since, monotonic), the count and the seconds so far."""
    holders: dict[str, float] = field(default_factory=dict)
    since: float | None = None           # on hold (by anyone) since; None while not held
    holds: int = 0                       # times the call went on hold
    seconds: float = 0.0                 # closed hold time (union of the holders' intervals)
    per_holder: dict[str, float] = field(default_factory=dict)   # holder -> its closed hold seconds

    @property
    def on_hold(self) -> bool:
        return self.since is not None

    def set(self, holder: str, on: bool, now: float) -> None:
        """``holder`` holds (``on``) or releases the call at ``now``; repeating the current state is a no-op
        (a session refresh re-INVITE repeats ``sendonly``)."""
        if on:
            if holder in self.holders:
                return
            self.holders[holder] = now
            if self.since is None:
                self.since = now
                self.holds += 1
            return
        start = self.holders.pop(holder, None)
        if start is None:
            return
        self.per_holder[holder] = self.per_holder.get(holder, 0.0) + max(0.0, now - start)
        if not self.holders and self.since is not None:
            self.seconds += max(0.0, now - self.since)
            self.since = None

    def close(self, now: float) -> None:
        """Every holder lets go at ``now`` (the talk ended, the call ended or was handed on)."""
        for holder in list(self.holders):
            self.set(holder, False, now)

    def total(self, now: float) -> float:
        """Hold seconds up to ``now``, the open interval included."""
        return self.seconds + (max(0.0, now - self.since) if self.since is not None else 0.0)


def leg_holder(leg: Any) -> str:
    """The holder name of a call leg (its role and its party's number: a call has a few legs)."""
    return f"{leg.role}:{leg.party}"


def sdp_holds(body: bytes) -> bool | None:
    """Whether an SDP offer puts the session on hold (RFC 3264 §8.4: ``sendonly`` or ``inactive``, or the
    older ``c=0.0.0.0``); None when ``body`` is no SDP. Used where the switch relays re-INVITEs (media not
    anchored) and so has no endpoint that parsed it."""
    text = body.decode("utf-8", "replace")
    if "m=" not in text:
        return None
    session: str | None = None
    audio: str | None = None
    media = ""                            # the m= section we are in ("" before the first)
    held_addr = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            media = line[2:].split(" ", 1)[0]
        elif line.startswith("c=") and line.split()[-1:] == ["0.0.0.0"] and media in ("", "audio"):
            held_addr = True
        elif line in ("a=sendonly", "a=inactive", "a=recvonly", "a=sendrecv"):
            if media == "audio":
                audio = line[2:]
            elif media == "":
                session = line[2:]
    direction = audio or session or "sendrecv"
    return held_addr or direction in ("sendonly", "inactive")
