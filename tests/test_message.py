"""Unit tests of the SIP message parser and serialiser (RFC 3261 §7, §8.2.6, §19, §20, §25).

Exact expectations on small hand-written messages; the IETF torture tests are in
test_conformance_parser.py and the property tests in test_fuzz_parser.py.
"""
from __future__ import annotations

import pytest

from softswitch.sip.message import (
    REASONS,
    Headers,
    ParseError,
    Request,
    Response,
    make_response,
    new_request,
    parse_message,
)
from softswitch.sip.uri import AbsoluteUri, NameAddr, SipUri, parse_name_addr, parse_uri, parse_via

CRLF = "\r\n"
RURI = "sip:bob@biloxi.example.com"
VIA = "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds"
BASE = {
    "Via": VIA,
    "Max-Forwards": "70",
    "To": "Bob <sip:bob@biloxi.example.com>",
    "From": "Alice <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID": "a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq": "314159 INVITE",
}


def build(
    start: str = f"INVITE {RURI} SIP/2.0",
    headers: dict[str, str | None] | None = None,
    extra: list[str] = (),  # type: ignore[assignment]
    body: bytes = b"",
    content_length: str | None = "auto",
    eol: str = CRLF,
) -> bytes:
    """A message from BASE; ``headers`` overrides (None drops a header), ``extra`` = raw lines."""
    hs = dict(BASE)
    for k, v in (headers or {}).items():
        if v is None:
            hs.pop(k, None)
        else:
            hs[k] = v
    lines = [start] + [f"{k}: {v}" for k, v in hs.items()] + list(extra)
    if content_length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    return (eol.join(lines) + eol + eol).encode("utf-8") + body


def reject(data: bytes, status: int = 400, **kw) -> ParseError:
    with pytest.raises(ParseError) as ei:
        parse_message(data, **kw)
    assert ei.value.status == status, ei.value.reason
    return ei.value


# ------------------------------------------------------------------------------ start lines

def test_basic_request():
    m = parse_message(build())
    assert isinstance(m, Request)
    assert (m.method, m.uri, m.version) == ("INVITE", RURI, "SIP/2.0")
    assert isinstance(m.ruri, SipUri) and m.ruri.user == "bob" and m.ruri.host == "biloxi.example.com"
    assert m.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert m.from_.tag == "1928301774" and m.to.tag is None
    assert (m.cseq.number, m.cseq.method) == (314159, "INVITE")
    assert m.top_via.branch == "z9hG4bK776asdhds"
    assert m.headers.get("Max-Forwards") == "70"
    assert m.body == b""


def test_basic_response():
    data = build("SIP/2.0 180 Ringing", headers={"To": "Bob <sip:bob@biloxi.example.com>;tag=a6c85cf"})
    m = parse_message(data)
    assert isinstance(m, Response)
    assert (m.status, m.reason, m.version) == (180, "Ringing", "SIP/2.0")
    assert m.to.tag == "a6c85cf"


@pytest.mark.parametrize("line,reason", [
    ("SIP/2.0 200 OK", "OK"),
    ("SIP/2.0 200 Very  Much OK, thanks", "Very  Much OK, thanks"),
    ("SIP/2.0 100 ", ""),  # RFC 4475 noreason: empty Reason-Phrase after the SP
    ("SIP/2.0 100", ""),  # liberal: the SP is missing too
    ("SIP/2.0 699 x", "x"),
])
def test_status_line_reason(line, reason):
    m = parse_message(build(line))
    assert m.reason == reason


@pytest.mark.parametrize("line", [
    "SIP/2.0 99 Too low", "SIP/2.0 700 Too high", "SIP/2.0 2000 OK", "SIP/2.0 20x OK", "SIP/2.0 4294967301 big",
    "SIP/2.0 ２００ OK", "SIP/3.0 200 OK", "SIP/2.0", "SIP/2.0  200 OK",
])
def test_bad_status_lines(line):
    reject(build(line))


def test_extension_method_and_case_insensitive_version():
    m = parse_message(build(f"FOO-BAR.baz {RURI} SIP/2.0", headers={"CSeq": "1 FOO-BAR.baz"}))
    assert m.method == "FOO-BAR.baz"
    m = parse_message(build(f"INVITE {RURI} sip/2.0"))  # SIP-Version is case-insensitive (§7.1)
    assert m.method == "INVITE"
    r = parse_message(build("sip/2.0 200 OK"))
    assert isinstance(r, Response) and r.status == 200


def test_method_is_case_sensitive():
    # "invite" is not INVITE (§7.1: method names are case-sensitive), so the CSeq does not match
    e = reject(build(f"invite {RURI} SIP/2.0"), status=501)
    assert e.partial is not None and e.partial.method == "invite"


@pytest.mark.parametrize("line", [
    f"INVITE  {RURI} SIP/2.0",  # RFC 4475 lwsstart
    f"INVITE {RURI} SIP/2.0  ",  # RFC 4475 trws
    f"INVITE {RURI}",
    f"INVITE {RURI} HTTP/1.1",
    f"INVITE {RURI} SIP/2",
    f"INVITE {RURI} SIP/２.0",
    f"INV(ITE {RURI} SIP/2.0",
    "INVITE <sip:bob@biloxi.example.com> SIP/2.0",  # RFC 4475 ltgtruri
    "INVITE sip:bob@biloxi.example.com; lr SIP/2.0",  # RFC 4475 lwsruri
    "INVITE sip:bob@biloxi.example.com?Route=%3Csip:x%3E SIP/2.0",  # RFC 4475 escruri
    "INVITE sip: SIP/2.0",
    "INVITE bob SIP/2.0",
])
def test_bad_request_lines(line):
    e = reject(build(line))
    if line.startswith("INVITE"):
        # the header section is still read, so that the element can answer 400 (RFC 4475 §3.1.2)
        assert isinstance(e.partial, Request) and e.partial.method == "INVITE"
        assert e.partial.headers.get("Via") == VIA and e.partial.headers.get("Call-ID") == BASE["Call-ID"]
    else:
        assert e.partial is None  # not even a method: nothing to answer


