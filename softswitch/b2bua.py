"""Back-to-back user agent: SIP legs and dialogs, media anchoring, bridging, hold and transfer mechanics.

A ``Call`` has one caller leg (the INVITE we answer, or for an originated call the first leg we
place) and any number of outgoing legs (forks to a phone's contacts, agents offered a queue call,
transfer targets). Each leg is a full dialog of its own, so the switch anchors media, records,
transfers and puts legs of different calls together.

This module knows SIP and the media engine, and nothing of queues, IVRs or dialplans: whatever needs
a decision becomes a typed leg event (``softswitch.legs``) queued for the application that owns the
call, and applications act through typed commands (``B2BUA.do``). Everything is sans-IO: messages
and the current time in; SIP messages to send appended to the core's outbox.

Media: with ``[media] enabled`` (the default) every leg gets an endpoint of the media engine: the
caller's offer is answered by the switch, each callee is offered the switch's own SDP, and answered
parties are bridged. Re-INVITEs and UPDATEs (hold and resume) are answered by the switch from that
leg's endpoint and never relayed, so the other party hears hold music instead of silence. With media
disabled SDP passes through.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict
from typing import Any, Callable, Protocol
from urllib.parse import unquote

from . import legs as L
from .sip.dialog import Dialog, new_call_id, new_tag
from .sip.digest import authorization_header, parse_auth_params
from .sip.message import Request, Response, make_response, new_request
from .sip.transaction import ClientTransaction, Peer, Send, ServerTransaction, new_branch
from .sip.uri import parse_name_addr
from .call import CALLING, CONFIRMED, EARLY, TERMINATED, Call, Leg, Relay
from .holds import leg_holder, sdp_holds
from .states import LEG_TRANSITIONS, CallState, LegState, move
from .timers import Timers

from media import engine as M
from media.ports import PortsExhausted
from media.sdp import NegotiationError, SdpError

LOCAL_BINDING = "local-"                   # Call-ID prefix of the browser phone's bindings (Registrar.bind_local)
INSIDE_UA = "softswitch browser phone"     # its User-Agent (softswitch.browserphone.ua)


class Switch(Protocol):
    """What the B2BUA uses of the switch core: transactions, registrations and our own addresses."""
    config: Any
    tl: Any                          # sip.transaction.TransactionLayer
    registrar: Any                   # softswitch.registrar.Registrar
    media: Any                       # media.engine.MediaEngine or None

    def via(self, peer: Peer, branch: str) -> str: ...
    def contact(self, peer: Peer) -> str: ...
    def binding_peer(self, binding: Any) -> Peer: ...

log = logging.getLogger("softswitch.calls")

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY"
LINGER = 32.0  # an ended call's dialogs stay findable this long to absorb retransmissions (64*T1)



class B2BUA:
    def __init__(self, core: Switch, out: list):
        self.core = core
        self.out = out                # the core's outbox: SIP sends (and whatever else callers append)
        self.media = core.media       # media.engine.MediaEngine, or None when SDP passes through
        self.calls: dict[str, Call] = {}
        # ids of the calls each extension's phone placed (sent the INVITE for), so that the per-extension
        # limit (``calls_placed``) costs a look-up, not a walk over every call on every INVITE
        self._placed: dict[str, set[str]] = {}
        self._placed_by: dict[str, str] = {}     # call id -> the extension it is filed under in ``_placed``
        self.events: deque[L.LegEvent] = deque()   # for the applications (drained by the router)
        self.should_record: Callable[[Call], bool] = lambda call: False  # recording policy (call control's)
        self._by_dialog: dict[tuple[str, str], Leg] = {}
        self._by_client_tx: dict[int, tuple[Leg, Relay | None]] = {}
        self._by_endpoint: dict[int, Leg] = {}
        self._linger: Timers[str] = Timers()
        self._ring_limits: Timers[Leg] = Timers()
        self._progress_limits: Timers[Leg] = Timers()  # outgoing legs that must get some answer (trunks)
        self._commands: dict[type, Callable[[Any, float], Any]] = {
            L.Ring: self._ring, L.AnswerLocally: self._answer_locally, L.Reject: self._reject,
            L.Connect: self._connect, L.Bridge: self._do_bridge, L.Play: self._play,
            L.StopPlayback: self._stop_playback, L.Music: self._music, L.Listen: self._listen,
            L.Record: self._record, L.CancelLeg: self._cancel_leg, L.Hangup: self._hangup,
            L.Detach: self._detach_party, L.Originate: self._originate, L.Dial: self._dial,
        }
        self._media_handlers: dict[type, Callable[[Leg, Any, float], None]] = {
            M.PlaybackFinished: self._media_playback, M.AudioChunk: self._media_audio,
            M.DtmfReceived: self._media_dtmf, M.RtpTimeout: self._media_timeout, M.PortFailed: self._media_port_failed,
            M.MediaLost: self._media_lost,
        }

    # ------------------------------------------------------------------------------ commands
    def do(self, cmd: Any, now: float) -> Any:
        """Execute one command of call control (``softswitch.legs``); returns its result, if any."""
        return self._commands[type(cmd)](cmd, now)

    def emit(self, event: L.LegEvent) -> None:
        self.events.append(event)

    # ------------------------------------------------------------------------------ helpers
    def active_calls(self, number: str) -> int:
        """Calls that extension ``number`` is in: as the caller, or on a leg that rings or talks (an agent
        on a queue call counts, though the call's number is the queue's)."""
        def involved(c: Call) -> bool:
            return c.caller_number == number or any(
                leg.extension == number and leg.state is not TERMINATED and not leg.withdrawn for leg in c.callees)
        return sum(1 for c in self.calls.values() if c.live and involved(c))

    def calls_placed(self, number: str) -> int:
        """Live calls extension ``number`` placed (its phone sent the INVITE): ``[[extensions]] max_calls``."""
        n = 0
        for cid in self._placed.get(number, ()):
            c = self.calls.get(cid)
            if c is not None and c.live and c.caller_number == number and not c.caller.outgoing:
                n += 1
        return n

    def srtp_policy(self, leg: Leg) -> str:
        """The SRTP policy of the extension whose phone is on ``leg`` (``[[extensions]] srtp``); "off" for
        legs to anything else (trunks)."""
        if leg.inside:             # the browser phone's RTP hop on loopback: its browser leg is DTLS-SRTP already
            return "off"
        call = leg.call
        number = leg.extension or (call.caller_number if leg.role == "caller" and not leg.outgoing else None)
        ext = self.core.config.extension(number) if number else None
        return getattr(ext, "srtp", "off") if ext is not None else "off"

    def media_reserve_ok(self, call: Call) -> bool:
        """May this call use the RTP ports kept for queue and hotline calls? Calls the switch answers itself
        (IVR, queues) and calls from outside (a trunk: the caller is no extension) may; an extension's
        calls to other phones may not, so one extension cannot take every port (docs/security.md)."""
        return (call.served_locally or call.state is CallState.QUEUED
                or self.core.config.extension(call.caller_number) is None)

    def next_deadline(self) -> float | None:
        ds = [d for d in (self._linger.next_deadline(), self._ring_limits.next_deadline(),
                          self._progress_limits.next_deadline()) if d is not None]
        return min(ds) if ds else None

    def reachable(self, number: str, now: float) -> bool:
        """Whether extension ``number`` has a registered phone to ring."""
        return bool(self.core.registrar.lookup(number, now))

    def leg_for_endpoint(self, endpoint: Any) -> Leg | None:
        return self._by_endpoint.get(getattr(endpoint, "id", -1))

    def leg_by_dialog(self, call_id: str, local_tag: str) -> Leg | None:
        """The leg of the dialog with this Call-ID and our tag (the browser phone finds its calls so)."""
        return self._by_dialog.get((call_id, local_tag))

    def _set(self, leg: Leg, state: LegState) -> None:
        leg.state = move(leg.state, state, LEG_TRANSITIONS, f"{leg.role} leg of call {leg.call.id}")

    # ------------------------------------------------------------------------------- media
    def _attach(self, leg: Leg, label: str) -> bool:
        """Give ``leg`` a media endpoint; False when the port range is exhausted. Media is taken only from the
        leg's signalling IP or SDP address (``MediaEngine.allocate``); calls between extensions leave the
        last ``[media] reserve_ports`` pairs to queue and hotline calls (``media_reserve_ok``)."""
        try:
            extra = {"codecs": leg.codecs} if leg.codecs else {}   # a trunk's codecs: nothing else in its SDP
            leg.media = self.media.allocate(leg.call.id, label, source=leg.peer.host,  # type: ignore[union-attr]
                                            use_reserve=self.media_reserve_ok(leg.call), srtp=self.srtp_policy(leg),
                                            **extra)
        except PortsExhausted as e:
            log.warning("call %s: no RTP port for %s: %s", leg.call.id, label, e)
            return False
        self._by_endpoint[leg.media.id] = leg
        return True

    def _detach(self, leg: Leg) -> None:
        if leg.media is not None and self.media is not None:
            self._by_endpoint.pop(leg.media.id, None)
            self.media.release(leg.media)
            leg.media = None

    def _accept(self, leg: Leg, body: bytes) -> bool:
        """The phone's SDP answer to our offer; a bad one is logged (that leg then stays silent)."""
        try:
            self.media.accept_answer(leg.media, body)  # type: ignore[union-attr]
            return True
        except (NegotiationError, SdpError) as e:
            log.warning("call %s: unusable SDP answer from %s: %s", leg.call.id, leg.role, e)
            return False

    def _bridge(self, call: Call, leg: Leg) -> None:
        a = call.caller
        if self.media is None or a.media is None or leg.media is None or call.media_partner is leg:
            return
        call.bridge = self.media.bridge(a.media, leg.media)
        call.media_partner = leg

    def _do_bridge(self, cmd: L.Bridge, now: float) -> None:
        call = cmd.call
        if call.answered is None or self.media is None or not call.live:
            return
        self._bridge(call, call.answered)
        if call.recording is None and self.should_record(call):
            self._record(L.Record(call, True), now)

    def _play(self, cmd: L.Play, now: float) -> int | None:
        if self.media is None or cmd.leg.media is None:
            return None
        return self.media.play(cmd.leg.media, cmd.sound)

    def _stop_playback(self, cmd: L.StopPlayback, now: float) -> None:
        if self.media is not None and cmd.leg.media is not None:
            self.media.stop_playback(cmd.leg.media)

    def _music(self, cmd: L.Music, now: float) -> None:
        if self.media is None or cmd.leg.media is None:
            return
        if cmd.on:
            self.media.play_music(cmd.leg.media)
        else:
            self.media.stop_music(cmd.leg.media)

    def _listen(self, cmd: L.Listen, now: float) -> None:
        if self.media is not None and cmd.leg.media is not None:
            self.media.listen(cmd.leg.media, cmd.on)

    def _record(self, cmd: L.Record, now: float) -> Any:
        """The one place recordings start and stop (two-party call recordings and voicemail)."""
        call, media = cmd.call, self.media
        if media is None:
            return None
        if not cmd.on:
            rec, call.recording = call.recording, None
            if rec is not None:
                media.stop_recording(rec)
                call.recordings.append((str(rec.path), call.recording_started, now))
            return rec
        if call.recording is not None or call.caller.media is None:
            return call.recording
        if cmd.file:  # the caller alone (voicemail)
            rec = media.start_recording(call.id, left=call.caller.media, right=[], name=cmd.file,
                                        parties={"left": call.caller_number, "right": ""})
        else:
            if call.answered is None or call.answered.media is None:
                return None
            rec = media.start_recording(call.id, left=call.caller.media, right=call.answered.media,
                                        parties={"left": call.caller_number, "right": call.answered.party})
            log.info("call %s: recording to %s", call.id, rec.path)
        call.recording, call.recording_started = rec, now
        return rec

    # ------------------------------------------------------------------------ new INVITE
    def on_invite(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, now: float,
                  target: str | None = None, trunk: str = "", codecs: tuple[str, ...] = ()) -> Call:
        """A new call; ``target``: the number to route (a trunk's DID mapped to our dialplan), by
        default the Request-URI's user; ``codecs``: the trunk's, the only ones our answer may pick (488
        when the carrier offers none of them)."""
        self.out += self._respond(tx, make_response(req, 100), now)
        if target is None:
            target = req.ruri.user_unescaped if hasattr(req.ruri, "user_unescaped") else None
            target = (target or "").split(";")[0]
        call = Call(id=new_tag() + new_tag(), caller_number=caller, callee_number=target, created=now)
        call.delayed_offer = not req.body
        a = Leg(call, "caller", peer, req, tx, trunk=trunk, codecs=codecs)
        a.inside = peer.host in ("127.0.0.1", "::1") and (req.headers.get("User-Agent") or "").startswith(INSIDE_UA)
        a.dialog = Dialog.as_uas(req, new_tag())
        call.caller = a
        self.calls[call.id] = call
        self._placed.setdefault(caller, set()).add(call.id)
        self._placed_by[call.id] = caller
        self._by_dialog[a.key] = a  # type: ignore[index]
        tx.b2bua_leg = a  # type: ignore[attr-defined]  # lets CANCEL find the call
        self.emit(L.IncomingCall(a, target, caller))
        return call

    def _prepare_caller(self, call: Call, now: float) -> bool:
        """The caller leg's media endpoint and the switch's SDP for it; on failure the caller gets its
        final answer (503/488/400) and the call ends."""
        a = call.caller
        if self.media is None or a.media is not None:
            return True
        if not self._attach(a, f"caller {call.caller_number}"):
            self._reject(L.Reject(call, 503, "Out of Media Ports", (("Retry-After", "5"),)), now)
            return False
        body = a.invite.body
        if body:
            try:
                call.caller_answer = self.media.answer(a.media, body).encode()
            except NegotiationError as e:
                log.info("call from %s to %s refused: %s (488)", call.caller_number, call.callee_number, e)
                self._reject(L.Reject(call, 488, None, (("Warning", '304 - "Media type not available"'),)), now)
                return False
            except SdpError as e:
                self._reject(L.Reject(call, 400, f"Bad SDP: {e}"[:100]), now)
                return False
        return True

    def _answer_locally(self, cmd: L.AnswerLocally, now: float) -> bool:
        """The switch answers the caller with its own media (IVR, queue calls, feature codes)."""
        call = cmd.call
        a = call.caller
        if self.media is None:
            log.warning("call from %s to %s refused: needs [media] enabled", call.caller_number, call.callee_number)
            self._reject(L.Reject(call, 480, "Needs Anchored Media"), now)
            return False
        call.served_locally = True
        if not self._prepare_caller(call, now):
            return False
        if a.invite.body:
            body = call.caller_answer
        else:
            a.awaiting_answer = True
            body = self.media.offer(a.media).encode()
        self._set(a, CONFIRMED)
        call.set_state(CallState.QUEUED)
        self.out += self._respond(a.tx, self._answer(a, a.invite, 200, None, body, "application/sdp"), now)
        return True

    def _reject(self, cmd: L.Reject, now: float) -> None:
        call = cmd.call
        a = call.caller
        if a.state is not CONFIRMED and a.tx is not None and a.state is not TERMINATED:
            self.out += self._respond(a.tx, self._answer(a, a.invite, cmd.status, cmd.reason, extra=list(cmd.extra)), now)
            self._set(a, TERMINATED)
        self._end(call, f"refused {cmd.status}", now)

    def _ring(self, cmd: L.Ring, now: float) -> list[Leg]:
        """New outgoing legs of the call to every registered phone of extension ``number`` (parallel
        forking), each offered the switch's own SDP (or, with media off, the caller's)."""
        call = cmd.call
        if not call.live or not self._prepare_caller(call, now):
            return []
        legs: list[Leg] = []
        name = (cmd.display or call.caller_number).replace('"', "")
        for binding in self.core.registrar.lookup(cmd.number, now):
            dest = self.core.binding_peer(binding)
            leg = self._new_outgoing(call, dest, binding.contact_uri, cmd.number, name, cmd.max_forwards,
                                     prefer=call.caller.media, inside=binding.call_id.startswith(LOCAL_BINDING))
            if leg is None:
                continue
            if self.media is None and cmd.passthrough is not None and cmd.passthrough[0]:
                leg.invite.headers.add("Content-Type", cmd.passthrough[1])
                leg.invite.body = cmd.passthrough[0]
            call.callees.append(leg)
            legs.append(leg)
            self._send_request(leg, leg.invite, now)
            if cmd.limit is not None:
                self._ring_limits.schedule(now + cmd.limit, leg)
        return legs

    def _new_outgoing(self, call: Call, dest: Peer, contact_uri: str, number: str, display: str,
                      max_forwards: str = "70", prefer: Any = None, role: str = "callee", from_user: str | None = None,
                      domain: str | None = None, inside: bool = False, codecs: tuple[str, ...] = ()) -> Leg | None:
        core = self.core
        domain = domain or core.config.sip.domain
        user = call.caller_number if from_user is None else from_user
        name = f'"{display}" ' if display else ""
        req = new_request("INVITE", contact_uri, [
            ("Via", core.via(dest, new_branch())),
            ("Max-Forwards", max_forwards),
            ("From", f'{name}<sip:{user or "anonymous"}@{domain}>;tag={new_tag()}'),
            ("To", f"<sip:{number}@{domain}>"),
            ("Call-ID", new_call_id(domain)),
            ("CSeq", "1 INVITE"),
            ("Contact", core.contact(dest)),
            ("Allow", ALLOW),
            ("User-Agent", core.config.sip.user_agent),
        ])
        leg = Leg(call, role, dest, req, outgoing=True, extension=number, inside=inside, codecs=codecs)
        if self.media is not None:
            if not self._attach(leg, f"{role} {number}"):
                return None
            req.headers.add("Content-Type", "application/sdp")
            req.body = self.media.offer(leg.media, prefer=prefer).encode()
        return leg

    def _originate(self, cmd: L.Originate, now: float) -> Call | None:
        """A call from nothing: its caller leg is an INVITE we send to ``number``'s phone (or to ``uri``)."""
        if cmd.uri:
            return self._originate_uri(cmd, now)
        bindings = self.core.registrar.lookup(cmd.number, now)
        if not bindings or self.media is None:
            return None
        call = Call(id=new_tag() + new_tag(), caller_number=cmd.caller_id, callee_number=cmd.number, created=now,
                    variables=dict(cmd.variables))
        dest = self.core.binding_peer(bindings[0])
        leg = self._new_outgoing(call, dest, bindings[0].contact_uri, cmd.number, cmd.display or cmd.caller_id,
                                 role="caller")
        if leg is None:
            return None
        call.caller = leg
        self.calls[call.id] = call
        self._send_request(leg, leg.invite, now)
        return call

    def _originate_uri(self, cmd: L.Originate, now: float) -> Call | None:
        """A call from nothing whose caller leg goes to a SIP URI (a trunk), like ``Dial``'s legs."""
        if self.media is None:
            return None
        call = Call(id=new_tag() + new_tag(), caller_number=cmd.caller_id, callee_number=cmd.number, created=now,
                    variables=dict(cmd.variables))
        leg = self._new_outgoing(call, cmd.peer, cmd.uri, cmd.number, (cmd.display or "").replace('"', ""),
                                 prefer=cmd.codecs[0] if cmd.codecs else None, role="caller",
                                 from_user=cmd.caller_id, domain=cmd.domain or None, codecs=cmd.codecs)
        if leg is None:
            return None
        leg.trunk, leg.credentials = cmd.trunk, cmd.credentials
        for name, value in cmd.headers:
            leg.invite.headers.add(name, value)
        call.caller = leg
        self.calls[call.id] = call
        self._send_request(leg, leg.invite, now)
        if cmd.progress_timeout is not None:
            self._progress_limits.schedule(now + cmd.progress_timeout, leg)
        return call

    def _dial(self, cmd: L.Dial, now: float) -> Leg | None:
        """An outgoing leg to a SIP URI that is not a registered phone (a trunk's carrier)."""
        call = cmd.call
        if not call.live or (call.caller is not None and not call.caller.outgoing
                             and not self._prepare_caller(call, now)):
            return None
        number = cmd.uri.split(":", 1)[-1].split("@", 1)[0]
        prefer: Any = cmd.codecs[0] if cmd.codecs else call.caller.media
        leg = self._new_outgoing(call, cmd.peer, cmd.uri, number, (cmd.display or "").replace('"', ""),
                                 prefer=prefer, from_user=cmd.caller, domain=cmd.domain, codecs=cmd.codecs)
        if leg is None:
            return None
        leg.trunk, leg.credentials = cmd.trunk, cmd.credentials
        for name, value in cmd.headers:
            leg.invite.headers.add(name, value)
        call.callees.append(leg)
        self._send_request(leg, leg.invite, now)
        if cmd.limit is not None:
            self._ring_limits.schedule(now + cmd.limit, leg)
        if cmd.progress_timeout is not None:
            self._progress_limits.schedule(now + cmd.progress_timeout, leg)
        return leg

    def _answer_challenge(self, resp: Response, leg: Leg, now: float) -> bool:
        """Answer a 401/407 of the far end on an outgoing INVITE with the leg's credentials (once per
        INVITE: a second challenge after our answer means the credentials are wrong). True if re-sent."""
        creds = leg.credentials
        if creds is None or leg.withdrawn or leg.auth_tries >= 1 or not leg.call.live:
            return False
        user, password, realm = creds
        header = "WWW-Authenticate" if resp.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if resp.status == 401 else "Proxy-Authorization"
        old = leg.invite
        uri = str(old.uri)
        for challenge in resp.headers.get_lines(header):
            try:
                if realm and parse_auth_params(challenge)[1].get("realm") != realm:
                    continue  # a challenge of another realm: our credentials are not for it
            except ValueError:
                continue
            try:
                value = authorization_header(challenge, "INVITE", uri, user, password, cnonce=new_tag())
            except ValueError:
                continue
            break
        else:
            return False
        req = new_request("INVITE", uri, [(n, v) for n, v in old.headers.items()
                                          if n.lower() not in ("via", "cseq", "authorization", "proxy-authorization",
                                                               "content-length")], body=old.body or b"")
        req.headers.add("Via", self.core.via(leg.peer, new_branch()), first=True)
        req.headers.add("CSeq", f"{old.cseq.number + 1} INVITE")
        req.headers.add(answer, value)
        leg.invite, leg.auth_tries, leg.got_provisional = req, leg.auth_tries + 1, False
        self._send_request(leg, req, now)
        return True

    def _connect(self, cmd: L.Connect, now: float) -> None:
        """``leg`` (answered) becomes the caller's party: other ringing legs stop, the caller is answered
        if it was still ringing, and the two are bridged."""
        call, leg = cmd.call, cmd.leg
        if not call.live or leg.state is not CONFIRMED:
            return
        a = call.caller
        for other in call.callees:
            if other is not leg and other.ringing and not other.withdrawn:
                self._send_cancel(other, now)
        if a.state is not CONFIRMED:  # a plain call: the caller hears the answer now
            if self.media is not None:
                for other in call.callees:
                    if other is not leg:
                        self._detach(other)
                self._bridge(call, leg)
                if call.delayed_offer:  # the caller sent no offer: we offer in the 200, it answers in the ACK
                    a.awaiting_answer = True
                    body = self.media.offer(a.media, prefer=leg.media).encode()
                else:
                    body = call.caller_answer
                ctype: str | None = "application/sdp"
            else:
                body = leg.answer_body
                ctype = leg.final.headers.get("Content-Type") if leg.final is not None else None
            self._set(a, CONFIRMED)
            self.out += self._respond(a.tx, self._answer(a, a.invite, 200, None, body, ctype), now)
        call.answered = leg
        call.set_state(CallState.ANSWERED)
        if call.answered_at is None:
            call.answered_at = now
        if a.media is not None and self.media is not None:
            self.media.stop_music(a.media)
            self.media.stop_playback(a.media)
        if cmd.bridge:
            self._do_bridge(L.Bridge(call), now)
        log.info("call %s: %s -> %s answered by %s", call.id, call.caller_number, call.callee_number, leg.party)

    def _cancel_leg(self, cmd: L.CancelLeg, now: float) -> None:
        leg = cmd.leg
        leg.withdrawn = True
        if leg.ringing:
            self._send_cancel(leg, now)
        elif leg.state is CONFIRMED:
            self._send_bye(leg, now)
            self._detach(leg)

    def _hangup(self, cmd: L.Hangup, now: float) -> None:
        """The switch ends the call: BYE to the parties that answered (``_end`` cancels phones still
        ringing)."""
        call = cmd.call
        if not call.live:
            return
        a = call.caller
        if a.ringing and a.tx is not None:  # still ringing: its INVITE gets a final answer
            self.out += self._respond(a.tx, self._answer(a, a.invite, 480, "Call Ended"), now)
            self._set(a, TERMINATED)
        for leg in [call.caller, *call.callees]:
            if leg.state is CONFIRMED:
                self._send_bye(leg, now)
        self._end(call, cmd.reason, now)

    def _detach_party(self, cmd: L.Detach, now: float) -> None:
        """The answering party leaves (BYE if still up); the caller stays with the switch."""
        call = cmd.call
        old = call.answered
        if old is not None:
            if old.state is CONFIRMED:
                self._send_bye(old, now)
            self._detach(old)
        for leg in call.callees:  # phones still ringing for this call
            if leg is not old and leg.ringing and not leg.withdrawn:
                self._send_cancel(leg, now)
        if call.recording is not None:
            self._record(L.Record(call, False), now)
        call.answered, call.media_partner, call.bridge = None, None, None
        call.hold.close(now)
        if call.state is CallState.ANSWERED:
            call.set_state(CallState.QUEUED)
        if self.media is not None and call.caller.media is not None:
            if getattr(call.caller.media, "held", False):  # the desk's hold was the leaving party's: the next one gets the caller unheld
                self.media.hold(call.caller.media, False)
            self.media.leave(call.caller.media)
            if cmd.music:
                self.media.play_music(call.caller.media)

    # --------------------------------------------------------------------------- responses
    def on_response(self, resp: Response, tx: ClientTransaction, now: float) -> None:
        try:
            self._on_response(resp, tx, now)
        finally:
            if resp.status >= 200:  # the transaction is done with: do not pin its leg and call forever
                self._by_client_tx.pop(id(tx), None)

    def _on_response(self, resp: Response, tx: ClientTransaction, now: float) -> None:
        entry = self._by_client_tx.get(id(tx))
        if entry is None:
            self.on_stray_response(resp, None, now)
            return
        leg, relay = entry
        if relay is not None:
            self._relay_response(resp, tx, leg, relay, now)
        elif resp.cseq.method == "INVITE" and leg.outgoing and resp.cseq.number == leg.invite.cseq.number:
            self._outgoing_invite_response(resp, leg, now)
        elif resp.cseq.method == "BYE" and resp.status >= 200:
            self._leg_gone(leg)

    def _outgoing_invite_response(self, resp: Response, leg: Leg, now: float) -> None:
        call = leg.call
        status = resp.status
        if status < 200:
            leg.got_provisional = True  # any provisional, a 100 too, lets a CANCEL go (RFC 3261 §9.1)
            if leg.cancel_pending:
                leg.cancel_pending = False
                self._send_cancel(leg, now)
                return
            if status == 100:
                return
            if resp.to.tag and leg.dialog is None:
                leg.dialog = Dialog.as_uac(leg.invite, resp)
                self._by_dialog[leg.key] = leg  # type: ignore[index]
            if leg.state is CALLING:
                self._set(leg, EARLY)
            self._relay_provisional(resp, leg, now)
            self.emit(L.LegRinging(leg, status))
            return
        if status < 300:
            self._outgoing_2xx(resp, leg, now)
            return
        if status in (401, 407) and self._answer_challenge(resp, leg, now):
            return
        # final failure of this leg
        self._set(leg, TERMINATED)
        leg.final = resp
        self._detach(leg)
        if call.live:
            self.emit(L.LegFailed(leg, status, resp.reason or "", withdrawn=leg.withdrawn))

    def _relay_provisional(self, resp: Response, leg: Leg, now: float) -> None:
        """Ringing of a plain call's callee reaches its caller (with early media through the switch)."""
        call, a = leg.call, leg.call.caller
        if leg.trunk and resp.body and not leg.withdrawn and a.state is CONFIRMED and call.answered is None:
            self._early_media_to_answered_caller(resp, leg)
            return
        if call.state is not CallState.RINGING or a.outgoing or not a.ringing or leg.withdrawn:
            return
        if self.media is not None:
            body = b""
            if resp.body and leg.media is not None and self._accept(leg, resp.body):
                self._bridge(call, leg)  # early media (ringback, announcements) flows through us
                body = call.caller_answer
            ctype = "application/sdp" if body else None
        else:
            body = resp.body or b""
            ctype = resp.headers.get("Content-Type")
        if a.state is CALLING:
            self._set(a, EARLY)
        self.out += self._respond(a.tx, self._answer(a, a.invite, resp.status, resp.reason, body, ctype), now)

    def _early_media_to_answered_caller(self, resp: Response, leg: Leg) -> None:
        """A carrier's early media (183 with SDP: announcements, its ringback) while the caller is already
        answered by the switch (click-to-dial's A, a transferred caller): the caller hears the carrier
        instead of our music until the far end answers or fails."""
        call, a = leg.call, leg.call.caller
        if self.media is None or leg.media is None or a.media is None or not self._accept(leg, resp.body or b""):
            return
        if call.media_partner is not leg:
            self.media.stop_music(a.media)
            self.media.stop_playback(a.media)
            call.media_partner = None
            self._bridge(call, leg)
            log.info("call %s: early media from trunk %s reaches %s", call.id, leg.trunk, a.party)

    def _outgoing_2xx(self, resp: Response, leg: Leg, now: float) -> None:
        call = leg.call
        if leg.dialog is None or leg.dialog.remote_tag != resp.to.tag:
            if leg.dialog is not None and leg.key in self._by_dialog:
                del self._by_dialog[leg.key]  # type: ignore[arg-type]
            leg.dialog = Dialog.as_uac(leg.invite, resp)
            self._by_dialog[leg.key] = leg  # type: ignore[index]
        if leg.state is CONFIRMED or leg.ack is not None:
            if leg.ack is not None:  # 2xx retransmission: our ACK got lost
                self.out.append(Send(leg.ack.serialize(), leg.peer))
            return
        leg.dialog.update_target(resp)
        leg.final = resp
        leg.answer_body = resp.body or b""
        if leg.withdrawn or not call.live or leg.state is TERMINATED:
            # cancelled (another fork or agent answered, the caller gave up): ACK and hang it up
            leg.withdrawn = True
            self._send_ack(leg, b"", now)
            self._send_bye(leg, now, force=True)
            self._detach(leg)
            return
        self._set(leg, CONFIRMED)
        a = call.caller
        if self.media is None and call.delayed_offer and leg is not a and a.state is not CONFIRMED:
            pass  # the ACK waits for the caller's ACK, which carries the answer to relay
        else:
            self._send_ack(leg, b"", now)
        if resp.body and leg.media is not None:
            self._accept(leg, resp.body)
        if leg is a and call.state is CallState.RINGING:
            call.set_state(CallState.QUEUED)  # an originated call: its first party answered
        self.emit(L.LegAnswered(leg))

    def on_timeout(self, tx: ClientTransaction, now: float) -> None:
        entry = self._by_client_tx.pop(id(tx), None)
        if entry is None:
            return
        leg, relay = entry
        if relay is not None:
            if relay.method == "INVITE":
                relay.origin.reinvite = None
            if relay.origin_tx is not None:
                self.out += self._respond(relay.origin_tx, self._answer(relay.origin, relay.origin_tx.request, 408), now)
            return
        if leg.outgoing and leg.ringing and tx_method(tx) == "INVITE":
            self._outgoing_invite_response(make_response(leg.invite, 408), leg, now)
        elif tx_method(tx) == "BYE":
            self._leg_gone(leg)

    def on_stray_response(self, resp: Response, peer: Peer | None, now: float) -> None:
        """A 2xx retransmission after its transaction ended: re-send our ACK (RFC 3261 §13.2.2.4)."""
        if resp.status // 100 != 2 or resp.cseq.method != "INVITE":
            return
        leg = self._by_dialog.get((resp.call_id, resp.from_.tag or ""))
        if leg is not None and leg.ack is not None and leg.ack.cseq.number == resp.cseq.number:
            self.out.append(Send(leg.ack.serialize(), leg.peer))

    # ------------------------------------------------------------------------------ CANCEL
    def on_cancel(self, req: Request, peer: Peer, tx: ServerTransaction, now: float) -> None:
        inv_tx = self.core.tl.find_invite_server_tx(req)
        leg: Leg | None = getattr(inv_tx, "b2bua_leg", None) if inv_tx is not None else None
        if leg is None:
            self.out += self._respond(tx, make_response(req, 481, to_tag=new_tag()), now)
            return
        self.out += self._respond(tx, make_response(req, 200), now)
        call = leg.call
        if call.state is not CallState.RINGING or leg.state is CONFIRMED or leg.state is TERMINATED:
            return  # too late: the call was answered (or ended); the CANCEL has no effect
        call.end_reason = "cancelled"
        call.hung_up_by = "caller"
        self.out += self._respond(leg.tx, self._answer(leg, leg.invite, 487), now)
        self._set(leg, TERMINATED)
        self.emit(L.CallerCancelled(leg))
        self._end(call, "cancelled by caller", now)

    def _send_cancel(self, leg: Leg, now: float) -> None:
        leg.withdrawn = True  # a 2xx crossing the CANCEL gets ACK + BYE
        if not leg.got_provisional:
            leg.cancel_pending = True  # §9.1: no CANCEL before a provisional response
            return
        inv = leg.invite
        cancel = new_request("CANCEL", inv.uri, [
            ("Via", inv.headers.get_all("Via")[0]),
            ("Max-Forwards", "70"),
            ("From", inv.headers.get("From") or ""),
            ("To", inv.headers.get("To") or ""),
            ("Call-ID", inv.call_id),
            ("CSeq", f"{inv.cseq.number} CANCEL"),
        ])
        self._send_request(leg, cancel, now)

    # ------------------------------------------------------------------ in-dialog requests
    def find_leg(self, req: Request) -> Leg | None:
        tag = req.to.tag
        return self._by_dialog.get((req.call_id, tag)) if tag else None

    def on_in_dialog(self, req: Request, peer: Peer, tx: ServerTransaction | None, now: float) -> None:
        leg = self.find_leg(req)
        method = req.method
        if leg is None or leg.dialog is None:
            if method != "ACK" and tx is not None:
                self.out += self._respond(tx, make_response(req, 481), now)
            return
        if not leg.dialog.check_remote_cseq(req):
            if tx is not None:
                self.out += self._respond(tx, make_response(req, 500, "CSeq Out of Order"), now)
            return
        if method == "ACK":
            self._on_ack(req, leg, now)
        elif tx is None:
            return
        elif method == "OPTIONS":
            self.out += self._respond(tx, self._answer(leg, req, 200, extra=[("Allow", ALLOW)]), now)
        elif method == "BYE":
            self._on_bye(req, leg, tx, now)
        elif self.media is not None and leg.media is not None and method in ("INVITE", "UPDATE"):
            self._local_offer_answer(req, leg, tx, now)
        elif method == "REFER":
            self._on_refer(req, leg, tx, now)
        elif method == "NOTIFY":  # e.g. the progress of a REFER we never sent: accept and forget
            self.out += self._respond(tx, self._answer(leg, req, 200), now)
        else:
            self._relay(req, leg, tx, now)

    def _on_bye(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> None:
        call = leg.call
        self.out += self._respond(tx, self._answer(leg, req, 200), now)
        if leg.state is TERMINATED or not call.live or (leg is not call.caller and leg is not call.answered):
            # a leg that already left the call (transferred away, a losing fork, ours crossed its BYE)
            leg.state = TERMINATED
            self._detach(leg)
            return
        self._set(leg, TERMINATED)
        self.emit(L.LegHungUp(leg))

    def _relay(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> None:
        """With media not anchored, in-dialog requests (re-INVITE, UPDATE, INFO) go to the other party."""
        call = leg.call
        method = req.method
        other = call.other(leg)
        if other is None or other.dialog is None or other.state is not CONFIRMED or call.state is not CallState.ANSWERED:
            self.out += self._respond(tx, make_response(req, 481 if other is None else 491), now)
            return
        if method == "INVITE":
            if leg.reinvite is not None or other.reinvite is not None:
                self.out += self._respond(tx, self._answer(leg, req, 491, extra=[("Retry-After", "1")]), now)
                return
            leg.reinvite = tx
        if method in ("INVITE", "UPDATE"):
            leg.dialog.update_target(req)  # type: ignore[union-attr]
            held = sdp_holds(req.body) if req.body else None
            if held is not None:
                self._hold_seen(leg, held, now)
        out = other.dialog.create_request(method, via=self.core.via(other.peer, new_branch()),
                                          contact=self.core.contact(other.peer), body=req.body or b"",
                                          content_type=req.headers.get("Content-Type"))
        for name in ("Event", "Info-Package", "Content-Disposition", "Subject"):
            v = req.headers.get(name)
            if v is not None:
                out.headers.add(name, v)
        self._send_request(other, out, now, Relay(tx, leg, other, method))

    def _relay_response(self, resp: Response, tx: ClientTransaction, target: Leg, relay: Relay, now: float) -> None:
        if resp.status == 100:
            return
        origin = relay.origin
        if resp.status >= 200:
            self._by_client_tx.pop(id(tx), None)
        if relay.method == "INVITE" and 200 <= resp.status < 300:
            target.dialog.update_target(resp)  # type: ignore[union-attr]
        req = relay.origin_tx.request if relay.origin_tx is not None else None
        if req is None:
            return
        out = self._answer(origin, req, resp.status, resp.reason, resp.body or b"", resp.headers.get("Content-Type"))
        if relay.method == "INVITE" and resp.status >= 300:
            origin.reinvite = None
        if relay.method == "INVITE" and 200 <= resp.status < 300:
            origin.pending_ack_to = (target, resp.cseq.number)
        self.out += self._respond(relay.origin_tx, out, now)

    def _on_ack(self, req: Request, leg: Leg, now: float) -> None:
        call = leg.call
        if leg.awaiting_answer and req.body and leg.media is not None:
            leg.awaiting_answer = False
            self._accept(leg, req.body)
            self._hold_seen(leg, bool(leg.media.holding), now)
        if leg is call.caller and not call.caller_acked and req.cseq.number == leg.invite.cseq.number:
            call.caller_acked = True
            if self.media is None and call.delayed_offer and call.answered is not None and call.answered.ack is None:
                self._send_ack(call.answered, req.body or b"", now)
            return
        pending = leg.pending_ack_to
        if pending is not None:
            target, cseq = pending
            leg.pending_ack_to = None
            leg.reinvite = None
            if target.dialog is not None and target.state is CONFIRMED:
                ack = target.dialog.create_request("ACK", via=self.core.via(target.peer, new_branch()),
                                                   contact=None, body=req.body or b"", cseq=cseq,
                                                   content_type=req.headers.get("Content-Type"))
                target.ack = ack  # re-sent if the target retransmits its 2xx
                self.out.append(Send(ack.serialize(), target.peer))

    def _local_offer_answer(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> None:
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
                self.out += self._respond(tx, self._answer(leg, req, 488), now)
                return
            except SdpError as e:
                self.out += self._respond(tx, self._answer(leg, req, 400, f"Bad SDP: {e}"[:100]), now)
                return
        elif req.method == "INVITE":
            leg.awaiting_answer = True  # offerless re-INVITE: our offer in the 200, the answer in the ACK
            body = self.media.offer(ep).encode()  # type: ignore[union-attr]
        else:
            body = b""
        if ep.holding != was_holding:
            log.info("call %s: %s %s", leg.call.id, leg.role, "put the call on hold" if ep.holding else "resumed the call")
        self._hold_seen(leg, bool(ep.holding), now)
        self.out += self._respond(tx, self._answer(leg, req, 200, None, body, "application/sdp" if body else None), now)

    @staticmethod
    def _hold_seen(leg: Leg, holding: bool, now: float) -> None:
        """A phone's own hold or resume (its re-INVITE's direction), for the call's hold time; only a
        party of the conversation (the caller, the answering leg) holds the call."""
        call = leg.call
        if call.state is CallState.ANSWERED and (leg is call.caller or leg is call.answered):
            call.hold.set(leg_holder(leg), holding, now)
        elif not holding:
            call.hold.set(leg_holder(leg), False, now)

    # ---------------------------------------------------------------------------- transfer
    def _on_refer(self, req: Request, leg: Leg, tx: ServerTransaction, now: float) -> None:
        """Transfer from a phone's transfer key (RFC 3515): blind (the other party goes to the Refer-To
        target, which call control routes) or attended (Replaces: two calls are joined here)."""
        call = leg.call
        refer_to = req.headers.get("Refer-To") or req.headers.get("r") or ""
        uri: Any = ""
        try:
            uri = parse_name_addr(refer_to).uri
            target = (getattr(uri, "user_unescaped", None) or "").split(";")[0]
        except ValueError:
            target = ""
        if not target:
            self.out += self._respond(tx, self._answer(leg, req, 400, "Bad Refer-To"), now)
            return
        replaces = _replaces_of(uri) if not isinstance(uri, str) else None
        if replaces is not None:
            self._attended_transfer(req, leg, tx, replaces, now)
            return
        if leg is call.caller or call.answered is not leg or call.state is not CallState.ANSWERED:
            self.out += self._respond(tx, self._answer(leg, req, 403, "Only The Answering Party May Transfer"), now)
            return
        if self.media is None or call.caller.media is None:
            self.out += self._respond(tx, self._answer(leg, req, 488, "Transfer Needs Anchored Media"), now)
            return
        self._refer_accepted(leg, req, tx, now)
        log.info("call %s: %s transfers %s to %s (REFER)", call.id, leg.party, call.caller_number, target)
        self.emit(L.TransferRequested(leg, target))

    def _refer_accepted(self, leg: Leg, req: Request, tx: ServerTransaction, now: float) -> None:
        """202 to the REFER and the final NOTIFY (sipfrag 200) that tells the phone it worked."""
        self.out += self._respond(tx, self._answer(leg, req, 202), now)
        notify = leg.dialog.create_request("NOTIFY", via=self.core.via(leg.peer, new_branch()),  # type: ignore[union-attr]
                                           contact=self.core.contact(leg.peer), body=b"SIP/2.0 200 OK\r\n",
                                           content_type="message/sipfrag;version=2.0")
        notify.headers.add("Event", "refer")
        notify.headers.add("Subscription-State", "terminated;reason=noresource")
        self._send_request(leg, notify, now)

    def _attended_transfer(self, req: Request, leg: Leg, tx: ServerTransaction, replaces: tuple[str, str, str],
                           now: float) -> None:
        """Attended transfer (REFER with Replaces, RFC 3891): the referring phone talks to X in this call and
        to Y in the call named by Replaces; the switch connects X and Y and hangs up both of its legs."""
        call1 = leg.call
        call_id, to_tag, from_tag = replaces
        leg2 = self._by_dialog.get((call_id, to_tag)) or self._by_dialog.get((call_id, from_tag))
        if leg2 is None or leg2.call is call1 or leg2.call.state is not CallState.ANSWERED or leg2.party != leg.party:
            # (only the phone's own other call may be joined: knowing a Call-ID is not enough)
            self.out += self._respond(tx, self._answer(leg, req, 481, "Replaced Dialog Not Found"), now)
            return
        call2 = leg2.call
        keep = call1.caller if leg is call1.answered else call1.answered        # X: stays in call1
        target = call2.answered if leg2 is call2.caller else call2.caller      # Y: moves into call1
        if (keep is None or target is None or self.media is None or keep.media is None or target.media is None
                or keep.state is not CONFIRMED or target.state is not CONFIRMED):
            self.out += self._respond(tx, self._answer(leg, req, 488, "Cannot Connect Those Calls"), now)
            return
        self._refer_accepted(leg, req, tx, now)
        log.info("call %s: attended transfer: %s connects %s with %s (call %s)", call1.id, leg.party,
                 keep.party, target.party, call2.id)
        if call1.recording is not None:
            self._record(L.Record(call1, False), now)
        target_number = target.party
        # Y leaves call2 (without a BYE) for call1, where it takes the referring phone's place
        if call2.caller is target:
            call2.caller = leg2
        call2.callees = [x for x in call2.callees if x is not target]
        call2.answered = leg2 if call2.answered is target else call2.answered
        target.call = call1
        target.extension = target_number
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
        for gone in (leg, leg2):  # the referring phone's two legs end
            if gone.state is CONFIRMED:
                self._send_bye(gone, now)
            self._detach(gone)
        self.emit(L.CallMerged(leg, call2))
        self._end(call2, "attended transfer", now)

    # ----------------------------------------------------------------------- media events
    def on_media_events(self, events: list, now: float) -> None:
        """Events of the media tick (DTMF digits, finished prompts, audio, RTP time-outs) for their legs."""
        for ev in events:
            try:
                self._on_media_event(ev, now)
            except Exception:  # one event's failure must not lose the others
                log.exception("error handling media event %s", type(ev).__name__)

    def _on_media_event(self, ev: Any, now: float) -> None:
        leg = self.leg_for_endpoint(getattr(ev, "endpoint", None))
        if leg is None or not leg.call.live:
            return
        handler = self._media_handlers.get(type(ev))
        if handler is not None:
            handler(leg, ev, now)

    def _media_playback(self, leg: Leg, ev: Any, now: float) -> None:
        self.emit(L.PlaybackFinished(leg, ev.playback))

    def _media_audio(self, leg: Leg, ev: Any, now: float) -> None:
        self.emit(L.AudioReceived(leg, ev.samples))

    def _media_dtmf(self, leg: Leg, ev: Any, now: float) -> None:
        log.info("call %s: DTMF %s from %s (%s, %d ms)", leg.call.id, ev.digit, leg.role, ev.source, ev.duration_ms)
        self._relay_dtmf(leg, ev)
        self.emit(L.DigitReceived(leg, ev.digit, ev.source, ev.duration_ms))

    def _relay_dtmf(self, leg: Leg, ev: Any) -> None:
        """A digit sent as an RFC 4733 event by one party of a bridged call is regenerated towards the other
        (as events if it negotiated telephone-event, else as tones), so a caller or an agent can work a
        carrier's or a bank's IVR. In-band tones need nothing: they are in the audio the bridge carries."""
        call = leg.call
        if ev.source != "rfc4733" or self.media is None or call.state is not CallState.ANSWERED:
            return
        other = call.other(leg)
        if (other is None or other.media is None or leg.media is None or other.state is not CONFIRMED
                or call.media_partner is not call.answered or leg not in (call.caller, call.answered)):
            return
        self.media.send_dtmf(other.media, ev.digit, max(40, min(int(ev.duration_ms or 100), 500)))

    def _media_timeout(self, leg: Leg, ev: Any, now: float) -> None:
        call = leg.call
        if (call.state in (CallState.ANSWERED, CallState.QUEUED) and not leg.media.holding
                and leg.state is CONFIRMED and leg in (call.caller, call.answered)):
            # a phone that vanished (power cut, lost network) sends no BYE: free the call and the agent
            log.info("call %s: no RTP from %s for %.0fs: hanging up", call.id, leg.role, ev.silent_for)
            self._hangup(L.Hangup(call, f"RTP timeout ({leg.role})"), now)

    def _media_lost(self, leg: Leg, ev: Any, now: float) -> None:
        """The media worker carrying this leg died (``media.workers``): end the call like an RTP time-out."""
        log.error("call %s: media of the %s leg lost (%s): hanging up", leg.call.id, leg.role, ev.reason)
        self._end_without_media(leg.call, "Media Lost", "media lost (worker died)", now)

    def _media_port_failed(self, leg: Leg, ev: Any, now: float) -> None:
        log.error("call %s: RTP port of the %s leg could not be opened (%s): hanging up", leg.call.id, leg.role,
                  ev.reason)
        self._end_without_media(leg.call, "Out of Media Ports", "RTP port failed", now)

    def _end_without_media(self, call: Call, reject_reason: str, hangup_reason: str, now: float) -> None:
        """A call whose media is gone: a caller not yet answered gets 503 + Retry-After, else BYE both ways."""
        if call.caller.state is not CONFIRMED and call.caller.tx is not None and not call.caller.outgoing:
            self._reject(L.Reject(call, 503, reject_reason, (("Retry-After", "5"),)), now)
        else:
            self._hangup(L.Hangup(call, hangup_reason), now)

    # ------------------------------------------------------------------------- timers/end
    def on_ack_timeout(self, tx: ServerTransaction, now: float) -> None:
        leg: Leg | None = getattr(tx, "b2bua_leg", None)
        if leg is None or not leg.call.live:
            return
        call = leg.call
        if call.answered is not None:
            self._send_bye(call.answered, now)
        self._send_bye(call.caller, now)
        self._end(call, "no ACK from caller", now)

    def on_timer(self, now: float) -> None:
        for leg in self._progress_limits.due(now):
            if leg.state is CALLING and not leg.got_provisional and not leg.withdrawn and leg.call.live:
                # nothing at all from the far end (a trunk down): give up so that call control can fail over
                log.info("call %s: no response from %s within its progress time-out", leg.call.id, leg.party)
                self._send_cancel(leg, now)
                self._set(leg, TERMINATED)
                self._detach(leg)
                self.emit(L.LegFailed(leg, 408, "No Response"))
        for leg in self._ring_limits.due(now):
            if leg.ringing and not leg.withdrawn and leg.call.live:
                # its hard ring limit: stop it even if its own time-out was lost (no phone rings on forever)
                log.info("call %s: %s still ringing at its limit: cancelled", leg.call.id, leg.party)
                self._send_cancel(leg, now)
                self._set(leg, TERMINATED)
                self._detach(leg)
                self.emit(L.LegFailed(leg, 408, "Ring Limit"))
        for call_id in self._linger.due(now):
            call = self.calls.get(call_id)
            if call is not None and not call.live:
                self._forget(call)

    def _end(self, call: Call, reason: str, now: float) -> None:
        """SIP and media clean-up of a call that is over; its application hears ``CallGone``."""
        if not call.live:
            return
        talk = f", talked {now - call.answered_at:.1f}s" if call.answered_at else ""
        call.set_state(CallState.ENDED)
        call.ended_at = now
        call.end_reason = call.end_reason or reason
        if call.recording is not None:
            self._record(L.Record(call, False), now)
        for leg in [call.caller, *call.callees]:  # phones still ringing for this call (a fork, an agent,
            if leg.outgoing and leg.ringing and not leg.withdrawn:  # a transfer target, an originated A) stop
                self._send_cancel(leg, now)
        for party in (call.caller, call.answered):
            if party is not None and party.media is not None and self.media is not None:
                st = self.media.leg_stats(party.media)
                call.quality[party.role] = asdict(st)
                log.info("call %s: %s media %s%s: rx %d packets, lost %d, jitter %.1f ms, late %d, concealed %d, "
                         "buffer %d ms, tx %d%s", call.id, party.role, st.codec, f" SRTP {st.srtp}" if st.srtp else "",
                         st.rx_packets, st.rx_lost, st.rx_jitter_ms, st.rx_late, st.rx_concealed, st.jitter_buffer_ms,
                         st.tx_packets, f" (relayed {st.relayed})" if st.relayed else "")
        for leg in [call.caller, *call.callees]:
            self._detach(leg)
        log.info("call %s: %s -> %s ended: %s%s", call.id, call.caller_number, call.callee_number, reason, talk)
        self.emit(L.CallGone(call.caller, reason))
        self._linger.schedule(now + LINGER, call.id)

    def _forget(self, call: Call) -> None:
        for leg in [call.caller, *call.callees]:
            if leg.key is not None and self._by_dialog.get(leg.key) is leg:
                del self._by_dialog[leg.key]
        self.calls.pop(call.id, None)
        number = self._placed_by.pop(call.id, None)
        if number is not None:
            ids = self._placed.get(number)
            if ids is not None:
                ids.discard(call.id)
                if not ids:
                    del self._placed[number]

    def _leg_gone(self, leg: Leg) -> None:
        leg.state = TERMINATED

    # ------------------------------------------------------------------------- SIP output
    def _send_request(self, leg: Leg, req: Request, now: float, relay: Relay | None = None) -> None:
        tx, actions = self.core.tl.send_request(req, leg.peer, now)
        self._by_client_tx[id(tx)] = (leg, relay)
        self.out += actions

    def _send_ack(self, leg: Leg, body: bytes, now: float) -> None:
        assert leg.dialog is not None
        ack = leg.dialog.create_request("ACK", via=self.core.via(leg.peer, new_branch()), contact=None,
                                        body=body, cseq=leg.invite.cseq.number)
        leg.ack = ack
        self.out.append(Send(ack.serialize(), leg.peer))

    def _send_bye(self, leg: Leg, now: float, force: bool = False) -> None:
        """BYE on the leg's dialog (``force``: even if the leg already counts as terminated, e.g. a
        2xx that arrived after we gave the leg up)."""
        if leg.dialog is None or (leg.state is TERMINATED and not force):
            return
        bye = leg.dialog.create_request("BYE", via=self.core.via(leg.peer, new_branch()), contact=None)
        leg.state = TERMINATED
        self._send_request(leg, bye, now)

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


def _replaces_of(uri: Any) -> tuple[str, str, str] | None:
    """(call-id, to-tag, from-tag) of a Refer-To URI's ``?Replaces=`` header (RFC 3891), or None."""
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


def best_final(finals: list[Response]) -> Response | None:
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
