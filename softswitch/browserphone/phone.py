"""One agent's browser phone, the asyncio edge: its WebRTC peer connection, its SIP socket and the hops.

The peer connection is made once, when the page starts its phone (like plugging in a headset), and
carries whichever call the agent talks on: answering, holding or dialling never renegotiates WebRTC,
so a call is answered as fast as a desk phone's. The UA (``ua.PhoneUA``) is sans-IO; this class feeds
it datagrams, page commands and the clock, and carries out what it returns.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Callable

from ..sip.transaction import Peer, Send
from .hop import Hop, Uplink, engine_track, mix
from .ua import MediaDown, MediaUp, PhoneCallState, PhoneError, PhoneUA, ToPage

log = logging.getLogger("softswitch.browserphone")

MAX_TRICKLED = 32       # ICE candidates a page may send after its offer (each may cost a connectivity check)
_CANDIDATE = re.compile(r"candidate:[!-~]{1,32} [0-9]{1,3} (?i:udp|tcp) [0-9]{1,10} [!-~]{1,255} [0-9]{1,5} "
                        r"typ (?:host|srflx|prflx|relay)(?: [!-~]{1,64})*")
CLOSE_WAIT = 2.0        # seconds a closing peer connection may take (TURN deallocation) before it is cut short
STATS_EVERY = 2.0       # seconds between WebRTC statistics snapshots into the live call's quality figures


class _SipSocket(asyncio.DatagramProtocol):
    def __init__(self, phone: "BrowserPhone"):
        self.phone = phone

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if (addr[0], addr[1]) == (self.phone.switch.host, self.phone.switch.port):
            self.phone.sip_in(data)


class BrowserPhone:
    def __init__(self, user: str, extension: str, password: str, domain: str, switch: Peer,
                 to_page: Callable[[dict], None], now: Callable[[], float],
                 on_quality: Callable[[Any, dict], None] | None = None, ha1: dict[str, str] | None = None):
        self.user = user
        self.extension = extension
        self.password = password
        self.domain = domain
        self.switch = switch
        self.to_page = to_page
        self.now = now
        self.on_quality = on_quality          # (phone call, figures) -> None: into the switch's call record
        self.ha1 = ha1 or {}
        self.ua: PhoneUA | None = None
        self.pc: Any = None
        self.hops: dict[str, Hop] = {}
        self.active: str | None = None        # the call the microphone and loudspeaker are on
        self.conference: tuple[str, str] | None = None   # two calls mixed here (a three-way conference)
        self.uplink: Uplink | None = None
        self.track: Any = None
        self._sock: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._base: dict[str, dict[str, float]] = {}   # per call: WebRTC counters when it started
        self._trickled = 0                    # ICE candidates the page sent after its offer
        self.closed = False

    # ------------------------------------------------------------------------------ lifecycle
    async def start(self, offer_sdp: str, ice_servers: list[Any] | None = None) -> str:
        """Open the SIP socket and the peer connection; returns aiortc's SDP answer for the page.

        ``ice_servers`` (``RTCIceServer``s, ``ice.server_ice_servers``): the STUN/TURN servers of the
        switch's end; none means host candidates only (never aiortc's default, Google's public STUN)."""
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _SipSocket(self), local_addr=("127.0.0.1", 0))
        self._sock = transport
        local = transport.get_extra_info("sockname")[:2]
        self.ua = PhoneUA(self.extension, self.password, self.domain, (local[0], local[1]), self.switch,
                          ha1=self.ha1)
        self.pc = pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers or [])))
        self.track = engine_track(self._heard, idle=lambda: not any(h.sending for h in self.hops.values()))

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind == "audio" and self.uplink is None:
                self.uplink = Uplink(track, self._said)
                self._spawn(self.uplink.run())

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("browser phone %s (agent %s): WebRTC %s", self.extension, self.user, pc.connectionState)
            if pc.connectionState in ("failed", "closed") and not self.closed:
                self.to_page({"type": "phone.error", "error": f"WebRTC connection {pc.connectionState}"})

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        pc.addTrack(self.track)
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)
        self._spawn(self._stats_loop())
        return pc.localDescription.sdp

    @property
    def contact_uri(self) -> str:
        assert self.ua is not None
        return self.ua.contact_uri

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.ua is not None:
            self._do(self.ua.close(self.now()))
        for hop in self.hops.values():
            hop.close()
        self.hops.clear()
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        if self.pc is not None:
            # closing gives back TURN allocations (a Refresh with lifetime 0: with the TURN server gone, aiortc's
            # close was seen to wait over a minute): not worth holding a WebSocket's end or the shutdown for;
            # aioice closes its socket when cancelled and the server frees the allocation when it expires
            try:
                await asyncio.wait_for(self.pc.close(), CLOSE_WAIT)
            except asyncio.TimeoutError:
                log.info("browser phone %s (agent %s): WebRTC close took over %.0f s (TURN server not answering?)",
                         self.extension, self.user, CLOSE_WAIT)
        if self._sock is not None:
            # (a BYE or CANCEL just sent is on the wire; its retransmissions are not needed on loopback)
            self._sock.close()

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------------------------- SIP
    def sip_in(self, data: bytes) -> None:
        if self.ua is not None and not self.closed:
            self._do(self.ua.receive(data, self.now()))

    def _on_timer(self) -> None:
        self._timer = None
        if self.ua is not None and not self.closed:
            self._do(self.ua.on_timer(self.now()))

    def _do(self, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                if self._sock is not None and not self._sock.is_closing():
                    self._sock.sendto(a.data, (a.peer.host, a.peer.port))
            elif isinstance(a, ToPage):
                self.to_page(a.message)
            elif isinstance(a, MediaUp):
                hop = self.hops.get(a.call)
                if hop is not None:
                    hop.configure(a.host, a.port, a.codec, a.pt, a.te_pt, a.sending)
                    if self.track is not None:
                        self.track.pacer.wake.set()
                    if a.sending and self.active is None:
                        self.active = a.call
            elif isinstance(a, MediaDown):
                self._media_down(a.call)
        self._rearm()

    def _media_down(self, cid: str) -> None:
        if self.conference is not None and cid in self.conference:
            self.conference = None
        self._base.pop(cid, None)
        hop = self.hops.pop(cid, None)
        if hop is not None:
            hop.close()
        if self.active == cid:
            self.active = next((c for c, h in self.hops.items() if h.sending), None)

    def _rearm(self) -> None:
        if self.ua is None or self.closed:
            return
        d = self.ua.next_deadline()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if d is not None:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, d - self.now()), self._on_timer)

    # ------------------------------------------------------------------------------------ ICE
    async def _remote_candidate(self, msg: dict) -> None:
        """A candidate the page gathered after it sent its offer (trickle ICE, page to switch): a TURN
        allocation that took longer than the page waits (3 s) still counts; ``candidate`` null or "" is the
        end of the page's candidates. At most ``MAX_TRICKLED`` per phone."""
        from aiortc.sdp import candidate_from_sdp

        assert self.pc is not None
        text = msg.get("candidate")
        if text in (None, ""):
            await self.pc.addIceCandidate(None)
            return
        self._trickled += 1
        if self._trickled > MAX_TRICKLED:
            raise PhoneError(f"at most {MAX_TRICKLED} ICE candidates after the offer")
        mid, index = msg.get("sdpMid"), msg.get("sdpMLineIndex")
        if (not isinstance(text, str) or len(text) > 512 or not _CANDIDATE.fullmatch(text)
                or not (mid is None or isinstance(mid, str)) or not (index is None or type(index) is int)):
            raise PhoneError("phone.candidate needs an ICE candidate line (candidate:...) with sdpMid or sdpMLineIndex")
        try:
            cand = candidate_from_sdp(text.split(":", 1)[1])
        except (AssertionError, ValueError, IndexError):
            raise PhoneError("phone.candidate needs an ICE candidate line (candidate:...)") from None
        cand.sdpMid, cand.sdpMLineIndex = mid, index
        if mid is None and index is None:
            cand.sdpMLineIndex = 0
        await self.pc.addIceCandidate(cand)
        log.info("browser phone %s (agent %s): a %s candidate from the page after its offer",
                 self.extension, self.user, cand.type)

    # ---------------------------------------------------------------------------------- audio
    def _heard(self) -> Any:
        """The next 20 ms for the browser: the active call's, or in a conference both calls mixed."""
        if self.conference is not None:
            a, b = (self.hops.get(c) for c in self.conference)
            if a is not None and b is not None:
                return mix(a.pop(), b.pop())
        hop = self.hops.get(self.active) if self.active else None
        return hop.pop() if hop is not None else None

    def _said(self, pcm: Any) -> None:
        """20 ms from the microphone to the active call; in a conference each call also gets the other's party."""
        if self.conference is not None:
            a, b = (self.hops.get(c) for c in self.conference)
            if a is not None and b is not None:
                a.send(mix(pcm, b.last))
                b.send(mix(pcm, a.last))
                return
        hop = self.hops.get(self.active) if self.active else None
        if hop is not None:
            hop.send(pcm)

    # --------------------------------------------------------------------------- page commands
    async def command(self, msg: dict) -> None:
        """One ``phone.*`` message from the page; a refusal goes back as ``phone.error``."""
        ua = self.ua
        if ua is None:
            raise PhoneError("the phone is not started")
        t = msg.get("type")
        cid = str(msg.get("call") or "")
        now = self.now()
        ua.forget_ended()
        if t == "phone.answer":
            hop = await self._new_hop(cid)
            try:
                actions = ua.answer(cid, ("127.0.0.1", hop.port), now)
            except PhoneError:
                self._media_down(cid)
                raise
            self._hold_others(cid, now)     # answering a waiting call holds the one talked on
            self._focus(cid)
            self._do(actions)
        elif t == "phone.dial":
            number = _number(msg.get("number"))
            hop = await Hop.open()
            new, actions = ua.dial(number, ("127.0.0.1", hop.port), now)
            self.hops[new] = hop
            self._base[new] = await self._counters()
            self.to_page({"type": "phone.dialing", "call": new, "number": number})
            self._hold_others(new, now)
            self._focus(new)
            self._do(actions)
        elif t == "phone.decline":
            self._do(ua.decline(cid, now))
        elif t == "phone.hangup":
            self._do(ua.hangup(cid, now))
        elif t == "phone.hold":
            on = bool(msg.get("on", True))
            if not on:
                self._hold_others(cid, now)
                self._focus(cid)
            self._do(ua.hold(cid, on, now))
        elif t == "phone.candidate":
            await self._remote_candidate(msg)
        elif t == "phone.mute":
            for hop in self.hops.values():
                hop.muted = bool(msg.get("on", True))
            self.to_page({"type": "phone.muted", "on": bool(msg.get("on", True))})
        elif t == "phone.dtmf":
            digits = str(msg.get("digits") or "")
            if not digits or len(digits) > 32 or any(d not in "0123456789*#ABCDabcd" for d in digits):
                raise PhoneError("DTMF digits are 0-9, *, #, A-D (at most 32)")
            target = self.hops.get(cid) or (self.hops.get(self.active) if self.active else None)
            if target is None:
                raise PhoneError("no call to send digits on")
            target.dtmf(digits)
        elif t == "phone.transfer":
            self._do(ua.transfer(cid, _number(msg.get("target")), now))
        elif t == "phone.attended":
            self._do(ua.attended_transfer(cid, str(msg.get("other") or ""), now))
        elif t == "phone.conference":
            other = str(msg.get("other") or "")
            first, second = ua.call(cid), ua.call(other)
            if cid == other or any(c.state not in (PhoneCallState.TALKING, PhoneCallState.HELD) for c in (first, second)):
                raise PhoneError("a conference needs two connected calls")
            for c in (first, second):
                if c.state is PhoneCallState.HELD:
                    self._do(ua.hold(c.id, False, now))
            self.conference = (cid, other)
            self.to_page({"type": "phone.conference", "calls": [cid, other]})
        else:
            raise PhoneError(f"unknown message {t!r}")

    async def _new_hop(self, cid: str) -> Hop:
        if self.ua is None or cid not in self.ua.calls:
            raise PhoneError(f"no call {cid}")
        hop = await Hop.open()
        self.hops[cid] = hop
        self._base[cid] = await self._counters()
        return hop

    def _focus(self, cid: str) -> None:
        self.active = cid

    def _hold_others(self, cid: str, now: float) -> None:
        """Answering, dialling or resuming one call holds the one being talked on (as a desk phone does)."""
        assert self.ua is not None
        for call in self.ua.live_calls():
            if call.id != cid and call.state is PhoneCallState.TALKING and call.hold_pending is None:
                self._do(self.ua.hold(call.id, True, now))

    # ---------------------------------------------------------------------------- statistics
    async def _counters(self) -> dict[str, float]:
        """Cumulative WebRTC counters of the peer connection (it outlives calls: figures are differences)."""
        out: dict[str, float] = {}
        if self.pc is None:
            return out
        try:
            report = await self.pc.getStats()
        except Exception:  # a closing connection: no figures
            return out
        for s in report.values():
            kind = getattr(s, "type", "")
            if kind == "inbound-rtp":
                out["rx_packets"] = float(s.packetsReceived or 0)
                out["rx_lost"] = float(s.packetsLost or 0)
                out["rx_jitter"] = float(s.jitter or 0)        # (aiortc: RTP timestamp units)
            elif kind == "remote-inbound-rtp":
                out["browser_lost"] = float(s.packetsLost or 0)
                out["browser_jitter"] = float(s.jitter or 0)
                if getattr(s, "roundTripTime", None) is not None:
                    out["rtt_ms"] = float(s.roundTripTime) * 1000.0
            elif kind == "outbound-rtp":
                out["tx_packets"] = float(s.packetsSent or 0)
        return out

    async def _stats_loop(self) -> None:
        while not self.closed:
            await asyncio.sleep(STATS_EVERY)
            if self.hops:
                now_counters = await self._counters()
                for cid in list(self.hops):
                    self._snapshot(cid, now_counters)

    def _snapshot(self, cid: str, counters: dict[str, float] | None = None) -> None:
        """The browser leg's figures for call ``cid`` since it started, to the switch's call (call record)."""
        if self.on_quality is None or self.ua is None or counters is None:
            return
        call = self.ua.calls.get(cid)
        base = self._base.get(cid, {})
        if call is None or call.dialog is None:
            return
        diff = {k: max(0.0, v - base.get(k, 0.0)) for k, v in counters.items()
                if k in ("rx_packets", "rx_lost", "tx_packets", "browser_lost")}
        codec, clock = self._codec()
        fig: dict[str, Any] = {
            "codec": codec, "rx_packets": int(diff.get("rx_packets", 0)), "rx_lost": int(diff.get("rx_lost", 0)),
            "rx_jitter_ms": round(1000.0 * counters.get("rx_jitter", 0.0) / clock, 2),
            "tx_packets": int(diff.get("tx_packets", 0)), "browser_rx_lost": int(diff.get("browser_lost", 0)),
            "browser_rx_jitter_ms": round(1000.0 * counters.get("browser_jitter", 0.0) / clock, 2),
            "at": time.time()}
        if "rtt_ms" in counters:
            fig["rtt_ms"] = round(counters["rtt_ms"], 1)
        self.on_quality(call, fig)

    def _codec(self) -> tuple[str, int]:
        """The codec the browser leg uses and its RTP clock rate (jitter comes in its units)."""
        try:
            for t in self.pc.getTransceivers():
                codecs = getattr(t, "_codecs", None) or []   # (aiortc keeps the negotiated list here)
                if codecs:
                    return str(codecs[0].mimeType.split("/")[-1]), int(codecs[0].clockRate or 48000)
        except Exception:  # a private attribute of aiortc: fall back to Opus's clock
            pass
        return "", 48000


def _number(value: Any) -> str:
    s = str(value or "").strip()
    if not s or len(s) > 32 or any(c not in "0123456789*#+" for c in s):
        raise PhoneError("dial an extension, a queue or a number (digits, * and #, at most 32)")
    return s
