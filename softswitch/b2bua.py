"""Back-to-back user agent: calls between registered extensions (RFC 3261 UAS on one side, UAC on the other).

A ``Call`` has one caller leg (the INVITE we answer) and one callee leg per registered contact of the
called extension (parallel forking); the first to answer wins and the others are cancelled. Each leg
is a full dialog of its own, so the switch can later anchor media, record, transfer and put the
legs of different calls together. Everything here is sans-IO: handlers return actions.

Media: with ``[media] enabled`` (the default) every leg gets an endpoint of the media engine
(``core.media``): the caller's offer is answered by the switch, each callee is offered the switch's
own SDP, and once a callee answers the two endpoints are bridged. Re-INVITEs and UPDATEs (hold and
resume) are answered by the switch from that leg's endpoint and never relayed, so the other party
hears hold music instead of silence. With media disabled SDP passes through (``sdp_to``).
"""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .sip.dialog import Dialog, new_call_id, new_tag
from .sip.message import Request, Response, make_response, new_request
from .sip.transaction import ClientTransaction, Peer, Send, ServerTransaction, new_branch

try:  # the media engine is optional at import time only for tools that never place calls
    from media.ports import PortsExhausted
    from media.sdp import NegotiationError, SdpError
except ImportError:  # pragma: no cover
    PortsExhausted = NegotiationError = SdpError = ()  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from .core import SwitchCore

log = logging.getLogger("softswitch.calls")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY"


@dataclass(eq=False)
class Leg:
    call: "Call"
    role: str                       # "caller" | "callee"
    peer: Peer                      # where this phone's signalling goes (its source address: NAT-safe)
    invite: Request                 # the INVITE we received (caller) or sent (callee)
    tx: Any = None                  # its INVITE server or client transaction
    dialog: Dialog | None = None
    state: str = "calling"          # calling | early | confirmed | terminated
    final: Response | None = None   # final response received (callee legs)
    ack: Request | None = None      # ACK we sent for its 2xx, resent when the 2xx is retransmitted
    cancel_pending: bool = False
    got_provisional: bool = False
    media: Any = None               # its media.engine.Endpoint when media is anchored
    awaiting_answer: bool = False   # we put an offer in a 2xx; the phone's answer comes in the ACK
    agent_id: str = ""              # a queue call offered to this agent (callee legs of queue calls)
    extension: str = ""             # the extension this callee leg rings
    withdrawn: bool = False         # the ACD took the offer back: a late 2xx gets ACK + BYE
    answered_offer: bool = False    # the agent's phone answered this offer
    reinvite: Any = None            # server tx of a re-INVITE relayed from this leg, awaiting its 2xx/ACK
    pending_ack_to: tuple["Leg", int] | None = None   # (other leg, CSeq) to ACK when this leg ACKs a relayed 2xx

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.dialog.call_id, self.dialog.local_tag) if self.dialog else None


@dataclass(eq=False)
class Call:
    id: str
    caller_number: str
    callee_number: str
    created: float
    caller: Leg = field(init=False)
    callees: list[Leg] = field(default_factory=list)
    answered: Leg | None = None
    state: str = "ringing"          # ringing | answered | ended
    answered_at: float | None = None
    ended_at: float | None = None
    end_reason: str = ""
    caller_acked: bool = False
    delayed_offer: bool = False
    caller_answer: bytes = b""      # the switch's SDP answer to the caller's offer (anchored media)
    media_partner: Leg | None = None  # callee leg whose endpoint is bridged to the caller's
    recording: Any = None           # media.recording.Recording while the call is recorded
    quality: dict = field(default_factory=dict)  # role -> media LegStats at the end (for call records)
    queue: str | None = None        # a call-centre queue call (softswitch.queues)
    service: bool = False           # a feature-code call answered by the switch
    connected: bool = False         # queue call bridged to an agent
    prompt_id: int | None = None    # prompt playing to the caller, and what follows it
    after_prompt: str | None = None
    agent_prompt_id: int | None = None
    hung_up_by: str = ""            # "caller" | "callee" | "" (the switch)
    marked_busy: list = field(default_factory=list)  # extensions reported busy to the ACD for this call
    ivr: str | None = None          # the IVR flow the caller is in (softswitch.ivr_calls)
    ivr_plays: dict = field(default_factory=dict)   # media playback id -> IVR Play id
    ivr_recording: Any = None       # voicemail being recorded
    ivr_recording_started: float = 0.0
    vm_silence: float = 0.0         # voicemail: seconds of silence that end the message (0 = off)
    vm_silent_for: float = 0.0
    transfer_deadline: float = 0.0  # a transfer target must answer by then
    ivr_variables: dict = field(default_factory=dict)  # digits and choices collected, for the screen pop
    ivr_transfer: bool = False      # callee legs ring an extension the IVR transferred to
    survey_score: int | None = None
    recognizer: Any = None          # ivr.asr.VoskRecognizer while a menu listens for spoken keywords
    bridge: Any = None              # media.mixer.Bridge joining the caller and the answering party
    monitors: list = field(default_factory=list)  # supervisors' calls listening in (hung up with this call)
    acd_id: str = ""                # the call's id in the ACD (a new one after each transfer into a queue)
    transfers: int = 0
    context: dict = field(default_factory=dict)  # what travels with the call to the next agent (API notes)

    def __post_init__(self) -> None:
        self.acd_id = self.acd_id or self.id

    def other(self, leg: Leg) -> Leg | None:
        return self.answered if leg is self.caller else self.caller

    def parties(self) -> set[str]:
        return {self.caller_number, self.callee_number}


@dataclass
class Relay:
    """An in-dialog request forwarded from one leg to the other, waiting for its answer."""
    origin_tx: Any                  # server transaction on the originating leg (None for BYE we originate)
    origin: Leg
    target: Leg
    method: str


