"""A call and its legs as data: what the B2BUA keeps per call, and what applications read.

A ``Call`` has one caller leg (the INVITE we answer, or for an originated call the first leg we
place) and any number of outgoing legs; each leg is a dialog of its own. States move only through
``states.move`` and the transition tables there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .agentparts import AgentParts
from .holds import HoldTally
from .sip.dialog import Dialog
from .sip.message import Request, Response
from .sip.transaction import Peer
from .states import CALL_TRANSITIONS, CallState, LegState, move

CALLING, EARLY, CONFIRMED, TERMINATED = LegState.CALLING, LegState.EARLY, LegState.CONFIRMED, LegState.TERMINATED
RINGING_STATES = (CALLING, EARLY)


@dataclass(eq=False)
class Leg:
    call: "Call"
    role: str                       # "caller" | "callee"
    peer: Peer                      # where this phone's signalling goes (its source address: NAT-safe)
    invite: Request                 # the INVITE we received (incoming caller) or sent (outgoing legs)
    tx: Any = None                  # its INVITE server transaction (incoming legs)
    dialog: Dialog | None = None
    state: LegState = CALLING
    outgoing: bool = False          # we sent its INVITE (callees, and the caller leg of an originated call)
    extension: str = ""             # the extension this leg rings (outgoing legs)
    inside: bool = False            # a phone inside the switch (the desk's browser phone): no SRTP policy
    final: Response | None = None   # final response received (outgoing legs)
    answer_body: bytes = b""        # SDP of its 2xx (relayed to the caller when media is not anchored)
    ack: Request | None = None      # ACK we sent for its 2xx, resent when the 2xx is retransmitted
    cancel_pending: bool = False
    got_provisional: bool = False
    media: Any = None               # its media.engine.Endpoint when media is anchored
    awaiting_answer: bool = False   # we put an offer in a 2xx; the phone's answer comes in the ACK
    withdrawn: bool = False         # we cancelled it (or the call moved on): a late 2xx gets ACK + BYE
    reinvite: Any = None            # server tx of a re-INVITE relayed from this leg, awaiting its 2xx/ACK
    pending_ack_to: tuple["Leg", int] | None = None   # (other leg, CSeq) to ACK when this leg ACKs a relayed 2xx
    trunk: str = ""                 # the trunk this leg goes to or came from (softswitch.trunks)
    codecs: tuple[str, ...] = ()    # the only codecs its SDP may name (a trunk's codecs); () = [media] codecs
    credentials: tuple[str, str, str] | None = None  # (user, password, realm) for the far end's 401/407
    auth_tries: int = 0             # challenges answered on this INVITE (one per realm at most)

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.dialog.call_id, self.dialog.local_tag) if self.dialog else None

    @property
    def ringing(self) -> bool:
        return self.state in RINGING_STATES

    @property
    def party(self) -> str:
        """The number of the phone on this leg."""
        call = self.call
        return self.extension or (call.caller_number if self is call.caller else call.callee_number)


@dataclass(eq=False)
class Call:
    id: str
    caller_number: str
    callee_number: str
    created: float
    caller: Leg = field(init=False)
    callees: list[Leg] = field(default_factory=list)
    answered: Leg | None = None     # the party the caller talks to
    state: CallState = CallState.RINGING
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    hung_up_by: str = ""            # "caller" | "callee" | "" (the switch)
    caller_acked: bool = False
    delayed_offer: bool = False
    caller_answer: bytes = b""      # the switch's SDP answer to the caller's offer (anchored media)
    media_partner: Leg | None = None  # the leg whose endpoint is bridged to the caller's
    bridge: Any = None              # media.mixer.Bridge joining the caller and the answering party
    recording: Any = None           # media.recording.Recording while the call is recorded
    recording_started: float = 0.0
    recordings: list[tuple[str, float, float]] = field(default_factory=list)  # finished: (file, start, stop)
    quality: dict = field(default_factory=dict)  # role -> media LegStats at the end (for call records)
    final_status: int = 0           # best final status of the outgoing legs that failed (busy, no answer...)
    app: Any = None                 # the application serving the call (softswitch.router)
    variables: dict = field(default_factory=dict)  # digits and choices collected (IVR), for the screen pop
    context: dict = field(default_factory=dict)    # notes that travel with the call to the next agent
    notes: dict = field(default_factory=dict)      # what applications note for the call record (queue, agent...)
    served_locally: bool = False    # the switch answers it (IVR, queue): may use the reserved RTP ports
    hold: HoldTally = field(default_factory=HoldTally)  # holds and hold time (softswitch.holds), for the record
    parts: AgentParts = field(default_factory=AgentParts)  # each agent's part (softswitch.agentparts), for the record

    def set_state(self, new: CallState) -> None:
        self.state = move(self.state, new, CALL_TRANSITIONS, f"call {self.id}")

    def other(self, leg: Leg) -> Leg | None:
        return self.answered if leg is self.caller else self.caller

    def parties(self) -> set[str]:
        return {self.caller_number, self.callee_number}

    @property
    def live(self) -> bool:
        return self.state is not CallState.ENDED


@dataclass
class Relay:
    """An in-dialog request forwarded from one leg to the other, waiting for its answer."""
    origin_tx: Any                  # server transaction on the originating leg
    origin: Leg
    target: Leg
    method: str
