"""A small STUN/TURN server on 127.0.0.1 for the browser phone's ICE tests (coturn is not installed here).

It answers STUN Binding requests with a made-up public address (so a server-reflexive candidate shows
that a client really asked it), and TURN Allocate/Refresh/CreatePermission/ChannelBind the way coturn
does with ``use-auth-secret``: a 401 with REALM and NONCE first, then it accepts only a request whose
MESSAGE-INTEGRITY was made with ``base64(HMAC-SHA1(secret, username))`` for a username
``"<expiry>:<user>"`` not yet expired (RFC 8489 long-term credentials, draft-uberti-behave-turn-rest).
It relays nothing: the relayed address it hands out is a socket nobody reads, which is enough to show
that an allocation was granted and with which login. STUN encoding comes from aioice (aiortc's own ICE
library), so the wire format is not ours.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import threading
import time
from typing import Any

from aioice import stun
from aioice.turn import make_integrity_key

PUBLIC = "203.0.113.7"        # the "public" address reported to clients (TEST-NET-3)
REALM = "test.example"


class IceServer:
    """``with IceServer(secret) as s:`` serves on ``s.port`` (UDP) in a thread; ``s.allocations`` lists the
    usernames granted an allocation, ``s.refused`` those refused (bad credential or expired)."""

    def __init__(self, secret: str = ""):
        self.secret = secret
        self.port = 0
        self.bindings = 0
        self.allocations: list[str] = []
        self.refused: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "IceServer":
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """The server goes away (also to test a TURN server that stops answering); idempotent."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        self._loop = loop = asyncio.new_event_loop()
        server = self

        class Proto(asyncio.DatagramProtocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                reply = server.answer(data, addr)
                if reply is not None:
                    self.transport.sendto(reply, addr)

        transport, _ = loop.run_until_complete(
            loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0)))
        self.port = transport.get_extra_info("sockname")[1]
        self._ready.set()
        loop.run_forever()
        transport.close()
        loop.close()

    def password(self, username: str) -> str:
        return base64.b64encode(hmac.new(self.secret.encode(), username.encode(), hashlib.sha1).digest()).decode()

    def answer(self, data: bytes, addr: tuple[str, int]) -> bytes | None:
        try:
            req = stun.parse_message(data)
        except ValueError:
            return None
        if req.message_class != stun.Class.REQUEST:
            return None
        if req.message_method == stun.Method.BINDING:
            self.bindings += 1
            ok = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, req.transaction_id)
            ok.attributes["XOR-MAPPED-ADDRESS"] = (PUBLIC, addr[1])
            ok.add_fingerprint()
            return bytes(ok)
        username = req.attributes.get("USERNAME")
        if "MESSAGE-INTEGRITY" not in req.attributes or username is None:
            return self._error(req, 401, "Unauthorized")
        expiry = username.split(":", 1)[0]
        key = make_integrity_key(username, REALM, self.password(username))
        if not expiry.isdigit() or int(expiry) < time.time() or not req.check_message_integrity(key):
            self.refused.append(username)
            return self._error(req, 401, "Unauthorized")
        ok = stun.Message(req.message_method, stun.Class.RESPONSE, req.transaction_id)
        if req.message_method == stun.Method.ALLOCATE:
            self.allocations.append(username)
            ok.attributes["XOR-RELAYED-ADDRESS"] = (PUBLIC, 49152 + len(self.allocations))
            ok.attributes["XOR-MAPPED-ADDRESS"] = (PUBLIC, addr[1])
        if req.message_method in (stun.Method.ALLOCATE, stun.Method.REFRESH):
            ok.attributes["LIFETIME"] = req.attributes.get("LIFETIME", 600)
        ok.add_message_integrity(key)
        ok.add_fingerprint()
        return bytes(ok)

    def _error(self, req: stun.Message, code: int, reason: str) -> bytes:
        err = stun.Message(req.message_method, stun.Class.ERROR, req.transaction_id)
        err.attributes["ERROR-CODE"] = (code, reason)
        err.attributes["REALM"] = REALM
        err.attributes["NONCE"] = b"nonce-" + req.transaction_id.hex().encode()
        err.add_fingerprint()
        return bytes(err)
