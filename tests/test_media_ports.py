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


def test_even_ports_drawn_at_random_reused_late_and_exhaustion():
    pa = PortAllocator("10001-10009")
    got = [pa.allocate()[0] for _ in range(4)]
    assert sorted(got) == [10002, 10004, 10006, 10008] and all(p + 1 <= 10009 for p in got)
    with pytest.raises(PortsExhausted):
        pa.allocate()
    pa.release(10004)
    with pytest.raises(KeyError):
        pa.release(10004)                                   # double release is a caller bug
    assert pa.allocate() == (10004, False) and pa.in_use == 4


def test_ports_are_not_handed_out_in_sequence():
    """A stranger who saw one call's port cannot guess the next one (issue 11: RTP hijack)."""
    pa = PortAllocator("10000-20000")
    seqs = [[pa.allocate()[0] for _ in range(20)] for _ in range(3)]
    steps = {b - a for s in seqs for a, b in zip(s, s[1:])}
    assert len(steps) > 30                                  # in sequence, every step would be 2
    assert len({p for s in seqs for p in s}) == 60


def test_freed_ports_cool_down_before_reuse():
    pa = PortAllocator("10000-10040")                       # 20 pairs: up to 10 cool down
    first = [pa.allocate()[0] for _ in range(10)]
    for p in first:
        pa.release(p)
    again = {pa.allocate()[0] for _ in range(10)}
    assert not again & set(first)                           # the 10 other pairs went first


def test_quarantined_port_comes_back_after_the_retry_time():
    pa = PortAllocator("10000-10004", retry_after=60)      # two pairs
    a, _ = pa.allocate(0.0)
    pa.quarantine(a, now=0.0)                               # another program held it
    b, _ = pa.allocate(1.0)
    assert b != a and pa.in_use == 1 and a in pa.quarantined
    with pytest.raises(PortsExhausted):
        pa.allocate(59.0)
    assert pa.allocate(61.0)[0] == a and not pa.quarantined


def test_spares_are_handed_out_first_and_are_not_in_use():
    pa = PortAllocator("10000-10010")
    s = pa.reserve_spare()
    assert s is not None
    pa.spare_bound(s)
    assert pa.in_use == 0 and pa.spares == 1
    assert pa.allocate() == (s, True) and pa.in_use == 1
    t = pa.reserve_spare()
    assert t is not None
    pa.spare_failed(t, retire=False)                        # no descriptors: the port is fine, back to the pool
    assert not pa.quarantined and pa.available == 4
    u = pa.reserve_spare()
    assert u is not None
    pa.spare_failed(u, retire=True)                         # address in use: retired for a while
    assert pa.quarantined == {u} and pa.available == 3


def test_reserve_is_kept_for_calls_allowed_to_use_it():
    pa = PortAllocator("10000-10010", reserve=2)            # 5 pairs, 2 kept back
    for _ in range(3):
        pa.allocate(use_reserve=False)
    with pytest.raises(PortsExhausted, match="queue and hotline"):
        pa.allocate(use_reserve=False)
    pa.allocate(use_reserve=True)
    pa.allocate(use_reserve=True)
    with pytest.raises(PortsExhausted):
        pa.allocate(use_reserve=True)


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
    assert eng.ports.in_use == 2
    assert eng.take_port_changes() == PortChanges([a.port, b.port], [])    # the edge binds these
    assert eng.take_port_changes() == PortChanges([], [])                  # taken once
    eng.release(a)
    c = eng.allocate("c2")
    eng.release(c)                                                          # reserved and released between syncs
    assert eng.take_port_changes() == PortChanges([], [a.port, c.port])    # c's port: close is a no-op for the edge
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
    bad = ep.port
    opened = []
    to_open, _ = eng.take_port_changes()
    for port in to_open:                                  # a fake edge: ep's port is taken by another program
        if port == bad:
            eng.port_failed(port, "OSError: address in use")
        else:
            opened.append(port)
    assert opened == [other.port] and ep.port_failed and not other.port_failed
    assert eng.ports.quarantined == {bad} and eng.ports.in_use == 1
    evs = eng.tick(clock.t).events                         # delivered with the tick's other events
    assert evs == [PortFailed(ep, bad, "OSError: address in use")]
    eng.port_failed(bad)                                   # reported twice: one event only
    assert eng.tick(clock.t).events == []
    eng.release(ep)                                        # call control hangs the leg up
    assert eng.take_port_changes() == PortChanges([], [])  # nothing to close: it never opened
    assert eng.ports.in_use == 1 and bad in eng.ports.quarantined
    got = [eng.allocate("c2").port for _ in range(3)]     # 5 pairs: 1 quarantined, 1 in use, 3 free
    assert bad not in got                                  # not handed out again (for port_retry seconds)
    with pytest.raises(PortsExhausted):
        eng.allocate("c3")


