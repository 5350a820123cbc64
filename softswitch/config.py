"""config.toml: load, validate and turn into frozen dataclasses.

A bad config is refused at start, before any socket is opened, with the file, the dotted key
(``extensions[2].number``, list indexes count from 0) and the reason: a switch that starts with a
typo silently ignored (``[sip] min_expire = 30``) is worse than one that does not start.

Each TOML table is described once, declaratively (``Table`` of ``Key``s: expected type, default,
checks); the generic walker that checks them is ``base.schema`` (reusable checks: ``base.checks``).
This module describes the switch's own sections and composes them with the call-centre sections,
which their packages describe themselves (``acd.config.ACD``, ``ivr.config.IVR``), into ``ROOT``.
Adding a section is a dataclass, a ``Table`` and a line in ``ROOT``.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import re
import ssl
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acd.config import ACD, AcdConfig
from dialler.config import OUTBOUND, OutboundConfig
from base.checks import (
    between, existing_file, ext_number, hostname, no_quote, nonempty, number_pattern, one_of, one_of_int, printable,
    unique,
)
from base.schema import (
    BOOLEAN, INTEGER, PATH, STRING, Array, Check, ConfigError, Context, Invalid, Key, Scalar, Table, Tables,
    Walker, assert_fields, quote, toml_type,
)
from ivr.config import IVR, IvrConfig, QueueNode, missing_prompt_files
from media.engine import MediaConfig
from media.srtp import SUITES as SRTP_SUITES

from .browserphone.config import BROWSER_PHONE, BrowserPhoneConfig
from .browserphone.config import warnings as browser_phone_warnings
from .reports.config import REPORTS, ReportsConfig
from .wallboard.config import WALLBOARD, WallboardConfig
from .workorders.config import WORK_ORDERS, WorkOrdersConfig
from .overload.config import OVERLOAD, OverloadConfig
from .trunks import config as trunks_config
from .trunks.config import DialRule, DnsConfig, Numbering, Trunk

__all__ = [
    "Config", "ConfigError", "Extension", "ListenAddress", "LogConfig", "MediaConfig", "MetricsConfig", "SecurityConfig",
    "SipConfig", "StoreConfig", "TlsConfig", "load_config", "parse_config",
]


# ============================================================================ the settings

TRANSPORTS = ("udp", "tcp", "tls")
AUTH_ALGORITHMS = ("SHA-256", "MD5")
# What every common phone answers: many (baresip 1.0, SIPp, desk phones in the field) give up on a 401 that
# offers anything but MD5, even with MD5 offered first. SHA-256 is offered per extension or per [sip].
DEFAULT_AUTH_ALGORITHMS = ("MD5",)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
NAT_MODES = ("auto", "force", "never")


@dataclass(frozen=True)
class ListenAddress:
    """One socket to bind; the host is stored without IPv6 brackets (what bind() wants)."""

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


@dataclass(frozen=True)
class TlsConfig:
    """Certificate chain and private key (PEM) for ``tls:`` listeners; relative to the config file."""

    certificate: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class SipConfig:
    listen: list[ListenAddress]
    domain: str
    realm: str = ""  # "" = the domain (filled in by __post_init__)
    user_agent: str = "softswitch/0.1"
    advertised_address: str | None = None  # host for Via/Contact/Record-Route behind NAT; None = listen host
    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 600
    nonce_lifetime: int = 300
    auth_algorithms: list[str] = field(default_factory=lambda: list(DEFAULT_AUTH_ALGORITHMS))
    tls: TlsConfig = field(default_factory=TlsConfig)
    t1_ms: int = 500
    t2_ms: int = 4000
    t4_ms: int = 5000
    ring_timeout: int = 60  # seconds an outgoing leg may ring before 408/480
    max_message_size: int = 65535
    nat: str = "auto"  # "auto" | "force" | "never": where to send requests to a registered contact
    max_headers: int = 128  # header fields in one message; more: 400 before it is parsed (a cheap refusal)
    max_via: int = 70       # Via entries (hops) in one message: Max-Forwards (70) hops at most

    def __post_init__(self) -> None:
        if not self.realm:
            object.__setattr__(self, "realm", self.domain)


@dataclass(frozen=True)
class StoreConfig:
    path: Path  # SQLite file; its parent directory is created at runtime, not here
    country_code: str = ""             # where the call centre is, e.g. "86": national numbers normalised
    regions: dict[str, str] = field(default_factory=dict)         # number prefix -> region (longest wins)
    service_points: dict[str, str] = field(default_factory=dict)  # region -> service point (work orders)
    default_service_point: str = ""


@dataclass(frozen=True)
class Extension:
    """An extension (a phone line). Its digest secret is the plain ``password`` or, so that the config
    holds no plaintext, ``ha1_md5``/``ha1_sha256``: H(number:realm:password) in hex (``softswitch
    ha1 NUMBER``, or ``printf '%s' "1001:realm:pw" | md5sum``); a phone is offered only the algorithms it
    has a secret for. An HA1 is bound to the realm: changing ``[sip] realm`` invalidates it."""

    number: str
    password: str = ""
    name: str = ""
    max_contacts: int = 5
    record: bool = False  # used later by media
    enabled: bool = True
    busy_limit: int = 1  # simultaneous incoming calls before 486 Busy Here; 0 = no limit
    auth_algorithms: list[str] | None = None  # digest algorithms offered to this phone; None = [sip]'s
    srtp: str = "off"  # SRTP (SDES) for this phone's calls: "off" | "optional" | "required" (docs/security.md)
    max_calls: int = 10  # simultaneous calls this extension may place (503 beyond); 0 = no limit
    invite_rate: int = 120  # calls this extension may place in any 60 s (503 beyond); 0 = no limit
    permission: str = ""  # external numbers it may dial: internal|local|national|international; "" = [numbering]'s
    caller_id: str = ""   # number presented on its external calls; "" = the dial rule's or trunk's
    ha1_md5: str = ""     # H(number:realm:password) with MD5, hex; instead of (or beside) password
    ha1_sha256: str = ""  # the same with SHA-256

    def ha1(self, algorithm: str) -> str | None:
        """The stored HA1 for a digest algorithm ("MD5"/"SHA-256"), or None."""
        value = self.ha1_md5 if algorithm == "MD5" else self.ha1_sha256 if algorithm == "SHA-256" else ""
        return value or None

    def secret_algorithms(self) -> tuple[str, ...] | None:
        """The algorithms this extension can be checked with; None = any (it has a plain password)."""
        if self.password:
            return None
        return tuple(a for a in AUTH_ALGORITHMS if self.ha1(a))


@dataclass(frozen=True)
class SecurityConfig:
    max_auth_failures: int = 10
    failure_window: int = 60
    ban_time: int = 900
    ban_exempt: list[str] = field(default_factory=list)  # IPs/CIDRs; loopback is NOT exempt by default
    blacklist: list[str] = field(default_factory=list)  # caller numbers refused with 403; "123*" = prefix
    digest_uri: str = "switch"  # "strict": digest uri = Request-URI; "switch": or the switch itself; "off"
    tcp_max_connections: int = 4096  # inbound TCP/TLS connections in all (softswitch.connections)
    tcp_max_per_address: int = 64    # from one address (IPv6: one /64); ban_exempt addresses: no cap
    tcp_message_timeout: int = 5     # seconds from a message's first byte to its last (slowloris)
    tcp_idle_timeout: int = 120      # seconds a connection without a registration or a call may stay silent
    persist_bans: bool = True        # bans survive a restart (softswitch.security.json beside the database)


@dataclass(frozen=True)
class LogConfig:
    level: str = "INFO"
    format: str = "plain"  # "plain" | "json" (one JSON object per line, for Loki / ELK)


@dataclass(frozen=True)
class MetricsConfig:
    """``[metrics]``: Prometheus ``/metrics`` (and ``/health``, ``/ready``). Served on the API listener; on
    a listener of its own when ``listen`` is set or ``[api]`` is disabled."""

    enabled: bool = True
    listen: str = ""                        # "host:port"; "" = the API's (127.0.0.1:9090 when [api] is off)
    allow: list[str] = field(default_factory=list)  # source IPs/CIDRs allowed to scrape; [] = everyone


@dataclass(frozen=True)
class ApiUser:
    """``[[api.users]]``: who may use the HTTP API and the agent desk. An agent's ``id`` is its ACD
    agent id. ``password_hash`` ("pbkdf2_sha256$iterations$salt$hash", from ``softswitch hash-password``)
    or, discouraged (a warning at start), a plain ``password``."""

    id: str
    role: str = "agent"            # "agent" | "supervisor" | "admin" (a supervisor who may also reload the config)
    password_hash: str = ""
    password: str = ""


@dataclass(frozen=True)
class ApiSettings:
    """``[api]``: the HTTP API (JSON, OpenAPI at /openapi.json), the agents' WebSocket and the desk page."""

    enabled: bool = True
    listen: str = "127.0.0.1:8080"          # "host:port"; IPv6 in brackets
    max_body: int = 65536                   # largest request body accepted, bytes (larger: 413)
    secret: str = ""                        # HMAC key for session tokens; "" = random at each start
    session_ttl: int = 28800                # seconds a login lasts unused (refreshed while in use)
    users: list[ApiUser] = field(default_factory=list)
    allowed_origins: list[str] = field(default_factory=list)  # other pages that may open the WebSocket
    trusted_proxies: list[str] = field(default_factory=list)  # reverse proxies whose X-Forwarded-For counts


