"""Cheap checks on a raw SIP message before it is parsed (issue 11: a maximal message cost ~9 ms to parse).

A message within ``max_message_size`` may still hold thousands of header lines or Via entries, each of
which the full parser turns into objects. ``over_limits`` counts them with a few C-speed byte scans of the
header section and names the first limit exceeded; ``reply_head`` cuts the message down to the few
headers a stateless error response needs, so even the refusal costs next to nothing.
"""
from __future__ import annotations

import re

__all__ = ["over_limits", "reply_head"]

_VIA_LINE = re.compile(rb"^(?:via|v)[ \t]*:([^\n]*)", re.I | re.M)
_NEEDED = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:", re.I)
_CANON = {b"v": b"via", b"f": b"from", b"t": b"to", b"i": b"call-id"}


def _head(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if end < 0 or (0 <= lf < end):
        end = lf
    return data if end < 0 else data[:end]


def over_limits(data: bytes, max_headers: int, max_via: int) -> str | None:
    """Why this message must be refused unparsed ("too many header fields", "too many Via entries"), or
    None. Folded continuation lines count as lines: a header section that needs thousands of them is
    refused as well."""
    head = _head(data)
    if head.count(b"\n") > max_headers:
        return f"Too Many Header Fields (more than {max_headers})"
    if head.count(b"ia") + head.count(b"IA") + head.count(b"\nv") + head.count(b"\nV") == 0:
        return None
    vias = 0
    for m in _VIA_LINE.finditer(head):
        vias += 1 + m.group(1).count(b",")
        if vias > max_via:
            return f"Too Many Via Entries (more than {max_via})"
    return None


def reply_head(data: bytes, max_lines: int = 64) -> bytes | None:
    """The start line and the first Via, From, To, Call-ID and CSeq (within the first ``max_lines``
    lines) as a message of their own, enough to answer the request with an error; None if they are not
    all there."""
    lines = _head(data).split(b"\n", max_lines + 1)[: max_lines + 1]
    if not lines:
        return None
    out = [lines[0].rstrip(b"\r")]
    seen: set[bytes] = set()
    for line in lines[1:]:
        m = _NEEDED.match(line)
        if m is None:
            continue
        name = m.group(1).lower()
        name = _CANON.get(name, name)
        if name in seen:
            continue
        seen.add(name)
        value = line[m.end():].rstrip(b"\r")
        if name == b"via":
            value = value.split(b",", 1)[0]
        out.append(name + b":" + value)
    if len(seen) < 5:
        return None
    return b"\r\n".join(out) + b"\r\nContent-Length: 0\r\n\r\n"
