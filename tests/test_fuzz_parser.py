"""Property-based fuzzing of the SIP parser and the switch core (hypothesis).

Random bytes and mutated torture-test messages (RFC 4475 / RFC 5118 corpus in ../shared/conformance:
byte flips, truncation, duplicated header lines, CRLF games, huge numbers, folding, junk) are thrown at
``parse_message`` and ``SwitchCore.receive``:

* the parser raises nothing but ``ParseError`` (with a 4xx/5xx status), on datagrams and on streams;
* what it accepts serialises and parses back to the same message, and the serialisation is stable;
* the core never raises, logs no error, and answers a datagram at most once (and never a response);
* well-formed requests built from random tokens are always accepted with the values they were built from.

Kept fast: a few hundred examples per property, no deadline.
"""
from __future__ import annotations

import logging
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from softswitch.sip.message import ParseError, Request, Response, parse_message
from softswitch.sip.transaction import Peer, Send

from .conformance_corpus import all_cases
from .core_harness import make_core

CORPUS = [c.data for c in all_cases()]
VALID = [c.data for c in all_cases() if c.m["parse"] == "accept"]
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PEER = Peer("udp", "192.0.2.77", 5070)


# ------------------------------------------------------------------------------- mutations

def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


# Text made of what SIP values are made of: URIs, IPv6 references, params, quotes, escapes.
_sip_text = st.lists(st.sampled_from(
    [b"sip:", b"sips:", b"tel:", b"user", b"@", b"example.com", b"192.0.2.1", b"[", b"]", b"2001:db8::1", b"::",
     b":", b"5060", b"99999999", b";", b"=", b"tag", b"branch", b"z9hG4bK", b"lr", b"transport=tcp", b"?",
     b"&", b"%", b"%41", b"%0", b"<", b">", b'"', b"\\", b",", b" ", b"\t", b"SIP/2.0/UDP", b"SIP / 2.0 /",
     b"received", b"rport", b"maddr", b"-", b"*", b"0", b"INVITE", b"q=0.5", b"expires=", b"Digest",
     b"\xc3\xa9", b"\xff"]), max_size=25).map(b"".join)


