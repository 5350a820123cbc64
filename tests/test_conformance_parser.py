"""RFC 4475 / RFC 5118 torture tests against the message parser.

Every corpus message (../shared/conformance, see its README) is fed to ``parse_message`` as one UDP
datagram and judged by the manifest's ``parse`` field:

* ``accept``: it must parse, into a request or response as the manifest's ``kind`` says, with the
  body framed by Content-Length (or, with none, every octet after the empty line);
* ``reject``: it must raise ``ParseError``, with a status the manifest names (505 for badvers, ...),
  any 4xx when it names none;
* ``either``: the RFC allows a liberal repair; it must not raise anything but ``ParseError``, and a
  rejection must carry a status the manifest allows.

Facts the RFC spells out per message (method, escapes, Via list, IPv6 references, ...) are checked
where the parser exposes them.
"""
from __future__ import annotations

import pytest

from softswitch.sip.framing import FramingError, KeepAlive, StreamFramer
from softswitch.sip.message import ParseError, Request, Response, parse_message
from softswitch.sip.uri import AbsoluteUri, SipUri, parse_name_addr

from .conformance_corpus import CORPUS, EXPECTED_COUNTS, RFCS, Case, all_cases, load, params, start_line

CASES = all_cases()
ACCEPTED = [c for c in CASES if c.m["parse"] == "accept"]


def test_corpus_is_present_and_complete():
    assert CORPUS.is_dir(), f"conformance corpus missing at {CORPUS}"
    for rfc in RFCS:
        assert len(load(rfc)) == EXPECTED_COUNTS[rfc], rfc
    assert {c.m["parse"] for c in CASES} == {"accept", "reject", "either"}


def _allowed_status(case: Case, status: int) -> bool:
    expected = case.m["expected_status"]
    return status in expected if expected else 400 <= status <= 499


@pytest.mark.parametrize("case", params())
def test_parse_verdict(case: Case):
    verdict = case.m["parse"]
    try:
        msg = parse_message(case.data)
    except ParseError as e:
        assert verdict != "accept", f"{case.id}: the RFC requires the parser to accept it, got {e.status} {e.reason}"
        assert isinstance(e.status, int)
        if case.is_request:
            assert _allowed_status(case, e.status), (
                f"{case.id}: rejected with {e.status} ({e.reason}), manifest expects "
                f"{case.m['expected_status'] or 'a 4xx'}")
        # the partial message, when there is one, is of the right kind (it is what a 4xx is built from)
        if e.partial is not None:
            assert isinstance(e.partial, Request if case.is_request else Response)
        return
    # Accepted: a failure only where the RFC demands rejection and allows no liberal repair.
    assert verdict != "reject", f"{case.id}: must be rejected ({case.m['verdict']}) but parsed: {msg!r}"
    _check_accepted(case, msg)


def _check_accepted(case: Case, msg: Request | Response) -> None:
    line = start_line(case.data)
    if case.is_request:
        assert isinstance(msg, Request)
        method, uri, _ = line.split(" ", 2)
        assert msg.method == method
        assert msg.uri == uri
        assert msg.cseq.method == msg.method
        msg.ruri  # must not raise for an accepted message  # noqa: B018
    else:
        assert isinstance(msg, Response)
        assert msg.status == int(line.split(" ")[1])
    # Views every later layer relies on are usable.
    assert msg.vias and msg.top_via.host
    assert msg.call_id
    msg.from_, msg.to  # noqa: B018
    # Body framing: Content-Length wins over the datagram length; without one the rest is the body.
    declared = case.content_length
    if declared:
        assert len(msg.body) == int(declared[0])
    else:
        assert len(msg.body) == case.body_length
    sep = case.data.find(b"\r\n\r\n")
    if sep >= 0:  # the body is what follows the first empty line
        assert msg.body == case.data[sep + 4 : sep + 4 + len(msg.body)]


@pytest.mark.parametrize("case", params(ACCEPTED))
def test_accepted_messages_round_trip(case: Case):
    """serialize() of a parsed torture message parses again to the same message, and is stable."""
    msg = parse_message(case.data)
    wire = msg.serialize()
    again = parse_message(wire)
    assert type(again) is type(msg)
    assert _no_length(again) == _no_length(msg)  # serialize() writes one Content-Length, last
    assert again.headers.get_lines("Content-Length") == [str(len(msg.body))]
    assert again.body == msg.body
    if isinstance(msg, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri, again.version) == (msg.method, msg.uri, msg.version)
        assert str(again.ruri) == str(msg.ruri)
    else:
        assert isinstance(again, Response)
        assert (again.status, again.reason) == (msg.status, msg.reason)
    assert [str(v) for v in again.vias] == [str(v) for v in msg.vias]
    assert again.serialize() == wire