@dataclass(frozen=True)
class Config:
    source: Path
    sip: SipConfig
    store: StoreConfig
    extensions: list[Extension] = field(default_factory=list)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    log: LogConfig = field(default_factory=LogConfig)
    media: MediaConfig = field(default_factory=lambda: MediaConfig(address="", bind_address=""))
    api: ApiSettings = field(default_factory=ApiSettings)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    acd: AcdConfig | None = None   # queues, agents, skills, dialplan; the [acd] table (all defaults if absent)
    ivr: IvrConfig | None = None   # None: no IVR configured
    wallboard: WallboardConfig = field(default_factory=WallboardConfig)   # thresholds and alarms of /wallboard
    reports: ReportsConfig = field(default_factory=ReportsConfig)         # the nightly export (softswitch.reports)
    work_orders: WorkOrdersConfig = field(default_factory=WorkOrdersConfig)   # overdue orders, escalation
    overload: OverloadConfig = field(default_factory=OverloadConfig)  # admission control (softswitch.overload)
    trunks: list[Trunk] = field(default_factory=list)         # carriers (softswitch/trunks, docs/trunks.md)
    dial_rules: list[DialRule] = field(default_factory=list)  # external numbers -> trunks in failover order
    numbering: Numbering = field(default_factory=Numbering)  # how numbers are written here (E.164)
    dns: DnsConfig = field(default_factory=DnsConfig)        # trunk host names: NAPTR/SRV/A (RFC 3263)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)   # callbacks and campaigns (dialler)
    browser_phone: BrowserPhoneConfig = field(default_factory=BrowserPhoneConfig)   # ICE servers (browserphone)
    _by_number: dict[str, Extension] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_number", {e.number: e for e in self.extensions})

    def extension(self, number: str) -> Extension | None:
        """The extension with this number (enabled or not), or None; O(1), called per request."""
        return self._by_number.get(number)