@st.composite
def mutated(draw, pool: list[bytes] = CORPUS) -> bytes:
    data = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(
            ["flip", "truncate", "dup_header", "drop_line", "swap_lines", "crlf", "huge_number",
             "insert", "fold", "nul", "utf8", "value", "ruri", "auth"]))
        n = len(data)
        if n == 0:
            data = bytearray(draw(st.binary(max_size=40)))
            continue
        pos = draw(st.integers(0, n - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=12))
        elif op == "nul":
            data[pos:pos] = b"\x00"
        elif op == "utf8":
            data[pos:pos] = draw(st.sampled_from(["é", "\u2028", "\ufeff", "работа", "\U0001F600"])).encode()
        elif op == "auth":  # a Digest-shaped credential with fuzzed parameters
            params = [b'username="1001"', b'realm="callcenter.local"', b'nonce="' + draw(_sip_text) + b'"',
                      b'uri="sip:1002@callcenter.local"', b'response="' + b"0" * 32 + b'"', b"algorithm=MD5",
                      b"qop=auth", b"nc=00000001", b'cnonce="x"', b'opaque="' + draw(_sip_text) + b'"']
            params = draw(st.lists(st.sampled_from(params + [draw(_sip_text)]), max_size=8))
            name = draw(st.sampled_from([b"Authorization", b"Proxy-Authorization"]))
            value = draw(st.sampled_from([b"Digest ", b"digest  ", b"Basic ", b""])) + b", ".join(params)
            i = bytes(data).find(b"\r\n")
            if i > 0:
                data[i + 2:i + 2] = name + b": " + value + b"\r\n"
        elif op in ("value", "ruri"):
            head, sep, body = bytes(data).partition(b"\r\n\r\n")
            lines = _lines(head)
            text = draw(_sip_text)
            if op == "ruri":
                parts = lines[0].split(b" ")
                if len(parts) == 3 and not parts[0].startswith(b"SIP/"):
                    lines[0] = b" ".join((parts[0], text, parts[2]))
            elif len(lines) > 1:
                i = draw(st.integers(1, len(lines) - 1))
                name, colon, _ = lines[i].partition(b":")
                if colon:
                    lines[i] = name + b": " + text
            data = bytearray(b"\r\n".join(lines) + sep + body)
        elif op in ("dup_header", "drop_line", "swap_lines", "fold"):
            head, sep, body = bytes(data).partition(b"\r\n\r\n")
            lines = _lines(head)
            if len(lines) < 2:
                continue
            i = draw(st.integers(1, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup_header":
                lines.insert(j + 1, lines[i])
            elif op == "drop_line":
                del lines[i]
            elif op == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            else:  # fold a header line at one of its spaces or after its colon
                k = lines[i].find(draw(st.sampled_from([b" ", b":", b";"])))
                if k > 0:
                    lines[i] = lines[i][: k + 1] + draw(st.sampled_from([b"\r\n ", b"\r\n\t", b"\n  "])) \
                        + lines[i][k + 1:]
            data = bytearray(b"\r\n".join(lines) + sep + body)
        elif op == "crlf":
            game = draw(st.sampled_from(["lf", "cr", "extra_blank", "no_blank", "leading", "trailing", "crcr"]))
            b = bytes(data)
            if game == "lf":
                b = b.replace(b"\r\n", b"\n")
            elif game == "cr":
                b = b.replace(b"\r\n", b"\r", draw(st.integers(1, 3)))
            elif game == "extra_blank":
                b = b[:pos] + b"\r\n\r\n" + b[pos:]
            elif game == "no_blank":
                b = b.replace(b"\r\n\r\n", b"\r\n", 1)
            elif game == "leading":
                b = b"\r\n" * draw(st.integers(1, 5)) + b
            elif game == "trailing":
                b = b + b"\r\n" * draw(st.integers(1, 5))
            else:
                b = b.replace(b"\r\n", b"\r\r\n", 1)
            data = bytearray(b)
        elif op == "huge_number":
            nums = list(re.finditer(rb"\d+", bytes(data)))
            if not nums:
                continue
            m = draw(st.sampled_from(nums))
            big = draw(st.sampled_from([b"4294967296", b"18446744073709551617", b"-1", b"0" * 300 + b"7",
                                        b"9" * 5000, b"1e9", b"\xd9\xa3", b"00000000000000000001"]))
            data[m.start():m.end()] = big
    return bytes(data)


# ---------------------------------------------------------------------------------- parser

def _parse_or_parse_error(data: bytes, stream: bool = False) -> Request | Response | None:
    try:
        return parse_message(data, stream=stream)
    except ParseError as e:
        assert isinstance(e.status, int) and 400 <= e.status <= 599, e.status
        assert e.partial is None or isinstance(e.partial, (Request, Response))
        return None


def _round_trip(msg: Request | Response) -> None:
    wire = msg.serialize()
    again = parse_message(wire)
    assert type(again) is type(msg)
    assert again.body == msg.body
    assert [(n, v) for n, v in again.headers.items() if n != "Content-Length"] == \
        [(n, v) for n, v in msg.headers.items() if n != "Content-Length"]
    if isinstance(msg, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri) == (msg.method, msg.uri)
    else:
        assert isinstance(again, Response)
        assert (again.status, again.reason) == (msg.status, msg.reason)
    assert again.serialize() == wire


@FAST
@given(st.binary(max_size=1500))
@example(b"")
@example(b"\r\n\r\n")
@example(b"SIP/2.0 ")
@example(b"INVITE sip:a@b SIP/2.0\r\n\r\n")
@example(b"SIP/2.0 99999999999999999999999 x\r\n\r\n")
def test_random_bytes_raise_only_parse_error(data):
    for stream in (False, True):
        msg = _parse_or_parse_error(data, stream)
        if msg is not None:
            _round_trip(msg)


@FAST
@given(st.lists(st.sampled_from(
    [b"INVITE", b"SIP/2.0", b" ", b"\r\n", b"\n", b":", b";", b",", b"<", b">", b'"', b"\\", b"@", b"[", b"]",
     b"sip:", b"Via", b"v", b"From", b"To", b"t", b"Call-ID", b"i", b"CSeq", b"Content-Length", b"l",
     b"Max-Forwards", b"tag=", b"branch=z9hG4bK", b"0", b"1", b"200", b"%", b"%00", b"\t", b"\x00", b"\xff",
     b"SIP/2.0/UDP", b"h.example.com", b"1 INVITE", b"=", b"?"]), max_size=60).map(b"".join))
def test_sip_shaped_noise_raises_only_parse_error(data):
    msg = _parse_or_parse_error(data)
    if msg is not None:
        _round_trip(msg)


@FAST
@given(mutated())
def test_mutated_corpus_messages_raise_only_parse_error(data):
    for stream in (False, True):
        msg = _parse_or_parse_error(data, stream)
        if msg is not None:
            _round_trip(msg)
            # the lazily parsed views either work or raise ValueError, never anything else
            for view in ("vias", "from_", "to", "cseq") + (("ruri",) if isinstance(msg, Request) else ()):
                try:
                    getattr(msg, view)
                except ValueError:
                    pass


@FAST
@given(st.sampled_from(VALID))
def test_valid_corpus_messages_round_trip(data):
    _round_trip(parse_message(data))


# ----------------------------------------------------------------------- well-formed requests

_token = st.from_regex(r"[A-Za-z0-9\-.!%*_+`'~]{1,12}", fullmatch=True)
_word = st.from_regex(r"[A-Za-z][A-Za-z0-9\-]{0,10}[A-Za-z0-9]", fullmatch=True)
_ws = st.sampled_from(["", " ", "  ", "\t"])


@FAST
@given(
    method=st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "BYE", "MESSAGE"]) | _token,
    user=_word, host=_word, tag=_token, branch=_token, call_id=_token, cseq=st.integers(0, 2**32 - 1),
    mf=st.integers(0, 255), body=st.binary(max_size=200), ws=_ws, compact=st.booleans(),
    extra=st.lists(st.tuples(_token, st.from_regex(r"[ -~]{0,30}", fullmatch=True)), max_size=4),
)
def test_well_formed_requests_are_accepted(method, user, host, tag, branch, call_id, cseq, mf, body, ws,
                                           compact, extra):
    names = ("v", "f", "t", "i", "l") if compact else ("Via", "From", "To", "Call-ID", "Content-Length")
    lines = [
        f"{method} sip:{user}@{host}.example SIP/2.0",
        f"{names[0]}{ws}:{ws}SIP/2.0/UDP {host}.example:5060;branch=z9hG4bK{branch}",
        f"{names[1]}:{ws}<sip:{user}@{host}.example>;tag={tag}",
        f"{names[2]}: sip:{user}@{host}.example",
        f"{names[3]}: {call_id}",
        f"CSeq: {cseq} {method}",
        f"Max-Forwards: {mf}",
        *(f"X-{n}: {v.strip()}" for n, v in extra),
        f"{names[4]}: {len(body)}",
    ]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert (msg.method, msg.ruri.user, msg.call_id, msg.cseq.number) == (method, user, call_id, cseq)
    assert msg.from_.tag == tag and msg.top_via.branch == "z9hG4bK" + branch and msg.body == body
    assert [msg.headers.get(f"X-{n}") for n, _ in extra] == [
        next(v.strip() for n2, v in extra if n2.lower() == n.lower()) for n, _ in extra]
    _round_trip(msg)
    assert parse_message(data, stream=True).body == body


