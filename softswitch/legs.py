"""The vocabulary between the SIP-only B2BUA and call control: leg events up, commands down.

The B2BUA (``softswitch.b2bua``) knows dialogs, media anchoring, bridging, hold and transfer
mechanics, and nothing of queues or IVRs. What happens on a leg that needs a decision becomes one of
the events below, queued for the application that owns the call (``softswitch.router``); the
application answers with commands, which the B2BUA executes (``B2BUA.do``). Both are small frozen
dataclasses, dispatched by type.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .call import Call, Leg


# ------------------------------------------------------------------------------------ events
@dataclass(frozen=True)
class LegEvent:
    leg: "Leg"

    @property
    def call(self) -> "Call":
        return self.leg.call


@dataclass(frozen=True)
class IncomingCall(LegEvent):
    """A new INVITE for ``number``: the caller leg exists, nothing has been answered. The router
    gives the call to the application serving the number, which must ring, answer or reject it."""
    number: str
    caller: str                         # the authenticated caller's number


@dataclass(frozen=True)
class LegRinging(LegEvent):
    status: int


@dataclass(frozen=True)
class LegAnswered(LegEvent):
    """An outgoing leg's first 2xx: its dialog is confirmed and ACKed, its SDP answer applied."""


@dataclass(frozen=True)
class LegFailed(LegEvent):
    """An outgoing leg's INVITE ended without a 2xx (a final error response, or a time-out: 408)."""
    status: int
    reason: str = ""
    withdrawn: bool = False             # we had cancelled it (CANCEL → 487): not the callee's doing


@dataclass(frozen=True)
class LegHungUp(LegEvent):
    """BYE from a party of the call (the caller, or the party it talks to)."""


@dataclass(frozen=True)
class CallerCancelled(LegEvent):
    """The caller's CANCEL of a call still ringing; the B2BUA already answered 487 and ends the call."""


@dataclass(frozen=True)
class TransferRequested(LegEvent):
    """A blind transfer (REFER without Replaces) from the answering party: the other party goes to
    ``target``. The B2BUA already answered 202 + NOTIFY and hung up the referring leg."""
    target: str


@dataclass(frozen=True)
class CallMerged(LegEvent):
    """Attended transfer joined this call's remaining party with a party of another call."""
    gone: "Call"                        # the call that ended by the merge


@dataclass(frozen=True)
class DigitReceived(LegEvent):
    digit: str
    source: str = ""
    duration_ms: int = 0


@dataclass(frozen=True)
class PlaybackFinished(LegEvent):
    playback: int


@dataclass(frozen=True)
class AudioReceived(LegEvent):
    samples: Any                        # numpy int16, 200 ms at 8 kHz


@dataclass(frozen=True)
class MediaTimeout(LegEvent):
    silent_for: float


@dataclass(frozen=True)
class CallGone(LegEvent):
    """The call ended (``leg`` is its caller leg); the owning application drops its state."""
    reason: str


# ---------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Ring:
    """New outgoing legs of ``call`` to every registered phone of extension ``number``; returns them."""
    call: "Call"
    number: str
    display: str = ""
    max_forwards: str = "70"
    passthrough: tuple[bytes, str] | None = None  # caller's SDP to relay when media is not anchored
    limit: float | None = None          # hard ring limit in seconds: then the legs are cancelled (408)


@dataclass(frozen=True)
class Dial:
    """A new outgoing leg of ``call`` to a SIP URI at ``peer`` that is not a registered phone (a trunk):
    ``uri`` is the Request-URI and To, ``caller``/``display`` the presented From user and name at
    ``domain``. ``credentials`` (user, password, realm or "") answer one 401/407 of the far end.
    Without any response within ``progress_timeout`` seconds the leg fails (408, "No Response") so
    that call control may try another route. Returns the leg, or None (no media port)."""
    call: "Call"
    uri: str
    peer: Any                           # sip.transaction.Peer
    caller: str
    domain: str
    display: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    credentials: tuple[str, str, str] | None = None
    progress_timeout: float | None = None
    limit: float | None = None          # hard ring limit in seconds (as Ring)
    codecs: tuple[str, ...] = ()        # the only codecs offered on this leg, in this order (a trunk's); () = all
    trunk: str = ""                     # noted on the leg (channels, failover)


@dataclass(frozen=True)
class AnswerLocally:
    """The switch answers the caller leg itself (200 with its own SDP); returns False if it could not."""
    call: "Call"


@dataclass(frozen=True)
class Reject:
    """A final error response to the caller's INVITE; the call ends."""
    call: "Call"
    status: int
    reason: str | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Connect:
    """``leg`` answered: the caller is answered if it is not yet, the other ringing legs are cancelled,
    and (unless ``bridge`` is False) the two parties are bridged and recorded per policy."""
    call: "Call"
    leg: "Leg"
    bridge: bool = True


@dataclass(frozen=True)
class Bridge:
    """Bridge the caller and the answering party (after prompts were played to them)."""
    call: "Call"


@dataclass(frozen=True)
class Play:
    """Play a sound to a leg; returns the playback id (``PlaybackFinished`` tells its end)."""
    leg: "Leg"
    sound: Any


@dataclass(frozen=True)
class StopPlayback:
    leg: "Leg"


@dataclass(frozen=True)
class Music:
    leg: "Leg"
    on: bool = True


@dataclass(frozen=True)
class Listen:
    """Stream the leg's audio as ``AudioReceived`` (speech input, silence detection)."""
    leg: "Leg"
    on: bool = True


@dataclass(frozen=True)
class Record:
    """Start (``on``) or stop recording the call's two parties; ``file`` names a one-sided recording
    of the caller (voicemail) instead. Returns the recording or None."""
    call: "Call"
    on: bool = True
    file: str = ""


@dataclass(frozen=True)
class CancelLeg:
    """Withdraw an outgoing leg: CANCEL while it rings, BYE if it answered."""
    leg: "Leg"


@dataclass(frozen=True)
class Hangup:
    """The switch ends the call: BYE to answered parties, CANCEL to ringing ones, 480 to an unanswered caller."""
    call: "Call"
    reason: str


@dataclass(frozen=True)
class Detach:
    """The answering party leaves the call (BYE) and the caller stays with the switch (music)."""
    call: "Call"
    music: bool = True


@dataclass(frozen=True)
class Originate:
    """Start a call from nothing: ring extension ``number`` presenting ``caller_id``; returns the call,
    whose caller leg is that outgoing leg (``LegAnswered`` when it answers), or None. With ``uri`` the
    leg goes to that SIP URI at ``peer`` instead (a trunk: a campaign calling a customer first), with
    the fields of ``Dial`` (``domain``, ``headers``, ``credentials``, ``progress_timeout``, ``codecs``,
    ``trunk``)."""
    number: str
    caller_id: str
    display: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    uri: str = ""
    peer: Any = None                    # sip.transaction.Peer, with uri
    domain: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    credentials: tuple[str, str, str] | None = None
    progress_timeout: float | None = None
    codecs: tuple[str, ...] = ()
    trunk: str = ""