class B2BUA:
    def __init__(self, core: "SwitchCore"):
        self.core = core
        self.calls: dict[str, Call] = {}
        self._by_dialog: dict[tuple[str, str], Leg] = {}
        self._by_client_tx: dict[int, tuple[Leg, Relay | None]] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._seq = 0
        self.media = core.media  # media.engine.MediaEngine, or None when SDP passes through
        self._by_endpoint: dict[int, Leg] = {}
        self.deferred: list = []  # actions produced outside a handler's return path (ends of calls)
        from .ivr_calls import IvrCalls
        from .queues import QueueCalls
        self.queues = QueueCalls(self, core.config)
        self.ivr = IvrCalls(self, core.config)

    def take_deferred(self) -> list:
        out, self.deferred = self.deferred, []
        return out

    # ------------------------------------------------------------------------------ helpers
    def active_calls(self, number: str) -> int:
        return sum(1 for c in self.calls.values() if c.state != "ended" and number in c.parties())

    def sdp_to(self, leg: Leg, body: bytes) -> bytes:
        """SDP sent towards ``leg`` (media anchoring hooks in here)."""
        return body

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    # ------------------------------------------------------------------------------- media
    def _attach(self, leg: Leg, label: str) -> bool:
        """Give ``leg`` a media endpoint; False when the port range is exhausted."""
        try:
            leg.media = self.media.allocate(leg.call.id, label)  # type: ignore[union-attr]
        except PortsExhausted:
            log.warning("call %s: no free RTP port for %s", leg.call.id, label)
            return False
        self._by_endpoint[leg.media.id] = leg
        return True

    def _detach(self, leg: Leg) -> None:
        if leg.media is not None and self.media is not None:
            self._by_endpoint.pop(leg.media.id, None)
            self.media.release(leg.media)
            leg.media = None

    def _bridge(self, call: Call, callee: Leg) -> None:
        a = call.caller
        if self.media is None or a.media is None or callee.media is None or call.media_partner is callee:
            return
        call.bridge = self.media.bridge(a.media, callee.media)
        call.media_partner = callee

    # ---------------------------------------------------------- building blocks (queues.py)
    def answer_locally(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, number: str,
                       now: float, kind: str) -> tuple["Call | None", list]:
        """Answer an INVITE with the switch's own media (queue calls, feature codes)."""
        def refuse(code: int, reason: str | None = None, extra=None) -> tuple[None, list]:
            return None, self._respond(tx, make_response(req, code, reason, to_tag=new_tag(), extra=extra), now)

        if self.media is None:
            log.warning("call from %s to %s (%s) refused: needs [media] enabled", caller, number, kind)
            return refuse(480, "Needs Anchored Media")
        call = Call(id=new_tag() + new_tag(), caller_number=caller, callee_number=number, created=now)
        call.delayed_offer = not req.body
        a = Leg(call, "caller", peer, req, tx)
        a.dialog = Dialog.as_uas(req, new_tag())
        call.caller = a
        if not self._attach(a, f"caller {caller}"):
            return refuse(503, "Out of Media Ports", [("Retry-After", "5")])
        if req.body:
            try:
                body = self.media.answer(a.media, req.body).encode()
            except NegotiationError:
                self._detach(a)
                return refuse(488)
            except SdpError as e:
                self._detach(a)
                return refuse(400, f"Bad SDP: {e}"[:100])
        else:
            a.awaiting_answer = True
            body = self.media.offer(a.media).encode()
        self.calls[call.id] = call
        self._by_dialog[a.key] = a  # type: ignore[index]
        tx.b2bua_leg = a
        a.state = "confirmed"
        call.state = "queued"
        return call, self._respond(tx, self._answer(a, req, 200, None, body, "application/sdp"), now)

    def ring_extension(self, call: "Call", number: str, now: float, *, agent_id: str = "", display: str = "",
                       max_forwards: str = "70", passthrough: tuple[bytes, str] | None = None
                       ) -> tuple[list[Leg], list]:
        """New outgoing legs of ``call`` to every registered phone of extension ``number`` (parallel
        forking), each offered the switch's own SDP; with media off, ``passthrough`` (body, content
        type) is the caller's SDP to relay."""
        core = self.core
        domain = core.config.sip.domain
        legs: list[Leg] = []
        actions: list = []
        name = (display or call.caller_number).replace('"', "")
        for binding in core.registrar.lookup(number, now):
            dest = core.binding_peer(binding)
            b_req = new_request("INVITE", binding.contact_uri, [
                ("Via", core.via(dest, new_branch())),
                ("Max-Forwards", max_forwards),
                ("From", f'"{name}" <sip:{call.caller_number or "anonymous"}@{domain}>;tag={new_tag()}'),
                ("To", f"<sip:{number}@{domain}>"),
                ("Call-ID", new_call_id(domain)),
                ("CSeq", "1 INVITE"),
                ("Contact", core.contact(dest)),
                ("Allow", ALLOW),
                ("User-Agent", core.config.sip.user_agent),
            ])
            leg = Leg(call, "callee", dest, b_req, agent_id=agent_id, extension=number)
            if self.media is not None:
                if not self._attach(leg, f"agent {agent_id}" if agent_id else f"callee {number}"):
                    continue
                b_req.headers.add("Content-Type", "application/sdp")
                b_req.body = self.media.offer(leg.media, prefer=call.caller.media).encode()
            elif passthrough is not None and passthrough[0]:
                b_req.headers.add("Content-Type", passthrough[1])
                b_req.body = self.sdp_to(leg, passthrough[0])
            call.callees.append(leg)
            legs.append(leg)
            actions += self._send_request(leg, b_req, now)
        return legs, actions

    def confirm_callee_leg(self, leg: Leg, resp: Response, now: float) -> tuple[list, bool]:
        """A callee leg's 2xx: dialog, ACK, the phone's SDP answer. Returns (actions, first): ``first``
        is False for a 2xx retransmission, which only gets our ACK again."""
        if leg.dialog is None or leg.dialog.remote_tag != resp.to.tag:
            if leg.dialog is not None and leg.key in self._by_dialog:
                del self._by_dialog[leg.key]  # type: ignore[arg-type]
            leg.dialog = Dialog.as_uac(leg.invite, resp)
            self._by_dialog[leg.key] = leg  # type: ignore[index]
        if leg.state == "confirmed" or leg.ack is not None:
            return ([Send(leg.ack.serialize(), leg.peer)] if leg.ack is not None else []), False
        leg.dialog.update_target(resp)
        leg.state = "confirmed"
        actions = self._send_ack(leg, b"", now)
        if resp.body and leg.media is not None:
            self._accept(leg, resp.body)
        return actions, True

    def bye_leg(self, leg: Leg, now: float) -> list:
        return self._send_bye(leg, now)

    def cancel_leg(self, leg: Leg, now: float) -> list:
        return self._send_cancel(leg, now)

    def detach(self, leg: Leg) -> None:
        self._detach(leg)

    def bridge_answered(self, call: "Call") -> None:
        if call.answered is None or self.media is None:
            return
        self._bridge(call, call.answered)
        if call.recording is None and self._should_record(call):
            call.recording = self.media.start_recording(
                call.id, left=call.caller.media, right=call.answered.media,
                parties={"left": call.caller_number, "right": call.answered.extension or call.callee_number})
            log.info("call %s: recording to %s", call.id, call.recording.path)

    def hangup(self, call: "Call", now: float, reason: str) -> list:
        """The switch ends the call: BYE to the parties that answered (``_end`` cancels phones still
        ringing, as it does for every call)."""
        actions: list = []
        a = call.caller
        if a.state in ("calling", "early") and a.tx is not None:  # still ringing: its INVITE gets a final answer
            actions += self._respond(a.tx, self._answer(a, a.invite, 480, "Call Ended"), now)
            a.state = "terminated"
        for leg in [call.caller, *call.callees]:
            if leg.state == "confirmed":
                actions += self._send_bye(leg, now)
        self._end(call, reason, now)
        return actions

    def _accept(self, leg: Leg, body: bytes) -> bool:
        """The phone's SDP answer to our offer; a bad one is logged (that leg then stays silent)."""
        try:
            self.media.accept_answer(leg.media, body)  # type: ignore[union-attr]
            return True
        except (NegotiationError, SdpError) as e:
            log.warning("call %s: unusable SDP answer from %s: %s", leg.call.id, leg.role, e)
            return False

    def _should_record(self, call: Call) -> bool:
        mode = self.core.config.media.record
        if mode == "all":
            return True
        if mode == "none":
            return False
        numbers = [call.caller_number, call.callee_number]
        if call.answered is not None and call.answered.extension:
            numbers.append(call.answered.extension)  # an agent with record = true
        exts = (self.core.config.extension(n) for n in numbers)
        return any(e is not None and e.record for e in exts)

    def leg_for_endpoint(self, endpoint: Any) -> Leg | None:
        return self._by_endpoint.get(getattr(endpoint, "id", -1))

    def on_media_events(self, events: list, now: float) -> list:
        """Events of the media tick (DTMF digits, RTP time-outs) for the legs they belong to."""
        actions: list = []
        for ev in events:
            try:
                actions += self._on_media_event(ev, now)
            except Exception:  # one event's failure must not lose the others' actions
                log.exception("error handling media event %s", type(ev).__name__)
        return actions

    def _on_media_event(self, ev: Any, now: float) -> list:
        actions: list = []
        if True:
            leg = self.leg_for_endpoint(getattr(ev, "endpoint", None))
            if leg is None:
                return actions
            kind = type(ev).__name__
            if kind == "PlaybackFinished":
                actions += self.ivr.on_playback_finished(leg, ev.playback, now)
                actions += self.queues.on_playback_finished(leg, ev.playback, now)
            elif kind == "AudioChunk":
                actions += self.ivr.on_audio(leg, ev.samples, now)
            elif kind == "DtmfReceived":
                log.info("call %s: DTMF %s from %s (%s, %d ms)", leg.call.id, ev.digit, leg.role, ev.source,
                         ev.duration_ms)
                actions += self.ivr.on_digit(leg, ev.digit, now)
            elif (kind == "RtpTimeout" and leg.call.state in ("answered", "queued") and not leg.media.holding
                  and leg.state == "confirmed" and leg in (leg.call.caller, leg.call.answered)):
                # a phone that vanished (power cut, lost network) sends no BYE: free the call and the agent
                log.info("call %s: no RTP from %s for %.0fs: hanging up", leg.call.id, leg.role, ev.silent_for)
                actions += self.hangup(leg.call, now, f"RTP timeout ({leg.role})")
        return actions

    def _schedule(self, when: float, call_id: str) -> None:
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, call_id))

    def _send_request(self, leg: Leg, req: Request, now: float, relay: Relay | None = None) -> list:
        tx, actions = self.core.tl.send_request(req, leg.peer, now)
        self._by_client_tx[id(tx)] = (leg, relay)
        return actions

    def _respond(self, tx: ServerTransaction, resp: Response, now: float) -> list:
        return self.core.tl.respond(tx, resp, now)

    def _answer(self, leg: Leg, req: Request, status: int, reason: str | None = None, body: bytes = b"",
                content_type: str | None = None, extra: list[tuple[str, str]] | None = None) -> Response:
        """A response on ``leg``'s dialog (our To tag, our Contact)."""
        tag = leg.dialog.local_tag if leg.dialog else None
        ex = list(extra or [])
        if 100 < status < 300 and req.method in ("INVITE", "UPDATE"):
            ex.append(("Contact", self.core.contact(leg.peer)))
            ex.append(("Allow", ALLOW))
        if body:
            ex.append(("Content-Type", content_type or "application/sdp"))
        return make_response(req, status, reason, to_tag=tag, extra=ex, body=body)

    # ------------------------------------------------------------------------ new INVITE
    def on_invite(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, now: float) -> list:
        core = self.core
        actions = self._respond(tx, make_response(req, 100), now)
        target = req.ruri.user_unescaped if hasattr(req.ruri, "user_unescaped") else None
        target = (target or "").split(";")[0]
        if target and self.queues.is_feature_code(target):
            return actions + self.queues.on_feature_code(req, peer, tx, caller, target, now)
        flow = self.ivr.flow_for(target) if target else None
        if flow is not None:
            return actions + self.ivr.on_invite(req, peer, tx, caller, target, flow, now)
        queue = self.queues.queue_for(target) if target else None
        if queue is not None:
            return actions + self.queues.on_queue_invite(req, peer, tx, caller, target, queue, now)
        ext = core.config.extension(target) if target else None
        if ext is None or not ext.enabled:
            log.info("call from %s to %s refused: unknown number (404)", caller, target or "-")
            return actions + self._respond(tx, make_response(req, 404, to_tag=new_tag()), now)
        mf = req.headers.get("Max-Forwards")
        if mf is not None and int(mf) == 0:
            return actions + self._respond(tx, make_response(req, 483, to_tag=new_tag()), now)
        contacts = core.registrar.lookup(ext.number, now)
        if not contacts:
            log.info("call from %s to %s refused: not registered (480)", caller, target)
            return actions + self._respond(tx, make_response(req, 480, "Not Registered", to_tag=new_tag()), now)
        limit = getattr(ext, "busy_limit", 1)
        if limit and self.active_calls(ext.number) >= limit:
            log.info("call from %s to %s refused: busy (486)", caller, target)
            return actions + self._respond(tx, make_response(req, 486, to_tag=new_tag()), now)

        call = Call(id=new_tag() + new_tag(), caller_number=caller, callee_number=ext.number, created=now)
        call.delayed_offer = not req.body
        a = Leg(call, "caller", peer, req, tx)
        a.dialog = Dialog.as_uas(req, new_tag())
        a.state = "early"
        call.caller = a
        if self.media is not None:
            if not self._attach(a, f"caller {caller}"):
                return actions + self._respond(tx, make_response(req, 503, "Out of Media Ports",
                                                                 to_tag=new_tag(), extra=[("Retry-After", "5")]), now)
            if req.body:
                try:
                    call.caller_answer = self.media.answer(a.media, req.body).encode()
                except NegotiationError as e:
                    self._detach(a)
                    log.info("call from %s to %s refused: %s (488)", caller, target, e)
                    return actions + self._respond(tx, make_response(req, 488, to_tag=new_tag(), extra=[
                        ("Warning", '304 - "Media type not available"')]), now)
                except SdpError as e:
                    self._detach(a)
                    return actions + self._respond(tx, make_response(req, 400, f"Bad SDP: {e}"[:100],
                                                                     to_tag=new_tag()), now)
        self.calls[call.id] = call
        self._by_dialog[a.key] = a  # type: ignore[index]
        tx.b2bua_leg = a  # lets CANCEL find the call
        caller_ext = core.config.extension(caller)
        display = (caller_ext.name if caller_ext and caller_ext.name else caller).replace('"', "")
        mf_out = str(min(69, int(mf) - 1 if mf is not None else 69))
        body = req.body if self.media is None else b""  # pass-through SDP when media is not anchored
        _, more = self.ring_extension(call, ext.number, now, display=display, max_forwards=mf_out,
                                      passthrough=(body, req.headers.get("Content-Type") or "application/sdp"))
        actions += more
        if not call.callees:  # every fork failed for want of a media port
            actions += self._respond(tx, self._answer(a, req, 503, "Out of Media Ports", extra=[("Retry-After", "5")]), now)
            self._end(call, "no media port", now)
            return actions
        self._schedule(now + core.config.sip.ring_timeout, call.id)
        call.marked_busy = [n for n in (caller, ext.number) if core.config.extension(n) is not None]
        for n in call.marked_busy:  # the ACD never offers a queue call to a phone that is on a call
            self.deferred += self.queues.phone_busy(n, now)
        log.info("call %s: %s -> %s ringing %d contact(s)", call.id, caller, ext.number, len(call.callees))
        return actions

    # --------------------------------------------------------------------------- responses
    def on_response(self, resp: Response, tx: ClientTransaction, now: float) -> list:
        try:
            return self._on_response(resp, tx, now)
        finally:
            if resp.status >= 200:  # the transaction is done with: do not pin its leg and call forever
                self._by_client_tx.pop(id(tx), None)

    def _on_response(self, resp: Response, tx: ClientTransaction, now: float) -> list:
        entry = self._by_client_tx.get(id(tx))
        if entry is None:
            return self.on_stray_response(resp, None, now)
        leg, relay = entry
        if relay is not None:
            return self._relay_response(resp, tx, leg, relay, now)
        if resp.cseq.method == "INVITE" and leg.role == "callee" and resp.cseq.number == leg.invite.cseq.number:
            return self._callee_invite_response(resp, leg, now)
        if resp.cseq.method in ("BYE", "CANCEL") and resp.status >= 200:
            self._by_client_tx.pop(id(tx), None)
            if resp.cseq.method == "BYE":
                self._leg_gone(leg)
        return []

    def _callee_invite_response(self, resp: Response, leg: Leg, now: float) -> list:
        call = leg.call
        a = call.caller
        actions: list = []
        status = resp.status
        if status < 200:
            if status == 100:
                return []
            leg.got_provisional = True
            if resp.to.tag and leg.dialog is None:
                leg.dialog = Dialog.as_uac(leg.invite, resp)
                self._by_dialog[leg.key] = leg  # type: ignore[index]
            leg.state = "early"
            if leg.cancel_pending:
                leg.cancel_pending = False
                return self._send_cancel(leg, now)
            if call.state == "ringing":
                if self.media is not None:
                    body = b""
                    if resp.body and leg.media is not None and self._accept(leg, resp.body):
                        self._bridge(call, leg)  # early media (ringback, announcements) flows through us
                        body = call.caller_answer
                    ctype = "application/sdp" if body else None
                else:
                    body = self.sdp_to(a, resp.body) if resp.body else b""
                    ctype = resp.headers.get("Content-Type")
                actions += self._respond(a.tx, self._answer(a, a.invite, status, resp.reason, body, ctype), now)
            return actions
        if leg.agent_id or call.queue is not None:
            return self.queues.on_agent_response(resp, leg, now)
        if call.ivr_transfer:
            return self.ivr.on_transfer_response(resp, leg, now)
        if status < 300:
            if leg.dialog is None or leg.dialog.remote_tag != resp.to.tag:
                if leg.dialog is not None and leg.key in self._by_dialog:
                    del self._by_dialog[leg.key]  # type: ignore[arg-type]
                leg.dialog = Dialog.as_uac(leg.invite, resp)
                self._by_dialog[leg.key] = leg  # type: ignore[index]
            if leg.state == "confirmed" or leg.ack is not None:
                if leg.ack is not None:  # 2xx retransmission: our ACK got lost
                    actions.append(Send(leg.ack.serialize(), leg.peer))
                return actions
            leg.dialog.update_target(resp)
            leg.state = "confirmed"
            if call.state != "ringing":
                # another fork answered first (or the caller gave up): ACK and hang this one up
                actions += self._send_ack(leg, b"", now)
                actions += self._send_bye(leg, now)
                self._detach(leg)
                return actions
            call.state = "answered"
            call.answered = leg
            call.answered_at = now
            if not call.delayed_offer or self.media is not None:
                actions += self._send_ack(leg, b"", now)
            for other in call.callees:
                if other is not leg and other.state in ("calling", "early"):
                    actions += self._send_cancel(other, now)
            a.state = "confirmed"
            if self.media is not None:
                for other in call.callees:
                    if other is not leg:
                        self._detach(other)
                if resp.body and leg.media is not None:
                    self._accept(leg, resp.body)
                self._bridge(call, leg)
                if call.delayed_offer:  # the caller sent no offer: we offer in the 200, it answers in the ACK
                    a.awaiting_answer = True
                    body = self.media.offer(a.media, prefer=leg.media).encode()
                else:
                    body = call.caller_answer
                ctype = "application/sdp"
                if self._should_record(call):
                    call.recording = self.media.start_recording(
                        call.id, left=a.media, right=leg.media,
                        parties={"left": call.caller_number, "right": call.callee_number})
                    log.info("call %s: recording to %s", call.id, call.recording.path)
            else:
                body = self.sdp_to(a, resp.body)
                ctype = resp.headers.get("Content-Type")
            actions += self._respond(a.tx, self._answer(a, a.invite, 200, None, body, ctype), now)
            log.info("call %s: %s -> %s answered", call.id, call.caller_number, call.callee_number)
            return actions
        # final failure of this fork
        leg.state = "terminated"
        leg.final = resp
        self._detach(leg)
        if call.state == "ringing" and all(l.state == "terminated" for l in call.callees):
            best = _best_final([l.final for l in call.callees if l.final is not None])
            code, reason = (best.status, best.reason) if best else (480, None)
            if code in (408, 503):
                code, reason = 480, "Temporarily Unavailable"
            if code == 487 and call.end_reason == "cancelled":
                return actions  # the caller's CANCEL already got its 487
            actions += self._respond(a.tx, self._answer(a, a.invite, code, reason), now)
            self._end(call, f"failed {code}", now)
        return actions

    def on_timeout(self, tx: ClientTransaction, now: float) -> list:
        entry = self._by_client_tx.pop(id(tx), None)
        if entry is None:
            return []
        leg, relay = entry
        if relay is not None:
            if relay.method == "INVITE":
                relay.origin.reinvite = None
            if relay.origin_tx is None:
                return []
            return self._respond(relay.origin_tx, self._answer(relay.origin, relay.origin_tx.request, 408), now)
        if leg.role == "callee" and leg.state in ("calling", "early"):
            return self._callee_invite_response(make_response(leg.invite, 408), leg, now)
        if tx_method(tx) == "BYE":
            self._leg_gone(leg)
        return []

    def on_stray_response(self, resp: Response, peer: Peer, now: float) -> list:
        """A 2xx retransmission after its transaction ended: re-send our ACK (RFC 3261 §13.2.2.4)."""
        if resp.status // 100 != 2 or resp.cseq.method != "INVITE":
            return []
        leg = self._by_dialog.get((resp.call_id, resp.from_.tag or ""))
        if leg is not None and leg.ack is not None and leg.ack.cseq.number == resp.cseq.number:
            return [Send(leg.ack.serialize(), leg.peer)]
        return []

    # ------------------------------------------------------------------------------ CANCEL
    def on_cancel(self, req: Request, peer: Peer, tx: ServerTransaction, now: float) -> list:
        inv_tx = self.core.tl.find_invite_server_tx(req)
        leg: Leg | None = getattr(inv_tx, "b2bua_leg", None) if inv_tx is not None else None
        if leg is None:
            return self._respond(tx, make_response(req, 481, to_tag=new_tag()), now)
        actions = self._respond(tx, make_response(req, 200), now)
        call = leg.call
        if call.state != "ringing":
            return actions  # too late: the call was answered (or ended); the CANCEL has no effect
        call.end_reason = "cancelled"
        actions += self._respond(leg.tx, self._answer(leg, leg.invite, 487), now)
        for b in call.callees:
            if b.state in ("calling", "early"):
                actions += self._send_cancel(b, now)
        self._end(call, "cancelled by caller", now)
        return actions

    def _send_cancel(self, leg: Leg, now: float) -> list:
        leg.withdrawn = True  # a 2xx crossing the CANCEL gets ACK + BYE
        if not leg.got_provisional:
            leg.cancel_pending = True  # §9.1: no CANCEL before a provisional response
            return []
        inv = leg.invite
        cancel = new_request("CANCEL", inv.uri, [
            ("Via", inv.headers.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            ("From", inv.headers.get("From") or ""),
            ("To", inv.headers.get("To") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", f"{inv.cseq.number} CANCEL"),
        ])
        return self._send_request(leg, cancel, now)

    # ------------------------------------------------------------------ in-dialog requests
    def find_leg(self, req: Request) -> Leg | None:
        tag = req.to.tag
        return self._by_dialog.get((req.call_id, tag)) if tag else None

    def on_in_dialog(self, req: Request, peer: Peer, tx: ServerTransaction | None, now: float) -> list:
        leg = self.find_leg(req)
        method = req.method
        if leg is None or leg.dialog is None:
            if method == "ACK":
                return []
            return self._respond(tx, make_response(req, 481), now) if tx else []
        if not leg.dialog.check_remote_cseq(req):
            return self._respond(tx, make_response(req, 500, "CSeq Out of Order"), now) if tx else []
        call = leg.call
        if method == "ACK":
            return self._on_ack(req, leg, now)
        if method == "OPTIONS":
            return self._respond(tx, self._answer(leg, req, 200, extra=[("Allow", ALLOW)]), now)
        if method == "BYE":
            actions = self._respond(tx, self._answer(leg, req, 200), now)
            if leg.state == "terminated" or (leg is not call.caller and leg is not call.answered):
                # a leg that already left the call (transferred away, a losing fork, ours crossed its BYE)
                leg.state = "terminated"
                self._detach(leg)
                return actions
            leg.state = "terminated"
            survey = self._survey_for(call, leg)
            if survey:  # the agent hung up: the caller stays on for the satisfaction survey
                return actions + self.queues.agent_left(call, now) + self.ivr.start_flow(call, survey, now)
            other = call.other(leg)
            if other is not None and other.state == "confirmed":
                actions += self._send_bye(other, now)
            who = "caller" if leg is call.caller else "callee"
            call.hung_up_by = who
            self._end(call, f"{who} hung up", now)
            return actions
        if self.media is not None and leg.media is not None and method in ("INVITE", "UPDATE"):
            return self._local_offer_answer(req, leg, tx, now)
        if method == "REFER":
            return self._on_refer(req, leg, tx, now)
        if method == "NOTIFY":  # e.g. the progress of a REFER we never sent: accept and forget
            return self._respond(tx, self._answer(leg, req, 200), now)
        other = call.other(leg)
        if other is None or other.dialog is None or other.state != "confirmed" or call.state != "answered":
            return self._respond(tx, make_response(req, 481 if other is None else 491), now)
        if method == "INVITE":
            if leg.reinvite is not None or other.reinvite is not None:
                return self._respond(tx, self._answer(leg, req, 491, extra=[("Retry-After", "1")]), now)
            leg.reinvite = tx
        if method in ("INVITE", "UPDATE"):
            leg.dialog.update_target(req)
        body = self.sdp_to(other, req.body) if req.body else b""
        out = other.dialog.create_request(method, via=self.core.via(other.peer, new_branch()),
                                          contact=self.core.contact(other.peer), body=body,
                                          content_type=req.headers.get("Content-Type"))
        for name in ("Event", "Info-Package", "Content-Disposition", "Subject"):
            v = req.headers.get(name)
            if v is not None:
                out.headers.add(name, v)
        return self._send_request(other, out, now, Relay(tx, leg, other, method))

    def _local_offer_answer(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> list:
        """A re-INVITE/UPDATE on an anchored leg (hold, resume, codec change, session refresh): the
        switch answers it from the leg's endpoint; the other party is not disturbed (it hears hold
        music while this leg is on hold)."""
        leg.dialog.update_target(req)  # type: ignore[union-attr]
        ep = leg.media
        was_holding = ep.holding
        if req.body:
            try:
                body = self.media.answer(ep, req.body).encode()  # type: ignore[union-attr]
            except NegotiationError:
                return self._respond(tx, self._answer(leg, req, 488), now)
            except SdpError as e:
                return self._respond(tx, self._answer(leg, req, 400, f"Bad SDP: {e}"[:100]), now)
        elif req.method == "INVITE":
            leg.awaiting_answer = True  # offerless re-INVITE: our offer in the 200, the answer in the ACK
            body = self.media.offer(ep).encode()  # type: ignore[union-attr]
        else:
            body = b""
        if ep.holding != was_holding:
            log.info("call %s: %s %s", leg.call.id, leg.role, "put the call on hold" if ep.holding else "resumed the call")
        return self._respond(tx, self._answer(leg, req, 200, None, body, "application/sdp" if body else None), now)

    # ---------------------------------------------------------------------------- transfer
    def _survey_for(self, call: "Call", leg: Leg) -> str:
        """The IVR survey flow the caller goes to when this leg (the agent) hangs up, or ""."""
        if call.queue is None or not call.connected or leg is not call.answered or self.ivr.ivr is None:
            return ""
        q = next((q for q in self.core.config.acd.queues if q.name == call.queue), None)
        return q.survey if q is not None and q.survey in self.ivr.config.flows else ""

    def _on_refer(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> list:
        """Blind transfer from a phone's transfer key (RFC 3515): the party that refers hands the other
        party (the caller) to the Refer-To target, an extension or a queue/IVR number."""
        call = leg.call
        refer_to = req.headers.get("Refer-To") or req.headers.get("r") or ""
        uri: Any = ""
        try:
            from .sip.uri import parse_name_addr as _pna
            uri = _pna(refer_to).uri
            target = (getattr(uri, "user_unescaped", None) or "").split(";")[0]
        except ValueError:
            target = ""
        if not target:
            return self._respond(tx, self._answer(leg, req, 400, "Bad Refer-To"), now)
        replaces = _replaces_of(uri) if not isinstance(uri, str) else None
        if replaces is not None:
            return self._attended_transfer(req, leg, tx, replaces, now)
        if leg is call.caller or call.answered is None or call.state != "answered":
            return self._respond(tx, self._answer(leg, req, 403, "Only The Answering Party May Transfer"), now)
        actions = self._refer_accepted(leg, req, tx, now)
        log.info("call %s: %s transfers %s to %s (REFER)", call.id, leg.extension or call.callee_number,
                 call.caller_number, target)
        return actions + self.transfer_caller(call, target, now)

    def _refer_accepted(self, leg: Leg, req: Request, tx: ServerTransaction, now: float) -> list:
        """202 to the REFER and the final NOTIFY (sipfrag 200) that tells the phone it worked."""
        actions = self._respond(tx, self._answer(leg, req, 202), now)
        notify = leg.dialog.create_request("NOTIFY", via=self.core.via(leg.peer, new_branch()),  # type: ignore[union-attr]
                                           contact=self.core.contact(leg.peer), body=b"SIP/2.0 200 OK\r\n",
                                           content_type="message/sipfrag;version=2.0")
        notify.headers.add("Event", "refer")
        notify.headers.add("Subscription-State", "terminated;reason=noresource")
        return actions + self._send_request(leg, notify, now)

    def _attended_transfer(self, req: Request, leg: Leg, tx: ServerTransaction, replaces: tuple[str, str, str],
                           now: float) -> list:
        """Attended transfer (REFER with Replaces, RFC 3891): the referring phone talks to X in this call and
        to Y in the call named by Replaces; the switch connects X and Y and hangs up both of its legs."""
        call1 = leg.call
        call_id, to_tag, from_tag = replaces
        leg2 = self._by_dialog.get((call_id, to_tag)) or self._by_dialog.get((call_id, from_tag))
        if leg2 is None or leg2.call is call1 or leg2.call.state != "answered" or _party(leg2) != _party(leg):
            # (only the phone's own other call may be joined: knowing a Call-ID is not enough)
            return self._respond(tx, self._answer(leg, req, 481, "Replaced Dialog Not Found"), now)
        call2 = leg2.call
        keep = call1.caller if leg is call1.answered else call1.answered        # X: stays in call1
        target = call2.answered if leg2 is call2.caller else call2.caller      # Y: moves into call1
        if (keep is None or target is None or self.media is None or keep.media is None or target.media is None
                or keep.state != "confirmed" or target.state != "confirmed"):
            return self._respond(tx, self._answer(leg, req, 488, "Cannot Connect Those Calls"), now)
        actions = self._refer_accepted(leg, req, tx, now)
        target_number, referrer = _party(target), _party(leg)
        log.info("call %s: attended transfer: %s connects %s with %s (call %s)", call1.id, _party(leg),
                 _party(keep), target_number, call2.id)
        if call1.queue is not None and call1.connected:
            from acd import events as acd_events
            actions += self.queues.feed(acd_events.CallTransferred(call1.acd_id, target.extension or "?"), now)
            self.queues.calls.pop(call1.acd_id, None)
            call1.queue, call1.connected = None, False
        if call1.recording is not None:
            self.media.stop_recording(call1.recording)
            call1.recording = None
        # Y leaves call2 (without a BYE) for call1, where it takes the referring phone's place
        if call2.caller is target:
            call2.caller = leg2
        call2.callees = [l for l in call2.callees if l is not target]
        call2.answered = leg2 if call2.answered is target else call2.answered
        target.call = call1
        if keep is call1.caller:
            call1.callees.append(target)
            call1.answered = target
            call1.callee_number = target_number
        else:
            call1.caller = target
            call1.caller_number = target_number
            call1.callees.append(leg)  # kept so that _forget unlinks the referrer's old dialog
        call1.media_partner = None
        self._bridge(call1, call1.answered)  # type: ignore[arg-type]
        self._unmark_busy(call1, referrer, now)
        if target_number in call2.marked_busy:  # the target's busy mark moves with it to call1
            call2.marked_busy.remove(target_number)
            call1.marked_busy.append(target_number)
        for gone in (leg, leg2):  # the referring phone's two legs end
            if gone.state == "confirmed":
                actions += self._send_bye(gone, now)
            self._detach(gone)
        self._end(call2, "attended transfer", now)
        return actions

    def transfer_caller(self, call: "Call", target: str, now: float) -> list:
        """Blind transfer: the anchored caller leaves the party it talks to (who is hung up) and goes to
        ``target``: a queue or IVR number, or an extension (the caller hears music while it rings).
        The call's ``context`` (notes from the desk) travels with it to the next agent."""
        if self.media is None or call.caller.media is None:
            return []
        actions: list = []
        old = call.answered
        if old is not None and old.state == "confirmed":
            actions += self._send_bye(old, now)
        if old is not None:
            self._detach(old)
            self._unmark_busy(call, _party(old), now)
        for leg in call.callees:  # agents or a target still ringing for this call
            if leg is not old and leg.state in ("calling", "early") and not leg.withdrawn:
                actions += self._send_cancel(leg, now)
        if call.queue is not None and not call.connected and call.acd_id in self.queues.calls:
            from acd import events as acd_events  # it leaves the queue before an agent took it
            actions += self.queues.feed(acd_events.CallAbandoned(call.acd_id), now)
            self.queues.calls.pop(call.acd_id, None)
        if call.recording is not None:
            self.media.stop_recording(call.recording)
            call.recording = None
        if call.queue is not None and call.connected:
            from acd import events as acd_events
            actions += self.queues.feed(acd_events.CallTransferred(call.acd_id, target), now)
            self.queues.calls.pop(call.acd_id, None)
        call.answered, call.connected, call.media_partner, call.bridge = None, False, None, None
        call.transfers += 1
        call.state = "queued"
        call.callee_number = target
        self.media.leave(call.caller.media)
        self.media.play_music(call.caller.media)
        queue = self.queues.queue_for(target)
        if queue is not None:
            call.queue = queue
            call.acd_id = f"{call.id}.{call.transfers}"
            self.queues.calls[call.acd_id] = call
            from acd import events as acd_events
            return actions + self.queues.feed(acd_events.CallArrived(call.acd_id, queue, call.caller_number), now)
        call.queue = None
        legs, more = self.ring_extension(call, target, now)
        if not legs:
            log.info("call %s: transfer target %s not reachable", call.id, target)
            return actions + more + self.hangup(call, now, f"transfer target {target} not reachable")
        self.ring_transfer(call, target, now)
        return actions + more

    def ring_transfer(self, call: "Call", target: str, now: float) -> None:
        """The caller is being transferred to extension ``target``: its answer bridges the caller
        (IvrCalls.on_transfer_response); unanswered within [sip] ring_timeout, the call ends."""
        call.ivr_transfer = True
        call.transfer_deadline = now + self.core.config.sip.ring_timeout
        self._schedule(call.transfer_deadline, call.id)
        self._mark_busy(call, target, now)

    # ------------------------------------------------------------- phone busy state (ACD)
    def _mark_busy(self, call: "Call", number: str, now: float) -> None:
        if number and self.core.config.extension(number) is not None and number not in call.marked_busy:
            call.marked_busy.append(number)
            self.deferred += self.queues.phone_busy(number, now)

    def _unmark_busy(self, call: "Call", number: str, now: float) -> None:
        if number in call.marked_busy:
            call.marked_busy.remove(number)
            self.deferred += self.queues.phone_free(number, now)

    def _relay_response(self, resp: Response, tx: ClientTransaction, target: Leg, relay: Relay, now: float) -> list:
        if resp.status < 200 and resp.status == 100:
            return []
        origin = relay.origin
        req = relay.origin_tx.request if relay.origin_tx is not None else None
        actions: list = []
        if resp.status >= 200:
            self._by_client_tx.pop(id(tx), None)
        if relay.method == "INVITE" and resp.status < 300 and resp.status >= 200:
            target.dialog.update_target(resp)  # type: ignore[union-attr]
        if req is None:
            return actions
        body = self.sdp_to(origin, resp.body) if resp.body else b""
        out = self._answer(origin, req, resp.status, resp.reason, body, resp.headers.get("Content-Type"))
        if relay.method == "INVITE" and resp.status >= 300:
            origin.reinvite = None
        if relay.method == "INVITE" and 200 <= resp.status < 300:
            origin.pending_ack_to = (target, resp.cseq.number)
        return actions + self._respond(relay.origin_tx, out, now)

    def _on_ack(self, req: Request, leg: Leg, now: float) -> list:
        call = leg.call
        actions: list = []
        if leg.awaiting_answer and req.body and leg.media is not None:
            leg.awaiting_answer = False
            self._accept(leg, req.body)
        if leg is call.caller and not call.caller_acked and req.cseq.number == leg.invite.cseq.number:
            call.caller_acked = True
            if self.media is None and call.delayed_offer and call.answered is not None and call.answered.ack is None:
                actions += self._send_ack(call.answered, self.sdp_to(call.answered, req.body), now)
            return actions
        pending = leg.pending_ack_to
        if pending is not None:
            target, cseq = pending
            leg.pending_ack_to = None
            leg.reinvite = None
            if target.dialog is not None and target.state == "confirmed":
                body = self.sdp_to(target, req.body) if req.body else b""
                ack = target.dialog.create_request("ACK", via=self.core.via(target.peer, new_branch()),
                                                   contact=None, body=body, cseq=cseq,
                                                   content_type=req.headers.get("Content-Type"))
                target.ack = ack  # re-sent if the target retransmits its 2xx
                actions.append(Send(ack.serialize(), target.peer))
        return actions

    def _send_ack(self, leg: Leg, body: bytes, now: float) -> list:
        assert leg.dialog is not None
        ack = leg.dialog.create_request("ACK", via=self.core.via(leg.peer, new_branch()), contact=None,
                                        body=body, cseq=leg.invite.cseq.number)
        leg.ack = ack
        return [Send(ack.serialize(), leg.peer)]

    def _send_bye(self, leg: Leg, now: float) -> list:
        if leg.dialog is None or leg.state == "terminated":
            return []
        bye = leg.dialog.create_request("BYE", via=self.core.via(leg.peer, new_branch()), contact=None)
        leg.state = "terminated"
        return self._send_request(leg, bye, now)

    # ------------------------------------------------------------------------- timers/end
    def on_ack_timeout(self, tx: ServerTransaction, now: float) -> list:
        leg: Leg | None = getattr(tx, "b2bua_leg", None)
        if leg is None or leg.call.state == "ended":
            return []
        call = leg.call
        actions = []
        if call.answered is not None:
            actions += self._send_bye(call.answered, now)
        actions += self._send_bye(call.caller, now)
        self._end(call, "no ACK from caller", now)
        return actions

    def on_timer(self, now: float) -> list:
        actions: list = []
        while self._timers and self._timers[0][0] <= now:
            _, _, call_id = heapq.heappop(self._timers)
            call = self.calls.get(call_id)
            if call is None:
                continue
            if call.state == "ringing":
                call.end_reason = "no answer"
                a = call.caller
                actions += self._respond(a.tx, self._answer(a, a.invite, 480, "No Answer"), now)
                for b in call.callees:
                    if b.state in ("calling", "early"):
                        actions += self._send_cancel(b, now)
                self._end(call, "no answer", now)
            elif call.state == "ended" and now >= (call.ended_at or 0.0) + 32.0:
                self._forget(call)
            elif (call.state == "queued" and call.ivr_transfer and call.answered is None
                  and now >= call.transfer_deadline):
                # a transfer target that never answered: the caller is not left on music forever
                log.info("call %s: transfer to %s not answered", call.id, call.callee_number)
                actions += self.hangup(call, now, "transfer not answered")
        return actions

    def _end(self, call: Call, reason: str, now: float) -> None:
        if call.state == "ended":
            return
        talk = f", talked {now - call.answered_at:.1f}s" if call.answered_at else ""
        call.state = "ended"
        call.ended_at = now
        call.end_reason = call.end_reason or reason
        if call.recording is not None and self.media is not None:
            self.media.stop_recording(call.recording)
        for leg in call.callees:  # phones still ringing for this call (a transfer target, a fork) stop
            if leg.state in ("calling", "early") and not leg.withdrawn:
                leg.withdrawn = True
                self.deferred += self._send_cancel(leg, now)
        for sup in call.monitors:  # supervisors listening in: the call they watch is over
            if sup.state != "ended":
                self.deferred += self.hangup(sup, now, "monitored call ended")
        call.monitors = []
        if call.ivr is not None:  # before the endpoints go: a voicemail being recorded is finished
            self.deferred += self.ivr.on_caller_gone(call, now)
            if call.ivr_recording is not None and self.media is not None:
                self.media.stop_recording(call.ivr_recording)
                call.ivr_recording = None
        for leg in (call.caller, call.answered):
            if leg is not None and leg.media is not None and self.media is not None:
                st = self.media.leg_stats(leg.media)
                call.quality[leg.role] = st
                log.info("call %s: %s media %s: rx %d packets, lost %d, jitter %.1f ms, late %d, concealed %d, "
                         "buffer %d ms, tx %d", call.id, leg.role, st.codec, st.rx_packets, st.rx_lost,
                         st.rx_jitter_ms, st.rx_late, st.rx_concealed, st.jitter_buffer_ms, st.tx_packets)
        for leg in [call.caller, *call.callees]:
            self._detach(leg)
        log.info("call %s: %s -> %s ended: %s%s", call.id, call.caller_number, call.callee_number, reason, talk)
        from dataclasses import asdict
        from .queues import Notify
        agent = call.answered.agent_id if call.answered is not None else ""
        self.deferred.append(Notify({
            "type": "call_end", "call": call.id, "caller": call.caller_number, "callee": call.callee_number,
            "queue": call.queue or "", "agent": agent, "ivr": call.ivr or "", "arrived": call.created,
            "answered": call.answered_at, "ended": now, "reason": call.end_reason, "hung_up_by": call.hung_up_by,
            "recording": str(call.recording.path) if call.recording is not None else "",
            "survey_score": call.survey_score, "variables": dict(call.ivr_variables), "context": dict(call.context),
            "quality": {role: asdict(st) for role, st in call.quality.items()}}))
        if call.queue is not None or call.service:
            self.deferred += self.queues.on_caller_gone(call, now, by_agent=call.hung_up_by == "callee")
        for n in call.marked_busy:
            self.deferred += self.queues.phone_free(n, now)
        call.marked_busy = []
        # keep the legs findable for a while to absorb late BYE/ACK/2xx retransmissions
        self._schedule(now + 32.0, call.id)

    def _forget(self, call: Call) -> None:
        for leg in [call.caller, *call.callees]:
            self._unlink(leg)
        self.calls.pop(call.id, None)

    def _unlink(self, leg: Leg) -> None:
        if leg.key is not None and self._by_dialog.get(leg.key) is leg:
            del self._by_dialog[leg.key]

    def _leg_gone(self, leg: Leg) -> None:
        leg.state = "terminated"


def _party(leg: Leg) -> str:
    """The number of the phone on this leg."""
    call = leg.call
    return leg.extension or (call.caller_number if leg is call.caller else call.callee_number)


def _replaces_of(uri: Any) -> tuple[str, str, str] | None:
    """(call-id, to-tag, from-tag) of a Refer-To URI's ``?Replaces=`` header (RFC 3891), or None."""
    from urllib.parse import unquote
    for part in (getattr(uri, "headers", None) or "").split("&"):
        name, _, value = part.partition("=")
        if name.lower() == "replaces":
            fields = unquote(value).split(";")
            params = dict(p.strip().partition("=")[::2] for p in fields[1:])
            return fields[0].strip(), params.get("to-tag", ""), params.get("from-tag", "")
    return None


def tx_method(tx: Any) -> str:
    req = getattr(tx, "request", None)
    return req.method if req is not None else ""


def _best_final(finals: list[Response]) -> Response | None:
    """RFC 3261 §16.7 step 6, simplified: a 6xx wins, then the lowest class, 486 preferred among 4xx."""
    if not finals:
        return None
    six = [r for r in finals if r.status >= 600]
    if six:
        return six[0]
    busy = [r for r in finals if r.status == 486]
    if busy:
        return busy[0]
    return min(finals, key=lambda r: (r.status // 100, r.status == 408, r.status))
