"""RTP port range and the no-leak guarantee across many calls."""
import pytest

from media import MediaConfig, MediaEngine, PortsExhausted
from media.ports import PortAllocator, parse_port_range
from media.testing import Clock, Phone


def test_parse_range():
    assert parse_port_range("10000-20000") == (10000, 20000)
    for bad in ("10000", "20000-10000", "80-1000", "x-y", "10000-10002"):
        with pytest.raises(ValueError):
            parse_port_range(bad)


def test_even_ports_reuse_late_and_exhaustion():
    pa = PortAllocator("10001-10009")
    got = [pa.allocate() for _ in range(4)]
    assert got == [10002, 10004, 10006, 10008] and all(p + 1 <= 10009 for p in got)
    with pytest.raises(PortsExhausted):
        pa.allocate()
    pa.release(10004)
    with pytest.raises(KeyError):
        pa.release(10004)                                   # double release is a caller bug
    assert pa.allocate() == 10004 and pa.in_use == 4


def test_no_leak_after_many_calls():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="20000-20100"), now=clock)
    a, b = Phone(("10.0.0.1", 4000)), Phone(("10.0.0.2", 4002))
    for i in range(500):                                    # 10 times the pool: any leak would exhaust it
        ea, eb = eng.allocate(f"c{i}"), eng.allocate(f"c{i}")
        eng.answer(ea, a.sdp())
        if i % 3 == 0:                                      # some calls fail before the callee answers
            eng.release(eb)
            eng.release(ea)
            continue
        eng.accept_answer(eb, b.sdp())
        eng.bridge(ea, eb)
        eng.datagram_received(ea.port, a.audio([0.0] * 160), a.addr, clock.t)
        eng.tick(clock.t)
        clock.t += 0.02
        eng.release(ea)
        eng.release(eb)
        eng.release(eb)                                     # idempotent
    assert eng.ports.in_use == 0 and eng.ports.available == eng.ports.capacity == 50
    assert not eng.endpoints and len(eng._free_rows) == eng._cap
    eng.tick(clock.t)                                       # BYEs flushed, nothing left
    assert eng.tick(clock.t).datagrams == []


def test_port_that_will_not_bind_is_skipped():
    tried = []
    eng = MediaEngine(MediaConfig(rtp_ports="21000-21010"), port_open=lambda p: tried.append(p) or p != 21000)
    ep = eng.allocate()
    assert ep.port == 21002 and tried == [21000, 21002] and eng.ports.in_use == 1