def test_header_lines_after_a_malformed_one_are_still_read():
    data = build(f"INVITE {RURI} SIP/2.0", headers={"Via": None}, extra=["Broken line", "Via: " + VIA])
    e = reject(data)
    assert "malformed header line" in e.reason and e.partial.headers.get("Via") == VIA


def test_other_sip_version_is_505_with_partial():
    data = build(f"OPTIONS {RURI} SIP/7.0", headers={"CSeq": "1 OPTIONS", "Via": "SIP/7.0/UDP host.example.com"})
    e = reject(data, status=505)
    assert isinstance(e.partial, Request)
    assert e.partial.headers.get("Call-ID") == BASE["Call-ID"]
    assert e.partial.headers.get("Via") == "SIP/7.0/UDP host.example.com"


def test_leading_crlf_keepalives_and_empty_input():
    m = parse_message(b"\r\n\r\n" + build())
    assert m.method == "INVITE"
    for data in (b"", b"\r\n", b"\r\n\r\n\r\n"):
        reject(data)


# ------------------------------------------------------------------------------- header fields

COMPACT = [
    ("i", "Call-ID", "x@y"), ("m", "Contact", "<sip:a@b>"), ("v", "Via", VIA), ("f", "From", "<sip:a@b>;tag=1"),
    ("t", "To", "<sip:c@d>"), ("l", "Content-Length", "0"), ("c", "Content-Type", "application/sdp"),
    ("k", "Supported", "100rel"), ("s", "Subject", "hi"), ("e", "Content-Encoding", "gzip"),
    ("o", "Event", "presence"), ("r", "Refer-To", "<sip:x@y>"), ("u", "Allow-Events", "dialog"),
    ("x", "Session-Expires", "1800"), ("b", "Referred-By", "<sip:r@y>"), ("y", "Identity", "abc"),
    ("n", "Identity-Info", "<https://x/y>"), ("a", "Accept-Contact", "*;audio"),
    ("j", "Reject-Contact", "*;video"), ("d", "Request-Disposition", "proxy"),
]


@pytest.mark.parametrize("short,long,value", COMPACT)
def test_compact_forms(short, long, value):
    hs = {k: v for k, v in BASE.items() if k != long}
    lines = [f"OPTIONS {RURI} SIP/2.0"] + [f"{k}: {v}" for k, v in hs.items() if k != "CSeq"]
    lines.append("CSeq: 1 OPTIONS")
    lines.append(f"{short.upper() if short in 'ivl' else short}: {value}")
    if long != "Content-Length":
        lines.append("Content-Length: 0")
    m = parse_message((CRLF.join(lines) + CRLF + CRLF).encode())
    assert m.headers.get(long) == value
    assert m.headers.get(short) == value  # looking up by the compact name works too
    assert m.headers.get(long.upper()) == value
    out = m.serialize().decode()
    assert f"\r\n{long}: " in out  # serialised in the long form
    assert f"\r\n{short}: " not in out and f"\r\n{short.upper()}: " not in out


def test_all_mandatory_headers_in_compact_form():
    data = (f"REGISTER sip:example.com SIP/2.0\r\nv: {VIA}\r\nf: <sip:a@example.com>;tag=1\r\n"
            "t: <sip:a@example.com>\r\ni: abc@host\r\nCSeq: 1 REGISTER\r\nm: <sip:a@192.0.2.1>\r\nl: 0\r\n\r\n")
    m = parse_message(data.encode())
    assert m.call_id == "abc@host" and m.from_.tag == "1" and m.headers.get_all("Contact") == ["<sip:a@192.0.2.1>"]


def test_header_names_are_case_insensitive():
    data = build(headers={"Via": None, "Call-ID": None}, extra=["vIA: " + VIA, "CALL-id: abc", "x-CuStOm: 1"])
    m = parse_message(data)
    assert m.call_id == "abc"
    assert m.headers.get("call-ID") == "abc" and m.headers.get("i") == "abc"
    assert m.top_via.host == "pc33.atlanta.example.com"
    assert m.headers.get("X-Custom") == "1" and m.headers.get("x-custom") == "1"
    names = [n for n, _ in m.headers.items()]
    assert "Via" in names and "Call-ID" in names  # known names are canonicalised
    assert "x-CuStOm" in names  # unknown names keep their spelling


def test_whitespace_around_colon_and_empty_values():
    data = build(extra=["Subject   :   hello world  ", "X-Empty:", "X-Tab:\t\tv\t"])
    m = parse_message(data)
    assert m.headers.get("Subject") == "hello world"
    assert m.headers.get("X-Empty") == ""
    assert m.headers.get("X-Tab") == "v"


