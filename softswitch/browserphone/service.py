"""The browser phones of the desk's WebSocket sessions: start, route page messages, bind and unbind.

A browser phone belongs to one authenticated WebSocket of one agent and rings that agent's own
extension (``[[acd.agents]] extension``): a page cannot register anybody else's. It is bound in the
registrar while the WebSocket lives (not persisted: it dies with the session or the process), so the
ACD, direct calls to the extension and the agent's own dialling all reach the page. One phone per
agent: a second page that starts one replaces the first (the agent moved to another window).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from ..sip.transaction import Peer
from .ice import page_ice, server_choice, server_ice_servers
from .ua import PhoneError

log = logging.getLogger("softswitch.browserphone")
# aiortc and aioice log every SDP (with its ICE password) and every STUN check at DEBUG: not in our log
for _name in ("aiortc", "aioice"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.INFO)

BINDING_LIFETIME = 3600.0     # refreshed while the session lives; gone at once when it ends
STARTS_PER_MINUTE = 6         # a WebRTC negotiation costs CPU: a page that loops on phone.start is refused
REFRESH_EVERY = 600.0
MAX_SDP = 16_000


class PhoneRefused(Exception):
    """The page may not have a browser phone (no agent, no extension, no aiortc): told to the page."""


def aiortc_available() -> bool:
    try:
        import aiortc  # noqa: F401
    except ImportError:
        return False
    return True


class BrowserPhones:
    def __init__(self, server: Any, control: Any):
        self.server = server
        self.control = control
        self.phones: dict[str, Any] = {}           # agent id -> BrowserPhone
        self.socket_of: dict[str, int] = {}        # agent id -> id() of the WebSocket whose page started it
        self._refresh: Any = None
        self._starts: dict[str, list[float]] = {}     # agent id -> monotonic times of recent phone.start
        self._ice_told = ""                            # which ICE servers the switch's end uses (logged once)

    # ------------------------------------------------------------------------------ messages
    async def handle(self, user: str, ws: Any, msg: dict, send: Callable[[dict], None]) -> None:
        """One ``phone.*`` message of ``user``'s WebSocket ``ws``."""
        t = msg.get("type")
        try:
            if t == "phone.ice":
                self._ice(user, send)
                return
            if t == "phone.start":
                await self._start(user, ws, msg, send)
                return
            if t == "phone.stop":
                await self.closed(ws)
                send({"type": "phone.stopped"})
                return
            phone = self.phones.get(user)
            if phone is None or self.socket_of.get(user) != id(ws):
                raise PhoneError("start the browser phone first")
            await phone.command(msg)
        except (PhoneError, PhoneRefused) as e:
            send({"type": "phone.error", "call": msg.get("call"), "error": str(e)})
        except Exception:  # a bug must not close the agent's WebSocket (and with it the desk)
            log.exception("browser phone of agent %s: %s failed", user, t)
            send({"type": "phone.error", "call": msg.get("call"), "error": "internal error (see the switch's log)"})

    def _ice(self, user: str, send: Callable[[dict], None]) -> None:
        """``phone.ice``: the RTCConfiguration the page makes its peer connection with (before its offer),
        with TURN credentials minted now for this agent; only an agent who may have a phone gets one."""
        self._extension_of(user)
        send(page_ice(self.server.config.browser_phone, user, time.time()))

    async def _start(self, user: str, ws: Any, msg: dict, send: Callable[[dict], None]) -> None:
        from .phone import BrowserPhone

        sdp = msg.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > MAX_SDP:
            raise PhoneError("phone.start needs the page's WebRTC offer (sdp)")
        now = self.server.now()
        recent = [t for t in self._starts.get(user, []) if now - t < 60.0]
        if len(recent) >= STARTS_PER_MINUTE:
            raise PhoneError("the browser phone was started too often; wait a minute")
        self._starts[user] = recent + [now]
        if not aiortc_available():
            raise PhoneRefused("the browser phone needs aiortc on the server (bin/setup installs the [webrtc] extra)")
        ext = self._extension_of(user)
        config = self.server.config
        extension = config.extension(ext)
        if extension is None or not extension.enabled:
            raise PhoneRefused(f"extension {ext} is not configured")
        switch = self._switch_peer()
        old = self.phones.pop(user, None)
        if old is not None and self.socket_of.get(user) != id(ws):   # the agent moved to another window:
            old.to_page({"type": "phone.stopped", "reason": "the browser phone was started in another window"})
        if old is not None:                         # (or this page restarts its phone: new ICE credentials)
            await self._unbind(old)
            await old.close()
        ha1 = {alg: v for alg in ("MD5", "SHA-256") if (v := getattr(extension, "ha1", lambda a: None)(alg))}
        phone = BrowserPhone(user, ext, extension.password, config.sip.domain, switch, send, self.server.now,
                             on_quality=self._quality, ha1=ha1)
        ice = self.server.config.browser_phone
        choice = server_choice(ice).describe()
        if choice != self._ice_told:
            self._ice_told = choice
            log.info("browser phones: %s", choice)
        try:
            answer = await phone.start(sdp, server_ice_servers(ice, user, time.time()))
        except Exception as e:
            await phone.close()
            log.warning("browser phone for agent %s could not start: %s", user, e)
            raise PhoneError(f"WebRTC negotiation failed: {e}") from e
        self.phones[user] = phone
        self.socket_of[user] = id(ws)
        self._bind(phone)
        log.info("browser phone of agent %s started: extension %s rings the page", user, ext)
        send({"type": "phone.ready", "sdp": answer, "extension": ext})

    async def closed(self, ws: Any) -> None:
        """The WebSocket closed (page gone, signed out): its phone hangs up and unregisters."""
        user = next((u for u, w in self.socket_of.items() if w == id(ws)), None)
        if user is None:
            return
        del self.socket_of[user]
        phone = self.phones.pop(user, None)
        if phone is not None:
            await self._unbind(phone)
            await phone.close()
            log.info("browser phone of agent %s stopped", user)

    async def close_all(self) -> None:
        for user in list(self.phones):
            phone = self.phones.pop(user)
            await self._unbind(phone)
            await phone.close()
        self.socket_of.clear()

    # ---------------------------------------------------------------------------- the switch
    def _extension_of(self, user: str) -> str:
        acd = getattr(self.server.config, "acd", None)
        for a in (acd.agents if acd is not None else ()):
            if a.id == user and a.extension:
                return str(a.extension)
        raise PhoneRefused("a browser phone needs an agent with an extension ([[acd.agents]] extension)")

    def _switch_peer(self) -> Peer:
        """Where the UA sends SIP: the switch's UDP listener, reached over loopback when it listens on all."""
        core = self.server.core
        for la in self.server.config.sip.listen:
            if la.transport == "udp":
                host = la.host
                if host in ("0.0.0.0", ""):
                    host = "127.0.0.1"
                elif host == "::":
                    host = "::1"
                port = core.local.get("udp", (host, la.port))[1]
                return Peer("udp", host, port)
        raise PhoneRefused("the browser phone needs a UDP SIP listener ([sip] listen)")

    def _bind(self, phone: Any) -> None:
        core = self.server.core

        def bind(now: float) -> None:
            core.registrar.bind_local(phone.extension, phone.contact_uri, now, BINDING_LIFETIME,
                                      f"browser phone of agent {phone.user}")
            core.router.queue.registration(phone.extension, True, now)
        self.control._run(bind)
        loop = __import__("asyncio").get_running_loop()
        if self._refresh is None:
            self._refresh = loop.call_later(REFRESH_EVERY, self._refresh_all)

    def _refresh_all(self) -> None:
        self._refresh = None
        for phone in list(self.phones.values()):
            self._bind(phone)

    async def _unbind(self, phone: Any) -> None:
        core = self.server.core
        if phone.ua is None:
            return

        def unbind(now: float) -> None:
            core.registrar.unbind_local(phone.extension, phone.contact_uri)
            core.router.queue.registration(phone.extension, bool(core.registrar.lookup(phone.extension, now)), now)
        self.control._run(unbind)

    def _quality(self, call: Any, figures: dict) -> None:
        """WebRTC figures of a browser leg into the switch call it is in (``CallEnded.quality["browser"]``)."""
        d = call.dialog
        if d is None or d.remote_tag is None:
            return
        leg = self.server.core.b2bua.leg_by_dialog(d.call_id, d.remote_tag)
        if leg is not None and leg.call.live:
            leg.call.quality["browser"] = figures
