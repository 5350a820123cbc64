"""SIP message model, parser and serialiser (RFC 3261 §7, §20, §25).

``parse_message(data)`` turns one datagram (or one framed stream message) into a ``Request`` or a
``Response`` and validates what every later layer relies on (Via, From, To, Call-ID, CSeq,
Max-Forwards, Content-Length). Anything else is parsed lazily, when asked for. A message that cannot
be used raises ``ParseError`` carrying the status code to answer with (400 or 505) and, when the
header section was readable, the partially parsed message so that the answer can be built.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .uri import (
    MAX_UINT32,
    NameAddr,
    SipUri,
    Uri,
    Via,
    is_digits,
    is_token,
    parse_name_addr,
    parse_uri,
    parse_via,
    split_outside_quotes,
)

COMPACT_FORMS = {
    "a": "Accept-Contact", "b": "Referred-By", "c": "Content-Type", "d": "Request-Disposition",
    "e": "Content-Encoding", "f": "From", "i": "Call-ID", "j": "Reject-Contact", "k": "Supported",
    "l": "Content-Length", "m": "Contact", "n": "Identity-Info", "o": "Event", "r": "Refer-To",
    "s": "Subject", "t": "To", "u": "Allow-Events", "v": "Via", "x": "Session-Expires", "y": "Identity",
}
_CANONICAL = {
    n.lower(): n
    for n in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact", "Content-Disposition",
        "Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
        "Error-Info", "Event", "Expires", "From", "In-Reply-To", "Max-Forwards", "Min-Expires",
        "MIME-Version", "Organization", "P-Asserted-Identity", "Path", "Priority", "Proxy-Authenticate",
        "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To", "Referred-By",
        "Replaces", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server", "Session-Expires",
        "Subject", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via", "Warning",
        "WWW-Authenticate", "Min-SE", "Subscription-State", "X-Call-Center",
    )
}
# Headers whose values may be combined in one line separated by commas (RFC 3261 §7.3.1).
MULTI_VALUE = frozenset(
    {"via", "contact", "route", "record-route", "allow", "supported", "require", "proxy-require",
     "unsupported", "accept", "accept-encoding", "accept-language", "allow-events", "path", "in-reply-to"}
)
SINGLETONS = ("call-id", "from", "to", "cseq", "max-forwards", "content-length", "content-type", "expires")

REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 301: "Moved Permanently", 302: "Moved Temporarily", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def canonical_name(name: str) -> str:
    low = name.lower()
    if len(low) == 1 and low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    return _CANONICAL.get(low) or name


# Exact header name as written -> (lookup key, canonical name). Deterministic (depends only on the
# name itself), bounded, and only ever filled with names that are valid tokens.
_NAME_CACHE: dict[str, tuple[str, str]] = {}
_NAME_CACHE_MAX = 2048


def _name_info(name: str) -> tuple[str, str]:
    info = _NAME_CACHE.get(name)
    if info is None:
        canon = canonical_name(name)
        info = (canon.lower(), canon)
        if len(_NAME_CACHE) < _NAME_CACHE_MAX and is_token(name):
            _NAME_CACHE[name] = info
    return info


def _key(name: str) -> str:
    info = _NAME_CACHE.get(name)
    return info[0] if info is not None else canonical_name(name).lower()


class ParseError(ValueError):
    """A message that must not be processed. ``status`` is what to answer a request with."""

    def __init__(self, reason: str, status: int = 400, partial: "Request | Response | None" = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial


class Headers:
    """Ordered header fields; names are stored in canonical form, looked up case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str, str]] = [(*_name_info(n), v) for n, v in items]

    def _add_raw(self, name: str, value: str) -> None:
        self._items.append((*_name_info(name), value))

    def get(self, name: str, default: str | None = None) -> str | None:
        key = _key(name)
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_lines(self, name: str) -> list[str]:
        key = _key(name)
        return [v for k, _, v in self._items if k == key]

    def get_all(self, name: str) -> list[str]:
        """Every value, with comma-combined lines split for multi-value headers (commas inside
        quoted strings and <...> do not split)."""
        key = _key(name)
        lines = [v for k, _, v in self._items if k == key]
        if key not in MULTI_VALUE:
            return lines
        out: list[str] = []
        for line in lines:
            if "," in line:
                out.extend(p.strip(" \t") for p in split_outside_quotes(line, ",", strict=False))
            else:
                out.append(line.strip(" \t"))
        return out

    def count(self, name: str) -> int:
        key = _key(name)
        return sum(1 for k, _, _ in self._items if k == key)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        item = (*_name_info(name), value)
        if first:
            self._items.insert(0, item)
        else:
            self._items.append(item)

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, at the position of the first."""
        key, canon = _name_info(name)
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, canon, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, canon, value))

    def remove(self, name: str) -> None:
        key = _key(name)
        self._items = [it for it in self._items if it[0] != key]

    def pop_first(self, name: str) -> str | None:
        """Remove the first value (of a possibly comma-combined line) and return it."""
        key = _key(name)
        for i, (k, canon, v) in enumerate(self._items):
            if k == key:
                parts = split_outside_quotes(v, ",", strict=False) if key in MULTI_VALUE else [v]
                if len(parts) > 1:
                    self._items[i] = (k, canon, ",".join(parts[1:]).strip(" \t"))
                else:
                    del self._items[i]
                return parts[0].strip(" \t")
        return None

    def items(self) -> Iterator[tuple[str, str]]:
        for _, n, v in self._items:
            yield n, v

    def copy(self) -> "Headers":
        h = Headers()
        h._items = list(self._items)
        return h

    def __len__(self) -> int:
        return len(self._items)


@dataclass(slots=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def _uint(text: str) -> int | None:
    """1*DIGIT (ASCII) as an int, leading zeros allowed; None if not digits. Absurdly long numbers
    come back as MAX_UINT32 + 1 (never int() on thousands of digits)."""
    if not is_digits(text):
        return None
    if len(text) > 12:
        text = text.lstrip("0") or "0"
        if len(text) > 12:
            return MAX_UINT32 + 1
    return int(text)


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    num = _uint(parts[0]) if len(parts) == 2 else None
    if num is None or not is_token(parts[1]):
        raise ValueError(f"bad CSeq {value[:40]!r}")
    if num > MAX_UINT32:
        raise ValueError("CSeq number out of range")
    return CSeq(num, parts[1])


@dataclass(slots=True, eq=False)
class Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    _vias: list[Via] | None = field(default=None, repr=False)
    _from: NameAddr | None = field(default=None, repr=False)
    _to: NameAddr | None = field(default=None, repr=False)
    _cseq: CSeq | None = field(default=None, repr=False)

    # Parsed views of the headers every layer needs. They are cached; call ``invalidate()`` after
    # changing the underlying header text.
    @property
    def vias(self) -> list[Via]:
        if self._vias is None:
            self._vias = [parse_via(v) for v in self.headers.get_all("Via")]
        return self._vias

    @property
    def top_via(self) -> Via:
        vias = self.vias
        if not vias:
            raise ValueError("no Via")
        return vias[0]

    @property
    def from_(self) -> NameAddr:
        if self._from is None:
            self._from = parse_name_addr(self.headers.get("From") or "")
        return self._from

    @property
    def to(self) -> NameAddr:
        if self._to is None:
            self._to = parse_name_addr(self.headers.get("To") or "")
        return self._to

    @property
    def cseq(self) -> CSeq:
        if self._cseq is None:
            self._cseq = parse_cseq(self.headers.get("CSeq") or "")
        return self._cseq

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    def invalidate(self) -> None:
        self._vias = self._from = self._to = self._cseq = None

    def _start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        parts = [self._start_line(), "\r\n"]
        for k, n, v in self.headers._items:
            if k != "content-length":
                parts += (n, ": ", v, "\r\n")
        parts += ("Content-Length: ", str(len(self.body)), "\r\n\r\n")
        return "".join(parts).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.serialize()


@dataclass(slots=True, eq=False)
class Request(Message):
    method: str = ""
    uri: str = ""
    version: str = "SIP/2.0"
    _ruri: Uri | None = field(default=None, repr=False)

    @property
    def ruri(self) -> Uri:
        if self._ruri is None:
            self._ruri = parse_uri(self.uri)
        return self._ruri

    def set_uri(self, uri: str | Uri) -> None:
        self.uri = str(uri)
        self._ruri = None

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"


@dataclass(slots=True, eq=False)
class Response(Message):
    status: int = 0
    reason: str = ""
    version: str = "SIP/2.0"

    def _start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"


# ----------------------------------------------------------------------------------------- parsing

def _split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line. Lines end in CRLF or (liberally, RFC 5118's archive form) in a
    bare LF, so the empty line is the first "\n\r\n" or "\n\n"."""
    crlf = data.find(b"\n\r\n")
    lf = data.find(b"\n\n", 0, crlf if crlf >= 0 else len(data))
    if lf >= 0:
        end, start = lf, lf + 2
    elif crlf >= 0:
        end, start = crlf, crlf + 3
    else:
        # No empty line: the header section is unterminated (RFC 4475 baddn). Take it all as headers.
        return data.rstrip(b"\r\n"), b""
    if end and data[end - 1] == 13:  # CR of the last header line's CRLF
        end -= 1
    return data[:end], data[start:]