# ============================================================================ section checks

def listen_address(v: str) -> ListenAddress:
    """ "transport:host:port"; IPv6 hosts in brackets ("udp:[::1]:5060"); the port may be left out
    (5060, 5061 for tls)."""
    transport, sep, rest = v.partition(":")
    if not sep:
        raise Invalid(f'expected "transport:host:port" (e.g. "udp:0.0.0.0:5060"), got {quote(v)}')
    try:
        transport = one_of(*TRANSPORTS, fold=str.lower)(transport)
    except Invalid as e:
        raise Invalid(f"transport {e.reason} in {quote(v)}") from None
    if rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            raise Invalid(f"unclosed '[' in {quote(v)}")
        host, after = rest[1:end], rest[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise Invalid(f"not an IPv6 address in brackets: {quote(host)} in {quote(v)}") from None
        if after and not after.startswith(":"):
            raise Invalid(f'expected ":port" after "]" in {quote(v)}')
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = rest.partition(":")
        if ":" in port_text:
            raise Invalid(f'IPv6 addresses go in brackets, e.g. "{transport}:[::1]:5060", got {quote(v)}')
        if not host:
            raise Invalid(f"missing host in {quote(v)}")
        hostname(host)
    if not port_text and rest.endswith(":"):
        raise Invalid(f"missing port in {quote(v)}")
    if not port_text:
        port = 5061 if transport == "tls" else 5060
    elif not port_text.isdigit():
        raise Invalid(f"port must be a number, got {quote(port_text)} in {quote(v)}")
    else:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise Invalid(f"port must be between 1 and 65535, got {port} in {quote(v)}")
    return ListenAddress(transport, host, port)


def listen_list(addrs: list[ListenAddress]) -> list[ListenAddress]:
    seen: dict[tuple, int] = {}
    for i, la in enumerate(addrs):
        # tcp and tls both need a TCP socket: the same host:port for both cannot be bound
        sock = ("udp" if la.transport == "udp" else "tcp", la.host, la.port)
        if sock in seen:
            j = seen[sock]
            if addrs[j] == la:
                raise Invalid(f"duplicate listen address {quote(str(la))} (also sip.listen[{j}])", at=f"[{i}]")
            raise Invalid(f"{quote(str(la))} needs the same TCP port as {quote(str(addrs[j]))} (sip.listen[{j}])",
                          at=f"[{i}]")
        seen[sock] = i
    return addrs


def _sip_post(v: dict[str, Any]) -> None:
    if not v["min_expires"] <= v["default_expires"] <= v["max_expires"]:
        if v["min_expires"] > v["max_expires"]:
            raise Invalid(f"must not be greater than max_expires ({v['max_expires']}), got {v['min_expires']}",
                          at="min_expires")
        raise Invalid(f"must be between min_expires ({v['min_expires']}) and max_expires ({v['max_expires']}), "
                      f"got {v['default_expires']}", at="default_expires")
    if v["t1_ms"] > v["t2_ms"]:
        raise Invalid(f"must not be greater than t2_ms ({v['t2_ms']}), got {v['t1_ms']}", at="t1_ms")
    tls: TlsConfig = v["tls"]
    if (tls.certificate is None) != (tls.key is None):
        missing, given = ("key", "certificate") if tls.key is None else ("certificate", "key")
        raise Invalid(f"required when tls.{given} is set", at=f"tls.{missing}")
    tls_listeners = [(i, la) for i, la in enumerate(v["listen"]) if la.transport == "tls"]
    if tls_listeners:
        i, la = tls_listeners[0]
        if tls.certificate is None:
            raise Invalid(f"required by the tls listener {quote(str(la))} (sip.listen[{i}]): set [sip.tls] "
                          "certificate and key", at="tls.certificate")
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                str(tls.certificate), str(tls.key), password=b"")
        except (ssl.SSLError, OSError) as e:
            raise Invalid(f"cannot load the certificate with tls.key {quote(str(tls.key))}: {e} "
                          "(both PEM; the key must not be encrypted)", at="tls.certificate") from None