def _no_length(msg) -> list[tuple[str, str]]:
    return [(n, v) for n, v in msg.headers.items() if n != "Content-Length"]


# ----------------------------------------------------------------- facts the RFCs spell out

def _case(rfc: str, name: str) -> Case:
    return next(c for c in load(rfc) if c.name == name)


def _parse(name: str, rfc: str = "rfc4475") -> Request | Response:
    return parse_message(_case(rfc, name).data)


def _contacts(msg) -> list:
    return [parse_name_addr(v) for v in msg.headers.get_all("Contact")]


def test_wsinv_facts():
    m = _parse("wsinv")
    assert m.method == "INVITE" and m.cseq.number == 9 and m.headers.get("Max-Forwards") == "0068"
    assert m.to.tag == "1918181833n" and m.from_.tag == "98asjd8"
    assert m.from_.display == 'J Rosenberg \\"'
    assert [(v.transport, v.host) for v in m.vias] == [
        ("UDP", "192.0.2.2"), ("TCP", "spindle.example.com"), ("UDP", "192.168.255.111")]
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert m.headers.get("Subject") == ""
    assert m.ruri.params == {"unknownparam": None}


def test_intmeth_and_esc02_methods_are_taken_literally():
    m = _parse("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~" == m.cseq.method
    assert m.to.display == "BEL:\x07 NUL:\x00 DEL:\x7f"
    m = _parse("esc02")
    assert m.method == "RE%47IST%45R" != "REGISTER"
    assert m.from_.display == "%Z%45"
    assert [str(c.uri) for c in _contacts(m)] == ["sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_escapes_are_decoded_once():
    m = _parse("esc01")
    assert m.ruri.user_unescaped == "sips:user@example.com" and m.ruri.host == "example.net"
    assert m.to.uri.user_unescaped == "user"
    assert m.from_.uri.user_unescaped == "I have spaces"
    (contact,) = _contacts(m)
    assert contact.uri.user_unescaped == "caller"
    assert contact.uri.params == {"lr": None, "name": "value%41"}  # not "valueA"


def test_escnull_keeps_the_whole_user_name():
    m = _parse("escnull")
    assert m.to.uri.user_unescaped == "null-\x00-null"
    assert [c.uri.user_unescaped for c in _contacts(m)] == ["\x00", "\x00\x00"]


def test_semiuri_user_part_holds_the_semicolon():
    m = _parse("semiuri")
    assert m.ruri.user == "user;par=u%40example.net" and m.ruri.host == "example.com" and m.ruri.params == {}


def test_transports_and_long_values():
    m = _parse("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    m = _parse("longreq")
    assert len(m.vias) > 30 and len(m.from_.tag) > 150


def test_dblreq_and_mpart01_are_framed_by_content_length():
    m = _parse("dblreq")
    assert m.method == "REGISTER" and m.body == b""
    m = _parse("mpart01")
    assert len(m.body) == 553 and b"\x00" in m.body and m.body.count(b"\n") > m.body.count(b"\r\n")


def test_inv2543_without_content_length_takes_the_rest_of_the_datagram():
    m = _parse("inv2543")
    assert "Content-Length" not in m.headers and len(m.body) == 105
    assert m.top_via.branch is None and m.from_.tag is None and "Max-Forwards" not in m.headers
    with pytest.raises(ParseError):
        parse_message(_case("rfc4475", "inv2543").data, stream=True)  # mandatory on streams


def test_responses_with_unusual_reason_phrases():
    m = _parse("unreason")
    assert m.status == 200 and m.reason.startswith("= 2**3 * 5**2 но сто")
    m = _parse("noreason")
    assert m.status == 100 and m.reason == ""
    m = _parse("bcast")
    assert m.vias[1].host == "255.255.255.255"


def test_semantically_wrong_but_well_formed():
    assert _parse("badbranch").top_via.branch == "z9hG4bK"
    assert _parse("unkscm").ruri == AbsoluteUri("nobodyknowsthisscheme", "totallyopaquecontent")
    assert _parse("novelsc").ruri.scheme == "soap.beep"
    m = _parse("unksm2")
    assert isinstance(m.to.uri, AbsoluteUri) and m.to.uri.scheme == "isbn"
    assert _parse("bext01").headers.get_all("Require")
    assert _parse("zeromf").headers.get("Max-Forwards") == "0"
    assert _parse("regaut01").headers.get("Authorization").startswith("NoOneKnowsThisScheme")


def test_contact_parameters_belong_where_the_brackets_say():
    (c,) = _contacts(_parse("cparam01"))
    assert c.uri.params == {} and c.params == {"unknownparam": None}
    (c,) = _contacts(_parse("cparam02"))
    assert c.uri.params == {"unknownparam": None} and c.params == {}
    (c,) = _contacts(_parse("regescrt"))
    assert c.uri.headers == "Route=%3Csip:sip.example.com%3E"


def test_rejections_with_a_specific_status():
    for name, status in (("badvers", 505), ("mismatch01", 400), ("mismatch02", 501), ("clerr", 400),
                         ("scalar02", 400), ("badinv01", 400)):
        with pytest.raises(ParseError) as e:
            _parse(name)
        assert e.value.status == status, name
        assert isinstance(e.value.partial, Request), name  # enough to answer it
    for name in ("scalarlg", "bigcode"):  # responses: dropped, never answered
        with pytest.raises(ParseError):
            _parse(name)


def test_rfc5118_ipv6_references():
    m = _parse("ipv6-good", "rfc5118")
    assert m.ruri.host == "[2001:db8::10]" and m.top_via.host == "[2001:db8::9:1]"
    assert _contacts(m)[0].uri.host == "[2001:db8::1]"
    m = _parse("port-ambiguous", "rfc5118")
    assert (m.ruri.host, m.ruri.port) == ("[2001:db8::10:5070]", None)
    m = _parse("port-unambiguous", "rfc5118")
    assert (m.ruri.host, m.ruri.port) == ("[2001:db8::10]", 5070)
    assert _parse("via-received-param-with-delim", "rfc5118").top_via.params["received"] == "[2001:db8::9:255]"
    assert _parse("via-received-param-no-delim", "rfc5118").top_via.params["received"] == "2001:db8::9:255"
    m = _parse("mult-ip-in-header", "rfc5118")
    assert [(v.host, v.port) for v in m.vias] == [
        ("[2001:db8::9:1]", 6050), ("192.0.2.1", None), ("[2001:db8::9:255]", None)]
    m = _parse("ipv4-mapped-ipv6", "rfc5118")
    assert (m.top_via.host, m.top_via.port) == ("[::ffff:192.0.2.10]", 19823)
    for name in ("ipv6-bug-abnf-3-colons", "ipv6-correct-abnf-2-colons"):
        m = _parse(name, "rfc5118")
        assert isinstance(m.ruri, SipUri) and m.ruri.user == "user" and "192.0.2.1" in m.ruri.host


def test_rfc5118_archive_form_does_not_crash_the_parser():
    """The archived (bare-LF, mis-framed) originals: accepted liberally or rejected, never a crash."""
    base = CORPUS / "rfc5118"
    for case in load("rfc5118"):
        data = (base / case.m["file"]).read_bytes()
        try:
            parse_message(data)
        except ParseError:
            pass


# --------------------------------------------------------------------- stream (TCP) framing

STREAMABLE = [c for c in ACCEPTED if c.content_length and c.name != "dblreq"]  # dblreq is UDP-only


def test_stream_framing_of_every_valid_message():
    """Valid messages back to back on one TCP stream, fed in awkward chunks: each comes out whole."""
    stream = b"".join(c.data[: c.data.index(b"\r\n\r\n") + 4 + int(c.content_length[0])] for c in STREAMABLE)
    for chunk in (len(stream), 1, 7, 1400):
        framer = StreamFramer()
        out: list = []
        for i in range(0, len(stream), chunk):
            out += framer.feed(stream[i : i + chunk])
        out = [m for m in out if not isinstance(m, KeepAlive)]
        assert len(out) == len(STREAMABLE), chunk
        for case, data in zip(STREAMABLE, out):
            msg = parse_message(data, stream=True)
            assert len(msg.body) == int(case.content_length[0]), case.id
        assert framer.buffered == 0


def test_stream_transport_notes():
    """RFC 4475's TCP notes: clerr waits for more data; ncl and mcl01 cannot be framed (close)."""
    framer = StreamFramer()
    assert framer.feed(_case("rfc4475", "clerr").data) == [] and framer.buffered > 0
    for name in ("ncl", "mcl01"):
        with pytest.raises(FramingError):
            StreamFramer().feed(_case("rfc4475", name).data)
