"""The SIP user agent of one browser phone: sans-IO, bytes and page commands in, actions out.

The switch sees an ordinary phone of the agent's extension (registered by ``service``, reached on
127.0.0.1): its INVITEs ring the page, and the agent's clicks become what a desk phone would send:
200 OK (answer), 486 (decline), BYE, a re-INVITE with ``a=sendonly`` (hold), REFER (blind transfer;
with ``Replaces`` the attended transfer of RFC 3891) and INVITEs of its own (dialling), digest-
authenticated with the extension's credentials, which stay on the server. Every rule of the switch
(dialplan, queues, recording, monitoring, transfer, call records) applies to the browser as to any
phone, because it is one.

It uses the project's transaction layer and dialogs; the edge (``phone.BrowserPhone``) moves the
datagrams and opens a local RTP hop (``hop``) per call: the UA names its port in its SDP and reports
``MediaUp``/``MediaDown`` with what was agreed.
"""
from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping, Union
from urllib.parse import quote

from media.sdp import LocalSdp, NegotiationError, SdpError, StreamParams
from media.sdp import parse as parse_sdp

from ..sip.dialog import Dialog, new_call_id, new_tag
from ..sip.digest import authorization_header, compute_response, parse_auth_params
from ..sip.message import ParseError, Request, Response, make_response, new_request, parse_message
from ..sip.transaction import (
    AckTimeout,
    ClientTransaction,
    Peer,
    RequestReceived,
    ResponseReceived,
    Send,
    ServerTransaction,
    StrayResponse,
    TransactionLayer,
    TransactionTimeout,
    new_branch,
)
from ..sip.uri import SipUri
from ..states import move

log = logging.getLogger("softswitch.browserphone")

MAX_CALLS = 4          # ringing + talking + held + consulting: a fifth INVITE gets 486
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, REFER"


class PhoneCallState(str, Enum):
    RINGING = "ringing"      # an incoming call rings in the page
    DIALING = "dialing"      # our INVITE is out
    TALKING = "talking"
    HELD = "held"            # the agent put it on hold (the other party hears music)
    ENDED = "ended"

    def __str__(self) -> str:
        return self.value


TRANSITIONS: Mapping[PhoneCallState, frozenset[PhoneCallState]] = {
    PhoneCallState.RINGING: frozenset({PhoneCallState.TALKING, PhoneCallState.ENDED}),
    PhoneCallState.DIALING: frozenset({PhoneCallState.TALKING, PhoneCallState.ENDED}),
    PhoneCallState.TALKING: frozenset({PhoneCallState.HELD, PhoneCallState.ENDED}),
    PhoneCallState.HELD: frozenset({PhoneCallState.TALKING, PhoneCallState.ENDED}),
    PhoneCallState.ENDED: frozenset(),
}


# ------------------------------------------------------------------------------------------ actions
@dataclass(frozen=True)
class ToPage:
    """A JSON message for the desk page (``type`` starts with ``phone.``)."""
    message: dict[str, Any]


@dataclass(frozen=True)
class MediaUp:
    """The call's audio flows (again): the hop sends to ``host:port`` with ``codec``/``pt``."""
    call: str
    host: str
    port: int
    codec: int
    pt: int
    te_pt: int | None
    sending: bool            # False while on hold (the switch plays music to the other party)


@dataclass(frozen=True)
class MediaDown:
    """The call is over: its hop closes."""
    call: str


Action = Union[Send, ToPage, MediaUp, MediaDown]


class PhoneError(ValueError):
    """A page command that cannot be done now (no such call, wrong state); the page shows the text."""


@dataclass(eq=False)
class PhoneCall:
    id: str                          # the page's name for it ("c1", "c2", ...)
    direction: str                   # "in" | "out"
    number: str                      # the other party as the switch shows it
    invite: Request                  # the INVITE received (in) or sent (out)
    state: PhoneCallState
    tx: ServerTransaction | None = None       # incoming: the INVITE's server transaction
    dialog: Dialog | None = None
    sdp: LocalSdp | None = None
    params: StreamParams | None = None
    local_tag: str = ""
    auth_tried: bool = False
    got_provisional: bool = False
    cancel_pending: bool = False
    hold_pending: bool | None = None          # the hold/resume re-INVITE in flight
    ack: Request | None = None
    ended_reason: str = ""
    sip_call_id: str = ""

    def set_state(self, new: PhoneCallState) -> None:
        self.state = move(self.state, new, TRANSITIONS, f"browser phone call {self.id}")

    @property
    def live(self) -> bool:
        return self.state is not PhoneCallState.ENDED