def password(v: str) -> str:
    if len(v) < 4:
        raise Invalid("must be at least 4 characters" if v else "must not be empty")
    return v


def unique_numbers(exts: list[Extension]) -> list[Extension]:
    seen: dict[str, int] = {}
    for i, e in enumerate(exts):
        if e.number in seen:
            raise Invalid(f"duplicate extension number {quote(e.number)} (also extensions[{seen[e.number]}])",
                          at=f"[{i}].number")
        seen[e.number] = i
    return exts


def ip_or_cidr(v: str) -> str:
    try:
        ipaddress.ip_network(v.strip(), strict=False)
    except ValueError as e:
        raise Invalid(f"not an IP address or CIDR network ({e})") from None
    return v.strip()


# ============================================================================ the schema

TLS = Table(TlsConfig, {
    "certificate": Key(PATH, None, (existing_file,)),
    "key": Key(PATH, None, (existing_file,)),
})

SIP = Table(SipConfig, {
    "listen": Key(Array(STRING, each=(listen_address,), min_len=1), checks=(listen_list,)),
    "domain": Key(STRING, checks=(nonempty, hostname)),
    "realm": Key(STRING, "", (nonempty, printable, no_quote)),
    "user_agent": Key(STRING, "softswitch/0.1", (nonempty, printable)),
    "advertised_address": Key(STRING, None, (nonempty, hostname, lambda v: v.strip("[]"))),
    "min_expires": Key(INTEGER, 60, (between(1, 86400),)),
    "max_expires": Key(INTEGER, 3600, (between(1, 604800),)),
    "default_expires": Key(INTEGER, 600, (between(1, 604800),)),
    "nonce_lifetime": Key(INTEGER, 300, (between(10, 86400),)),
    "auth_algorithms": Key(Array(STRING, each=(one_of(*AUTH_ALGORITHMS, fold=str.upper),), min_len=1),
                           list(DEFAULT_AUTH_ALGORITHMS), (unique,)),
    "tls": Key(TLS, {}),
    "t1_ms": Key(INTEGER, 500, (between(50, 10000),)),
    "t2_ms": Key(INTEGER, 4000, (between(100, 64000),)),
    "t4_ms": Key(INTEGER, 5000, (between(100, 64000),)),
    "ring_timeout": Key(INTEGER, 60, (between(1, 3600),)),
    "max_message_size": Key(INTEGER, 65535, (between(1500, 1048576),)),
    "nat": Key(STRING, "auto", (one_of(*NAT_MODES, fold=str.lower),)),
    "max_headers": Key(INTEGER, 128, (between(16, 10000),)),
    "max_via": Key(INTEGER, 70, (between(2, 1000),)),
}, post=_sip_post)


