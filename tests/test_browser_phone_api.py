"""The browser phone's signalling on the desk's WebSocket, against a real switch: a phone is bound to the
authenticated session that started it (another agent's socket cannot drive it, a supervisor without an
extension gets none), it registers the agent's own extension only while that WebSocket lives, bad offers
and a page that loops on phone.start are refused with a clear message. The WebRTC offers come from aiortc
in the test (no browser needed for signalling)."""
from __future__ import annotations

import asyncio
import json

import pytest

ws_client = pytest.importorskip("websockets.sync.client")
pytest.importorskip("aiortc")

from .test_api_calls import Socket  # noqa: E402
from .test_api_support import start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


def webrtc_offer() -> str:
    async def make() -> str:
        from aiortc import RTCPeerConnection
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def send(sock: Socket, **msg) -> None:
    sock.ws.send(json.dumps(msg))


def registered(boss, agent: str) -> bool:
    return next(a for a in boss.get("/api/agents")[1] if a["id"] == agent)["registered"]


def test_a_browser_phone_belongs_to_the_session_that_started_it(switch_factory):
    sw, anon = start_api_switch(switch_factory, EXTS)
    alice, bob, boss = anon.login("2001"), anon.login("2002"), anon.login("boss")
    offer = webrtc_offer()
    a = Socket(sw.api_port, alice.token)
    b = Socket(sw.api_port, bob.token)
    s = Socket(sw.api_port, boss.token)
    a2: Socket | None = None
    try:
        for sock in (a, b, s):
            sock.next("hello")
        alice.post("/api/agents/2001/state", {"action": "login"})
        assert not registered(boss, "2001")                   # logged in to the queues at an unregistered phone
        send(a, type="phone.answer", call="c1")
        assert "start the browser phone first" in a.next("phone.error")["error"]
        send(a, type="phone.start", sdp="not an offer")
        assert "needs the page's WebRTC offer" in a.next("phone.error")["error"]

        send(a, type="phone.start", sdp=offer)
        ready = a.next("phone.ready", timeout=20)
        assert ready["extension"] == "1002" and ready["sdp"].startswith("v=0")
        sw.wait_log(r"registered 1002 contact sip:1002@127\.0\.0\.1:\d+ \(browser phone of agent 2001\)")
        assert registered(boss, "2001")

        # another agent's socket drives no phone but its own; a supervisor has no extension to register
        send(b, type="phone.dial", number="1001")
        assert "start the browser phone first" in b.next("phone.error")["error"]
        send(s, type="phone.start", sdp=offer)
        assert "needs an agent with an extension" in s.next("phone.error")["error"]
        # the owner's commands are checked too
        send(a, type="phone.dtmf", call="c1", digits="12; DROP")
        assert "DTMF digits are" in a.next("phone.error")["error"]
        send(a, type="phone.dial", number="sip:evil@example.com")
        assert "dial an extension" in a.next("phone.error")["error"]
        send(a, type="phone.hangup", call="c42")
        assert a.next("phone.error")["error"] == "no call c42"
        # the agent opens the desk in a second window and starts the phone there: the first page's stops
        a2 = Socket(sw.api_port, alice.token)
        a2.next("hello")
        send(a2, type="phone.start", sdp=offer)
        a2.next("phone.ready", timeout=20)
        assert "another window" in a.next("phone.stopped")["reason"]
        send(a, type="phone.hangup", call="c1")
        assert "start the browser phone first" in a.next("phone.error")["error"]
        a.close()                                 # closing the old window leaves the new one's phone alone
        send(a2, type="phone.hangup", call="c42")
        assert a2.next("phone.error")["error"] == "no call c42"
        assert "browser phone of agent 2001 stopped" not in sw.log()
    finally:
        a.close()
        b.close()
        s.close()
        if a2 is not None:
            a2.close()
    # the WebSocket is gone: so is the phone and its registration
    sw.wait_log(r"browser phone of agent 2001 stopped", timeout=10)
    sw.wait_log(r"unregistered 1002 contact sip:1002@127\.0\.0\.1")
    assert wait_for(lambda: not registered(boss, "2001"))      # (the ACD skips the agent: no phone left)

    # a page that loops on phone.start is refused after 6 starts a minute
    a = Socket(sw.api_port, alice.token)
    try:
        a.next("hello")
        for _ in range(4):                      # (two starts above: 6 in all)
            send(a, type="phone.start", sdp=offer)
            a.next("phone.ready", timeout=20)
        send(a, type="phone.start", sdp=offer)
        assert "started too often" in a.next("phone.error")["error"]
        assert wait_for(lambda: sw.log().count("browser phone of agent 2001 started") == 6)  # (the log is written
        # by a thread of its own: a line may reach the file after the message that followed it)
    finally:
        a.close()