def test_line_folding():
    data = (
        f"INVITE {RURI} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP\r\n pc33.atlanta.example.com\r\n\t;branch=z9hG4bKf0ld\r\n"
        "To: Bob\r\n   <sip:bob@biloxi.example.com>\r\n"
        "From: Alice <sip:alice@atlanta.example.com>\r\n ;\r\n  tag=77\r\n"
        "Call-ID: fold@x\r\n"
        "CSeq: 1\r\n INVITE\r\n"
        "Subject: I know you're there,\r\n         pick up the phone\r\n         and talk to me!\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    m = parse_message(data)
    assert m.headers.get("Subject") == "I know you're there, pick up the phone and talk to me!"
    assert m.headers.get("Via") == "SIP/2.0/UDP pc33.atlanta.example.com ;branch=z9hG4bKf0ld"
    assert m.top_via.branch == "z9hG4bKf0ld"
    assert m.to.display == "Bob" and str(m.to.uri) == "sip:bob@biloxi.example.com"
    assert m.from_.tag == "77"
    assert (m.cseq.number, m.cseq.method) == (1, "INVITE")


def test_folding_onto_the_start_line_is_rejected():
    data = build().replace(b"\r\nVia:", b"\r\n Via:", 1)
    reject(data)


@pytest.mark.parametrize("line", ["NoColonHere", "Bad Name: x", "Bad(Name): x", ": empty name", "Bad\x00: x", "Ünï: x"])
def test_malformed_header_lines(line):
    e = reject(build(extra=[line]))
    assert isinstance(e.partial, Request)  # enough was read to answer 400


def test_bare_lf_line_endings_are_accepted():
    m = parse_message(build(eol="\n", body=b"v=0\n"))
    assert m.call_id == BASE["Call-ID"] and m.body == b"v=0\n"
    mixed = build().replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n")
    assert parse_message(mixed).headers.get("Max-Forwards") == "70"


def test_header_section_ends_at_first_empty_line_whatever_the_line_ending():
    # a bare-LF empty line ends the header section even if a CRLF CRLF follows later in the body
    data = build(eol="\n", body=b"a\r\n\r\nb", content_length="6")
    m = parse_message(data)
    assert m.body == b"a\r\n\r\nb"
    data = build(body=b"x\n\ny")  # CRLF headers, body holding a bare-LF empty line
    assert parse_message(data).body == b"x\n\ny"


def test_bare_cr_inside_a_header_line_is_rejected():
    reject(build(extra=["X-Injected: a\rVia: SIP/2.0/UDP evil.example.com"]))


def test_unterminated_header_section_is_parsed_as_headers():
    # RFC 4475 baddn's archive copy ends after the last header line; a UDP parser must not wait
    data = build(content_length="0")[:-2]
    assert parse_message(data).call_id == BASE["Call-ID"]


def test_non_utf8_header_bytes_survive_a_round_trip():
    data = build(extra=["X-Bin: caf\xe9"]).replace("caf\xe9".encode(), b"caf\xe9")
    m = parse_message(data)
    assert parse_message(m.serialize()).headers.get("X-Bin") == m.headers.get("X-Bin")
    assert b"X-Bin: caf\xe9\r\n" in m.serialize()


# ----------------------------------------------------------------------------- multi-values

def test_via_comma_list_and_separate_lines_keep_order():
    data = build(headers={"Via": None}, extra=[
        "Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com:5070;branch=z9hG4bK2",
        "v: SIP/2.0/TLS c.example.com;branch=z9hG4bK3",
    ])
    m = parse_message(data)
    assert [v.host for v in m.vias] == ["a.example.com", "b.example.com", "c.example.com"]
    assert [v.transport for v in m.vias] == ["UDP", "TCP", "TLS"]
    assert m.vias[1].port == 5070
    assert m.headers.get_all("Via")[1] == "SIP/2.0/TCP b.example.com:5070;branch=z9hG4bK2"
    assert len(m.headers.get_lines("Via")) == 2
    assert m.headers.count("Via") == 2


def test_contact_list_with_commas_inside_quotes_and_brackets():
    value = ('"Doe, John" <sip:john@example.com>;q=0.7, <sip:a,b@example.com?Subject=x,y>, '
             '"Say \\"hi, there\\"" <sip:c@example.com>;expires=60, sip:d@example.com;q=0.1')
    m = parse_message(build(extra=[f"Contact: {value}"]))
    parts = m.headers.get_all("Contact")
    assert parts == [
        '"Doe, John" <sip:john@example.com>;q=0.7',
        "<sip:a,b@example.com?Subject=x,y>",
        '"Say \\"hi, there\\"" <sip:c@example.com>;expires=60',
        "sip:d@example.com;q=0.1",
    ]
    addrs = [parse_name_addr(p) for p in parts]
    assert addrs[0].display == "Doe, John" and addrs[0].params == {"q": "0.7"}
    assert addrs[1].uri.user == "a,b" and addrs[1].uri.headers == "Subject=x,y"
    assert addrs[2].display == 'Say "hi, there"' and addrs[2].params == {"expires": "60"}
    assert addrs[3].uri.params == {} and addrs[3].params == {"q": "0.1"}


def test_route_and_record_route_lists():
    m = parse_message(build(extra=[
        "Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
        "Record-Route: <sip:rr.example.com;lr;ftag=x>",
    ]))
    routes = m.headers.get_all("Route")
    assert [parse_name_addr(r).uri.host for r in routes] == ["p1.example.com", "p2.example.com", "p3.example.com"]
    assert all("lr" in parse_name_addr(r).uri.params for r in routes)
    assert m.headers.get_all("Record-Route") == ["<sip:rr.example.com;lr;ftag=x>"]


def test_single_value_headers_are_not_split_on_commas():
    auth = 'Digest username="bob", realm="biloxi.example.com", nonce="a,b", uri="sip:x", response="0"'
    m = parse_message(build(extra=["Subject: a, b", f"Authorization: {auth}", "Date: Sat, 13 Nov 2010 23:29:00 GMT"]))
    assert m.headers.get_all("Subject") == ["a, b"]
    assert m.headers.get_all("Authorization") == [auth]
    assert m.headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]


def test_option_tag_lists():
    m = parse_message(build(extra=["Supported: 100rel, timer", "k: path", "Allow: INVITE,ACK , BYE"]))
    assert m.headers.get_all("Supported") == ["100rel", "timer", "path"]
    assert m.headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]


def test_get_all_tolerates_an_unterminated_quote():
    h = Headers([("Contact", '"broken <sip:a@b>, <sip:c@d>')])
    assert h.get_all("Contact") == ['"broken <sip:a@b>, <sip:c@d>']


# ---------------------------------------------------------------------------- Headers API

