"""The browser phone's SIP user agent (sans-IO) against the real switch core (sans-IO, anchored media),
on a fake clock: what the desk's buttons make the switch do. No sockets, no browser: the WebRTC side is
tested end to end in test_browser_phone_e2e.py."""
from __future__ import annotations

import pytest

from softswitch.browserphone.ua import MediaDown, MediaUp, PhoneCallState, PhoneError, PhoneUA, ToPage
from softswitch.sip.message import Request, Response, parse_message
from softswitch.sip.transaction import Peer, Send
from softswitch.states import CallState

from .core_harness import DOMAIN, Net, Phone, answer, make_core, requests, responses

UA_PEER = Peer("udp", "127.0.0.1", 47000)
SWITCH = Peer("udp", "127.0.0.1", 5060)
EXTS = {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x"}


def sdp(port: int, host: str) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=sendrecv\r\n").encode()


class Wire:
    """The core and one browser phone UA joined: what either sends to the other is delivered at once."""

    def __init__(self) -> None:
        self.core = make_core(EXTS, media={"enabled": True})
        self.net = Net(self.core)
        self.ua = PhoneUA("1002", EXTS["1002"], DOMAIN, (UA_PEER.host, UA_PEER.port), SWITCH)
        self.page: list[dict] = []
        self.media: list = []
        self.others: list[tuple[Peer, Request | Response]] = []   # what the switch sent to the SIP phones
        self.core.registrar.bind_local("1002", self.ua.contact_uri, self.net.now, 3600, "browser phone")
        self.phones = {n: Phone(self.net, n, p, Peer("udp", f"10.0.0.{i + 1}", 5060))
                       for i, (n, p) in enumerate(EXTS.items()) if n != "1002"}
        for p in self.phones.values():
            assert p.register().status == 200

    def ua_did(self, actions: list) -> None:
        """Carry out the UA's actions; what the switch answers goes back to the UA."""
        for a in actions:
            if isinstance(a, Send):
                self.switch_did(self.net.deliver(a.data, UA_PEER))
            elif isinstance(a, ToPage):
                self.page.append(a.message)
            else:
                self.media.append(a)

    def switch_did(self, out: list) -> None:
        for peer, msg in out:
            if (peer.host, peer.port) == (UA_PEER.host, UA_PEER.port):
                self.ua_did(self.ua.receive(msg.serialize(), self.net.now))
            else:
                self.others.append((peer, msg))

    def phone_sends(self, name: str, data: bytes) -> None:
        self.switch_did(self.phones[name].send(data))

    def to(self, name: str, method: str) -> list[Request]:
        peer = self.phones[name].peer
        return [m for p, m in self.others if isinstance(m, Request) and m.method == method and p == peer]

    def last_page(self, type_: str) -> dict:
        return [m for m in self.page if m["type"] == type_][-1]


def incoming_call(w: Wire, caller: str = "1001") -> tuple[str, Request]:
    """``caller`` dials 1002: the page rings; returns the page's call id and the caller's INVITE."""
    inv, out = w.phones[caller].invite("1002", body=sdp(4000, w.phones[caller].peer.host))
    w.switch_did(out)
    ring = w.last_page("phone.incoming")
    assert ring["from"] == caller
    return ring["call"], parse_message(inv)  # type: ignore[return-value]


def test_a_call_rings_in_the_page_is_answered_held_resumed_and_hung_up():
    w = Wire()
    cid, inv = incoming_call(w)
    assert w.ua.calls[cid].state is PhoneCallState.RINGING
    call = next(iter(w.core.b2bua.calls.values()))
    w.ua_did(w.ua.answer(cid, ("127.0.0.1", 30000), w.net.now))
    assert call.state is CallState.ANSWERED and call.answered is not None
    assert [r.status for _, r in w.others if isinstance(r, Response) and r.cseq.method == "INVITE"][-1] == 200
    up = [m for m in w.media if isinstance(m, MediaUp)][-1]
    # the hop sends to the engine leg the switch gave the browser phone; the engine sends to the hop
    assert (up.port, up.sending) == (call.answered.media.port, True)
    assert call.answered.media.remote == ("127.0.0.1", 30000)
    assert w.last_page("phone.state") == {"type": "phone.state", "call": cid, "state": "talking"}

    w.ua_did(w.ua.hold(cid, True, w.net.now))               # re-INVITE a=sendonly: the caller hears music
    assert w.ua.calls[cid].state is PhoneCallState.HELD and call.answered.media.holding
    assert [m for m in w.media if isinstance(m, MediaUp)][-1].sending is False
    with pytest.raises(PhoneError):
        w.ua.answer(cid, ("127.0.0.1", 30000), w.net.now)
    w.ua_did(w.ua.hold(cid, False, w.net.now))
    assert w.ua.calls[cid].state is PhoneCallState.TALKING and not call.answered.media.holding

    w.ua_did(w.ua.hangup(cid, w.net.now))
    assert w.to("1001", "BYE"), "the caller got no BYE"
    assert not call.live and isinstance(w.media[-1], MediaDown)
    assert w.last_page("phone.ended")["by"] == "local"


def test_the_caller_gives_up_while_the_page_rings_and_a_declined_call_is_busy():
    w = Wire()
    cid, inv = incoming_call(w)
    p = w.phones["1001"]
    cancel = p.msg("CANCEL", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", call_id=inv.call_id, cseq=inv.cseq.number,
                   branch=inv.top_via.branch[:-1])   # (the harness appends "x")
    w.phone_sends("1001", cancel)
    assert w.last_page("phone.ended") == {"type": "phone.ended", "call": cid, "by": "remote",
                                          "reason": "answered elsewhere or the caller gave up"}
    assert not w.ua.live_calls()

    for _ in range(10):                                       # rung again and again, never answered: bounded
        cid, inv = incoming_call(w)
        w.phone_sends("1001", p.msg("CANCEL", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", call_id=inv.call_id,
                                    cseq=inv.cseq.number, branch=inv.top_via.branch[:-1]))
    assert len(w.ua.calls) <= 1 and not w.ua.live_calls()

    cid, inv = incoming_call(w)
    w.ua_did(w.ua.decline(cid, w.net.now))
    finals = [r.status for r in responses([(p, m) for p, m in w.others]) if r.call_id == inv.call_id and r.status >= 300]
    assert 486 in finals, finals


def test_dialling_authenticates_with_the_extension_and_reaches_a_phone():
    w = Wire()
    cid, actions = w.ua.dial("1003", ("127.0.0.1", 30002), w.net.now)
    w.ua_did(actions)
    [inv] = w.to("1003", "INVITE")                          # (after the switch's 407 and our credentials)
    assert "1002" in (inv.headers.get("From") or "")
    w.phone_sends("1003", answer(inv, 180, to_tag="r3"))
    assert w.last_page("phone.progress")["call"] == cid
    w.phone_sends("1003", answer(inv, 200, to_tag="r3", contact="<sip:1003@10.0.0.3:5060>", body=sdp(4006, "10.0.0.3")))
    assert w.ua.calls[cid].state is PhoneCallState.TALKING
    call = next(c for c in w.core.b2bua.calls.values() if c.live)
    assert call.caller_number == "1002" and call.state is CallState.ANSWERED

    w.ua_did(w.ua.dial("1003", ("127.0.0.1", 30004), w.net.now)[1])   # 1003 is busy now
    assert w.last_page("phone.ended")["reason"].startswith("486")


def test_blind_and_attended_transfer_from_the_page():
    w = Wire()
    # blind: REFER to 1004; the switch rings 1004 for the caller and hangs up the page's call
    cid, _ = incoming_call(w)
    w.ua_did(w.ua.answer(cid, ("127.0.0.1", 30000), w.net.now))
    w.ua_did(w.ua.transfer(cid, "1004", w.net.now))
    assert w.to("1004", "INVITE"), "1004 was not rung"
    assert w.last_page("phone.transferred")["call"] == cid
    assert w.last_page("phone.ended")["call"] == cid and not w.ua.live_calls()

    # attended: the agent talks to 1003 (caller), consults 1001 on a second call, and joins them
    w2 = Wire()
    a, _ = incoming_call(w2, "1003")
    w2.ua_did(w2.ua.answer(a, ("127.0.0.1", 30000), w2.net.now))
    w2.ua_did(w2.ua.hold(a, True, w2.net.now))
    b, actions = w2.ua.dial("1001", ("127.0.0.1", 30002), w2.net.now)
    w2.ua_did(actions)
    [inv] = w2.to("1001", "INVITE")
    w2.phone_sends("1001", answer(inv, 200, to_tag="r1", contact="<sip:1001@10.0.0.1:5060>", body=sdp(4010, "10.0.0.1")))
    assert w2.ua.calls[b].state is PhoneCallState.TALKING
    w2.ua_did(w2.ua.attended_transfer(a, b, w2.net.now))
    assert not w2.ua.live_calls(), "the switch hangs up both of the agent's calls"
    [joined] = [c for c in w2.core.b2bua.calls.values() if c.live]
    assert {joined.caller.party, joined.answered.party} == {"1003", "1001"}, (joined.caller_number, joined.callee_number)
    assert joined.state is CallState.ANSWERED


def test_page_commands_that_make_no_sense_are_refused():
    w = Wire()
    for bad in (lambda: w.ua.answer("c9", ("127.0.0.1", 1), w.net.now), lambda: w.ua.hold("c9", True, w.net.now),
                lambda: w.ua.transfer("c9", "1003", w.net.now)):
        with pytest.raises(PhoneError):
            bad()
    cid, _ = incoming_call(w)
    with pytest.raises(PhoneError):
        w.ua.hold(cid, True, w.net.now)                      # ringing: nothing to hold
    with pytest.raises(PhoneError):
        w.ua.transfer(cid, "1003", w.net.now)
    assert requests([(p, m) for p, m in w.others], "REFER") == []


def test_dialling_with_only_the_extensions_ha1_in_the_config():
    """A config may hold H(user:realm:password) instead of the password: the UA answers from it."""
    from softswitch.sip.digest import compute_ha1

    w = Wire()
    realm = w.core.config.sip.realm
    w.ua = PhoneUA("1002", "", DOMAIN, (UA_PEER.host, UA_PEER.port), SWITCH,
                   ha1={"MD5": compute_ha1("1002", realm, EXTS["1002"], "MD5"),
                        "SHA-256": compute_ha1("1002", realm, EXTS["1002"], "SHA-256")})
    cid, actions = w.ua.dial("1003", ("127.0.0.1", 30002), w.net.now)
    w.ua_did(actions)
    assert w.to("1003", "INVITE"), w.page


def test_click_to_dial_rings_the_page_first_then_the_customer():
    """Outbound calls the switch places for the agent (click-to-dial, callbacks: ring A, then B) ring the page."""
    w = Wire()
    call = w.core.router.originator.originate("1002", "1003", w.net.now)
    w.switch_did(w.net._run(w.core.drain(w.net.now)))
    ring = w.last_page("phone.incoming")
    assert ring["from"] == "1003" and not w.to("1003", "INVITE"), "B rang before the agent answered"
    w.ua_did(w.ua.answer(ring["call"], ("127.0.0.1", 30000), w.net.now))
    [inv] = w.to("1003", "INVITE")
    w.phone_sends("1003", answer(inv, 200, to_tag="r3", contact="<sip:1003@10.0.0.3:5060>", body=sdp(4006, "10.0.0.3")))
    assert call is not None and call.state is CallState.ANSWERED and call.answered.party == "1003"
