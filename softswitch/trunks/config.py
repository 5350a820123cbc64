"""``[[trunks]]``, ``[[dial_rules]]`` and ``[numbering]``: the carriers, how numbers go out, how numbers are written.

A trunk is a carrier (or an upstream PBX) we exchange calls with: where its requests come from (so its
INVITEs need no digest: carriers do not answer challenges), which of its numbers (DIDs) reach which
number of our dialplan, how we reach it (host, port, transport, our credentials for its 401/407, an
optional registration), and its limits (channels). Dial rules send a dialled number to trunks in
failover order. ``[numbering]`` says how national and international numbers are written where the
call centre is, so that every external number is stored and matched in one form (E.164).

The tables are frozen dataclasses built from config alone (``TrunkTable.from_config``), so a reload
can build a new table and swap it.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from base.checks import between, hostname, no_quote, nonempty, one_of, printable, unique
from base.schema import BOOLEAN, FLOAT, INTEGER, STRING, Array, Invalid, Key, Scalar, Table, Tables, quote, toml_type

TRANSPORTS = ("udp", "tcp", "tls")
# permission classes, from the narrowest: an extension may dial numbers of its class and the ones below
CLASSES = ("internal", "local", "national", "international")
RULE_CLASSES = ("", "local", "national", "international", "emergency")
SEND_FORMATS = ("dialled", "e164", "e164-no-plus", "national")
ORDERS = ("failover", "round-robin")
RESOLVE_MODES = ("rfc3263", "a")
DEFAULT_EMERGENCY = ["110", "112", "119", "120", "122", "911", "999"]


@dataclass(frozen=True)
class Trunk:
    name: str
    host: str                                  # the carrier's proxy (IP or host name)
    port: int = 5060
    transport: str = "udp"
    match: list[str] = field(default_factory=list)   # inbound: "ip", "cidr" or "ip:port"; [] = host (if an IP)
    match_header: str = ""                     # inbound: "Name: value" that must also be present (substring)
    dids: dict[str, str] = field(default_factory=dict)  # DID -> number of our dialplan; "*" = any other
    trusted: bool = True                       # take the caller from P-Asserted-Identity
    username: str = ""                         # our account at the carrier (401/407 and registration)
    password: str = ""
    auth_username: str = ""                    # "" = username
    realm: str = ""                            # answer challenges only of this realm ("" = any)
    from_domain: str = ""                      # domain of our From/To ("" = host)
    register: bool = False                     # REGISTER to the carrier (it then sends calls to our contact)
    register_expires: int = 600
    contact_user: str = ""                     # user part of our Contact ("" = username)
    retry_min: int = 5                         # registration back-off: first retry after this many seconds,
    retry_max: int = 300                       # doubling up to this
    options_interval: int = 30                 # OPTIONS keep-alive every N seconds; 0 = off
    options_failures: int = 2                  # missed OPTIONS before the trunk counts as down
    codecs: list[str] = field(default_factory=list)  # the only codecs with this carrier, in order; [] = [media]
                                               # codecs (its leg is negotiated alone: the engine transcodes)
    max_channels: int = 0                      # concurrent calls in + out; 0 = no limit
    caller_id: str = ""                        # number presented on outbound calls (e.g. the hotline)
    progress_timeout: int = 5                  # seconds without any answer to our INVITE before failing over
    enabled: bool = True
    weight: int = 1                            # share of new calls in round-robin dial rules (3 vs 1: 3:1)
    resolve: str = "a"                         # a host name: "rfc3263" (NAPTR, SRV, A/AAAA) or "a" (A/AAAA);
                                               # config: rfc3263 when host is a name and no port is given
    port_set: bool = True                      # the port was written (config): RFC 3263 then looks up A only
    transport_set: bool = True                 # the transport was written: NAPTR may not choose another

    @property
    def named(self) -> bool:
        """Whether ``host`` is a name to look up (at the edge, never per request) rather than an IP."""
        return not _is_ip(self.host)

    @property
    def auth_user(self) -> str:
        return self.auth_username or self.username

    @property
    def domain(self) -> str:
        return self.from_domain or self.host

    def public(self) -> dict[str, Any]:
        """What the API and logs may show: never the password."""
        return {"name": self.name, "host": self.host, "port": self.port, "transport": self.transport,
                "resolve": self.resolve if self.named else "", "register": self.register, "username": self.username, "max_channels": self.max_channels,
                "weight": self.weight,
                "dids": sorted(self.dids)}


@dataclass(frozen=True)
class DialRule:
    prefix: str                                # dialled number starts with this ("+" for E.164)
    trunks: list[str]                          # in failover order
    permission: str = ""                       # class needed; "" = the number's own class; "emergency"
    strip: int = 0                             # leading digits removed (after ``send`` formatting)
    add: str = ""                              # then this prepended
    send: str = "dialled"                      # dialled | e164 | e164-no-plus | national
    caller_id: str = ""                        # presented number (overrides the trunk's)
    min_length: int = 1
    max_length: int = 32
    from_trunks: bool = False                  # a call from a trunk may go out again (hairpin)
    order: str = "failover"                    # failover: always the first trunk first; round-robin: each
                                               # call starts at the next trunk by the trunks' weights (load
                                               # sharing, smooth weighted round-robin), then fails over


@dataclass(frozen=True)
class Numbering:
    country_code: str = ""                     # "" = [store] country_code
    international_prefix: str = "00"
    national_prefix: str = "0"
    internal_max_len: int = 6                  # numbers this short are extensions/short codes
    local_max_len: int = 8                     # without any prefix and at most this long: a local number
    emergency: list[str] = field(default_factory=lambda: list(DEFAULT_EMERGENCY))
    default_permission: str = "national"       # extensions without ``permission``


# ============================================================================ checks

def ip_match(v: str) -> str:
    """An address, a CIDR network, or "ip:port" ("[v6]:port")."""
    v = v.strip()
    host, port = split_host_port(v)
    try:
        ipaddress.ip_network(host, strict=False)
    except ValueError:
        raise Invalid(f'expected an IP address, a CIDR network or "ip:port", got {quote(v)}') from None
    if port is not None and not 1 <= port <= 65535:
        raise Invalid(f"port must be between 1 and 65535 in {quote(v)}")
    return v


def split_host_port(v: str) -> tuple[str, int | None]:
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if v.count(":") == 1:
        host, _, port = v.partition(":")
        return host, int(port) if port.isdigit() else -1
    return v, None


def header_match(v: str) -> str:
    name, sep, value = v.partition(":")
    if v and (not sep or not name.strip() or not value.strip() or not re.fullmatch(r"[A-Za-z0-9-]+", name.strip())):
        raise Invalid(f'expected "Header-Name: value", got {quote(v)}')
    return printable(v)


def digits(v: str) -> str:
    if v and not re.fullmatch(r"\+?[0-9]{1,32}", v):
        raise Invalid(f"must be a number (digits, optional leading '+'), got {quote(v)}")
    return v


def caller_id(v: str) -> str:
    if v and v != "anonymous":
        digits(v)
    return v


def did_table() -> Scalar:
    def convert(raw: dict[str, Any], ctx: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for k, v in raw.items():
            if k != "*" and not re.fullmatch(r"\+?[0-9]{1,32}", k):
                raise Invalid(f"a DID is digits with an optional leading '+' (or \"*\" for any), got {quote(k)}",
                              at=f".{k}")
            if not isinstance(v, str) or not re.fullmatch(r"[0-9*#+]{1,32}", v):
                raise Invalid(f"expected the dialplan number it reaches (e.g. \"4000\"), got "
                              f"{quote(v) if isinstance(v, str) else toml_type(v)}", at=f".{k}")
            out[k] = v
        return out
    return Scalar("table", (dict,), convert)


def _trunk_post(v: dict[str, Any]) -> None:
    # port and transport left out are told apart from written ones: RFC 3263 looks up SRV only without a
    # port, and lets the carrier's NAPTR choose the transport only when the trunk does not name one
    v["port_set"], v["transport_set"] = v["port"] != 0, v["transport"] != ""
    v["port"] = v["port"] or 5060
    v["transport"] = v["transport"] or "udp"
    named = not _is_ip(v["host"])
    if not v["resolve"]:
        v["resolve"] = "rfc3263" if named and not v["port_set"] else "a"
    elif v["resolve"] == "rfc3263" and v["port_set"] and named:
        raise Invalid('a written port means A/AAAA records only (RFC 3263 4.2): leave port out for SRV, '
                      'or write resolve = "a"', at="resolve")
    if v["register"] and not (v["username"] and v["password"]):
        raise Invalid("registration needs username and password", at="register")
    if v["retry_min"] > v["retry_max"]:
        raise Invalid(f"must not be greater than retry_max ({v['retry_max']})", at="retry_min")
    if not v["match"] and v["dids"] and not _is_ip(v["host"]):
        raise Invalid(f"host {quote(v['host'])} is a name: list the carrier's source addresses in match "
                      "(inbound calls are recognised by address, never by a DNS look-up per call)", at="match")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


TRUNK = Table(Trunk, {
    "name": Key(STRING, checks=(nonempty, printable, no_quote)),
    "host": Key(STRING, checks=(nonempty, hostname, lambda v: v.strip("[]"))),
    "port": Key(INTEGER, 0, (between(1, 65535),)),           # 0 = not written: 5060, or SRV's port
    "transport": Key(STRING, "", (one_of(*TRANSPORTS, fold=str.lower),)),   # "" = not written: udp or NAPTR's
    "resolve": Key(STRING, "", (one_of(*RESOLVE_MODES, fold=str.lower),)),
    "match": Key(Array(STRING, each=(ip_match,)), []),
    "match_header": Key(STRING, "", (header_match,)),
    "dids": Key(did_table(), {}),
    "trusted": Key(BOOLEAN, True),
    "username": Key(STRING, "", (printable, no_quote)),
    "password": Key(STRING, "", (printable,)),
    "auth_username": Key(STRING, "", (printable, no_quote)),
    "realm": Key(STRING, "", (printable, no_quote)),
    "from_domain": Key(STRING, "", (lambda v: hostname(v) if v else v,)),
    "register": Key(BOOLEAN, False),
    "register_expires": Key(INTEGER, 600, (between(60, 86400),)),
    "contact_user": Key(STRING, "", (printable, no_quote)),
    "retry_min": Key(INTEGER, 5, (between(1, 3600),)),
    "retry_max": Key(INTEGER, 300, (between(1, 86400),)),
    "options_interval": Key(INTEGER, 30, (between(0, 3600),)),
    "options_failures": Key(INTEGER, 2, (between(1, 100),)),
    "codecs": Key(Array(STRING, each=(one_of("PCMU", "PCMA", fold=str.upper),)), [], (unique,)),
    "max_channels": Key(INTEGER, 0, (between(0, 100000),)),
    "caller_id": Key(STRING, "", (caller_id,)),
    "progress_timeout": Key(INTEGER, 5, (between(1, 120),)),
    "enabled": Key(BOOLEAN, True),
    "weight": Key(INTEGER, 1, (between(1, 1000),)),
}, post=_trunk_post)


def _rule_post(v: dict[str, Any]) -> None:
    if v["min_length"] > v["max_length"]:
        raise Invalid(f"must not be greater than max_length ({v['max_length']})", at="min_length")


DIAL_RULE = Table(DialRule, {
    "prefix": Key(STRING, checks=(lambda v: v if v == "+" else digits(v) if v else _empty_prefix(v),)),
    "trunks": Key(Array(STRING, each=(nonempty,), min_len=1), checks=(unique,)),
    "permission": Key(STRING, "", (one_of(*RULE_CLASSES, fold=str.lower),)),
    "strip": Key(INTEGER, 0, (between(0, 32),)),
    "add": Key(STRING, "", (digits,)),
    "send": Key(STRING, "dialled", (one_of(*SEND_FORMATS, fold=str.lower),)),
    "caller_id": Key(STRING, "", (caller_id,)),
    "min_length": Key(INTEGER, 1, (between(1, 32),)),
    "max_length": Key(INTEGER, 32, (between(1, 32),)),
    "from_trunks": Key(BOOLEAN, False),
    "order": Key(STRING, "failover", (one_of(*ORDERS, fold=str.lower),)),
}, post=_rule_post)


def _empty_prefix(v: str) -> str:
    raise Invalid('must not be empty (a rule for every number is prefix "0" ... "9" or "+")')


NUMBERING = Table(Numbering, {
    "country_code": Key(STRING, "", (lambda v: digits(v.lstrip("+")) if v else v,)),
    "international_prefix": Key(STRING, "00", (digits,)),
    "national_prefix": Key(STRING, "0", (digits,)),
    "internal_max_len": Key(INTEGER, 6, (between(1, 12),)),
    "local_max_len": Key(INTEGER, 8, (between(1, 16),)),
    "emergency": Key(Array(STRING, each=(digits,)), list(DEFAULT_EMERGENCY), (unique,)),
    "default_permission": Key(STRING, "national", (one_of(*CLASSES, fold=str.lower),)),
})


@dataclass(frozen=True)
class DnsConfig:
    """``[dns]``: how trunk host names are looked up (softswitch/trunks/resolver.py)."""
    nameservers: list[str] = field(default_factory=list)   # "ip" or "ip:port"; [] = the system's (resolv.conf)
    min_ttl: int = 30            # answers are kept at least this long (a TTL of 0 must not mean a query per call)
    max_ttl: int = 3600          # and at most this long (a carrier's move is seen within the hour)
    negative_ttl: int = 30       # a failed look-up (no such name, no records, no server) is retried after this
    timeout: float = 2.0         # seconds for one look-up (all servers, retries included)


def _nameserver(v: str) -> str:
    host, port = split_host_port(v.strip())
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise Invalid(f'expected a nameserver\'s IP address, or "ip:port", got {quote(v)}') from None
    if port is not None and not 1 <= port <= 65535:
        raise Invalid(f"port must be between 1 and 65535 in {quote(v)}")
    return v.strip()


def _dns_post(v: dict[str, Any]) -> None:
    if v["min_ttl"] > v["max_ttl"]:
        raise Invalid(f"must not be greater than max_ttl ({v['max_ttl']})", at="min_ttl")


DNS = Table(DnsConfig, {
    "nameservers": Key(Array(STRING, each=(_nameserver,)), [], (unique,)),
    "min_ttl": Key(INTEGER, 30, (between(1, 86400),)),
    "max_ttl": Key(INTEGER, 3600, (between(1, 604800),)),
    "negative_ttl": Key(INTEGER, 30, (between(1, 86400),)),
    "timeout": Key(FLOAT, 2.0, (between(0.1, 30),)),
}, post=_dns_post)


def unique_trunks(trunks: list[Trunk]) -> list[Trunk]:
    seen: dict[str, int] = {}
    for i, t in enumerate(trunks):
        if t.name in seen:
            raise Invalid(f"duplicate trunk name {quote(t.name)} (also trunks[{seen[t.name]}])", at=f"[{i}].name")
        seen[t.name] = i
    return trunks


TRUNKS = Tables(TRUNK)
DIAL_RULES = Tables(DIAL_RULE)


def cross_check(values: dict[str, Any], fail: Any) -> None:
    """Dial rules name configured trunks; DIDs do not shadow each other across trunks."""
    names = {t.name for t in values.get("trunks") or []}
    for i, r in enumerate(values.get("dial_rules") or []):
        for j, name in enumerate(r.trunks):
            if name not in names:
                raise fail(f"dial_rules[{i}].trunks[{j}]", f"no [[trunks]] named {quote(name)}"
                           + (f" (trunks: {', '.join(sorted(names))})" if names else " (no trunks configured)"))
    exts = {e.number for e in values.get("extensions") or []}
    for i, t in enumerate(values.get("trunks") or []):
        for did in t.dids:
            if did in exts:
                raise fail(f"trunks[{i}].dids.{did}", "is also an extension number (a carrier could ring it "
                           "directly): use a full DID")