# ---------------------------------------------------------------------------------- the core

class _ErrorLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _feed_core(datas: list[bytes], peer: Peer = PEER) -> None:
    core = make_core()
    handler = _ErrorLog()
    logger = logging.getLogger("softswitch")
    logger.addHandler(handler)
    try:
        for i, data in enumerate(datas):
            actions = core.receive(data, peer, 1_800_000_000.0 + i)
            assert isinstance(actions, list)
            responses = []
            for a in actions:
                if isinstance(a, Send):
                    out: Request | Response | None
                    try:
                        out = parse_message(a.data, stream=a.peer.reliable)
                    except ParseError as e:  # a 400 copying the request's broken headers
                        out = e.partial
                    assert out is not None, a.data[:200]
                    if isinstance(out, Response):
                        responses.append(out)
            assert len(responses) <= 1, [r.status for r in responses]
            if data.lstrip(b"\r\n")[:4].upper() == b"SIP/":  # a response (or garbage starting like one)
                assert not responses, f"a response was answered: {data[:80]!r}"
        core.on_timer(1_800_000_000.0 + 100)  # timers on whatever state the garbage created
    finally:
        logger.removeHandler(handler)
    assert not handler.records, "\n".join(f"{r.getMessage()}\n{r.exc_text or ''}" for r in handler.records)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=4))
def test_core_survives_mutated_messages(datas):
    _feed_core(datas)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated(), min_size=1, max_size=3))
def test_core_survives_mutated_messages_on_a_stream(datas):
    _feed_core(datas, Peer("tcp", "192.0.2.77", 40001, conn_id=3))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=800))
def test_core_survives_random_bytes(data):
    _feed_core([data])
