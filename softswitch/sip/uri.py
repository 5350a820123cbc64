"""SIP URIs, name-addr values and Via values (RFC 3261 §19, §20, §25).

Parsed objects keep their parameters in order and serialise back faithfully, so a proxy or B2BUA
can forward what it does not understand unchanged. Everything here raises ``ValueError`` on
malformed input; the message parser turns that into a 400.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")
_HOST_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)$")
_PARAM_NAME_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~\[\]/:&+$]+$")
MAX_UINT32 = 2**32 - 1


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not inside a quoted string or <...> (Contact lists, params)."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str, *, strict: bool = True) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` (text without the leading ';'). Names are lower-cased."""
    params: dict[str, str | None] = {}
    if not text.strip():
        if strict:
            raise ValueError("empty parameter")
        return params
    for raw in split_outside_quotes(text, ";"):
        item = raw.strip()
        if not item:
            raise ValueError("empty parameter")
        name, eq, value = item.partition("=")
        name = name.strip()
        if not name or not _PARAM_NAME_RE.match(name):
            raise ValueError(f"bad parameter name {name!r}")
        if eq:
            value = value.strip()
            if not value:
                raise ValueError(f"parameter {name!r} has an empty value")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


def format_params(params: dict[str, str | None]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_hostport(text: str) -> tuple[str, int | None]:
    text = text.strip()
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
    if not host or not _HOST_RE.match(host):
        raise ValueError(f"bad host {host!r}")
    port: int | None = None
    if port_s is not None:
        if not port_s.isdigit() or not 0 < int(port_s) <= 65535:
            raise ValueError(f"bad port {port_s!r}")
        port = int(port_s)
    return host, port


@dataclass(slots=True)
class SipUri:
    """sip: or sips: URI. ``user`` keeps its %-escapes (as received); ``user_unescaped`` decodes them."""

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
        out.append(format_params(self.params))
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
    text = text.strip()
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise ValueError(f"bad URI {text!r}")
    if any(c in rest for c in " \t\r\n<>\""):
        raise ValueError(f"illegal character in URI {text!r}")
    lscheme = scheme.lower()
    if lscheme not in ("sip", "sips"):
        if not rest:
            raise ValueError("empty URI")
        return AbsoluteUri(lscheme, rest)
    # The user part may hold '?', ';' and '/' but never an unescaped '@' (RFC 3261 §25.1,
    # RFC 4475 intmeth/semiuri), so split the userinfo off first, at the first '@'.
    user = password = None
    if "@" in rest:
        userinfo, _, rest = rest.partition("@")
        if not userinfo:
            raise ValueError("empty user part")
        user, pcolon, pw = userinfo.partition(":")
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
        params=parse_params(params) if semi else {},
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


_VIA_RE = re.compile(r"^\s*SIP\s*/\s*([0-9.]+)\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+(.*)$", re.S)


def parse_via(text: str) -> Via:
    m = _VIA_RE.match(text)
    if not m:
        raise ValueError(f"bad Via {text!r}")
    version, transport, rest = m.groups()
    sent_by, semi, params = rest.partition(";")
    host, port = split_hostport(sent_by)
    return Via(
        transport=transport.upper(),
        host=host,
        port=port,
        params=parse_params(params) if semi else {},
        version=version,
    )
