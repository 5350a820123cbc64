"""The browser phone: agents take and make calls in the desk page (WebRTC through aiortc).

Design (docs/browser-phone.md). The switch already knows how to ring, bridge, hold, transfer, record
and monitor a *phone*; so the browser phone is one more phone of the agent's extension, whose SIP
user agent runs inside the switch process and whose loudspeaker and microphone are the browser:

    browser ⇄ WebRTC (ICE, DTLS-SRTP, Opus/G.711; aiortc) ⇄ hop ⇄ RTP on 127.0.0.1 ⇄ engine leg
                                                           ua  ⇄ SIP on 127.0.0.1 ⇄ B2BUA leg

* ``ua``: a sans-IO SIP user agent (the project's own transaction layer and dialogs): it answers the
  switch's INVITEs when the agent clicks Answer, sends BYE, hold re-INVITEs, REFER (blind and attended
  transfer) and its own INVITEs (dialling, authenticated with the extension's credentials).
* ``hop``: per call, a local RTP socket on 127.0.0.1 that the engine's ordinary leg talks to (G.711 and
  RFC 4733 DTMF), and the audio track aiortc sends to the browser.
* ``phone``: the asyncio edge for one agent: the peer connection, the UA's socket and timer, the hops.
* ``service``: the phones of the API's WebSocket sessions (one per agent; gone with the session).
* ``config`` and ``ice``: ``[browser_phone]``, the STUN/TURN servers of both ends, with ephemeral TURN
  credentials per agent and phone start (coturn ``use-auth-secret``) so no TURN password reaches a browser.

So the browser leg is an engine leg like any phone's: bridged, recorded, monitored (listen, whisper,
barge) and counted in the call record, with no second mixer; the only extra work per packet is the
G.711 coding on the hop, small next to aiortc's Opus and SRTP (bench/browser_phone.py).
"""
