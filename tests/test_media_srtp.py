"""SRTP with SDES keys (RFC 4568) in the engine, sans-IO: offer/answer per policy, packets both ways through
libsrtp, forged packets dropped even from the phone's own address."""
import base64

import numpy as np
import pytest

from media import MediaConfig, MediaEngine, NegotiationError, rtp
from media.srtp import Crypto, Keys, SrtpContext, new_key, parse_crypto
from media.testing import Clock, Phone


def test_parse_crypto_attribute():
    key = new_key()
    b64 = base64.b64encode(key).decode()
    assert parse_crypto(f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{b64}") == Crypto(1, "AES_CM_128_HMAC_SHA1_80", key)
    assert parse_crypto(f"2 AES_CM_128_HMAC_SHA1_32 inline:{b64}|2^20") == Crypto(2, "AES_CM_128_HMAC_SHA1_32", key)
    assert parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64}|2^20|1:4") is None          # MKI
    assert parse_crypto(f"1 AES_256_CM_HMAC_SHA1_80 inline:{b64}") is None                   # suite
    assert parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64} UNENCRYPTED_SRTP") is None  # no, thanks
    assert parse_crypto("1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=") is None                 # 5-byte key


def phone_sdp(port, proto="RTP/AVP", crypto: Crypto | None = None):
    lines = ["v=0", "o=phone 1 1 IN IP4 10.0.0.1", "s=x", "c=IN IP4 10.0.0.1", "t=0 0",
             f"m=audio {port} {proto} 0 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
             "a=sendrecv"]
    if crypto is not None:
        lines.append("a=" + crypto.attribute())
    return "\r\n".join(lines) + "\r\n"


def our_crypto(body: str) -> Crypto:
    found = [parse_crypto(line[2:]) for line in body.splitlines() if line.startswith("a=crypto:")]
    assert found and found[0] is not None, body
    return found[0]


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
def test_answered_srtp_call_carries_audio_both_ways_and_drops_forgeries(suite):
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    a, b = Phone(("10.0.0.1", 4000)), Phone(("10.0.0.2", 4002))
    ea = eng.allocate("c", "a", source="10.0.0.1", srtp="required")
    eb = eng.allocate("c", "b", source="10.0.0.2")
    phone_key = Crypto(7, suite, new_key())
    answer = eng.answer(ea, phone_sdp(4000, "RTP/SAVP", phone_key))
    assert "m=audio %d RTP/SAVP" % ea.port in answer
    mine = our_crypto(answer)
    assert mine.tag == 7 and mine.suite == suite and mine.key != phone_key.key
    eng.answer(eb, b.sdp())
    eng.bridge(ea, eb)
    phone = SrtpContext(Keys(suite, phone_key.key, mine.key))       # the phone's side: sends with its key
    heard_b, heard_a = [], []
    for i in range(30):
        x = 8000 * np.sin(2 * np.pi * 600 * np.arange(i * 160, (i + 1) * 160) / 8000)
        eng.datagrams_received([(ea.port, phone.protect(a.audio(x)), a.addr, clock.t),
                                (eb.port, b.audio(np.zeros(160)), b.addr, clock.t)] * 1)
        # a forgery from a's own address: plain RTP (no valid authentication tag)
        eng.datagram_received(ea.port, a.audio(np.zeros(160)), a.addr, clock.t)
        if i == 8:
            eng.send_dtmf(eb, "5")                 # b's packets leave the fast path for a while: a's stay SRTP
        if i == 18:
            eng.send_dtmf(ea, "7")                 # a's RFC 4733 events (the slow path) are SRTP too
        out = eng.tick(clock.t)
        for d in out.datagrams:
            if d.port == ea.port:
                plain = phone.unprotect(d.data)
                assert plain is not None                              # what a gets is SRTP under our key
                heard_a.append(plain)
            elif d.port == eb.port:
                heard_b.append(d.data)
        clock.t += 0.02
    assert len(heard_a) >= 30 and rtp.parse(heard_a[0]).pt == 0
    assert any(rtp.parse(d).pt == 101 for d in heard_a)
    assert {len(d) for d in heard_b} <= {172, 16}                     # b's leg is plain RTP (no auth tag)
    b.inbox.extend(heard_b)
    got = b.received_audio()[1600:]
    assert np.sqrt(np.mean(got ** 2)) > 3000                          # b hears a's tone (5657 RMS, after the buffer)
    assert ea.rx_packets == 30 and eng.leg_stats(ea).srtp == suite and eng.leg_stats(eb).srtp is None
    assert ea.srtp is not None and ea.srtp.rx_errors == 30            # the 30 forgeries
    assert eng.srtp_rejected == 30 and eng.foreign_packets == 0       # softswitch_media_srtp_rejected_total


def test_policies_in_offer_and_answer():
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"))
    off, opt, req = (eng.allocate("c", p, srtp=p) for p in ("off", "optional", "required"))
    assert "RTP/AVP" in eng.offer(off) and "crypto" not in eng.offer(off)
    o = eng.offer(opt)
    assert f"m=audio {opt.port} RTP/AVP" in o and o.count("a=crypto:") == 2      # best effort: phones may ignore
    r = eng.offer(req)
    assert f"m=audio {req.port} RTP/SAVP" in r
    # a phone without SRTP answering the optional offer: plain RTP; the required one: refused
    eng.accept_answer(opt, phone_sdp(4000))
    assert opt.srtp is None
    with pytest.raises(NegotiationError, match="SRTP required"):
        eng.accept_answer(req, phone_sdp(4000))
    # answers: a plain offer on a required extension is refused (488); SAVP on an "off" one too
    with pytest.raises(NegotiationError, match="SRTP required"):
        eng.answer(eng.allocate("c", "x", srtp="required"), phone_sdp(4000))
    with pytest.raises(NegotiationError, match="SRTP is off"):
        eng.answer(eng.allocate("c", "y"), phone_sdp(4000, "RTP/SAVP", Crypto(1, "AES_CM_128_HMAC_SHA1_80", new_key())))
    # the phone's answer names our tag 2 (the 32-bit tag suite): that is the suite used
    ep = eng.allocate("c", "z", srtp="optional")
    offer = eng.offer(ep)
    tag2 = [parse_crypto(line[2:]) for line in offer.splitlines() if line.startswith("a=crypto:2 ")][0]
    assert tag2 is not None
    eng.accept_answer(ep, phone_sdp(4000, "RTP/AVP", Crypto(2, tag2.suite, new_key())))
    assert ep.srtp is not None and ep.srtp.keys.suite == "AES_CM_128_HMAC_SHA1_32" and ep.srtp.keys.local == tag2.key