def _string_table(what: str, key_check: Check | None = None) -> Scalar:
    def convert(raw: dict[str, Any], ctx: Context) -> dict[str, str]:
        for k, v in raw.items():
            if key_check is not None:
                try:
                    key_check(k)
                except Invalid as e:
                    raise Invalid(e.reason, at=f".{k}") from None
            if not isinstance(v, str) or not v.strip():
                raise Invalid(f"expected {what} (a non-empty string), got {toml_type(v)}", at=f".{k}")
        return dict(raw)
    return Scalar("table", (dict,), convert)


def number_prefix(v: str) -> str:
    if not re.fullmatch(r"\+?\d{1,15}", v):
        raise Invalid(f"must be a number prefix (digits, optional leading '+'), got {quote(v)}")
    return v


STORE = Table(StoreConfig, {
    "path": Key(PATH),
    "country_code": Key(STRING, "", (lambda v: number_prefix(v) if v else v,)),
    "regions": Key(_string_table("a region name", number_prefix), {}),
    "service_points": Key(_string_table("a service point"), {}),
    "default_service_point": Key(STRING, "", (printable,)),
})

def _hex(n: int) -> Check:
    def check(v: str) -> str:
        if v and not re.fullmatch(rf"[0-9a-fA-F]{{{n}}}", v):
            raise Invalid(f"must be {n} hex digits (H(number:realm:password)), got {len(v)} characters")
        return v.lower()
    return check


def _extension_post(v: dict[str, Any]) -> None:
    if not (v["password"] or v["ha1_md5"] or v["ha1_sha256"]):
        raise Invalid("give password, or ha1_md5 and/or ha1_sha256", at="password")


EXTENSION = Table(Extension, {
    "number": Key(STRING, checks=(ext_number,)),
    "password": Key(STRING, "", (lambda v: password(v) if v else v,)),
    "ha1_md5": Key(STRING, "", (_hex(32),)),
    "ha1_sha256": Key(STRING, "", (_hex(64),)),
    "name": Key(STRING, "", (printable,)),
    "max_contacts": Key(INTEGER, 5, (between(1, 100),)),
    "record": Key(BOOLEAN, False),
    "enabled": Key(BOOLEAN, True),
    "busy_limit": Key(INTEGER, 1, (between(0, 1000),)),
    "auth_algorithms": Key(Array(STRING, each=(one_of(*AUTH_ALGORITHMS, fold=str.upper),), min_len=1), None,
                           (unique,)),
    "permission": Key(STRING, "", (lambda v: one_of(*trunks_config.CLASSES, fold=str.lower)(v) if v else v,)),
    "caller_id": Key(STRING, "", (trunks_config.caller_id,)),
    "srtp": Key(STRING, "off", (one_of("off", "optional", "required", fold=str.lower),)),
    "max_calls": Key(INTEGER, 10, (between(0, 10000),)),
    "invite_rate": Key(INTEGER, 120, (between(0, 1000000),)),
}, post=_extension_post)

SECURITY = Table(SecurityConfig, {
    "max_auth_failures": Key(INTEGER, 10, (between(1, 10000),)),
    "failure_window": Key(INTEGER, 60, (between(1, 86400),)),
    "ban_time": Key(INTEGER, 900, (between(1, 31536000),)),
    "ban_exempt": Key(Array(STRING, each=(ip_or_cidr,)), []),
    "digest_uri": Key(STRING, "switch", (one_of("strict", "switch", "off", fold=str.lower),)),
    "tcp_max_connections": Key(INTEGER, 4096, (between(1, 1000000),)),
    "tcp_max_per_address": Key(INTEGER, 64, (between(1, 1000000),)),
    "tcp_message_timeout": Key(INTEGER, 5, (between(1, 300),)),
    "tcp_idle_timeout": Key(INTEGER, 120, (between(5, 86400),)),
    "persist_bans": Key(BOOLEAN, True),
    "blacklist": Key(Array(STRING, each=(number_pattern,)), []),
})