def test_the_page_gets_ice_servers_with_an_ephemeral_turn_login_and_the_switch_uses_them(switch_factory):
    """[browser_phone] with a STUN and a TURN server (tests/ice_server.py: checks TURN logins as coturn's
    use-auth-secret does): phone.ice gives the agent's page the servers and a credential for the agent that
    expires turn_ttl from now; the switch's own end gathers a reflexive and a relayed candidate with a login
    of its own; the secret is in no message and no log line; a supervisor without an extension gets nothing."""
    import base64
    import hashlib
    import hmac
    import time

    from .ice_server import PUBLIC, IceServer

    secret = "coturn-static-auth-secret-7f3a"
    with IceServer(secret) as srv:
        extra = f'''[browser_phone]
turn_secret = "{secret}"
turn_ttl = 900
[[browser_phone.ice_servers]]
urls = "stun:127.0.0.1:{srv.port}"
[[browser_phone.ice_servers]]
urls = ["turn:127.0.0.1:{srv.port}?transport=udp", "turns:turn.example.com:443?transport=tcp"]
'''
        sw, anon = start_api_switch(switch_factory, EXTS, extra=extra)
        alice, boss = anon.login("2001"), anon.login("boss")
        a = Socket(sw.api_port, alice.token)
        s = Socket(sw.api_port, boss.token)
        got: list[dict] = []
        try:
            a.next("hello")
            s.next("hello")
            send(s, type="phone.ice")
            assert "needs an agent with an extension" in s.next("phone.error")["error"]

            before = time.time()
            send(a, type="phone.ice")
            ice = a.next("phone.ice")
            got.append(ice)
            assert ice["iceTransportPolicy"] == "all" and ice["expires_in"] == 900
            stun, turn = ice["iceServers"]
            assert stun == {"urls": [f"stun:127.0.0.1:{srv.port}"]}
            assert turn["urls"] == [f"turn:127.0.0.1:{srv.port}?transport=udp", "turns:turn.example.com:443?transport=tcp"]
            expiry, user = turn["username"].split(":")
            assert user == "2001" and before + 900 - 1 <= int(expiry) <= time.time() + 900
            want = base64.b64encode(hmac.new(secret.encode(), turn["username"].encode(), hashlib.sha1).digest()).decode()
            assert turn["credential"] == want
            assert srv.password(turn["username"]) == want        # what the TURN server will accept

            send(a, type="phone.start", sdp=webrtc_offer())
            ready = a.next("phone.ready", timeout=30)
            got.append(ready)
            assert f" {PUBLIC} " in ready["sdp"] and " typ srflx " in ready["sdp"] and " typ relay " in ready["sdp"]
            assert [u.split(":", 1)[1] for u in srv.allocations] == ["switch.2001"] and srv.refused == []
            sw.wait_log(r"browser phones: the switch's own ICE uses stun:127\.0\.0\.1:\d+ and "
                        r"turn:127\.0\.0\.1:\d+\?transport=udp; not used by aiortc: "
                        r"turns:turn\.example\.com:443\?transport=tcp \(aiortc uses one TURN server\)")
            # the page restarts its phone (fresh credentials before they expire): no "another window" stop
            send(a, type="phone.ice")
            got.append(a.next("phone.ice"))
            send(a, type="phone.start", sdp=webrtc_offer())
            got.append(a.next("phone.ready", timeout=30))
            assert not any(m["type"] == "phone.stopped" for m in a.seen)
            assert wait_for(lambda: sw.log().count("browser phone of agent 2001 started") == 2)
            # the TURN server stops answering: closing the page still ends the phone within seconds (aiortc
            # would wait on the allocation's release for a minute and more)
            srv.stop()
            a.close()
            t0 = time.monotonic()
            sw.wait_log(r"browser phone of agent 2001 stopped", timeout=15)
            assert time.monotonic() - t0 < 8
            sw.wait_log(r"WebRTC close took over 2 s \(TURN server not answering\?\)")
        finally:
            a.close()
            s.close()
        assert secret not in json.dumps(got + a.seen + s.seen)
        assert secret not in sw.log()


def test_the_page_trickles_candidates_gathered_after_its_offer(switch_factory):
    """A page whose TURN allocation outlasts its 3 s wait sends the late candidates after phone.start: the
    switch adds them to the peer connection (aiortc here plays the page and sends its offer without
    candidates, then each one); bad or too many candidates are refused with a clear message."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    sw, anon = start_api_switch(switch_factory, EXTS)
    alice = anon.login("2001")
    a = Socket(sw.api_port, alice.token)
    try:
        a.next("hello")

        async def page() -> str:
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            pc.addTransceiver("audio", direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            lines = pc.localDescription.sdp.splitlines()
            cands = [ln[2:] for ln in lines if ln.startswith("a=candidate:")]
            assert cands
            bare = "\r\n".join(ln for ln in lines if not ln.startswith(("a=candidate:", "a=end-of-candidates"))) + "\r\n"
            send(a, type="phone.ice")
            await asyncio.to_thread(a.next, "phone.ice")
            send(a, type="phone.start", sdp=bare)
            ready = await asyncio.to_thread(a.next, "phone.ready", 30)
            for c in cands:
                send(a, type="phone.candidate", candidate=c, sdpMid="0", sdpMLineIndex=0)
            send(a, type="phone.candidate", candidate=None)
            await pc.setRemoteDescription(RTCSessionDescription(ready["sdp"], "answer"))
            for _ in range(200):
                if pc.connectionState == "connected":
                    break
                await asyncio.sleep(0.05)
            state = pc.connectionState
            await asyncio.to_thread(refusals)        # (before the page closes: that ends the phone's WebRTC)
            await pc.close()
            return state

        def refusals() -> None:
            for bad in ("candidate:1 1 udp 1 1.2.3.4 5 typ host\r\na=evil", "candidate:x", "not a candidate", 42):
                send(a, type="phone.candidate", candidate=bad, sdpMid="0")
                assert "needs an ICE candidate line" in a.next("phone.error")["error"], bad
            for i in range(40):
                send(a, type="phone.candidate", candidate=f"candidate:{i} 1 udp 1 192.0.2.{i} 9 typ host", sdpMid="0")
            assert "at most 32 ICE candidates" in a.next("phone.error")["error"]

        assert asyncio.run(page()) == "connected"
        sw.wait_log(r"browser phone 1002 \(agent 2001\): a host candidate from the page after its offer")
    finally:
        a.close()
