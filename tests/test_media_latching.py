"""Where a leg's media may come from (issue 11, RTP hijack), sans-IO with a fake clock: the SDP's address at
once, a NAT'ed phone's real source learned once from a run of in-sequence packets of one SSRC from its
signalling IP, never re-learned because the phone went quiet; a stranger is never taken nor answered."""
import numpy as np

from media import MediaConfig, MediaEngine, SourceLatched
from media.engine import LEARN_RUN
from media.testing import Clock, Phone

STRANGER = ("198.51.100.66", 40000)


def setup(a_addr=("10.0.0.1", 4000), source="10.0.0.1"):
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    a, b = Phone(a_addr), Phone(("10.0.0.2", 4002))
    ea, eb = eng.allocate("c", "a", source=source), eng.allocate("c", "b", source="10.0.0.2")
    eng.answer(ea, a.sdp())
    eng.answer(eb, b.sdp())
    eng.bridge(ea, eb)
    return eng, clock, a, b, ea, eb


def tone(n=160):
    return 8000 * np.sin(2 * np.pi * 1000 * np.arange(n) / 8000)


def sent_to(out, addr):
    return [d for d in out.datagrams if d.addr[0] == addr[0]]


def test_stranger_before_the_phone_is_dropped_and_gets_nothing():
    eng, clock, a, b, ea, eb = setup()
    stranger = Phone(STRANGER)
    for _ in range(20):                                   # before a's first packet
        eng.datagram_received(ea.port, stranger.audio(tone()), STRANGER, clock.t)
        eng.datagram_received(ea.port + 1, b"\x80\xc8\x00\x06" + bytes(24), (STRANGER[0], STRANGER[1] + 1), clock.t)
        out = eng.tick(clock.t)
        assert not sent_to(out, STRANGER)
        clock.t += 0.02
    assert not ea.latched and ea.remote == a.addr and ea.rx_packets == 0 and ea.rx_foreign == 40
    assert eng.foreign_packets == 40                      # softswitch_media_foreign_packets_total
    assert ea.rtcp_remote is None
    eng.datagram_received(ea.port, a.audio(tone()), a.addr, clock.t)   # the phone: taken at once (SDP address)
    assert ea.latched and ea.remote == a.addr and ea.rx_packets == 1


def test_stranger_during_a_pause_is_dropped_the_phone_comes_back():
    eng, clock, a, b, ea, eb = setup()
    for _ in range(5):
        eng.datagram_received(ea.port, a.audio(tone()), a.addr, clock.t)
        eng.tick(clock.t)
        clock.t += 0.02
    clock.t += 10.0                                       # the phone is quiet for 10 s
    stranger = Phone(STRANGER)
    for _ in range(50):
        eng.datagram_received(ea.port, stranger.audio(tone()), STRANGER, clock.t)
        out = eng.tick(clock.t)
        assert not sent_to(out, STRANGER)
        clock.t += 0.02
    assert ea.remote == a.addr and ea.rx_packets == 5 and ea.rx_foreign == 50
    eng.datagram_received(ea.port, a.audio(tone()), a.addr, clock.t)
    assert ea.rx_packets == 6


def test_nat_source_is_learned_from_a_run_of_its_signalling_ip_only_once():
    nat = ("203.0.113.7", 31000)
    eng, clock, a, b, ea, eb = setup(a_addr=("192.168.1.20", 4000), source=nat[0])   # SDP: a private address
    events = []
    stranger = Phone(STRANGER)
    for _ in range(10):                                   # a stranger's run teaches nothing: wrong IP
        eng.datagram_received(ea.port, stranger.audio(tone()), STRANGER, clock.t)
    # the NAT's IP, but a broken run (every other packet lost) teaches nothing either
    for _ in range(6):
        eng.datagram_received(ea.port, a.audio(tone()), nat, clock.t)
        a.seq = (a.seq + 1) & 0xFFFF
    assert not ea.latched and ea.rx_packets == 0
    for _ in range(LEARN_RUN):
        eng.datagram_received(ea.port, a.audio(tone()), nat, clock.t)
    events += eng.tick(clock.t).events
    assert ea.latched and ea.remote == nat and ea.rx_packets == 1
    assert [e.addr for e in events if isinstance(e, SourceLatched)] == [nat]
    clock.t += 30.0                                       # quiet for long; someone else from the NAT's IP
    other = Phone((nat[0], 31002))
    for _ in range(20):
        eng.datagram_received(ea.port, other.audio(tone()), other.addr, clock.t)
    assert ea.remote == nat and ea.rx_packets == 1
    # a re-INVITE naming another address is signalling: the source is settled afresh
    eng.answer(ea, Phone(("192.168.1.20", 4010)).sdp(version=2))
    assert not ea.latched


def test_rtcp_only_from_the_phones_ip():
    eng, clock, a, b, ea, eb = setup()
    sr = b"\x80\xc8\x00\x06" + bytes(24)
    eng.datagram_received(ea.port + 1, sr, (STRANGER[0], STRANGER[1] + 1), clock.t)
    assert ea.rtcp_remote is None
    eng.datagram_received(ea.port + 1, sr, (a.addr[0], a.addr[1] + 1), clock.t)
    assert ea.rtcp_remote == (a.addr[0], a.addr[1] + 1)
    eng.datagram_received(ea.port + 1, sr, (STRANGER[0], STRANGER[1] + 1), clock.t)
    assert ea.rtcp_remote == (a.addr[0], a.addr[1] + 1)