# Methods RFC 3261 and its extensions define; a request whose CSeq method does not match an
# unknown method is answered 501 rather than 400 (RFC 4475 mismatch02).
KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE", "NOTIFY",
     "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)
SINGLETON_KEYS = frozenset(SINGLETONS)
_MANDATORY = (("via", "Via"), ("from", "From"), ("to", "To"), ("call-id", "Call-ID"), ("cseq", "CSeq"))


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message. ``stream`` = True when framed from TCP/TLS (Content-Length is
    then mandatory and already used by the framer)."""
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed (§7.5)
    if not data:
        raise ParseError("empty message")
    head, body = _split_head(data)
    text = head.decode("utf-8", "surrogateescape")
    bare_cr = False
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        bare_cr = "\r" in text
    if "\n " in text or "\n\t" in text:
        text = _unfold(text)  # line folding: a line starting with SP/HTAB continues the previous one
    lines = text.split("\n")
    start = lines[0]
    msg: Request | Response
    error: str | None = None  # the first defect; raised once every header line has been read, so
    # that the partial message carries Via/From/To/Call-ID/CSeq and the element can answer it
    if start[:4].upper() == "SIP/":
        msg = _parse_status_line(start)
    else:
        msg, error = _parse_request_line(start)
    items = msg.headers._items
    cache = _NAME_CACHE
    for i in range(1, len(lines)):
        line = lines[i]
        name, colon, value = line.partition(":")
        info = cache.get(name) if colon else None
        if info is None:
            name = name.rstrip(" \t")
            if not colon or not name or not is_token(name):
                if line and error is None:
                    error = f"malformed header line {line[:40]!r}"
                continue
            info = _name_info(name)
        items.append((info[0], info[1], value.strip(" \t")))
    if error is None and bare_cr:
        error = "bare CR in the header section"
    if error is not None:
        raise ParseError(error, partial=msg)
    if msg.version != "SIP/2.0" and msg.version.upper() != "SIP/2.0":
        raise ParseError("SIP version not supported", status=505, partial=msg)
    # One pass: the first value of each header field, and the first singleton seen twice.
    first: dict[str, str] = {}
    dup = None
    for k, _, v in items:
        if k in first:
            if dup is None and k in SINGLETON_KEYS:
                dup = k
        else:
            first[k] = v
    msg.body = _frame_body(msg, body, stream, first, dup)
    _validate(msg, first, dup)
    return msg


def _unfold(text: str) -> str:
    out: list[str] = []
    for line in text.split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = out[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            out.append(line)
    return "\n".join(out)


def _parse_request_line(line: str) -> tuple[Request, str | None]:
    """The Request-Line, and what is wrong with it (None if nothing). Only a line that does not
    even start with a method token raises at once: there is no request to answer then."""
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        words = line.split()
        if not words or not is_token(words[0]):
            raise ParseError("malformed Request-Line")
        # RFC 4475 lwsstart / trws / lwsruri: rejected, but with the headers, so that a 400 can go back
        return Request(method=words[0], uri=words[1] if len(words) > 1 else ""), "malformed Request-Line"
    method, uri, version = parts
    if not is_token(method):
        raise ParseError("malformed method")
    if version[:4].upper() != "SIP/" or not _is_version(version[4:]):
        return Request(method=method, uri=uri), "malformed SIP-Version"
    req = Request(method=method, uri=uri, version=version)
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        return req, None  # headers are still parsed, so that parse_message can answer 505 (RFC 4475 badvers)
    try:
        req._ruri = parse_uri(uri)
    except ValueError as e:
        return req, f"malformed Request-URI: {e}"  # RFC 4475 ltgtruri
    if isinstance(req._ruri, SipUri) and req._ruri.headers is not None:
        return req, "headers are not allowed in a Request-URI"  # RFC 4475 escruri
    return req, None


def _is_version(v: str) -> bool:
    major, dot, minor = v.partition(".")
    return bool(dot) and is_digits(major) and is_digits(minor)


def _parse_status_line(line: str) -> Response:
    version, sp, rest = line.partition(" ")
    code, _, reason = rest.partition(" ")  # liberal: "SIP/2.0 100" without the SP is accepted
    if not sp or version.upper() != "SIP/2.0":
        raise ParseError("malformed Status-Line")
    if len(code) != 3 or not is_digits(code) or not 100 <= int(code) <= 699:
        raise ParseError(f"bad status code {code[:12]!r}")
    return Response(status=int(code), reason=reason, version=version)


def _frame_body(msg: Request | Response, body: bytes, stream: bool, first: dict[str, str], dup: str | None) -> bytes:
    value = first.get("content-length")
    if value is None:
        if stream:
            raise ParseError("Content-Length is mandatory on stream transports", partial=msg)
        return body  # UDP: the body is every octet after the empty line (RFC 4475 inv2543)
    if dup == "content-length" or (dup is not None and msg.headers.count("Content-Length") > 1):
        raise ParseError("more than one Content-Length", partial=msg)  # RFC 4475 mcl01
    n = _uint(value)
    if n is None:
        raise ParseError(f"bad Content-Length {value[:20]!r}", partial=msg)  # RFC 4475 ncl
    if n > len(body):
        raise ParseError("Content-Length larger than the message body", partial=msg)  # RFC 4475 clerr
    return body if n == len(body) else body[:n]  # octets beyond Content-Length are discarded (§18.3)


def _validate(msg: Request | Response, first: dict[str, str], dup: str | None) -> None:
    try:
        for key, name in _MANDATORY:
            if key not in first:
                raise ValueError(f"missing {name}")
        if dup is not None:
            raise ValueError(f"more than one {canonical_name(dup)}")  # RFC 4475 multi01
        if not first["call-id"]:
            raise ValueError("empty Call-ID")
        for via in msg.vias:
            if via.version != "2.0":
                raise ValueError("Via version is not 2.0")
        msg._from = parse_name_addr(first["from"])
        msg._to = parse_name_addr(first["to"])
        msg._cseq = cseq = parse_cseq(first["cseq"])
        mf = first.get("max-forwards")
        if mf is not None and ((n := _uint(mf)) is None or n > 255):
            raise ValueError(f"bad Max-Forwards {mf[:20]!r}")
        exp = first.get("expires")
        if exp is not None and ((n := _uint(exp)) is None or n > MAX_UINT32):
            raise ValueError(f"bad Expires {exp[:20]!r}")
    except ValueError as e:
        raise ParseError(str(e), partial=msg) from None
    if isinstance(msg, Request) and cseq.method != msg.method:
        # RFC 4475 mismatch01 (400); mismatch02: an unknown method is answered 501 first.
        status = 400 if msg.method in KNOWN_METHODS else 501
        raise ParseError("CSeq method does not match the request method", status=status, partial=msg)


# --------------------------------------------------------------------------------------- building

def make_response(
    req: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``req`` per RFC 3261 §8.2.6: Via, From, To (+tag), Call-ID, CSeq copied."""
    resp = Response(status=status, reason=reason or REASONS.get(status, "Unknown"))
    h = resp.headers
    src = req.headers
    for n, v in src.items():
        low = n.lower()
        if low == "via":
            h.add("Via", v)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = src.get(name)
        if value is not None:
            if name == "To" and to_tag and "tag" not in _safe_to_params(req):
                value = f"{value};tag={to_tag}"
            h.add(name, value)
    if 100 < status < 300:
        for v in src.get_lines("Record-Route"):
            h.add("Record-Route", v)
    for n, v in extra:
        h.add(n, v)
    resp.body = body
    return resp


def _safe_to_params(req: Request) -> dict[str, str | None]:
    try:
        return req.to.params
    except ValueError:
        return {}


def new_request(method: str, uri: str | Uri, headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> Request:
    req = Request(method=method, uri=str(uri))
    for n, v in headers:
        req.headers.add(n, v)
    req.body = body
    return req


__all__ = [
    "CSeq", "Headers", "Message", "NameAddr", "ParseError", "REASONS", "Request", "Response", "SipUri",
    "Via", "canonical_name", "make_response", "new_request", "parse_cseq", "parse_message",
]