def rtp_port_range(v: str) -> str:
    m = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", v)
    if not m:
        raise Invalid(f'must look like "10000-20000", got {quote(v)}')
    lo, hi = int(m[1]), int(m[2])
    if not (1024 <= lo < hi <= 65535) or hi - lo < 3:
        raise Invalid(f"needs 1024 <= low < high <= 65535 and room for two calls, got {lo}-{hi}")
    return f"{lo}-{hi}"


def _media_post(v: dict[str, Any]) -> None:
    if v["jitter_min_ms"] > v["jitter_max_ms"]:
        raise Invalid(f"jitter_min_ms ({v['jitter_min_ms']}) is above jitter_max_ms ({v['jitter_max_ms']})",
                      ".jitter_min_ms")


def _workers(v: int | str) -> int:
    """``workers``: 0-64, or "auto" (kept as -1: one per spare core, counted where the switch starts, so a
    config file means the same on every machine it is copied to)."""
    if isinstance(v, str):
        if v.strip().lower() == "auto":
            return -1
        raise Invalid(f'must be "auto" or a number 0-64, got {quote(v)}')
    return int(between(0, 64)(v))


WORKERS = Scalar('integer or "auto"', (int, str))


MEDIA = Table(MediaConfig, {
    "enabled": Key(BOOLEAN, True),
    "address": Key(STRING, "", (lambda v: hostname(v) if v else v,)),
    "bind_address": Key(STRING, "", (lambda v: hostname(v) if v else v,)),
    "rtp_ports": Key(STRING, "10000-20000", (rtp_port_range,)),
    "codecs": Key(Array(STRING, each=(one_of("PCMU", "PCMA", fold=str.upper),), min_len=1),
                  ["PCMU", "PCMA"], (unique,)),
    "telephone_event_pt": Key(INTEGER, 101, (between(96, 127),)),
    "ptime": Key(INTEGER, 20, (one_of_int(10, 20, 30, 40, 60),)),
    "jitter_min_ms": Key(INTEGER, 40, (between(20, 1000),)),
    "jitter_max_ms": Key(INTEGER, 240, (between(20, 2000),)),
    "rtp_timeout": Key(INTEGER, 60, (between(5, 3600),)),
    "inband_dtmf": Key(BOOLEAN, True),
    "fast_path": Key(BOOLEAN, True),
    "workers": Key(WORKERS, -1, (_workers,)),
    "hold_music": Key(PATH, None, (existing_file,)),
    "recordings_dir": Key(PATH, Path("var/recordings")),
    "recording_fsync": Key(BOOLEAN, False),
    "record": Key(STRING, "extensions", (one_of("all", "none", "extensions", fold=str.lower),)),
    "spare_ports": Key(INTEGER, 8, (between(0, 256),)),
    "port_retry": Key(INTEGER, 60, (between(1, 86400),)),
    "reserve_ports": Key(INTEGER, None, (between(0, 32767),)),
    "srtp_suites": Key(Array(STRING, each=(one_of(*SRTP_SUITES),), min_len=1), list(SRTP_SUITES), (unique,)),
}, post=_media_post)


LOG = Table(LogConfig, {
    "level": Key(STRING, "INFO", (one_of(*LOG_LEVELS, fold=str.upper),)),
    "format": Key(STRING, "plain", (one_of("plain", "json", fold=str.lower),)),
})

def api_listen(v: str) -> str:
    """ "host:port" (IPv6 host in brackets), port 0-65535 (0: any free port, logged at start)."""
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise Invalid(f'expected "host:port" with a port 0-65535 (e.g. "127.0.0.1:8080"), got {quote(v)}')
    hostname(host)
    return v


_PBKDF2 = re.compile(r"pbkdf2_sha256\$[0-9]{4,7}\$[A-Za-z0-9+/=_-]{8,}\$[A-Za-z0-9+/=_-]{16,}")


