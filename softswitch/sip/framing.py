"""Stream (TCP/TLS) framing of SIP messages, sans-IO (RFC 3261 §18.3, RFC 5626 §3.5.1).

A stream has no datagram boundaries, so the end of a message is found from its header section and
its mandatory Content-Length. The framer only looks at what framing needs (the blank line and
Content-Length); everything else is left to ``parse_message(m, stream=True)``.
"""
from __future__ import annotations

from dataclasses import dataclass

_PING = b"\r\n\r\n"
_MAX_LENGTH_DIGITS = 10


class FramingError(Exception):
    """The stream cannot be framed any further: the edge must close the connection."""


@dataclass(frozen=True)
class KeepAlive:
    """An RFC 5626 keep-alive "ping" (CRLFCRLF) between messages: the edge answers CRLF ("pong")."""


KEEPALIVE = KeepAlive()


class StreamFramer:
    """Splits a byte stream into SIP messages by Content-Length (RFC 3261 §18.3). Content-Length is
    mandatory on streams."""

    def __init__(self, max_message: int = 65535):
        self.max_message = max_message
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the header section
        self._need: int | None = None  # total length of the current message once its header is known
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | KeepAlive]:
        """Add received bytes; return every message (and keep-alive ping) now complete, in order."""
        if self._error is not None:
            raise FramingError(self._error)
        buf = self._buf
        buf += data
        out: list[bytes | KeepAlive] = []
        try:
            while True:
                if self._need is not None:
                    if len(buf) < self._need:
                        break
                    out.append(bytes(buf[: self._need]))
                    del buf[: self._need]
                    self._need = None
                    self._scan = 0
                    continue
                if not self._skip_crlfs(out):
                    break  # only a possible start of a ping so far
                if not buf:
                    break
                if not self._find_header_end():
                    break
        except FramingError as e:
            self._error = str(e)
            buf.clear()
            raise
        return out

    def _skip_crlfs(self, out: list[bytes | KeepAlive]) -> bool:
        """Consume pings and lone CRLFs before a message. False when more bytes are needed to tell."""
        buf = self._buf
        while buf and buf[0] in b"\r\n":
            if buf[:4] == _PING:
                out.append(KEEPALIVE)
                del buf[:4]
            elif len(buf) < 4 and _PING.startswith(bytes(buf)):
                return False  # could still become a ping
            elif buf[:2] == b"\r\n":
                del buf[:2]  # lone CRLF (e.g. a pong or a stray line end): ignored (§7.5)
            elif buf[:1] == b"\n":
                del buf[:1]
            else:
                return True  # a lone CR followed by something else: let the parser reject it
        return True

    def _find_header_end(self) -> bool:
        """Locate the blank line and read Content-Length; False when the header is incomplete."""
        buf = self._buf
        start = self._scan
        # The empty line is the first "\n\r\n" or "\n\n": lines end in CRLF or, liberally, in a
        # bare LF (the same rule parse_message uses, so both agree on where the body starts).
        crlf = buf.find(b"\n\r\n", start)
        lf = buf.find(b"\n\n", start, crlf + 1 if crlf >= 0 else len(buf))
        found = [(i, n) for i, n in ((lf, 2), (crlf, 3)) if i >= 0]
        if not found:
            if len(buf) > self.max_message:
                raise FramingError("header section too long")
            self._scan = max(0, len(buf) - 2)
            return False
        pos, sep = min(found)
        head_len = pos + sep
        if head_len > self.max_message:
            raise FramingError("header section too long")
        end = pos - 1 if pos and buf[pos - 1] == 13 else pos  # CR of the last line's CRLF
        length = _content_length(bytes(buf[:end]))
        if length > self.max_message:
            raise FramingError("body too long")
        self._need = head_len + length
        return True


def _content_length(head: bytes) -> int:
    """Content-Length (or compact ``l``) from a header section; every copy must agree."""
    text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")[1:]  # skip the start line
    values: set[str] = set()
    current: str | None = None  # value of a Content-Length line being continued by folding
    for line in lines:
        if line[:1] in (" ", "\t"):
            if current is not None:
                current += " " + line.strip(" \t")
            continue
        if current is not None:
            values.add(current.strip(" \t"))
            current = None
        name, colon, value = line.partition(":")
        if colon and name.strip(" \t").lower() in ("content-length", "l"):
            current = value
    if current is not None:
        values.add(current.strip(" \t"))
    if not values:
        raise FramingError("Content-Length is mandatory on stream transports")
    if len(values) > 1:
        raise FramingError("conflicting Content-Length values")
    value = values.pop()
    if not value or not value.isascii() or not value.isdigit():
        raise FramingError(f"invalid Content-Length {value[:20]!r}")
    if len(value.lstrip("0")) > _MAX_LENGTH_DIGITS:
        raise FramingError("body too long")
    return int(value)


__all__ = ["FramingError", "KEEPALIVE", "KeepAlive", "StreamFramer"]
