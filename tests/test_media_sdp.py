"""SDP offer/answer: codec choice, telephone-event, direction and hold, ptime, re-INVITE, rejection."""
import pytest

from media import g711, sdp

OFFER = """v=0\r
o=alice 2890844526 2890844526 IN IP4 192.168.1.10\r
s=-\r
c=IN IP4 192.168.1.10\r
t=0 0\r
m=audio 49170 RTP/AVP 8 0 18 96\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:18 G729/8000\r
a=rtpmap:96 telephone-event/8000\r
a=fmtp:96 0-15\r
a=ptime:30\r
a=sendrecv\r
m=video 51372 RTP/AVP 31\r
"""


def local(**kw):
    return sdp.LocalSdp("203.0.113.5", 10000, **kw)


def test_parse_roundtrip():
    sd = sdp.parse(OFFER)
    a = sd.audio()
    assert (sd.connection, a.port, a.fmts) == ("192.168.1.10", 49170, ["8", "0", "18", "96"])
    assert a.rtpmap[96] == ("telephone-event", 8000, 1) and a.ptime == 30 and a.direction == "sendrecv"
    again = sdp.parse(sdp.serialise(sd))
    assert again.audio().rtpmap == a.rtpmap and again.media[1].media == "video"


def test_answer_follows_offerer_preference_and_te_pt():
    body, p = local().answer(sdp.parse(OFFER))
    assert p.codec == g711.ALAW and p.pt == 8 and p.te_pt == 96 and p.ptime == 30
    assert (p.remote_addr, p.remote_port) == ("192.168.1.10", 49170)
    ans = sdp.parse(body)
    assert ans.connection == "203.0.113.5" and ans.audio().port == 10000
    assert ans.audio().fmts == ["8", "96"] and ans.audio().rtpmap[96][0] == "telephone-event"
    assert ans.audio().ptime == 20 and ans.audio().direction == "sendrecv"
    assert ans.media[1].media == "video" and ans.media[1].port == 0     # rejected, line kept (RFC 3264 §6)


def test_static_payload_without_rtpmap_and_our_codec_list():
    offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8\r\n"
    _, p = local().answer(sdp.parse(offer))
    assert p.codec == g711.ULAW and p.te_pt is None and p.ptime == 20
    _, p = local(codecs=(g711.ALAW,)).answer(sdp.parse(offer))
    assert p.codec == g711.ALAW and p.pt == 8


def test_no_common_codec_rejected():
    offer = OFFER.replace("m=audio 49170 RTP/AVP 8 0 18 96", "m=audio 49170 RTP/AVP 18 96")
    with pytest.raises(sdp.NegotiationError):
        local().answer(sdp.parse(offer))
    with pytest.raises(sdp.SdpError):
        sdp.parse("hello")


@pytest.mark.parametrize("offered,answered,send,receive,hold", [
    ("sendrecv", "sendrecv", True, True, False),
    ("sendonly", "recvonly", False, True, True),
    ("inactive", "inactive", False, False, True),
    ("recvonly", "sendonly", True, False, False),
])
def test_directions(offered, answered, send, receive, hold):
    body, p = local().answer(sdp.parse(OFFER.replace("a=sendrecv", f"a={offered}")))
    assert sdp.parse(body).audio().direction == answered
    assert (p.send, p.receive, p.on_hold) == (send, receive, hold)


def test_old_style_hold_and_session_level_direction():
    _, p = local().answer(sdp.parse(OFFER.replace("c=IN IP4 192.168.1.10", "c=IN IP4 0.0.0.0")))
    assert p.on_hold and not p.send
    text = OFFER.replace("a=sendrecv\r\n", "").replace("t=0 0\r\n", "t=0 0\r\na=inactive\r\n")
    _, p = local().answer(sdp.parse(text))
    assert p.remote_direction == "inactive"


def test_reinvite_bumps_version_only_on_change():
    ls = local()
    b1, _ = ls.answer(sdp.parse(OFFER))
    b2, _ = ls.answer(sdp.parse(OFFER))
    b3, p = ls.answer(sdp.parse(OFFER.replace("a=sendrecv", "a=sendonly")))
    v = [sdp.parse(b).session_version for b in (b1, b2, b3)]
    ids = {sdp.parse(b).session_id for b in (b1, b2, b3)}
    assert v[0] == v[1] and v[2] == v[1] + 1 and len(ids) == 1 and p.on_hold


def test_offer_and_answer_to_our_offer():
    ls = local()
    off = sdp.parse(ls.offer(prefer=g711.ALAW))
    a = off.audio()
    assert a.fmts == ["8", "0", "101"] and a.rtpmap[101] == ("telephone-event", 8000, 1) and a.ptime == 20
    answer = "v=0\r\no=- 5 5 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n" \
             "m=audio 7000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:40\r\n"
    p = ls.accept_answer(sdp.parse(answer))
    assert (p.codec, p.te_pt, p.ptime, p.remote_port, p.send) == (g711.ULAW, 101, 40, 7000, True)
    with pytest.raises(sdp.NegotiationError):
        ls.accept_answer(sdp.parse(answer.replace("m=audio 7000", "m=audio 0")))