def test_headers_api():
    h = Headers([("v", "SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2"), ("Subject", "x")])
    assert h.count("Via") == 1 and len(h) == 2 and "via" in h and "Route" not in h
    h.add("Via", "SIP/2.0/UDP top;branch=z9hG4bK0", first=True)
    assert h.get("Via") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    assert h.pop_first("Via") == "SIP/2.0/UDP top;branch=z9hG4bK0"
    assert h.pop_first("Via") == "SIP/2.0/UDP a;branch=z9hG4bK1"  # first value of a combined line
    assert h.get_lines("Via") == ["SIP/2.0/UDP b;branch=z9hG4bK2"]
    assert h.pop_first("Via") == "SIP/2.0/UDP b;branch=z9hG4bK2"
    assert h.pop_first("Via") is None and h.get("Via") is None and h.get("Via", "d") == "d"
    h.add("X-A", "1")
    h.add("x-a", "2")
    h.add("Subject", "y")
    h.set("X-A", "3")  # replaces every X-A at the position of the first
    assert list(h.items()) == [("Subject", "x"), ("X-A", "3"), ("Subject", "y")]
    c = h.copy()
    c.remove("subject")
    assert list(c.items()) == [("X-A", "3")] and h.count("Subject") == 2
    h.set("Call-ID", "new")
    assert list(h.items())[-1] == ("Call-ID", "new")


def test_pop_first_keeps_quoted_commas():
    h = Headers([("Contact", '"a, b" <sip:a@b>, <sip:c@d>')])
    assert h.pop_first("Contact") == '"a, b" <sip:a@b>'
    assert h.get("Contact") == "<sip:c@d>"


# ----------------------------------------------------------------------------- quoted strings

@pytest.mark.parametrize("text,display", [
    ('"Alice" <sip:a@b>', "Alice"),
    ('"" <sip:a@b>', ""),
    ('"A \\"quoted\\" name" <sip:a@b>', 'A "quoted" name'),
    ('"back\\\\slash" <sip:a@b>', "back\\slash"),
    ('"J Rosenberg \\\\\\"" <sip:a@b>', 'J Rosenberg \\"'),  # RFC 4475 wsinv
    ('"\\x\\y" <sip:a@b>', "xy"),  # quoted-pair may escape any character
    ('"<sip:not@uri>; tag=x" <sip:a@b>', "<sip:not@uri>; tag=x"),
    ('"Ünïcödé" <sip:a@b>', "Ünïcödé"),
    ('  "spaced"   <sip:a@b>', "spaced"),
])
def test_quoted_display_names(text, display):
    na = parse_name_addr(text)
    assert na.display == display
    assert str(na.uri) == "sip:a@b"
    again = parse_name_addr(str(na))  # serialised form re-parses to the same value
    assert again.display == display and str(again.uri) == "sip:a@b"


@pytest.mark.parametrize("text,display", [
    ("Alice <sip:a@b>", "Alice"),
    ("Alice  Smith <sip:a@b>", "Alice  Smith"),
    ("caller<sip:a@b>", "caller"),  # RFC 4475 lwsdisp
    ("token1~` token2'+_ token3*%!.- <sip:a@b>", "token1~` token2'+_ token3*%!.-"),  # RFC 4475 intmeth
    ("<sip:a@b>", None),
    ("sip:a@b", None),
])
def test_unquoted_display_names(text, display):
    assert parse_name_addr(text).display == display


@pytest.mark.parametrize("text", [
    '"unterminated <sip:a@b>',
    '"quoted" sip:a@b',
    "<sip:a@b",
    "<sip:a@b> junk",
    "<sip:a@b>;",
    "<sip:a@b>;tag=",
    "<sip:a@b>;;tag=1",
    "sip:a@b?Subject=x",  # RFC 4475 regbadct: a URI with headers must be in <>
    "sip:a,b@c",
    "",
    "   ",
    "<>",
    "<not a uri>",
])
def test_bad_name_addrs(text):
    with pytest.raises(ValueError):
        parse_name_addr(text)


def test_name_addr_serialisation():
    assert str(parse_name_addr("Alice <sip:a@b>;tag=1")) == "Alice <sip:a@b>;tag=1"
    assert str(parse_name_addr('"Doe, John" <sip:a@b>')) == '"Doe, John" <sip:a@b>'
    assert str(parse_name_addr("sip:a@b;tag=1")) == "<sip:a@b>;tag=1"
    assert str(NameAddr(uri=parse_uri("sip:a@b"), display='say "x"')) == '"say \\"x\\"" <sip:a@b>'


# ---------------------------------------------------------------------- parameter ownership

def test_addr_spec_parameters_belong_to_the_header_field():
    # RFC 4475 cparam01 / RFC 3261 §20.10
    na = parse_name_addr("sip:+19725552222@gw1.example.net;unknownparam;q=0.5")
    assert na.uri.params == {} and na.params == {"unknownparam": None, "q": "0.5"}
    assert str(na.uri) == "sip:+19725552222@gw1.example.net"


def test_name_addr_parameters_inside_brackets_belong_to_the_uri():
    # RFC 4475 cparam02
    na = parse_name_addr("<sip:+19725552222@gw1.example.net;unknownparam>;q=0.5")
    assert na.uri.params == {"unknownparam": None} and na.params == {"q": "0.5"}
    assert str(na.uri) == "sip:+19725552222@gw1.example.net;unknownparam"


def test_header_parameters_with_lws_and_quoted_values():
    na = parse_name_addr('"x" <sip:a@b> ; newparam =\tnewvalue ;  secondparam ; q = 0.33;p="a;b"')
    assert na.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33", "p": '"a;b"'}
    assert parse_name_addr("<sip:a@b>;TAG=Xy").tag == "Xy"  # names are case-insensitive, values not


def test_non_sip_uris_in_name_addr():
    na = parse_name_addr("<tel:+1-201-555-0123;phone-context=example.com>;tag=9")
    assert isinstance(na.uri, AbsoluteUri) and na.uri.scheme == "tel"
    assert na.uri.rest == "+1-201-555-0123;phone-context=example.com" and na.tag == "9"
    assert isinstance(parse_name_addr("isbn:2983792873").uri, AbsoluteUri)  # RFC 4475 unksm2


