"""SIP URIs, name-addr values and Via values (RFC 3261 §19, §20, §25).

Parsed objects keep their parameters in order and serialise back faithfully, so a proxy or B2BUA
can forward what it does not understand unchanged. Everything here raises ``ValueError`` on
malformed input; the message parser turns that into a 400.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv6Address
from urllib.parse import quote, unquote

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanumeric with inner hyphens.
# Liberal: '_' is tolerated (container and SRV-style names). A name whose last label is numeric
# must be a dotted-quad IPv4address (a toplabel starts with ALPHA).
_HOSTNAME_RE = re.compile(r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_\-]*[A-Za-z0-9_])?\.?")
_IPV4_RE = re.compile(r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")
_IPV6_CHARS_RE = re.compile(r"[0-9A-Fa-f:.]+")
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~\[\]/:&+$]+")
_DIGITS_RE = re.compile(r"[0-9]+")
# Characters that may not appear unescaped anywhere in a URI (controls, SP, DEL, and the
# delimiters of the enclosing header field).
_URI_ILLEGAL_RE = re.compile(r"[\x00-\x20\x7f<>\"]")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# paramchar = param-unreserved / unreserved / escaped (RFC 3261 §25.1)
_PARAMCHAR_SAFE = "-_.!~*'()[]/:&+$"
_PARAMCHAR_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*")
MAX_UINT32 = 2**32 - 1


def is_token(text: str) -> bool:
    return _TOKEN_RE.fullmatch(text) is not None


def is_digits(text: str) -> bool:
    """ASCII decimal digits only (``str.isdigit`` also accepts '²', '٣', ...)."""
    return _DIGITS_RE.fullmatch(text) is not None


_SPLIT_RES: dict[str, re.Pattern[str]] = {}


def split_outside_quotes(text: str, sep: str, *, strict: bool = True) -> list[str]:
    """Split on ``sep`` where it is not inside a quoted string or <...> (Contact lists, params).

    An unterminated quoted string raises ``ValueError`` when ``strict``; otherwise the rest of
    the text is the last part."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    special = _SPLIT_RES.get(sep)
    if special is None:
        special = _SPLIT_RES[sep] = re.compile(r'[\\"<>' + re.escape(sep) + "]")
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    skip_to = -1
    for m in special.finditer(text):
        i = m.start()
        if i < skip_to:
            continue  # the character after a backslash inside a quoted string
        ch = text[i]
        if quoted:
            if ch == "\\":
                skip_to = i + 2
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            if depth:
                depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if quoted and strict:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str, *, strict: bool = True) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` (text without the leading ';'). Names are lower-cased, values
    kept as received (header parameters: '%' is not an escape there)."""
    params: dict[str, str | None] = {}
    if not text.strip(" \t"):
        if strict:
            raise ValueError("empty parameter")
        return params
    for raw in split_outside_quotes(text, ";"):
        name, eq, value = raw.partition("=")
        name = name.strip(" \t")
        if not name or _PARAM_NAME_RE.fullmatch(name) is None:
            raise ValueError(f"bad parameter name {name[:40]!r}" if name else "empty parameter")
        if eq:
            value = value.strip(" \t")
            if not value:
                raise ValueError(f"parameter {name[:40]!r} has an empty value")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def _unescape(text: str) -> str:
    """Decode %HH escapes once (never recursively: 'v%61lue%25%34%31' -> 'value%41')."""
    if "%" not in text:
        return text
    if _BAD_ESCAPE_RE.search(text):
        raise ValueError(f"bad %-escape in {text[:40]!r}")
    return unquote(text, errors="surrogateescape")


def _escape_param(text: str) -> str:
    if _PARAMCHAR_RE.fullmatch(text):
        return text
    return quote(text, safe=_PARAMCHAR_SAFE, errors="surrogateescape")


def parse_uri_params(text: str) -> dict[str, str | None]:
    """URI parameters (text after the first ';'): %HH escapes are decoded once, names lower-cased.
    ``SipUri.__str__`` escapes them again, so the URI stays equivalent (RFC 3261 §19.1.4)."""
    params: dict[str, str | None] = {}
    for raw in text.split(";"):
        name, eq, value = raw.partition("=")
        if not name or _PARAM_NAME_RE.fullmatch(name) is None:
            raise ValueError(f"bad URI parameter name {name[:40]!r}" if name else "empty URI parameter")
        if "%" in name:
            name = _unescape(name)
        if eq:
            if not value:
                raise ValueError(f"URI parameter {name[:40]!r} has an empty value")
            params[name.lower()] = _unescape(value) if "%" in value else value
        else:
            params[name.lower()] = None
    return params


def format_uri_params(params: dict[str, str | None]) -> str:
    return "".join(
        f";{_escape_param(k)}" if v is None else f";{_escape_param(k)}={_escape_param(v)}"
        for k, v in params.items()
    )


@lru_cache(maxsize=1024)
def _ipv6_reference(ref: str) -> str:
    """Validate ``[IPv6address]``; return it, with the RFC 3261 ABNF's third colon dropped
    (RFC 5118 §4.10: '2001:db8:::192.0.2.1' is read as '2001:db8::192.0.2.1')."""
    inner = ref[1:-1]
    if _IPV6_CHARS_RE.fullmatch(inner) is None:
        raise ValueError(f"bad IPv6 reference {ref[:60]!r}")
    try:
        IPv6Address(inner)
        return ref
    except ValueError:
        pass
    if ":::" in inner:
        fixed = inner.replace(":::", "::", 1)
        try:
            IPv6Address(fixed)
            return f"[{fixed}]"
        except ValueError:
            pass
    raise ValueError(f"bad IPv6 reference {ref[:60]!r}")


def check_host(host: str) -> str:
    """Validate a host (hostname / IPv4address / IPv6reference) and return it as it will be kept."""
    if host[:1] == "[":
        if host[-1:] != "]":
            raise ValueError("unterminated IPv6 reference")
        return _ipv6_reference(host)
    if _HOSTNAME_RE.fullmatch(host) is None:
        raise ValueError(f"bad host {host[:60]!r}")
    last = host[-2] if host[-1] == "." and len(host) > 1 else host[-1]
    if last.isdigit() and _IPV4_RE.fullmatch(host) is None:
        raise ValueError(f"bad IPv4 address {host[:60]!r}")
    return host


def parse_port(text: str) -> int:
    if len(text) > 5 or _DIGITS_RE.fullmatch(text) is None:
        raise ValueError(f"bad port {text[:20]!r}")
    port = int(text)
    if not 0 < port <= 65535:
        raise ValueError(f"bad port {text!r}")
    return port


def split_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip(" \t")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("junk after IPv6 reference")
        port_s = rest[1:] if rest else None
    else:
        host, colon, port_s = text.partition(":")
        if not colon:
            port_s = None
    if not host:
        raise ValueError("empty host")
    host = check_host(host)
    return host, (None if port_s is None else parse_port(port_s))


@dataclass(slots=True)
class SipUri:
    """sip: or sips: URI. ``user`` keeps its %-escapes (as received); ``user_unescaped`` decodes them.
    ``params`` hold decoded names (lower-cased) and values; ``str()`` escapes them again."""

    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: str | None = None

    @property
    def user_unescaped(self) -> str | None:
        return None if self.user is None else unquote(self.user, errors="surrogateescape")

    @property
    def transport(self) -> str | None:
        t = self.params.get("transport")
        return t.lower() if t else None

    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.hostport())
        if self.params:
            out.append(format_uri_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


@dataclass(slots=True)
class AbsoluteUri:
    """Any non-SIP URI (tel:, http:, isbn:, ...): kept opaque."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    text = text.strip(" \t")
    scheme, colon, rest = text.partition(":")
    if not colon or _SCHEME_RE.fullmatch(scheme) is None:
        raise ValueError(f"bad URI {text[:60]!r}")
    if _URI_ILLEGAL_RE.search(rest):
        raise ValueError(f"illegal character in URI {text[:60]!r}")
    lscheme = scheme.lower()
    if lscheme != "sip" and lscheme != "sips":
        if not rest:
            raise ValueError("empty URI")
        return AbsoluteUri(lscheme, rest)
    # The user part may hold '?', ';' and '/' but never an unescaped '@' (RFC 3261 §25.1,
    # RFC 4475 intmeth/semiuri), so split the userinfo off first, at the first '@'.
    user = password = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        user, pcolon, pw = userinfo.partition(":")
        if not user:
            raise ValueError("empty user part")
        if pcolon:
            password = pw
    rest, qmark, headers = rest.partition("?")
    hostport, semi, params = rest.partition(";")
    host, port = split_hostport(hostport)
    return SipUri(
        scheme=lscheme,
        host=host,
        user=user,
        password=password,
        port=port,
        params=parse_uri_params(params) if semi else {},
        headers=headers if qmark else None,
    )


@dataclass(slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header parameters."""

    uri: Uri
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        disp = ""
        if self.display is not None:
            d = self.display
            disp = (d if d and is_token_words(d) else '"' + d.replace("\\", "\\\\").replace('"', '\\"') + '"') + " "
        return f"{disp}<{self.uri}>{format_params(self.params)}"


def is_token_words(text: str) -> bool:
    return all(is_token(w) for w in text.split(" ")) and text == text.strip()


def _unquote_string(text: str) -> tuple[str, str]:
    """Parse a quoted-string at the start of ``text``; return (value, remainder)."""
    assert text[0] == '"'
    out = []
    i = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), text[i + 1 :]
        out.append(ch)
        i += 1
    raise ValueError("unterminated quoted string")


def parse_name_addr(text: str) -> NameAddr:
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    display: str | None = None
    if text.startswith('"'):
        display, text = _unquote_string(text)
        text = text.lstrip()
        if not text.startswith("<"):
            raise ValueError("quoted display name without <URI>")
    if "<" in text.split(";", 1)[0] or text.startswith("<"):
        lt = text.find("<")
        if display is None:
            d = text[:lt].strip()
            display = d if d else None
        gt = text.find(">", lt)
        if gt < 0:
            raise ValueError("missing '>'")
        uri = parse_uri(text[lt + 1 : gt])  # parse_uri strips spaces inside <> (liberal, RFC 4475 badaspec)
        rest = text[gt + 1 :].strip()
    else:
        # addr-spec without brackets: everything after the first ';' is a header parameter,
        # and a URI with headers ('?') must be in name-addr form (RFC 3261 §20).
        addr, semi, rest = text.partition(";")
        if "?" in addr or "," in addr:
            raise ValueError("URI with '?' or ',' must be enclosed in <>")
        uri = parse_uri(addr)
        rest = ";" + rest if semi else ""
    params: dict[str, str | None] = {}
    if rest:
        if not rest.startswith(";"):
            raise ValueError(f"junk after address: {rest!r}")
        params = parse_params(rest[1:])
    return NameAddr(uri=uri, display=display, params=params)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    version: str = "2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"SIP/{self.version}/{self.transport} {self.sent_by()}{format_params(self.params)}"


# sent-protocol = protocol-name SLASH protocol-version SLASH transport, LWS allowed around each
# SLASH (RFC 4475 wsinv); ABNF literals are case-insensitive.
_VIA_RE = re.compile(r"[ \t]*([Ss][Ii][Pp])[ \t]*/[ \t]*([0-9]+\.[0-9]+)[ \t]*/[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]+([^ \t].*)", re.S)


def parse_via(text: str) -> Via:
    m = _VIA_RE.fullmatch(text)
    if not m:
        raise ValueError(f"bad Via {text[:60]!r}")
    _, version, transport, rest = m.groups()
    sent_by, semi, params = rest.partition(";")
    host, port = split_hostport(sent_by)
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=parse_params(params) if semi else {},
        version=version,
    )