def _api_user_post(v: dict[str, Any]) -> None:
    if v["password_hash"] and not _PBKDF2.fullmatch(v["password_hash"]):
        raise Invalid('must look like "pbkdf2_sha256$iterations$salt$hash" (softswitch hash-password)',
                      at="password_hash")
    if bool(v["password_hash"]) == bool(v["password"]):
        raise Invalid("give exactly one of password_hash, password", at="password_hash")


API_USER = Table(ApiUser, {
    "id": Key(STRING, checks=(nonempty, printable)),
    "role": Key(STRING, "agent", (one_of("agent", "supervisor", "admin", fold=str.lower),)),
    "password_hash": Key(STRING, ""),
    "password": Key(STRING, "", (lambda v: password(v) if v else v,)),
}, post=_api_user_post)


def _origin(v: str) -> str:
    if not re.fullmatch(r"https?://[^/\s]+", v.strip().rstrip("/")):
        raise Invalid(f'must be an origin like "https://desk.example.com", got {quote(v)}')
    return v.strip().rstrip("/")


def unique_users(users: list[ApiUser]) -> list[ApiUser]:
    seen: dict[str, int] = {}
    for i, u in enumerate(users):
        if u.id in seen:
            raise Invalid(f"duplicate user id {quote(u.id)} (also api.users[{seen[u.id]}])", at=f"[{i}].id")
        seen[u.id] = i
    return users


API = Table(ApiSettings, {
    "enabled": Key(BOOLEAN, True),
    "listen": Key(STRING, "127.0.0.1:8080", (api_listen,)),
    "max_body": Key(INTEGER, 65536, (between(1024, 64 << 20),)),
    "secret": Key(STRING, ""),
    "session_ttl": Key(INTEGER, 28800, (between(60, 30 * 86400),)),
    "users": Key(Tables(API_USER), [], (unique_users,)),
    "allowed_origins": Key(Array(STRING, each=(_origin,)), []),
    "trusted_proxies": Key(Array(STRING, each=(ip_or_cidr,)), []),
})

METRICS = Table(MetricsConfig, {
    "enabled": Key(BOOLEAN, True),
    "listen": Key(STRING, "", (lambda v: api_listen(v) if v else v,)),
    "allow": Key(Array(STRING, each=(ip_or_cidr,)), []),
})

ROOT = Table(None, {
    "sip": Key(SIP),
    "store": Key(STORE),
    "extensions": Key(Tables(EXTENSION), [], (unique_numbers,)),
    "security": Key(SECURITY, {}),
    "log": Key(LOG, {}),
    "media": Key(MEDIA, {}),
    "api": Key(API, {}),
    "metrics": Key(METRICS, {}),
    "acd": Key(ACD, {}),
    "ivr": Key(IVR, None),
    "wallboard": Key(WALLBOARD, {}),
    "reports": Key(REPORTS, {}),
    "work_orders": Key(WORK_ORDERS, {}),
    "overload": Key(OVERLOAD, {}),
    "trunks": Key(trunks_config.TRUNKS, [], (trunks_config.unique_trunks,)),
    "dial_rules": Key(trunks_config.DIAL_RULES, []),
    "numbering": Key(trunks_config.NUMBERING, {}),
    "dns": Key(trunks_config.DNS, {}),
    "outbound": Key(OUTBOUND, {}),
    "browser_phone": Key(BROWSER_PHONE, {}),
})  # cls None: parse_config adds ``source``, which is not a TOML key
assert_fields(Config, ROOT.keys)


# ============================================================================ entry points

def parse_config(data: dict, source: str = "<config>", base_dir: Path = Path(".")) -> Config:
    """Validate already-parsed TOML data (tests build dicts); relative paths resolve against base_dir."""
    walker = Walker(Context(str(source), Path(base_dir)))
    if not isinstance(data, dict):
        raise ConfigError(str(source), None, f"expected a table at the top level, got {toml_type(data)}")
    values = walker.table(ROOT, data, "")
    _cross_checks(values, walker)
    _outbound_checks(values, walker)
    media = values["media"]
    if not media.recordings_dir.is_absolute():  # the default too is relative to the config file
        values["media"] = dataclasses.replace(media, recordings_dir=Path(base_dir) / media.recordings_dir)
    return Config(source=Path(source), **values)


