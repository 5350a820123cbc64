"""ICE servers for both ends of a browser phone: the page's ``iceServers`` and the switch's aiortc configuration.

Pure functions of the ``[browser_phone]`` config, the agent and the wall time (the edge passes
``time.time()``), so the credentials are testable against known answers.

TURN REST credentials (draft-uberti-behave-turn-rest, coturn ``use-auth-secret``): the username is
``"<expiry unix time>:<user>"`` and the password ``base64(HMAC-SHA1(secret, username))``; the TURN server,
knowing the secret, recomputes the password and refuses the username once its time has passed. So a
page gets a credential good for ``turn_ttl`` seconds and for nothing else, and the secret stays here.

aiortc (through aioice) uses at most **one** STUN server (``stun:`` over UDP; ``stuns:`` is ignored) and
**one** TURN server (``turn:`` over UDP or TCP, ``turns:`` over TLS/TCP only), each the first such URL in
the list, and cannot parse a bracketed IPv6 host: ``server_choice`` applies those rules (the same as
aiortc's ``connection_kwargs``) so the switch can say at start which servers its own end uses. The
browser uses every entry.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from .config import BrowserPhoneConfig, IceServer, IceUrl

__all__ = ["SWITCH_USER", "ServerChoice", "page_ice", "server_choice", "server_ice_servers", "turn_rest_credential"]

SWITCH_USER = "switch."    # the switch's own TURN allocations are "<expiry>:switch.<agent id>" (told apart in
# the TURN server's log and quotas from the agent's page, "<expiry>:<agent id>")


def turn_rest_credential(secret: str, user: str, now: float, ttl: int) -> tuple[str, str]:
    """``(username, credential)`` valid until ``now + ttl`` (unix seconds) for a coturn ``static-auth-secret``."""
    username = f"{int(now) + int(ttl)}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def _entries(config: BrowserPhoneConfig, user: str, now: float) -> list[tuple[IceServer, tuple[IceUrl, ...], str, str]]:
    """Each configured server with the login it is used with now (ephemeral where it has no static one)."""
    out = []
    for s in config.ice_servers:
        if s.username:
            out.append((s, s.urls, s.username, s.credential))
        elif s.is_turn and config.turn_secret:
            name, cred = turn_rest_credential(config.turn_secret, user, now, config.turn_ttl)
            out.append((s, s.urls, name, cred))
        else:
            out.append((s, s.urls, "", ""))
    return out


def page_ice(config: BrowserPhoneConfig, agent: str, now: float) -> dict[str, Any]:
    """The ``phone.ice`` message for ``agent``'s own page: its RTCConfiguration, fresh ephemeral credentials.

    ``expires_in`` (seconds) rather than a time of day: the page's clock may be wrong; the page renews
    its phone before then. A static TURN password, if configured, is in here too (that is what static
    means; config_warnings says so); the ``turn_secret`` never is."""
    servers = []
    for _s, urls, username, credential in _entries(config, agent, now):
        d: dict[str, Any] = {"urls": [u.text for u in urls]}
        if username:
            d["username"], d["credential"] = username, credential
        servers.append(d)
    rest = config.uses_turn_rest and any(s.is_turn and not s.username for s in config.ice_servers)
    return {"type": "phone.ice", "iceServers": servers, "iceTransportPolicy": config.ice_transport_policy,
            "expires_in": config.turn_ttl if rest else None}


@dataclass(frozen=True)
class ServerChoice:
    """What the switch's aiortc end uses: at most one STUN and one TURN URL, and what it leaves out (why)."""

    stun: IceUrl | None
    turn: IceUrl | None
    skipped: tuple[tuple[str, str], ...]      # (url, reason)

    def describe(self) -> str:
        used = [u.text for u in (self.stun, self.turn) if u is not None]
        text = "the switch's own ICE uses " + (" and ".join(used) if used else "host candidates only")
        if self.skipped:
            text += "; not used by aiortc: " + ", ".join(f"{u} ({why})" for u, why in self.skipped)
        return text


def _aiortc_skips(u: IceUrl) -> str:
    if u.host.startswith("["):
        return "aiortc cannot parse an IPv6 literal in the URL; use a host name"
    if u.scheme == "stuns":
        return "aioice has no STUN over TLS"
    if u.scheme == "turns" and u.transport != "tcp":
        return "turns: only over TCP"
    return ""


def server_choice(config: BrowserPhoneConfig) -> ServerChoice:
    stun = turn = None
    skipped = []
    for s in config.ice_servers:
        for u in s.urls:
            why = _aiortc_skips(u)
            if not why and u.is_turn:
                why = "aiortc uses one TURN server" if turn is not None else ""
                turn = turn or u
            elif not why:
                why = "aiortc uses one STUN server" if stun is not None else ""
                stun = stun or u
            if why:
                skipped.append((u.text, why))
    return ServerChoice(stun, turn, tuple(skipped))


def server_ice_servers(config: BrowserPhoneConfig, agent: str, now: float) -> list[Any]:
    """``RTCIceServer``s for the switch's peer connection with ``agent``'s page: only the URLs aiortc uses
    (so none it would misparse), the TURN one with the switch's own ephemeral login. Empty when none are
    configured: aiortc would otherwise ask Google's public STUN server (its default) at every start."""
    from aiortc import RTCIceServer

    choice = server_choice(config)
    out = []
    for _s, urls, username, credential in _entries(config, SWITCH_USER + agent, now):
        for u in urls:
            if u is choice.stun:
                out.append(RTCIceServer(urls=u.text))
            elif u is choice.turn:
                out.append(RTCIceServer(urls=u.text, username=username, credential=credential))
    return out