# ------------------------------------------------------------------------------------- URIs

def test_full_sip_uri():
    u = parse_uri("sip:alice:secretword@atlanta.example.com:5070;transport=TCP;lr;maddr=239.255.255.1?subject=project&priority=urgent")
    assert isinstance(u, SipUri)
    assert (u.scheme, u.user, u.password, u.host, u.port) == ("sip", "alice", "secretword", "atlanta.example.com", 5070)
    assert u.params == {"transport": "TCP", "lr": None, "maddr": "239.255.255.1"}
    assert u.transport == "tcp"
    assert u.headers == "subject=project&priority=urgent"
    assert u.hostport() == "atlanta.example.com:5070"
    assert str(u) == "sip:alice:secretword@atlanta.example.com:5070;transport=TCP;lr;maddr=239.255.255.1?subject=project&priority=urgent"


@pytest.mark.parametrize("text,scheme,user,host,port", [
    ("sips:bob@biloxi.example.com", "sips", "bob", "biloxi.example.com", None),
    ("SIP:Bob@Biloxi.Example.COM", "sip", "Bob", "Biloxi.Example.COM", None),
    ("sip:192.0.2.4", "sip", None, "192.0.2.4", None),
    ("sip:+1-212-555-1212:1234@gateway.com;user=phone", "sip", "+1-212-555-1212", "gateway.com", None),
    ("sip:alice@192.0.2.4:5060", "sip", "alice", "192.0.2.4", 5060),
    ("sip:[2001:db8::10]", "sip", None, "[2001:db8::10]", None),
    ("sip:[2001:db8::10]:5070", "sip", None, "[2001:db8::10]", 5070),
    ("sip:[2001:db8::10:5070]", "sip", None, "[2001:db8::10:5070]", None),  # RFC 5118 port-ambiguous
    ("sip:user@[::ffff:192.0.2.10]:19823", "sip", "user", "[::ffff:192.0.2.10]", 19823),
    ("sip:user@[2001:db8:::192.0.2.1]", "sip", "user", "[2001:db8::192.0.2.1]", None),  # RFC 5118 §4.10
    ("sip:host.example.com.:5060", "sip", None, "host.example.com.", 5060),
    ("sip:my-host_1.example.com", "sip", None, "my-host_1.example.com", None),
    ("sip:user;par=u%40example.net@example.com", "sip", "user;par=u%40example.net", "example.com", None),
])
def test_sip_uri_forms(text, scheme, user, host, port):
    u = parse_uri(text)
    assert isinstance(u, SipUri)
    assert (u.scheme, u.user, u.host, u.port) == (scheme, user, host, port)


def test_user_escapes_are_kept_and_unescaped_on_demand():
    u = parse_uri("sip:sips%3Auser%40example.com@example.net")
    assert u.user == "sips%3Auser%40example.com" and u.user_unescaped == "sips:user@example.com"
    assert str(u) == "sip:sips%3Auser%40example.com@example.net"
    assert parse_uri("sip:null-%00-null@example.com").user_unescaped == "null-\x00-null"
    assert parse_uri("sip:%00%00@h.example.com").user_unescaped == "\x00\x00"
    assert parse_uri("sip:I%20have%20spaces@example.net").user_unescaped == "I have spaces"