def _cross_checks(values: dict[str, Any], walker: Walker) -> None:
    """What no single table can check: agents on configured extensions, queue numbers and IVR numbers
    not shadowing extensions, IVR queue nodes and queue surveys naming things that exist."""
    exts = {e.number for e in values["extensions"]}
    trunks_config.cross_check(values, walker.fail)
    acd, ivr = values.get("acd"), values.get("ivr")
    if acd is not None:
        for i, a in enumerate(acd.agents):
            if exts and a.extension not in exts:
                raise walker.fail(f"acd.agents[{i}].extension", f"{quote(a.extension)} is not a configured extension")
            for j, x in enumerate(a.extensions):
                if exts and x not in exts:
                    raise walker.fail(f"acd.agents[{i}].extensions[{j}]", f"{quote(x)} is not a configured extension")
        for i, d in enumerate(acd.dialplan):
            if d.number in exts:
                raise walker.fail(f"acd.dialplan[{i}].number", f"{quote(d.number)} is also an extension number")
        flows = set(ivr.flows) if ivr is not None else set()
        for i, q in enumerate(acd.queues):
            if q.survey and q.survey not in flows:
                raise walker.fail(f"acd.queues[{i}].survey", f"no IVR flow {quote(q.survey)}"
                                  + (f" (flows: {', '.join(sorted(flows))})" if flows else " ([ivr] has no flows)"))
    if ivr is not None:
        queue_names = {q.name for q in acd.queues} if acd is not None else set()
        for number in ivr.numbers:
            if number in exts:
                raise walker.fail(f"ivr.numbers.{number}", "is also an extension number")
        for fname, flow in ivr.flows.items():
            for nname, node in flow.nodes.items():
                if isinstance(node, QueueNode) and node.queue not in queue_names:
                    raise walker.fail(f"ivr.flows.{fname}.nodes.{nname}.queue",
                                      f"no [[acd.queues]] named {quote(node.queue)}")
                skills = {sk.name for sk in acd.skills} if acd is not None else set()
                if isinstance(node, QueueNode) and node.skill and node.skill not in skills:
                    raise walker.fail(f"ivr.flows.{fname}.nodes.{nname}.skill",
                                      f"no [[acd.skills]] named {quote(node.skill)}")


def _outbound_checks(values: dict[str, Any], walker: Walker) -> None:
    """Campaigns and callbacks name queues and IVR flows that exist."""
    acd, ivr, ob = values.get("acd"), values.get("ivr"), values["outbound"]
    queues = {q.name for q in acd.queues} if acd is not None else set()
    flows = set(ivr.flows) if ivr is not None else set()
    for i, c in enumerate(ob.campaigns):
        if c.queue and c.queue not in queues:
            raise walker.fail(f"outbound.campaigns[{i}].queue", f"no [[acd.queues]] named {quote(c.queue)}")
        if c.flow and c.flow not in flows:
            raise walker.fail(f"outbound.campaigns[{i}].flow", f"no IVR flow {quote(c.flow)}")
    for i, q in enumerate(ob.callbacks.queues):
        if q not in queues:
            raise walker.fail(f"outbound.callbacks.queues[{i}]", f"no [[acd.queues]] named {quote(q)}")
    if ob.callbacks.voicemail_queue and ob.callbacks.voicemail_queue not in queues:
        raise walker.fail("outbound.callbacks.voicemail_queue", f"no [[acd.queues]] named "
                          f"{quote(ob.callbacks.voicemail_queue)}")


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; every problem is a ConfigError naming the file."""
    source = str(path)
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, None, "file not found") from None
    except IsADirectoryError:
        raise ConfigError(source, None, "is a directory, not a file") from None
    except OSError as e:
        raise ConfigError(source, None, f"cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(source, None, f"not UTF-8 text (bad byte at offset {e.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(source, None, f"TOML syntax error: {e}") from None
    return parse_config(data, source, p.absolute().parent)


def config_warnings(config: Config, file: str = "config.toml") -> list[str]:
    """What a valid config still lacks to work as meant (check-config prints these; the switch logs them)."""
    out = []
    if config.ivr is not None:
        missing = missing_prompt_files(config.ivr)
        if missing:
            out.append(f"{len(missing)} prompt file(s) the IVR plays are not built (e.g. {missing[0]}): callers "
                       f"would hear silence; run: softswitch prompts build --config {file}")
    out += browser_phone_warnings(config.browser_phone)
    return out