class PhoneUA:
    """One browser phone's SIP side: it talks only to the switch (``switch``) from ``local``."""

    def __init__(self, extension: str, password: str, domain: str, local: tuple[str, int], switch: Peer,
                 user_agent: str = "softswitch browser phone", ha1: Mapping[str, str] | None = None):
        self.extension = extension
        self.password = password
        self.ha1 = dict(ha1 or {})       # algorithm -> H(user:realm:password), for configs without the password
        self.domain = domain
        self.local = local
        self.switch = switch
        self.user_agent = user_agent
        self.tl = TransactionLayer()
        self.calls: dict[str, PhoneCall] = {}          # page id -> call
        self._by_sip: dict[str, PhoneCall] = {}        # SIP Call-ID -> call
        self._client: dict[int, tuple[PhoneCall, str]] = {}   # id(client tx) -> (call, what: invite/hold/bye/refer)
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------------------ addressing
    @property
    def contact_uri(self) -> str:
        host, port = self.local
        return f"sip:{quote(self.extension)}@{host}:{port}"

    def _via(self) -> str:
        host, port = self.local
        return f"SIP/2.0/UDP {host}:{port};branch={new_branch()};rport"

    def _contact(self) -> str:
        return f"<{self.contact_uri}>"

    def live_calls(self) -> list[PhoneCall]:
        return [c for c in self.calls.values() if c.live]

    def call(self, cid: str) -> PhoneCall:
        c = self.calls.get(cid)
        if c is None or not c.live:
            raise PhoneError(f"no call {cid}")
        return c

    # ----------------------------------------------------------------------------------- input
    def receive(self, data: bytes, now: float) -> list[Action]:
        try:
            msg = parse_message(data)
        except ParseError:
            return []
        out: list[Action] = []
        for ev in self.tl.receive(msg, self.switch, now):  # (the UA talks to the switch only)
            out += self._event(ev, now)
        return out

    def on_timer(self, now: float) -> list[Action]:
        out: list[Action] = []
        for ev in self.tl.on_timer(now):
            out += self._event(ev, now)
        return out

    def next_deadline(self) -> float | None:
        return self.tl.next_deadline()

    def _event(self, ev: Any, now: float) -> list[Action]:
        if isinstance(ev, Send):
            return [ev]
        if isinstance(ev, RequestReceived):
            return self._request(ev.request, ev.tx, now)
        if isinstance(ev, ResponseReceived):
            return self._response(ev.response, ev.tx, now)
        if isinstance(ev, StrayResponse):
            return self._stray(ev.response)
        if isinstance(ev, TransactionTimeout):
            entry = self._client.pop(id(ev.tx), None)
            if entry is not None and entry[1] == "invite" and entry[0].state is PhoneCallState.DIALING:
                return self._ended(entry[0], "no answer from the switch (408)")
            return []
        if isinstance(ev, AckTimeout):
            call = self._by_sip.get(ev.tx.request.call_id)
            if call is not None and call.live:
                return self._bye(call, now) + self._ended(call, "no ACK from the switch")
        return []

    # -------------------------------------------------------------------------------- requests
    def _request(self, req: Request, tx: ServerTransaction | None, now: float) -> list[Action]:
        call = self._by_sip.get(req.call_id)
        if tx is None:                                    # ACK of our 2xx
            return []
        m = req.method
        if m == "CANCEL":
            return self._cancelled(req, tx, now)
        if m == "INVITE" and not req.to.tag:
            return self._incoming(req, tx, now)
        if call is None or not call.live:
            return self._respond(tx, make_response(req, 481, to_tag=new_tag()), now)
        if m == "BYE":
            out = self._respond(tx, self._resp(call, req, 200), now)
            return out + self._ended(call, "hung up by the other party", by="remote")
        if m == "INVITE":                                 # the switch re-offers (rare: it answers ours)
            return self._reoffer(call, req, tx, now)
        if m == "NOTIFY":
            out = self._respond(tx, self._resp(call, req, 200), now)
            frag = req.body.decode("utf-8", "replace")
            if frag.startswith("SIP/2.0 2"):
                out.append(ToPage({"type": "phone.transferred", "call": call.id}))
            return out
        if m == "OPTIONS":
            return self._respond(tx, self._resp(call, req, 200, extra=[("Allow", ALLOW)]), now)
        return self._respond(tx, self._resp(call, req, 405, extra=[("Allow", ALLOW)]), now)

    def _respond(self, tx: ServerTransaction, resp: Response, now: float) -> list[Action]:
        return [a for a in self.tl.respond(tx, resp, now) if isinstance(a, Send)]

    def _resp(self, call: PhoneCall, req: Request, status: int, reason: str | None = None, body: bytes = b"",
              extra: list[tuple[str, str]] | None = None) -> Response:
        ex = list(extra or [])
        if 100 < status < 300 and req.method == "INVITE":
            ex.append(("Contact", self._contact()))
            ex.append(("Allow", ALLOW))
        if body:
            ex.append(("Content-Type", "application/sdp"))
        return make_response(req, status, reason, to_tag=call.local_tag or None, extra=ex, body=body)

    def _incoming(self, req: Request, tx: ServerTransaction, now: float) -> list[Action]:
        self.forget_ended()                 # (an agent away from the page is rung again and again: bounded)
        if len(self.live_calls()) >= MAX_CALLS:
            return self._respond(tx, make_response(req, 486, to_tag=new_tag()), now)
        frm = req.from_
        uri = frm.uri
        number = (uri.user_unescaped or "") if isinstance(uri, SipUri) else ""
        cid = f"c{next(self._ids)}"
        call = PhoneCall(cid, "in", number, req, PhoneCallState.RINGING, tx=tx, local_tag=new_tag(),
                         sip_call_id=req.call_id)
        call.dialog = Dialog.as_uas(req, call.local_tag)
        self.calls[cid] = call
        self._by_sip[req.call_id] = call
        log.info("browser phone %s: call %s from %s rings", self.extension, cid, number or "anonymous")
        out: list[Action] = list(self._respond(tx, self._resp(call, req, 180), now))
        out.append(ToPage({"type": "phone.incoming", "call": cid, "from": number,
                           "display": (frm.display or "").strip('"')[:100]}))
        return out

    def _cancelled(self, req: Request, tx: ServerTransaction, now: float) -> list[Action]:
        inv = self.tl.find_invite_server_tx(req)
        call = self._by_sip.get(req.call_id)
        if inv is None or call is None or call.tx is not inv:
            return self._respond(tx, make_response(req, 481, to_tag=new_tag()), now)
        out: list[Action] = list(self._respond(tx, make_response(req, 200), now))
        if call.state is PhoneCallState.RINGING:
            out += self._respond(inv, self._resp(call, call.invite, 487), now)
            out += self._ended(call, "answered elsewhere or the caller gave up", by="remote")
        return out

    def _reoffer(self, call: PhoneCall, req: Request, tx: ServerTransaction, now: float) -> list[Action]:
        assert call.sdp is not None
        call.dialog.update_target(req)  # type: ignore[union-attr]
        try:
            if req.body:
                body, params = call.sdp.answer(parse_sdp(req.body), hold=call.state is PhoneCallState.HELD)
            else:
                return self._respond(tx, self._resp(call, req, 488), now)
        except (NegotiationError, SdpError):
            return self._respond(tx, self._resp(call, req, 488), now)
        call.params = params
        out: list[Action] = list(self._respond(tx, self._resp(call, req, 200, body=body.encode()), now))
        return out + [self._media_up(call)]

    # ------------------------------------------------------------------------------- responses
    def _response(self, resp: Response, tx: ClientTransaction, now: float) -> list[Action]:
        entry = self._client.get(id(tx))
        if entry is None:
            return []
        if resp.status >= 200:
            self._client.pop(id(tx), None)
        call, what = entry
        if what == "invite":
            return self._invite_response(call, resp, tx, now)
        if what == "hold":
            return self._hold_response(call, resp, now)
        if what == "refer" and resp.status >= 300:
            return [ToPage({"type": "phone.error", "call": call.id,
                            "error": f"transfer refused: {resp.status} {resp.reason}"})]
        return []

    def _stray(self, resp: Response) -> list[Action]:
        """A retransmitted 2xx after its transaction ended: our ACK got lost, send it again."""
        call = self._by_sip.get(resp.call_id)
        if call is not None and call.ack is not None and resp.status // 100 == 2 and resp.cseq.method == "INVITE" \
                and call.ack.cseq.number == resp.cseq.number:
            return [Send(call.ack.serialize(), self.switch)]
        return []

    def _send(self, call: PhoneCall, req: Request, what: str, now: float) -> list[Action]:
        tx, actions = self.tl.send_request(req, self.switch, now)
        self._client[id(tx)] = (call, what)
        return [a for a in actions if isinstance(a, Send)]

    def _ack(self, call: PhoneCall, resp: Response) -> list[Action]:
        assert call.dialog is not None
        ack = call.dialog.create_request("ACK", via=self._via(), contact=None, cseq=resp.cseq.number)
        call.ack = ack
        return [Send(ack.serialize(), self.switch)]

    def _invite_response(self, call: PhoneCall, resp: Response, tx: ClientTransaction, now: float) -> list[Action]:
        s = resp.status
        if s < 200:
            call.got_provisional = True
            if call.cancel_pending:
                call.cancel_pending = False
                return self._cancel(call, now)
            if s in (180, 183) and call.state is PhoneCallState.DIALING:
                return [ToPage({"type": "phone.progress", "call": call.id, "status": s})]
            return []
        if s < 300:
            if call.dialog is None or call.dialog.remote_tag != resp.to.tag:
                call.dialog = Dialog.as_uac(call.invite, resp)
            call.dialog.update_target(resp)
            out = self._ack(call, resp)
            if call.state is not PhoneCallState.DIALING:   # we gave up meanwhile (2xx crossed our CANCEL)
                return out + self._bye(call, now)
            assert call.sdp is not None
            try:
                call.params = call.sdp.accept_answer(parse_sdp(resp.body or b""))
            except (NegotiationError, SdpError) as e:
                log.warning("browser phone %s: unusable answer to call %s: %s", self.extension, call.id, e)
                return out + self._bye(call, now) + self._ended(call, "no common codec")
            call.set_state(PhoneCallState.TALKING)
            out.append(self._media_up(call))
            out.append(ToPage({"type": "phone.state", "call": call.id, "state": "talking"}))
            return out
        if s in (401, 407) and not call.auth_tried and call.state is PhoneCallState.DIALING:
            call.auth_tried = True
            again = self._authorised(call.invite, resp)
            if again is not None:
                call.invite = again
                return self._send(call, again, "invite", now)
        if call.state is PhoneCallState.DIALING:
            return self._ended(call, f"{s} {resp.reason}".strip())
        return []

    def _authorised(self, invite: Request, resp: Response) -> Request | None:
        """The INVITE again (new branch, next CSeq) with credentials for the challenge, or None."""
        header = "Proxy-Authorization" if resp.status == 407 else "Authorization"
        challenges = resp.headers.get_lines("Proxy-Authenticate" if resp.status == 407 else "WWW-Authenticate")
        value = None
        for ch in challenges:
            try:
                value = self._credentials(ch, str(invite.uri))
            except ValueError:
                continue
            if value is not None:
                break
        if value is None:
            log.warning("browser phone %s: cannot answer the switch's challenge", self.extension)
            return None
        headers = [(n, v) for n, v in invite.headers.items() if n.lower() not in ("via", "cseq", header.lower())]
        req = new_request("INVITE", invite.uri, [("Via", self._via()), ("CSeq", f"{invite.cseq.number + 1} INVITE"),
                                                 *headers, (header, value)], invite.body)
        return req

    def _credentials(self, challenge: str, uri: str) -> str | None:
        """Our answer to one challenge: from the password, or from the stored HA1 of its algorithm."""
        if self.password:
            return authorization_header(challenge, "INVITE", uri, self.extension, self.password)
        scheme, p = parse_auth_params(challenge)
        alg = p.get("algorithm", "MD5").upper()
        ha1 = self.ha1.get(alg)
        if scheme.lower() != "digest" or ha1 is None or "nonce" not in p or "realm" not in p:
            return None
        cnonce = new_tag()
        qop = "auth" if "auth" in {q.strip().lower() for q in p.get("qop", "").split(",")} else None
        response = compute_response(ha1, "INVITE", uri, p["nonce"], alg, qop, "00000001" if qop else None,
                                    cnonce if qop else None)
        parts = [f'username="{self.extension}"', f'realm="{p["realm"]}"', f'nonce="{p["nonce"]}"', f'uri="{uri}"',
                 f'response="{response}"', f"algorithm={alg}"]
        if qop:
            parts += [f'cnonce="{cnonce}"', "qop=auth", "nc=00000001"]
        if "opaque" in p:
            parts.append(f'opaque="{p["opaque"]}"')
        return "Digest " + ", ".join(parts)

    def _hold_response(self, call: PhoneCall, resp: Response, now: float) -> list[Action]:
        if resp.status < 200:
            return []
        on = call.hold_pending
        call.hold_pending = None
        if resp.status >= 300 or on is None or not call.live:
            return [ToPage({"type": "phone.error", "call": call.id, "error": f"hold refused: {resp.status}"})]
        out = self._ack(call, resp)
        assert call.sdp is not None
        try:
            call.params = call.sdp.accept_answer(parse_sdp(resp.body or b""), "sendonly" if on else "sendrecv")
        except (NegotiationError, SdpError):
            pass
        call.set_state(PhoneCallState.HELD if on else PhoneCallState.TALKING)
        out.append(self._media_up(call))
        out.append(ToPage({"type": "phone.state", "call": call.id, "state": call.state.value}))
        return out

    # ---------------------------------------------------------------------------- page commands
    def answer(self, cid: str, rtp: tuple[str, int], now: float) -> list[Action]:
        """The agent answers a ringing call; ``rtp`` is the hop the edge opened for it."""
        call = self.call(cid)
        if call.state is not PhoneCallState.RINGING or call.tx is None:
            raise PhoneError(f"call {cid} is not ringing")
        call.sdp = LocalSdp(rtp[0], rtp[1])
        if not call.invite.body:
            raise PhoneError("the switch sent no SDP offer")  # (the switch always offers: anchored media)
        try:
            body, call.params = call.sdp.answer(parse_sdp(call.invite.body))
        except (NegotiationError, SdpError) as e:
            out = list(self._respond(call.tx, self._resp(call, call.invite, 488), now))
            return out + self._ended(call, f"no common codec ({e})")
        call.set_state(PhoneCallState.TALKING)
        out = list(self._respond(call.tx, self._resp(call, call.invite, 200, body=body.encode()), now))
        log.info("browser phone %s: call %s answered", self.extension, cid)
        out.append(self._media_up(call))
        out.append(ToPage({"type": "phone.state", "call": cid, "state": "talking"}))
        return out

    def decline(self, cid: str, now: float) -> list[Action]:
        call = self.call(cid)
        if call.state is not PhoneCallState.RINGING or call.tx is None:
            raise PhoneError(f"call {cid} is not ringing")
        out = list(self._respond(call.tx, self._resp(call, call.invite, 486), now))
        return out + self._ended(call, "declined", by="local")

    def hangup(self, cid: str, now: float) -> list[Action]:
        call = self.call(cid)
        if call.state is PhoneCallState.RINGING:
            return self.decline(cid, now)
        if call.state is PhoneCallState.DIALING:
            out = self._cancel(call, now) if call.got_provisional else []
            call.cancel_pending = not call.got_provisional
            return out + self._ended(call, "hung up", by="local")
        return self._bye(call, now) + self._ended(call, "hung up", by="local")

    def hold(self, cid: str, on: bool, now: float) -> list[Action]:
        call = self.call(cid)
        want = PhoneCallState.HELD if on else PhoneCallState.TALKING
        if call.state not in (PhoneCallState.TALKING, PhoneCallState.HELD) or call.dialog is None:
            raise PhoneError(f"call {cid} is not connected")
        if call.state is want:
            return []
        if call.hold_pending is not None:
            raise PhoneError("a hold or resume is already under way")
        assert call.sdp is not None
        offer = call.sdp.offer("sendonly" if on else "sendrecv", call.params.codec if call.params else None)
        req = call.dialog.create_request("INVITE", via=self._via(), contact=self._contact(), body=offer.encode(),
                                         content_type="application/sdp")
        call.hold_pending = on
        return self._send(call, req, "hold", now)

    def dial(self, number: str, rtp: tuple[str, int], now: float) -> tuple[str, list[Action]]:
        """A call from the browser to ``number`` (the switch's dialplan decides what it reaches)."""
        if len(self.live_calls()) >= MAX_CALLS:
            raise PhoneError("too many calls")
        cid = f"c{next(self._ids)}"
        sdp = LocalSdp(rtp[0], rtp[1])
        uri = f"sip:{quote(number, safe='+*#')}@{self.domain}"
        sip_call_id = new_call_id(self.local[0])
        req = new_request("INVITE", uri, [
            ("Via", self._via()), ("Max-Forwards", "70"),
            ("From", f"<sip:{quote(self.extension)}@{self.domain}>;tag={new_tag()}"), ("To", f"<{uri}>"),
            ("Call-ID", sip_call_id), ("CSeq", "1 INVITE"), ("Contact", self._contact()), ("Allow", ALLOW),
            ("User-Agent", self.user_agent), ("Content-Type", "application/sdp"),
        ], sdp.offer().encode())
        call = PhoneCall(cid, "out", number, req, PhoneCallState.DIALING, sdp=sdp, sip_call_id=sip_call_id)
        self.calls[cid] = call
        self._by_sip[sip_call_id] = call
        log.info("browser phone %s: call %s dials %s", self.extension, cid, number)
        return cid, self._send(call, req, "invite", now)

    def transfer(self, cid: str, target: str, now: float) -> list[Action]:
        """Blind transfer: REFER the other party to ``target``; the switch then hangs this call up."""
        call = self._connected(cid)
        return self._refer(call, f"<sip:{quote(target, safe='+*#')}@{self.domain}>", now)

    def attended_transfer(self, cid: str, other: str, now: float) -> list[Action]:
        """Connect the parties of two of our calls (REFER with Replaces, RFC 3891): the other party of
        ``cid`` is joined to the other party of ``other``; the switch hangs up both of ours."""
        call, second = self._connected(cid), self._connected(other)
        d = second.dialog
        assert d is not None and d.remote_tag is not None
        replaces = quote(f"{d.call_id};to-tag={d.remote_tag};from-tag={d.local_tag}", safe="")
        return self._refer(call, f"<sip:{quote(second.number, safe='+*#')}@{self.domain}?Replaces={replaces}>", now)

    def _connected(self, cid: str) -> PhoneCall:
        call = self.call(cid)
        if call.state not in (PhoneCallState.TALKING, PhoneCallState.HELD) or call.dialog is None:
            raise PhoneError(f"call {cid} is not connected")
        return call

    def _refer(self, call: PhoneCall, refer_to: str, now: float) -> list[Action]:
        assert call.dialog is not None
        req = call.dialog.create_request("REFER", via=self._via(), contact=self._contact())
        req.headers.add("Refer-To", refer_to)
        req.headers.add("Referred-By", f"<sip:{quote(self.extension)}@{self.domain}>")
        return self._send(call, req, "refer", now)

    def close(self, now: float) -> list[Action]:
        """The page went away: every call ends as if hung up."""
        out: list[Action] = []
        for call in self.live_calls():
            try:
                out += self.hangup(call.id, now)
            except PhoneError:
                pass
        return out

    # --------------------------------------------------------------------------------- helpers
    def _bye(self, call: PhoneCall, now: float) -> list[Action]:
        if call.dialog is None:
            return []
        return self._send(call, call.dialog.create_request("BYE", via=self._via(), contact=None), "bye", now)

    def _cancel(self, call: PhoneCall, now: float) -> list[Action]:
        inv = call.invite
        cancel = new_request("CANCEL", inv.uri, [
            ("Via", inv.headers.get_all("Via")[0]), ("Max-Forwards", "70"),
            ("From", inv.headers.get("From") or ""), ("To", inv.headers.get("To") or ""),
            ("Call-ID", inv.call_id), ("CSeq", f"{inv.cseq.number} CANCEL")])
        return self._send(call, cancel, "cancel", now)

    def _media_up(self, call: PhoneCall) -> MediaUp:
        p = call.params
        assert p is not None
        return MediaUp(call.id, p.remote_addr or "", p.remote_port, p.codec, p.pt, p.te_pt,
                       p.send and call.state is not PhoneCallState.HELD)

    def _ended(self, call: PhoneCall, reason: str, by: str = "") -> list[Action]:
        if not call.live:
            return []
        call.set_state(PhoneCallState.ENDED)
        call.ended_reason = reason
        log.info("browser phone %s: call %s ended: %s", self.extension, call.id, reason)
        return [MediaDown(call.id), ToPage({"type": "phone.ended", "call": call.id, "reason": reason, "by": by})]

    def forget_ended(self) -> None:
        """Drop ended calls (their late retransmissions are still answered by the transaction layer)."""
        for cid in [c for c, call in self.calls.items() if not call.live]:
            call = self.calls.pop(cid)
            if self._by_sip.get(call.sip_call_id) is call:
                del self._by_sip[call.sip_call_id]