def test_no_descriptors_retires_no_port_and_refuses_calls_until_sockets_open():
    """EMFILE says nothing about a port (issue 11 item 2): nothing is quarantined, new legs get
    PortsExhausted (503) while sockets cannot open, and ports are handed out again afterwards."""
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="21000-21010"), now=clock)
    eng.spares_wanted = 2
    p = eng.spare_to_bind()
    assert p is not None
    eng.spare_failed(p, "OSError: [Errno 24] Too many open files", retire=False)
    assert eng.spare_to_bind() is None                     # no retry within the block time
    with pytest.raises(PortsExhausted, match="too many open files"):
        eng.allocate("c1")
    ep = None
    clock.t += 1.5
    q = eng.spare_to_bind()
    assert q is not None
    eng.spare_bound(q)
    ep = eng.allocate("c2")
    assert ep.port == q and not eng.ports.quarantined and eng.take_port_changes() == PortChanges([], [])
    leg = eng.allocate("c3")                               # no spare: reserved; the bind fails for want of fds
    eng.take_port_changes()
    eng.port_failed(leg.port, "OSError: [Errno 24] Too many open files", retire=False)
    assert leg.port_failed and not eng.ports.quarantined and eng.ports.in_use == 1
    eng.release(leg)
    assert eng.ports.available == 4                        # every pair but ep's is there to be used


def test_edge_uses_another_port_when_one_is_held_by_another_program():
    """The known bug of issue 11: a port in the range held by another process failed the call. The edge
    binds spares ahead of need; a held port is quarantined and never named in an SDP."""
    import socket

    from media.edge import MediaEdge

    async def main():
        blockers = []
        for p in range(21021, 21030, 2):                   # the RTCP port of four of the five pairs is taken
            if p == 21025:
                continue
            b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            b.bind(("127.0.0.1", p))
            blockers.append(b)
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="21020-21030",
                                      spare_ports=2))
        events = []
        edge = MediaEdge(eng, on_events=events.extend)      # binds its spares now
        try:
            assert eng.ports.spares == 1 and eng.ports.in_use == 0
            assert eng.ports.quarantined == {21020, 21022, 21026, 21028}
            ep = eng.allocate("c1")
            assert ep.port == 21024 and ep.port in edge.socks and edge.sync_ports() == 0
            edge.step(asyncio.get_running_loop().time())
            assert not events and not ep.port_failed
            eng.release(ep)
            edge.sync_ports()
            assert eng.ports.in_use == 0
        finally:
            await edge.stop()
            for b in blockers:
                b.close()
        assert not edge.socks and eng.ports.in_use == 0

    import asyncio
    asyncio.run(main())


def test_edge_binds_reserved_ports_and_reports_a_port_in_use():
    import socket

    from media.edge import MediaEdge

    async def main():
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="21020-21030",
                                      spare_ports=0))     # no spares: the old path (a burst that used them all)
        events = []
        edge = MediaEdge(eng, on_events=events.extend)
        blocker = None
        try:
            bad, good = eng.allocate("c1"), eng.allocate("c1")
            blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            blocker.bind(("127.0.0.1", bad.port + 1))      # its RTCP port is taken meanwhile
            assert not edge.socks                          # allocate touched no socket
            assert edge.sync_ports() == 1
            assert set(edge.socks) == {good.port, good.port + 1}
            assert bad.port in eng.ports.quarantined and edge.ports_failed == 1
            edge.step(asyncio.get_running_loop().time())
            assert [type(e) for e in events] == [PortFailed] and events[0].endpoint is bad
            eng.release(good)
            eng.release(bad)
            edge.sync_ports()
            assert not edge.socks and eng.ports.in_use == 0
            again = eng.allocate("c2")                     # another port, not the quarantined one
            edge.step(asyncio.get_running_loop().time())   # every tick starts with sync_ports
            assert again.port != bad.port and again.port in edge.socks
        finally:
            await edge.stop()
            if blocker is not None:
                blocker.close()
        assert not edge.socks and eng.ports.in_use == 0

    import asyncio
    asyncio.run(main())
