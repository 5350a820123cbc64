"""A cheap look at a SIP datagram: enough to rank it, never enough to serve it.

Under overload the switch must decide what a datagram is worth before paying for it: the full parser
(``softswitch.sip.message``) validates every header so that a bad message gets its 400, and costs about
half of a REGISTER's ~220 µs. ``peek`` runs one regular-expression pass over the header block (a few
microseconds) and keeps what admission needs: request or response, the method, the Request-URI's user,
the top Via branch, Call-ID, whether To has a tag, the To user, the CSeq, whether the request carries
credentials. It never raises and never validates: a datagram it cannot read is simply ``Peek(ok=False)``
and goes to the full parser like any other when there is time for it.

``reject`` builds a stateless 503 from the raw bytes (Via, From, To, Call-ID and CSeq copied verbatim,
a To tag added, Retry-After), the cheapest correct answer that ends the client's transaction: a phone
told to come back in N seconds stops retransmitting and does come back later (RFC 3261 §21.5.4).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Peek", "answer", "peek", "reject"]

# Header names admission reads, long and compact forms (RFC 3261 §7.3.3); one pass over the header block.
_HEADER = re.compile(
    rb"^(via|v|to|t|call-id|i|cseq|authorization|proxy-authorization)[ \t]*:[ \t]*([^\r\n]*)", re.I | re.M)
_ANSWER_HEADERS = re.compile(rb"^(?:via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[^\r\n]*\r?\n", re.I | re.M)
_TAG = re.compile(rb";[ \t]*tag[ \t]*=[ \t]*([^;, \t]+)", re.I)
_BRANCH = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;, \t]+)", re.I)
_USER = re.compile(rb"sips?:([^@;>:\s]+)@", re.I)

_LONG = {b"v": b"via", b"t": b"to", b"i": b"call-id"}


@dataclass(frozen=True, slots=True)
class Peek:
    """What admission knows of a datagram. Strings are ASCII-decoded as sent (no unescaping)."""

    ok: bool                     # the first line and the headers admission needs were found
    response: bool = False       # a SIP response (the switch's own transactions: always wanted)
    method: str = ""             # request method (upper case as sent), "" for a response
    ruri_user: str = ""          # user part of the Request-URI (the dialled number), "" if none
    branch: str = ""             # top Via branch ("" if none: an RFC 2543 peer)
    sent_by: tuple[str, int | None] = ("", None)   # top Via host (lower case) and port, as transactions key it
    call_id: str = ""
    to_tag: str = ""             # the To tag ("" if none): a request with one is in a dialog
    to_user: str = ""            # user part of the To URI (a REGISTER's address-of-record)
    cseq: int = -1
    cseq_method: str = ""
    credentials: bool = False    # Authorization or Proxy-Authorization: the answer to our challenge

    @property
    def key(self) -> tuple[str, str]:
        """Identifies the transaction for retransmission matching: (branch, method), ACK as INVITE (the ACK
        of a non-2xx final response shares the INVITE's branch)."""
        return (self.branch, "INVITE" if self.method == "ACK" else self.method)


NOTHING = Peek(ok=False)


def peek(data: bytes) -> Peek:
    """The first line and a handful of headers of ``data``; ``Peek(ok=False)`` if they are not there."""
    eol = data.find(b"\r\n")
    if eol <= 0:
        return NOTHING
    end = data.find(b"\r\n\r\n", eol)
    head = data[eol + 2: end if end >= 0 else len(data)]
    first = data[:eol]
    if first.startswith(b"SIP/2.0 "):
        return Peek(ok=True, response=True, call_id=_call_id(head))
    parts = first.split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0" or not parts[0].isalpha():
        return NOTHING
    method = parts[0].decode("ascii")
    m = _USER.match(parts[1])
    ruri_user = m.group(1).decode("ascii", "replace") if m else ""
    branch = call_id = to_user = cseq_method = ""
    sent_by: tuple[str, int | None] = ("", None)
    to_tag = ""
    credentials = seen_via = seen_to = False
    cseq = -1
    for name, value in _HEADER.findall(head):
        name = name.lower()
        name = _LONG.get(name, name)
        if name == b"via":
            if not seen_via:
                seen_via = True
                b = _BRANCH.search(value)
                branch = b.group(1).decode("ascii", "replace") if b else ""
                sent_by = _sent_by(value)
        elif name == b"to":
            if not seen_to:
                seen_to = True
                t = _TAG.search(value)
                to_tag = t.group(1).decode("ascii", "replace") if t else ""
                u = _USER.search(value)
                to_user = u.group(1).decode("ascii", "replace") if u else ""
        elif name == b"call-id":
            call_id = value.strip().decode("ascii", "replace")
        elif name == b"cseq":
            n, _, meth = value.strip().partition(b" ")
            if n.isdigit():
                cseq = int(n)
            cseq_method = meth.strip().decode("ascii", "replace")
        else:
            credentials = True
    if not (seen_via and seen_to and call_id and cseq >= 0):
        return NOTHING
    return Peek(ok=True, method=method, ruri_user=ruri_user, branch=branch, sent_by=sent_by, call_id=call_id,
                to_tag=to_tag,
                to_user=to_user, cseq=cseq, cseq_method=cseq_method, credentials=credentials)


def _sent_by(via: bytes) -> tuple[str, int | None]:
    """Host (lower case, IPv6 in brackets) and port of a Via value's sent-by, as ``sip.uri.parse_via`` reads
    them; ("", None) when unreadable (the transaction layer then finds nothing: no harm)."""
    parts = via.split(None, 1)
    if len(parts) != 2:
        return ("", None)
    hostport = parts[1].split(b";", 1)[0].strip().decode("ascii", "replace").lower()
    if hostport.startswith("["):
        host, _, rest = hostport.partition("]")
        host += "]"
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hostport.partition(":")
    port = port.strip()
    return (host.strip(), int(port) if port.isdigit() else None)


def _call_id(head: bytes) -> str:
    for m in _HEADER.finditer(head):
        if m.group(1).lower() in (b"call-id", b"i"):
            return m.group(2).strip().decode("ascii", "replace")
    return ""


def reject(data: bytes, retry_after: int, tag: str) -> bytes | None:
    """A 503 answering the request ``data`` (To tag ``tag`` unless it has one), Retry-After ``retry_after``
    seconds; None for an ACK or a request without Via."""
    return answer(data, 503, "Service Unavailable", tag, b"Retry-After: %d\r\n" % retry_after)


def answer(data: bytes, status: int, reason: str, tag: str = "", extra: bytes = b"") -> bytes | None:
    """A response to the request ``data`` built from its raw header lines (Via, From, To, Call-ID, CSeq),
    adding ``tag`` to To when it has none; None if ``data`` is an ACK (never answered) or has no Via
    (nowhere to send an answer)."""
    if data.startswith(b"ACK "):
        return None
    end = data.find(b"\r\n\r\n")
    head = data[: end + 2] if end >= 0 else data
    lines = _ANSWER_HEADERS.findall(head)
    if not any(line[:1] in b"vV" for line in lines):
        return None
    out = [f"SIP/2.0 {status} {reason}\r\n".encode("ascii")]
    for line in lines:
        if not line.endswith(b"\r\n"):
            line = line.rstrip(b"\r\n") + b"\r\n"
        if tag and line[:1] in b"tT" and _TAG.search(line) is None:
            line = line[:-2] + b";tag=" + tag.encode("ascii") + b"\r\n"
        out.append(line)
    out.append(extra + b"Content-Length: 0\r\n\r\n")
    return b"".join(out)