def test_uri_parameter_escapes_are_decoded_once_and_reencoded():
    # RFC 4475 esc01: ';%6C%72;n%61me=v%61lue%25%34%31' is lr and name=value%41 (never 'valueA')
    u = parse_uri("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert u.params == {"lr": None, "name": "value%41"}
    assert str(u) == "sip:cal%6Cer@host5.example.net;lr;name=value%2541"
    assert parse_uri(str(u)).params == u.params
    u = SipUri(scheme="sip", host="h.example.com", params={"x": "a b;c=d"})
    assert str(u) == "sip:h.example.com;x=a%20b%3Bc%3Dd" and parse_uri(str(u)).params == {"x": "a b;c=d"}


def test_intmeth_request_uri_userinfo():
    # RFC 4475 intmeth: everything up to the only '@' is userinfo; the first ':' splits the password
    u = parse_uri("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com")
    assert u.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert u.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert u.host == "example.com" and u.params == {} and u.headers is None


@pytest.mark.parametrize("text,scheme,rest", [
    ("tel:+1-201-555-0123", "tel", "+1-201-555-0123"),
    ("tel:7042;phone-context=example.com", "tel", "7042;phone-context=example.com"),
    ("TEL:+358-555-1234567;postd=pp22", "tel", "+358-555-1234567;postd=pp22"),
    ("nobodyKnowsThisScheme:totallyopaquecontent", "nobodyknowsthisscheme", "totallyopaquecontent"),
    ("soap.beep://192.0.2.103:3002", "soap.beep", "//192.0.2.103:3002"),
    ("http://www.example.com/a?b=c;d", "http", "//www.example.com/a?b=c;d"),
    ("urn:service:sos", "urn", "service:sos"),
])
def test_other_schemes_are_opaque(text, scheme, rest):
    u = parse_uri(text)
    assert isinstance(u, AbsoluteUri) and (u.scheme, u.rest) == (scheme, rest)
    assert str(u) == f"{scheme}:{rest}"


@pytest.mark.parametrize("text", [
    "", "sip", "sip:", "bob@example.com", "1sip:x", "s p:x", "tel:",
    "sip:@example.com", "sip::pw@example.com", "sip:user@", "sip:user@:5060",
    "sip:a b@example.com", "sip:a@exa mple.com", "sip:a@<example.com>", 'sip:"a"@example.com',
    "sip:a@example.com:0", "sip:a@example.com:65536", "sip:a@example.com:50x", "sip:a@example.com:",
    "sip:a@example.com:５０６０", "sip:a@example.com:123456",
    "sip:a@-example.com", "sip:a@example-.com", "sip:a@exa..mple.com", "sip:a@.example.com",
    "sip:a@256.1.1.1", "sip:a@1.2.3", "sip:a@1.2.3.4.5", "sip:a@example.com$",
    "sip:2001:db8::10",  # RFC 5118 ipv6-bad
    "sip:[2001:db8::10", "sip:[2001:db8::10]x", "sip:[2001:db8::10]:", "sip:[2001:db8::g]", "sip:[1.2.3.4]",
    "sip:[fe80::1%25eth0]", "sip:[::1::2]", "sip:[]",
    "sip:a@example.com;", "sip:a@example.com;;lr", "sip:a@example.com;x=", "sip:a@example.com;=x",
    "sip:a@example.com;x=%4", "sip:a@example.com;x=%zz", "sip:a@example.com;a b",
    "sip:a@example.com\x00", "sip:a@example.com\r\n",
])
def test_bad_uris(text):
    with pytest.raises(ValueError):
        parse_uri(text)


def test_uri_str_round_trip():
    for text in ("sip:a@b.example.com", "sips:a:p@[2001:db8::1]:5061;transport=tls",
                 "sip:b.example.com;lr;ftag=x?Route=%3Csip:c%3E", "tel:+1234"):
        assert str(parse_uri(text)) == text


# -------------------------------------------------------------------------------------- Via

def test_via_basic():
    v = parse_via("SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5060")
    assert (v.version, v.transport, v.host, v.port) == ("2.0", "UDP", "pc33.atlanta.example.com", 5066)
    assert v.params == {"branch": "z9hG4bK776asdhds", "received": "192.0.2.1", "rport": "5060"}
    assert v.branch == "z9hG4bK776asdhds" and v.sent_by() == "pc33.atlanta.example.com:5066"
    assert str(v) == "SIP/2.0/UDP pc33.atlanta.example.com:5066;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5060"


def test_via_rport_flag_and_lws():
    v = parse_via("SIP  /   2.0 /UDP   192.0.2.2  ;  rport ; branch = z9hG4bKx")  # RFC 4475 wsinv
    assert (v.version, v.transport, v.host, v.port) == ("2.0", "UDP", "192.0.2.2", None)
    assert v.params == {"rport": None, "branch": "z9hG4bKx"}
    assert str(v) == "SIP/2.0/UDP 192.0.2.2;rport;branch=z9hG4bKx"


@pytest.mark.parametrize("text,transport,host,port", [
    ("sip/2.0/udp host.example.com", "UDP", "host.example.com", None),
    ("SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf", "SCTP", "t2.example.com", None),
    ("SIP/2.0/UNKNOWN t4.example.com", "UNKNOWN", "t4.example.com", None),
    ("SIP/2.0/WSS [2001:db8::9:1]:6050;branch=z9hG4bKas3-111", "WSS", "[2001:db8::9:1]", 6050),
    ("SIP/2.0/UDP [::ffff:192.0.2.2]", "UDP", "[::ffff:192.0.2.2]", None),
])
def test_via_transports_and_hosts(text, transport, host, port):
    v = parse_via(text)
    assert (v.transport, v.host, v.port) == (transport, host, port)


def test_via_received_ipv6_with_and_without_brackets():
    # RFC 5118 §4.5: both must be accepted
    assert parse_via("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3").params["received"] == "[2001:db8::9:255]"
    assert parse_via("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3").params["received"] == "2001:db8::9:255"


@pytest.mark.parametrize("text", [
    "", "SIP/2.0/UDP", "SIP/2.0/UDP ", "SIP/2.0 UDP host", "SIP/2.0/UDP host extra", "HTTP/1.1/TCP host",
    "SIP/2.0/UDP host:99999", "SIP/2.0/UDP host;", "SIP/2.0/UDP host;;branch=x", "SIP/2.0/UDP host;branch=",
    "SIP/2.0/UDP 192.0.2.15;;,;,,", "SIP/2.0/U(D)P host", "SIP/x/UDP host", "SIP/2.0/UDP [::1",
])
def test_bad_vias(text):
    with pytest.raises(ValueError):
        parse_via(text)


def test_via_version_other_than_2_0_is_rejected_in_a_message():
    reject(build(headers={"Via": "SIP/1.0/UDP host.example.com;branch=z9hG4bKx"}))


def test_bare_magic_cookie_branch_is_accepted_by_the_parser():
    # RFC 4475 badbranch: the parser must not break; the element decides (400 or RFC 2543 matching)
    m = parse_message(build(headers={"Via": "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK"}))
    assert m.top_via.branch == "z9hG4bK"


def test_via_without_branch_is_accepted():
    assert parse_message(build(headers={"Via": "SIP/2.0/UDP iftgw.example.com"})).top_via.branch is None


def test_bad_via_in_message_is_400():
    reject(build(headers={"Via": "SIP/2.0/UDP 192.0.2.15;;,;,,"}))  # RFC 4475 badinv01
    reject(build(headers={"Via": VIA + ", "}))


# ------------------------------------------------------------------------------------ CSeq

@pytest.mark.parametrize("value,number", [
    ("0 INVITE", 0), ("0009 INVITE", 9), ("4294967295 INVITE", 2**32 - 1), ("  1   INVITE  ", 1),
    ("0000000000000000000000001 INVITE", 1),
])
def test_cseq_values(value, number):
    m = parse_message(build(headers={"CSeq": value}))
    assert m.cseq.number == number and m.cseq.method == "INVITE"
    assert str(m.cseq) == f"{number} INVITE"


@pytest.mark.parametrize("value", [
    "4294967296 INVITE", "36893488147419103232 INVITE", "9" * 5000 + " INVITE", "-1 INVITE", "1.5 INVITE",
    "x1 INVITE", "1", "INVITE", "1 INVITE extra", "１ INVITE", "1 INV(ITE", "",
])
def test_bad_cseq(value):
    reject(build(headers={"CSeq": value}))


def test_cseq_method_mismatch():
    reject(build(f"OPTIONS {RURI} SIP/2.0"), status=400)  # RFC 4475 mismatch01: a known method
    e = reject(build(f"NEWMETHOD {RURI} SIP/2.0"), status=501)  # RFC 4475 mismatch02: unknown method
    assert e.partial.method == "NEWMETHOD"
    # responses carry the method of the request they answer: no comparison there
    assert parse_message(build("SIP/2.0 200 OK")).cseq.method == "INVITE"


# ----------------------------------------------------------------------- Max-Forwards etc.

@pytest.mark.parametrize("value,ok", [
    ("0", True), ("70", True), ("255", True), ("0068", True), ("256", False), ("300", False),
    ("-1", False), ("", False), ("seventy", False), ("7 0", False), ("٧٠", False), ("9" * 5000, False),
])
def test_max_forwards(value, ok):
    data = build(headers={"Max-Forwards": value})
    if ok:
        assert parse_message(data).headers.get("Max-Forwards") == value
    else:
        reject(data)


def test_max_forwards_is_optional():
    assert parse_message(build(headers={"Max-Forwards": None})).headers.get("Max-Forwards") is None


@pytest.mark.parametrize("value,ok", [("0", True), ("3600", True), ("4294967295", True), ("4294967296", False),
                                      ("-1", False), ("soon", False)])
def test_expires_header(value, ok):
    data = build(extra=[f"Expires: {value}"])
    if ok:
        parse_message(data)
    else:
        reject(data)


# ---------------------------------------------------------------------- mandatory headers

@pytest.mark.parametrize("name", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_missing_mandatory_header(name):
    e = reject(build(headers={name: None}))
    assert isinstance(e.partial, Request)
    assert name in e.reason


@pytest.mark.parametrize("name,value", [
    ("From", "<sip:x@y>;tag=2"), ("To", "<sip:x@y>"), ("Call-ID", "other"), ("CSeq", "2 INVITE"),
    ("Max-Forwards", "70"), ("Content-Type", "text/plain"), ("Expires", "10"),
])
def test_duplicate_singleton_header(name, value):
    reject(build(extra=[f"{name}: {value}"] * (1 if name in BASE else 2)))  # RFC 4475 multi01


def test_empty_call_id_and_bad_from():
    reject(build(headers={"Call-ID": ""}))
    reject(build(headers={"From": '"unterminated <sip:a@b>;tag=1'}))  # RFC 4475 quotbal
    reject(build(headers={"To": "<sip:a@b"}))


def test_parse_error_fields():
    e = reject(build(headers={"CSeq": "x INVITE"}))
    assert isinstance(e, ValueError) and e.status == 400 and "CSeq" in e.reason
    assert isinstance(e.partial, Request) and e.partial.headers.get("CSeq") == "x INVITE"


# ------------------------------------------------------------------- Content-Length framing

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"


def test_body_framed_by_content_length():
    m = parse_message(build(body=SDP, extra=["Content-Type: application/sdp"]))
    assert m.body == SDP


def test_octets_beyond_content_length_are_discarded():
    # RFC 3261 §18.3 / RFC 4475 dblreq
    m = parse_message(build(body=SDP, content_length="10"))
    assert m.body == SDP[:10]
    m = parse_message(build(content_length="0") + build())
    assert m.body == b""


def test_content_length_larger_than_body_is_rejected():
    e = reject(build(body=SDP, content_length=str(len(SDP) + 1)))  # RFC 4475 clerr
    assert isinstance(e.partial, Request)
    reject(build(body=SDP, content_length="9999"))
    reject(build(body=b"", content_length="99999999999999999999999"))


@pytest.mark.parametrize("value", ["-999", "five", "1 0", "0x10", "١٠", "", "+5", "5.0"])
def test_bad_content_length_values(value):
    reject(build(body=b"0123456789", content_length=value))  # RFC 4475 ncl


def test_conflicting_and_duplicate_content_lengths():
    reject(build(body=b"0123456789", content_length="5", extra=["Content-Length: 3"]))  # RFC 4475 mcl01
    reject(build(body=b"0123456789", content_length="5", extra=["l: 5"]))


def test_content_length_forms():
    base = build(body=b"abc", content_length=None)
    assert parse_message(base.replace(b"\r\n\r\n", b"\r\nl:3\r\n\r\n", 1)).body == b"abc"
    assert parse_message(base.replace(b"\r\n\r\n", b"\r\nContent-Length:   0003  \r\n\r\n", 1)).body == b"abc"


def test_missing_content_length():
    m = parse_message(build(body=SDP, content_length=None))  # UDP: the rest of the datagram (inv2543)
    assert m.body == SDP
    e = reject(build(body=SDP, content_length=None), stream=True)  # mandatory on streams
    assert isinstance(e.partial, Request)
    assert parse_message(build(body=SDP), stream=True).body == SDP


def test_binary_body_with_nul_and_bare_lf():
    body = b"--b\r\nContent-Type: application/octet-stream\r\n\r\n\x00\x01\n\n\r\n\xff\xfe\r\n--b--\r\n"
    m = parse_message(build(body=body, extra=["Content-Type: multipart/mixed;boundary=b"]))
    assert m.body == body


# ------------------------------------------------------------------------------ round trips

def test_serialize_parse_round_trip():
    data = build(
        "INVITE sips:bob@[2001:db8::1]:5061;transport=tls SIP/2.0",
        extra=['Contact: "Doe, J" <sips:a@192.0.2.1;ob>;+sip.instance="<urn:uuid:1>"', "Route: <sip:p1;lr>, <sip:p2;lr>",
               "X-Unknown: anything ; at , all", "s: subject", "Content-Type: application/sdp"],
        body=SDP,
    )
    m = parse_message(data)
    out = m.serialize()
    assert bytes(m) == out
    m2 = parse_message(out)
    assert (m2.method, m2.uri, m2.version) == (m.method, m.uri, m.version)
    assert list(m2.headers.items()) == list(m.headers.items())
    assert m2.body == m.body == SDP
    assert m2.serialize() == out
    assert out.startswith(b"INVITE sips:bob@[2001:db8::1]:5061;transport=tls SIP/2.0\r\nVia: ")
    assert out.endswith(b"\r\nContent-Length: %d\r\n\r\n" % len(SDP) + SDP)


def test_serialize_puts_one_correct_content_length_last():
    m = parse_message(build(body=b"hello", content_length="3"))
    assert m.body == b"hel"
    m.body = b"hello!"
    out = m.serialize()
    assert out.count(b"Content-Length") == 1 and out.endswith(b"Content-Length: 6\r\n\r\nhello!")
    assert parse_message(out).body == b"hello!"


def test_response_round_trip():
    m = parse_message(build("SIP/2.0 486 Busy Here", headers={"To": "<sip:b@c>;tag=x"}))
    out = m.serialize()
    assert out.startswith(b"SIP/2.0 486 Busy Here\r\n")
    m2 = parse_message(out)
    assert (m2.status, m2.reason) == (486, "Busy Here") and list(m2.headers.items()) == list(m.headers.items())


def test_new_request():
    req = new_request("OPTIONS", parse_uri("sip:bob@example.com"), [
        ("Via", VIA), ("From", "<sip:a@example.com>;tag=1"), ("To", "<sip:bob@example.com>"),
        ("Call-ID", "n@x"), ("CSeq", "1 OPTIONS"), ("Max-Forwards", "70"),
    ], body=b"x")
    assert req.uri == "sip:bob@example.com"
    m = parse_message(req.serialize())
    assert m.method == "OPTIONS" and m.body == b"x" and m.cseq.number == 1


def test_cached_views_and_invalidate():
    m = parse_message(build())
    assert m.from_.tag == "1928301774"
    m.headers.set("From", "<sip:x@y>;tag=new")
    assert m.from_.tag == "1928301774"  # cached
    m.invalidate()
    assert m.from_.tag == "new"
    m.set_uri("sip:carol@chicago.example.com")
    assert m.ruri.user == "carol" and m.uri == "sip:carol@chicago.example.com"


# --------------------------------------------------------------------------- make_response

def _invite_with(**over) -> Request:
    extra = over.pop("extra", [])
    m = parse_message(build(headers=over, extra=extra))
    assert isinstance(m, Request)
    return m


def test_make_response_copies_the_dialog_headers():
    req = _invite_with(Via=f"{VIA}, SIP/2.0/TCP proxy.example.com;branch=z9hG4bK2",
                       extra=["Via: SIP/2.0/UDP third.example.com;branch=z9hG4bK3", "Subject: x",
                              "Record-Route: <sip:rr1;lr>, <sip:rr2;lr>"])
    resp = make_response(req, 180, to_tag="abc")
    assert isinstance(resp, Response) and (resp.status, resp.reason) == (180, "Ringing")
    assert resp.headers.get_lines("Via") == req.headers.get_lines("Via")
    assert [v.host for v in resp.vias] == ["pc33.atlanta.example.com", "proxy.example.com", "third.example.com"]
    assert resp.headers.get("From") == req.headers.get("From")
    assert resp.headers.get("Call-ID") == req.headers.get("Call-ID")
    assert resp.headers.get("CSeq") == req.headers.get("CSeq")
    assert resp.headers.get("To") == "Bob <sip:bob@biloxi.example.com>;tag=abc"
    assert resp.headers.get("Subject") is None  # only what §8.2.6.2 lists
    assert resp.headers.get_lines("Record-Route") == ["<sip:rr1;lr>, <sip:rr2;lr>"]
    again = parse_message(resp.serialize())
    assert again.to.tag == "abc" and again.cseq.number == 314159 and again.status == 180


def test_make_response_keeps_an_existing_to_tag():
    req = _invite_with(To="Bob <sip:bob@biloxi.example.com>;tag=existing")
    resp = make_response(req, 200, to_tag="new")
    assert resp.headers.get("To") == "Bob <sip:bob@biloxi.example.com>;tag=existing"
    assert resp.headers.get_all("To") == ["Bob <sip:bob@biloxi.example.com>;tag=existing"]
    assert make_response(_invite_with(), 100).headers.get("To") == BASE["To"]  # no tag asked for


def test_make_response_reason_extra_body():
    req = _invite_with(extra=["Record-Route: <sip:rr;lr>"])
    assert make_response(req, 486).reason == REASONS[486] == "Busy Here"
    assert make_response(req, 499).reason == "Unknown"
    assert make_response(req, 404, "Nobody Here").reason == "Nobody Here"
    resp = make_response(req, 415, extra=[("Accept", "application/sdp")], body=b"b")
    assert resp.headers.get("Accept") == "application/sdp" and resp.body == b"b"
    assert resp.headers.get("Record-Route") is None  # only 1xx/2xx copy Record-Route
    assert b"Content-Length: 1\r\n\r\nb" in resp.serialize()


def test_make_response_from_a_parse_error_partial():
    data = build(f"OPTIONS {RURI} SIP/3.0", headers={"CSeq": "1 OPTIONS"})
    e = reject(data, status=505)
    resp = make_response(e.partial, e.status, to_tag="t")
    m = parse_message(resp.serialize())
    assert m.status == 505 and m.to.tag == "t" and m.call_id == BASE["Call-ID"]
    # a partial whose To is unparseable still gets an answer
    e = reject(build(headers={"To": '"open <sip:a@b>'}))
    resp = make_response(e.partial, 400, to_tag="t")
    assert resp.headers.get("To") == '"open <sip:a@b>;tag=t'
