"""Stream framing: messages split by Content-Length, keep-alives, and the errors that close a connection."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.sip.framing import KEEPALIVE, FramingError, KeepAlive, StreamFramer
from softswitch.sip.message import Request, Response, parse_message


def msg(body: bytes = b"", *, cl: str | None = None, name: str = "Content-Length", method: str = "OPTIONS") -> bytes:
    head = (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@example.com>;tag=1\r\n"
        "To: <sip:bob@example.com>\r\n"
        "Call-ID: abc@192.0.2.1\r\n"
        f"CSeq: 1 {method}\r\n"
    )
    if cl is None:
        cl = str(len(body))
    if cl != "omit":
        head += f"{name}: {cl}\r\n"
    return head.encode() + b"\r\n" + body


RESP = (b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n")


def test_single_message_with_body():
    body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n\r\n"  # a blank line inside the body must not confuse it
    m = msg(body, method="INVITE")
    f = StreamFramer()
    assert f.feed(m) == [m]
    parsed = parse_message(m, stream=True)
    assert isinstance(parsed, Request) and parsed.body == body
    assert f.buffered == 0


def test_several_messages_in_one_chunk_and_a_partial_tail():
    a, b, c = msg(b"one"), RESP, msg(b"three")
    f = StreamFramer()
    assert f.feed(a + b + c[:10]) == [a, b]
    assert f.buffered == 10
    assert f.feed(c[10:]) == [c]
    assert isinstance(parse_message(b, stream=True), Response)


def test_byte_by_byte_feeding():
    stream = b"\r\n" + msg(b"hello") + b"\r\n\r\n" + RESP + msg(b"x" * 300, name="content-LENGTH")
    f = StreamFramer()
    out: list = []
    for i in range(len(stream)):
        out += f.feed(stream[i : i + 1])
    assert out == [msg(b"hello"), KEEPALIVE, RESP, msg(b"x" * 300, name="content-LENGTH")]
    assert f.buffered == 0
    for m in (out[0], out[2], out[3]):
        parse_message(m, stream=True)


@pytest.mark.parametrize("cut", range(1, 40))
def test_split_at_every_boundary_of_two_chunks(cut):
    stream = msg(b"abc") + RESP
    f = StreamFramer()
    out = f.feed(stream[:cut]) + f.feed(stream[cut:])
    assert out == [msg(b"abc"), RESP]


def test_keepalive_ping_and_lone_crlfs():
    f = StreamFramer()
    assert f.feed(b"\r\n\r\n") == [KEEPALIVE]
    assert isinstance(KEEPALIVE, KeepAlive)
    assert f.feed(b"\r\n") == []            # could still become a ping
    assert f.feed(b"\r\n") == [KEEPALIVE]
    assert f.feed(b"\r\n") == []
    m = msg()
    assert f.feed(m) == [m]                 # the lone CRLF before it is skipped
    assert f.feed(b"\r\n\r\n\r\n\r\n") == [KEEPALIVE, KEEPALIVE]
    assert f.feed(b"\r\n" + m) == [m]


def test_compact_content_length_and_case_insensitivity():
    for name in ("l", "L", "content-length", "CONTENT-LENGTH", "Content-Length"):
        m = msg(b"12345", name=name)
        f = StreamFramer()
        assert f.feed(m + m) == [m, m]


def test_content_length_with_whitespace_and_duplicates_that_agree():
    m = msg(b"ab", cl="  2 ")
    assert StreamFramer().feed(m) == [m]
    dup = msg(b"ab").replace(b"\r\n\r\n", b"\r\nl: 2\r\n\r\n", 1)
    assert StreamFramer().feed(dup) == [dup]


def test_bare_lf_header_section():
    m = msg(b"hi").replace(b"\r\n", b"\n")
    m = m[: m.index(b"\n\n") + 2] + b"hi"
    f = StreamFramer()
    assert f.feed(m + m) == [m, m]
    assert parse_message(m, stream=True).body == b"hi"


def test_lf_header_lines_with_a_crlf_empty_line():
    """The empty line is the first "\n\r\n" or "\n\n", the same rule as parse_message."""
    body = b"\r\nxy"
    head = msg(body).split(b"\r\n\r\n")[0].replace(b"\r\n", b"\n")
    m = head + b"\n\r\n" + body
    f = StreamFramer()
    out: list = []
    for i in range(len(m)):
        out += f.feed(m[i : i + 1])
    assert out == [m]
    assert parse_message(m, stream=True).body == body


@pytest.mark.parametrize("cl", ["omit", "-1", "abc", "1.5", "+3", "", "0x10"])
def test_missing_or_invalid_content_length(cl):
    f = StreamFramer()
    with pytest.raises(FramingError):
        f.feed(msg(b"", cl=cl))
    with pytest.raises(FramingError):  # the connection is unusable from now on
        f.feed(msg())


def test_conflicting_content_lengths():
    m = msg(b"ab").replace(b"\r\n\r\n", b"\r\nl: 3\r\n\r\n", 1)
    with pytest.raises(FramingError):
        StreamFramer().feed(m)


def test_body_longer_than_max():
    f = StreamFramer(max_message=1000)
    with pytest.raises(FramingError):
        f.feed(msg(b"", cl="1001"))
    with pytest.raises(FramingError):
        StreamFramer().feed(msg(b"", cl="9" * 40))


def test_header_without_end_longer_than_max():
    f = StreamFramer(max_message=500)
    f.feed(b"INVITE sip:x@y SIP/2.0\r\n")
    with pytest.raises(FramingError):
        for _ in range(100):
            f.feed(b"X-Junk: " + b"a" * 20 + b"\r\n")
    with pytest.raises(FramingError):
        StreamFramer(max_message=100).feed(msg(b"") )  # complete but still longer than allowed


def test_byte_by_byte_large_header_is_linear():
    """Feeding one byte at a time must not rescan the whole buffer each time."""
    m = msg(b"", method="INVITE").replace(b"Max-Forwards", b"X-Pad: " + b"p" * 30000 + b"\r\nMax-Forwards")
    f = StreamFramer()
    out: list = []
    for i in range(len(m)):
        out += f.feed(m[i : i + 1])
    assert out == [m]


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(st.one_of(st.binary(max_size=80), st.just(None)), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_any_chunking_gives_the_same_messages(items, cuts):
    """Messages (random bodies, None = keep-alive ping) split at arbitrary points frame identically."""
    expected: list = []
    stream = b""
    for body in items:
        if body is None:
            stream += b"\r\n\r\n"
            expected.append(KEEPALIVE)
        else:
            m = msg(body)
            stream += m
            expected.append(m)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    f = StreamFramer()
    out: list = []
    prev = 0
    for p in points + [len(stream)]:
        out += f.feed(stream[prev:p])
        prev = p
    assert out == expected and f.buffered == 0
