"""The ``[browser_phone]`` section of config.toml: the ICE servers (STUN, TURN) of the desk's browser phone.

Agents at home sit behind NAT and firewalls that let no UDP in: host candidates alone connect on a LAN
or VPN, not there. A STUN server gives both ends their public address; a TURN server relays the media
when nothing else gets through (``turns:`` over TLS on 443 passes most corporate firewalls). Both ends
use them: the page's ``RTCPeerConnection`` and the switch's own aiortc one (docs/browser-phone.md).

TURN credentials are either static (``username``/``credential`` of the entry: every agent's browser then
holds that long-lived password) or, better, minted per phone start from ``turn_secret`` (coturn
``use-auth-secret`` / ``static-auth-secret``, the "TURN REST API", draft-uberti-behave-turn-rest): the
page gets ``"<expiry>:<agent id>"`` and its HMAC, valid ``turn_ttl`` seconds; the secret never leaves
the switch. Composed into ``softswitch.config.ROOT`` as ``"browser_phone": Key(BROWSER_PHONE, {})``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from base.checks import between, hostname, one_of
from base.schema import INTEGER, STRING, Context, Invalid, Key, Scalar, Table, Tables, quote

__all__ = ["BROWSER_PHONE", "BrowserPhoneConfig", "IceServer", "IceUrl", "parse_ice_url", "warnings"]

SCHEMES = ("stun", "stuns", "turn", "turns")
# RFC 7064 (stun/stuns) and RFC 7065 (turn/turns): scheme ":" host [":" port] ["?transport=" udp|tcp]
_URL = re.compile(r"(?P<scheme>[a-z]+):(?P<host>\[[0-9A-Fa-f:.]+\]|[^?:\[\]/]+)(?::(?P<port>[0-9]{1,5}))?"
                  r"(?:\?transport=(?P<transport>[a-z]+))?")
DEFAULT_PORTS = {"stun": 3478, "stuns": 5349, "turn": 3478, "turns": 5349}


@dataclass(frozen=True)
class IceUrl:
    """One parsed STUN/TURN URL (the text is what the page gets, unchanged)."""

    text: str
    scheme: str          # stun, stuns, turn, turns
    host: str            # as written (an IPv6 address keeps its brackets)
    port: int
    transport: str       # udp or tcp: turn's default udp, turns' tcp (TLS); "" for stun

    @property
    def is_turn(self) -> bool:
        return self.scheme in ("turn", "turns")


def parse_ice_url(text: str) -> IceUrl:
    """A ``stun:``/``stuns:``/``turn:``/``turns:`` URL as browsers accept it, or ``Invalid`` saying why."""
    m = _URL.fullmatch(text.strip())
    if m is None or m["scheme"] not in SCHEMES:
        scheme = text.split(":", 1)[0] if ":" in text else ""
        if scheme and scheme.lower() not in SCHEMES:
            raise Invalid(f"{quote(text)}: the scheme must be stun:, stuns:, turn: or turns:, got {quote(scheme + ':')}")
        raise Invalid(f"{quote(text)} is not a STUN/TURN URL (stun:host[:port], turn:host[:port][?transport=udp|tcp])")
    scheme, host = m["scheme"], m["host"]
    try:
        hostname(host)
    except Invalid as e:
        raise Invalid(f"{quote(text)}: {e.reason}") from None
    port = int(m["port"]) if m["port"] else DEFAULT_PORTS[scheme]
    if not 1 <= port <= 65535:
        raise Invalid(f"{quote(text)}: the port must be between 1 and 65535")
    transport = m["transport"] or ""
    if scheme in ("stun", "stuns"):
        if transport:
            raise Invalid(f"{quote(text)}: a STUN URL takes no ?transport= (RFC 7064)")
    else:
        if transport and transport not in ("udp", "tcp"):
            raise Invalid(f"{quote(text)}: ?transport= must be udp or tcp, got {quote(transport)}")
        transport = transport or ("tcp" if scheme == "turns" else "udp")
    return IceUrl(text.strip(), scheme, host, port, transport)


def _urls(value: Any, ctx: Context) -> tuple[IceUrl, ...]:
    """``urls``: one URL or an array of them (as in the browser's RTCIceServer)."""
    items = [value] if isinstance(value, str) else value
    if not items:
        raise Invalid("must not be empty")
    out = []
    for i, item in enumerate(items):
        at = "" if isinstance(value, str) else f"[{i}]"
        if not isinstance(item, str):
            raise Invalid(f"expected a string, got {type(item).__name__}", at)
        try:
            out.append(parse_ice_url(item))
        except Invalid as e:
            raise Invalid(e.reason, at) from None
    return tuple(out)


URLS = Scalar("string or array of strings", (str, list), _urls)


@dataclass(frozen=True)
class IceServer:
    """One ``[[browser_phone.ice_servers]]`` entry: the browser's RTCIceServer. A TURN entry without
    ``username``/``credential`` gets ephemeral ones from ``turn_secret`` at each phone start."""

    urls: tuple[IceUrl, ...]
    username: str = ""
    credential: str = field(default="", repr=False)     # a static TURN password: never in the log

    @property
    def is_turn(self) -> bool:
        return any(u.is_turn for u in self.urls)


def _server_post(v: dict[str, Any]) -> None:
    if bool(v["username"]) != bool(v["credential"]):
        missing = "credential" if v["username"] else "username"
        raise Invalid(f"{missing} is missing: a static TURN login needs both username and credential", f".{missing}")
    if v["username"] and not any(u.is_turn for u in v["urls"]):
        raise Invalid("a STUN server takes no username/credential (only turn: and turns: servers do)", ".username")


ICE_SERVER = Table(IceServer, {
    "urls": Key(URLS),
    "username": Key(STRING, ""),
    "credential": Key(STRING, ""),
}, post=_server_post)


@dataclass(frozen=True)
class BrowserPhoneConfig:
    """``[browser_phone]``. No ICE servers (the default): host candidates only, enough on a LAN or a VPN."""

    ice_servers: list[IceServer] = field(default_factory=list)
    turn_secret: str = field(default="", repr=False)   # coturn static-auth-secret: never logged, never sent
    turn_ttl: int = 86400            # seconds an ephemeral TURN credential is valid (the page renews it when
    # idle after half of it: the phone re-registers, a second in which the ACD skips the agent)
    ice_transport_policy: str = "all"   # the page's: "relay" sends all media through TURN

    @property
    def uses_turn_rest(self) -> bool:
        return bool(self.turn_secret)


def _post(v: dict[str, Any]) -> None:
    servers: list[IceServer] = v["ice_servers"]
    rest = [i for i, s in enumerate(servers) if s.is_turn and not s.username]
    if rest and not v["turn_secret"]:
        raise Invalid("a turn:/turns: server needs username and credential, or [browser_phone] turn_secret "
                      "(coturn static-auth-secret) for ephemeral credentials", f".ice_servers[{rest[0]}].username")
    if v["turn_secret"] and not rest:
        raise Invalid("turn_secret is set but no turn:/turns: entry of ice_servers is left without a static "
                      "username to use it", ".turn_secret")
    if v["ice_transport_policy"] == "relay" and not any(s.is_turn for s in servers):
        raise Invalid('"relay" needs a turn: or turns: server in ice_servers (the page would find no path)',
                      ".ice_transport_policy")


def _secret(v: str) -> str:
    if not v.strip() or any(not c.isprintable() for c in v):
        raise Invalid("must be a non-empty printable string (coturn's static-auth-secret)")
    return v


BROWSER_PHONE = Table(BrowserPhoneConfig, {
    "ice_servers": Key(Tables(ICE_SERVER), []),
    "turn_secret": Key(STRING, "", (lambda v: _secret(v) if v else v,)),
    "turn_ttl": Key(INTEGER, 86400, (between(600, 7 * 86400),)),
    "ice_transport_policy": Key(STRING, "all", (one_of("all", "relay"),)),
}, post=_post)


def warnings(config: BrowserPhoneConfig) -> list[str]:
    """What a valid ``[browser_phone]`` still does that an administrator should know (config_warnings)."""
    return [f"browser_phone.ice_servers[{i}]: this static TURN password is sent to every agent's browser and stays "
            "valid when one leaks; prefer turn_secret (coturn use-auth-secret): ephemeral credentials per agent"
            for i, s in enumerate(config.ice_servers) if s.is_turn and s.username]
