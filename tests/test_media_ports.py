"""RTP port range and the no-leak guarantee across many calls."""
import pytest

from media import MediaConfig, MediaEngine, PortChanges, PortFailed, PortsExhausted
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


def test_allocate_only_reserves_and_the_changes_name_each_port_once():
    eng = MediaEngine(MediaConfig(rtp_ports="21000-21010"))
    a, b = eng.allocate("c1"), eng.allocate("c1")
    assert eng.ports.in_use == 2 and (a.port, b.port) == (21000, 21002)
    assert eng.take_port_changes() == PortChanges([21000, 21002], [])      # the edge binds these
    assert eng.take_port_changes() == PortChanges([], [])                  # taken once
    eng.release(a)
    c = eng.allocate("c2")
    eng.release(c)                                                          # reserved and released between syncs
    assert eng.take_port_changes() == PortChanges([], [21000, 21004])      # c's port: close is a no-op for the edge
    assert eng.ports.in_use == 1


def test_engine_without_edge_takes_packets_on_reserved_ports():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="21000-21010"), now=clock)
    ph = Phone(("10.0.0.1", 4000))
    ep = eng.allocate("c1")
    eng.answer(ep, ph.sdp())
    eng.datagram_received(ep.port, ph.audio([0.0] * 160), ph.addr, clock.t)
    assert ep.rx_packets == 1
    assert not any(isinstance(e, PortFailed) for e in eng.tick(clock.t).events)   # nobody binds: no failure


def test_failed_bind_quarantines_the_port_and_reports_the_leg():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="21000-21010"), now=clock)
    ep, other = eng.allocate("c1", "caller"), eng.allocate("c1", "agent")
    opened = []
    to_open, _ = eng.take_port_changes()
    for port in to_open:                                  # a fake edge: 21000 is taken by another program
        if port == 21000:
            eng.port_failed(port, "OSError: address in use")
        else:
            opened.append(port)
    assert opened == [21002] and ep.port_failed and not other.port_failed
    assert eng.ports.quarantined == {21000} and eng.ports.in_use == 1
    evs = eng.tick(clock.t).events                         # delivered with the tick's other events
    assert evs == [PortFailed(ep, 21000, "OSError: address in use")]
    eng.port_failed(21000)                                 # reported twice: one event only
    assert eng.tick(clock.t).events == []
    eng.release(ep)                                        # call control hangs the leg up
    assert eng.take_port_changes() == PortChanges([], [])  # nothing to close: it never opened
    assert eng.ports.in_use == 1 and 21000 in eng.ports.quarantined
    got = [eng.allocate("c2").port for _ in range(3)]     # 5 pairs: 1 quarantined, 1 in use, 3 free
    assert 21000 not in got                                # never handed out again
    with pytest.raises(PortsExhausted):
        eng.allocate("c3")


def test_edge_binds_reserved_ports_and_reports_a_port_in_use():
    import socket

    from media.edge import MediaEdge

    async def main():
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind(("127.0.0.1", 21021))                 # the RTCP port of 21020 is taken
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="21020-21030"))
        events = []
        edge = MediaEdge(eng, on_events=events.extend)
        try:
            bad, good = eng.allocate("c1"), eng.allocate("c1")
            assert not edge.socks                          # allocate touched no socket
            assert edge.sync_ports() == 1
            assert set(edge.socks) == {good.port, good.port + 1}
            assert bad.port == 21020 and 21020 in eng.ports.quarantined and edge.ports_failed == 1
            edge.step(asyncio.get_running_loop().time())
            assert [type(e) for e in events] == [PortFailed] and events[0].endpoint is bad
            eng.release(good)
            eng.release(bad)
            edge.sync_ports()
            assert not edge.socks and eng.ports.in_use == 0
            again = eng.allocate("c2")                     # the next free port, not the quarantined one
            edge.step(asyncio.get_running_loop().time())   # every tick starts with sync_ports
            assert again.port != 21020 and again.port in edge.socks
        finally:
            await edge.stop()
            blocker.close()
        assert not edge.socks and eng.ports.in_use == 0

    import asyncio
    asyncio.run(main())
