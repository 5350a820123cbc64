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


class ParseError(ValueError):
    """A message that must not be processed. ``status`` is what to answer a request with."""

    def __init__(self, reason: str, status: int = 400, partial: "Message | None" = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial


class Headers:
    """Ordered header fields; names are stored in canonical form, looked up case-insensitively."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()):
        self._items: list[tuple[str, str, str]] = [(canonical_name(n).lower(), canonical_name(n), v) for n, v in items]

    def _add_raw(self, name: str, value: str) -> None:
        canon = canonical_name(name)
        self._items.append((canon.lower(), canon, value))

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical_name(name).lower()
        for k, _, v in self._items:
            if k == key:
                return v
        return default

    def get_lines(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [v for k, _, v in self._items if k == key]

    def get_all(self, name: str) -> list[str]:
        """Every value, with comma-combined lines split for multi-value headers."""
        key = canonical_name(name).lower()
        lines = [v for k, _, v in self._items if k == key]
        if key not in MULTI_VALUE:
            return lines
        out: list[str] = []
        for line in lines:
            if "," in line:
                out.extend(p.strip() for p in split_outside_quotes(line, ","))
            else:
                out.append(line.strip())
        return out

    def count(self, name: str) -> int:
        key = canonical_name(name).lower()
        return sum(1 for k, _, _ in self._items if k == key)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        canon = canonical_name(name)
        item = (canon.lower(), canon, value)
        if first:
            self._items.insert(0, item)
        else:
            self._items.append(item)

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name by one, at the position of the first."""
        canon = canonical_name(name)
        key = canon.lower()
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, canon, value)
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != key]
                return
        self._items.append((key, canon, value))

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._items = [it for it in self._items if it[0] != key]

    def pop_first(self, name: str) -> str | None:
        """Remove the first value (of a possibly comma-combined line) and return it."""
        key = canonical_name(name).lower()
        for i, (k, canon, v) in enumerate(self._items):
            if k == key:
                parts = split_outside_quotes(v, ",") if key in MULTI_VALUE else [v]
                if len(parts) > 1:
                    self._items[i] = (k, canon, ",".join(parts[1:]).strip())
                else:
                    del self._items[i]
                return parts[0].strip()
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


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit() or not is_token(parts[1]):
        raise ValueError(f"bad CSeq {value!r}")
    num = int(parts[0])
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
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")  # bare-LF messages (liberal, RFC 5118 archive form)
    if end >= 0:
        return data[:end], data[end + 2 :]
    # No empty line: the header section is unterminated (RFC 4475 baddn). Take it all as headers.
    return data.rstrip(b"\r\n"), b""


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message. ``stream`` = True when framed from TCP/TLS (Content-Length is
    then mandatory and already used by the framer)."""
    data = data.lstrip(b"\r\n")  # keep-alive CRLFs before a message are allowed (§7.5)
    if not data:
        raise ParseError("empty message")
    head, body = _split_head(data)
    text = head.decode("utf-8", "surrogateescape")
    if "\n " in text or "\n\t" in text:
        # line folding: a line starting with whitespace continues the previous one
        text = _unfold(text)
    lines = text.split("\n")
    start = lines[0].rstrip("\r")
    msg: Request | Response
    if start.startswith("SIP/"):
        msg = _parse_status_line(start)
    else:
        msg = _parse_request_line(start)
    headers = msg.headers
    for raw in lines[1:]:
        line = raw.rstrip("\r") if raw.endswith("\r") else raw
        if not line:
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon or not name or not is_token(name):
            raise ParseError(f"malformed header line {line[:40]!r}", partial=msg)
        headers._add_raw(name, value.strip(" \t"))
    if msg.version.upper() != "SIP/2.0":
        raise ParseError("SIP version not supported", status=505, partial=msg)
    msg.body = _frame_body(msg, body, stream)
    _validate(msg)
    return msg


def _unfold(text: str) -> str:
    out: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and out:
            out[-1] = out[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            out.append(line)
    return "\n".join(out)


def _parse_request_line(line: str) -> Request:
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("malformed Request-Line")
    method, uri, version = parts
    if not is_token(method):
        raise ParseError("malformed method")
    if not version.startswith("SIP/") or not _is_version(version[4:]):
        raise ParseError("malformed SIP-Version")
    req = Request(method=method, uri=uri, version=version)
    if version.upper() != "SIP/2.0":
        return req  # headers are still parsed, so that parse_message can answer 505 (RFC 4475 badvers)
    try:
        req._ruri = parse_uri(uri)
    except ValueError as e:
        raise ParseError(f"malformed Request-URI: {e}", partial=req) from None
    if isinstance(req._ruri, SipUri) and req._ruri.headers is not None:
        raise ParseError("headers are not allowed in a Request-URI", partial=req)  # RFC 4475 escruri
    return req


def _is_version(v: str) -> bool:
    major, dot, minor = v.partition(".")
    return bool(dot) and major.isdigit() and minor.isdigit()


def _parse_status_line(line: str) -> Response:
    version, sp, rest = line.partition(" ")
    code, sp2, reason = rest.partition(" ")
    if not sp or not sp2 or version.upper() != "SIP/2.0":
        raise ParseError("malformed Status-Line")
    if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
        raise ParseError(f"bad status code {code[:12]!r}")
    return Response(status=int(code), reason=reason, version=version)


def _frame_body(msg: Message, body: bytes, stream: bool) -> bytes:
    lengths = msg.headers.get_lines("Content-Length")
    if not lengths:
        if stream:
            raise ParseError("Content-Length is mandatory on stream transports", partial=msg)
        return body
    values = {v.strip() for v in lengths}
    if len(values) != 1:
        raise ParseError("conflicting Content-Length values", partial=msg)
    value = values.pop()
    if not value.isdigit():
        raise ParseError(f"bad Content-Length {value[:20]!r}", partial=msg)
    n = int(value)
    if n > len(body):
        raise ParseError("Content-Length larger than the message body", partial=msg)
    return body[:n]  # octets beyond Content-Length are discarded (§18.3)


def _validate(msg: Message) -> None:
    h = msg.headers
    try:
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            if name not in h:
                raise ValueError(f"missing {name}")
        for name in SINGLETONS:
            if h.count(name) > 1:
                raise ValueError(f"more than one {canonical_name(name)}")
        if not msg.call_id.strip():
            raise ValueError("empty Call-ID")
        vias = msg.vias
        for via in vias:
            if via.version != "2.0":
                raise ValueError("Via version is not 2.0")
        msg.from_, msg.to, msg.cseq  # noqa: B018  (parse and cache)
        mf = h.get("Max-Forwards")
        if mf is not None and (not mf.isdigit() or int(mf) > 255):
            raise ValueError(f"bad Max-Forwards {mf[:20]!r}")
        exp = h.get("Expires")
        if exp is not None and (not exp.isdigit() or int(exp) > MAX_UINT32):
            raise ValueError(f"bad Expires {exp[:20]!r}")
        if isinstance(msg, Request):
            if msg.cseq.method != msg.method:
                raise ValueError("CSeq method does not match the request method")
            if vias[0].branch == "z9hG4bK":
                raise ValueError("Via branch is only the magic cookie")
    except ValueError as e:
        raise ParseError(str(e), partial=msg) from None


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
        v = src.get(name)
        if v is not None:
            if name == "To" and to_tag and "tag" not in _safe_to_params(req):
                v = f"{v};tag={to_tag}"
            h.add(name, v)
    if 100 < status < 300:
        for v in src.get_lines("Record-Route"):
            h.add("Record-Route", v)
    for n, v in extra:
        h.add(n, v)
    resp.body = body
    return resp


def _safe_to_params(req: Request) -> dict:
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
