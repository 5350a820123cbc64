"""RTP packets, sequence wrap, timestamps, jitter buffer (reorder, loss, concealment, adaptation), RTCP."""
import numpy as np

from media import rtcp, rtp
from media.rtp import FRAME, IDLE, LOST, PLAY, JitterBuffer, ReceptionStats, TimestampUnwrapper


def test_parse_build_and_vector_headers():
    d = rtp.build(0, 65535, 0xFFFFFFF0, 0xDEADBEEF, b"\x01" * 160, marker=True)
    p = rtp.parse(d)
    assert (p.pt, p.seq, p.ts, p.ssrc, p.marker, len(p.payload)) == (0, 65535, 0xFFFFFFF0, 0xDEADBEEF, True, 160)
    # CSRC, extension and padding
    ext = bytes([0x80 | 0x20 | 0x10 | 1, 8]) + d[2:12] + b"\0\0\0\1" + b"\xbe\xde\x00\x01" + b"\0\0\0\0" + b"ab" + b"\0\x02"
    p = rtp.parse(ext)
    assert p.payload == b"ab" and p.pt == 8
    h = rtp.build_headers(np.array([0, 8]), np.array([65535, 7]), np.array([0xFFFFFFFF, 5]),
                          np.array([0xDEADBEEF, 1]), np.array([True, False]))
    assert h[0].tobytes() == rtp.build(0, 65535, 0xFFFFFFFF, 0xDEADBEEF, b"", True)
    assert h[1].tobytes() == rtp.build(8, 7, 5, 1, b"")


def test_sequence_wrap_loss_and_duplicates():
    st = ReceptionStats()
    seqs = [65533, 65534, 65535, 0, 2, 3, 3, 1]          # wrap, 1 reordered late, 1 duplicate
    for i, s in enumerate(seqs):
        assert st.update(s, i * 160, i * 160)
    assert st.cycles == 65536 and st.max_seq == 3 and st.extended_max == 65536 + 3
    assert st.expected == 7 and st.received == 8 and st.duplicates == 1
    assert st.lost == -1                                  # RFC 3550: duplicates make it negative


def test_sequence_jump_needs_confirmation():
    st = ReceptionStats()
    st.update(100, 0, 0)
    assert not st.update(30000, 160, 160)                 # stray packet
    assert st.update(30001, 320, 320)                     # confirmed: restart
    assert st.base_seq == 30001 and st.received == 1


def test_interval_fraction_and_jitter():
    st = ReceptionStats()
    for i in range(100):
        if i % 10 != 3:                                   # 10 % loss
            st.update(i, i * 160, i * 160 + (40 if i % 2 else 0))   # alternating 5 ms transit
    assert st.lost == 10
    assert st.interval_fraction_lost() == (10 * 256) // 100
    assert 30 < st.jitter < 41                            # converges towards 40 units (5 ms)
    assert st.interval_fraction_lost() == 0               # nothing new since


def test_timestamp_unwrap():
    u = TimestampUnwrapper()
    assert u(0xFFFFFF00) == 0xFFFFFF00
    assert u(0x00000060) == 0x100000060
    assert u(0xFFFFFFA0) == 0xFFFFFFA0                    # late packet from before the wrap
    assert u(0x00000100) == 0x100000100


def frames(n, start=1000):
    return [(start + i * FRAME, i.to_bytes(2, "big") * (FRAME // 2)) for i in range(n)]


def idx(frame):
    return int.from_bytes(frame[:2], "big")


def drain(jb, n):
    return [jb.pop() for _ in range(n)]


def test_jitter_buffer_reorders():
    jb = JitterBuffer(min_delay=2)
    pk = frames(6)
    for i in (0, 2, 1, 3, 5, 4):
        jb.put(*pk[i])
    got = drain(jb, 6)
    assert [g[1] for g in got] == [PLAY] * 6
    assert [idx(g[0]) for g in got] == [0, 1, 2, 3, 4, 5]


def test_jitter_buffer_priming_and_loss():
    jb = JitterBuffer(min_delay=2)
    pk = frames(5)
    jb.put(*pk[0])
    assert jb.pop() == (None, IDLE)                        # waits for 40 ms of audio
    jb.put(*pk[1])
    assert jb.pop()[1] == PLAY
    jb.put(*pk[3])                                         # frame 2 lost
    assert idx(jb.pop()[0]) == 1
    assert jb.pop() == (None, LOST)
    assert idx(jb.pop()[0]) == 3
    jb.put(*pk[2])                                         # arrives too late
    assert jb.late == 1 and jb.lost == 1


def test_jitter_buffer_grows_on_late_burst_and_shrinks_back():
    jb = JitterBuffer(min_delay=1, max_delay=10)
    pk = frames(400)
    out, i = [], 0
    for tick in range(300):
        if tick == 50:
            i_stall = i
        if 50 <= tick < 55:                               # the network holds 5 packets...
            pass
        elif tick == 55:
            for j in range(i, i + 6):                     # ...then delivers them at once
                jb.put(*pk[j])
            i += 6
        else:
            jb.put(*pk[i])
            i += 1
        out.append(jb.pop())
    played = [idx(f) for f, s in out if s == PLAY]
    # every frame is played in order, none lost: the underrun held the playout point
    assert played == sorted(played) and jb.lost == 0 and i_stall == 50
    assert len(set(played)) == len(played)
    assert jb.dropped >= 1 and jb.depth() <= 2             # the extra delay was given back later


def test_jitter_buffer_odd_ptime_and_resync():
    jb = JitterBuffer(min_delay=1, silence=0xFF)
    jb.put(0, b"\x01" * 240)                               # 30 ms packets
    jb.put(240, b"\x02" * 240)
    a, b, c = jb.pop(), jb.pop(), jb.pop()
    assert a[0] == b"\x01" * 160 and b[0] == b"\x01" * 80 + b"\x02" * 80 and c[0] == b"\x02" * 160
    jb.put(10_000_000, b"\x03" * 160)                      # timestamp jump: restart there
    assert jb.pop()[0] == b"\x03" * 160


def test_jitter_buffer_stops_when_stream_stops():
    jb = JitterBuffer(min_delay=1, max_delay=4)
    jb.put(0, b"\x01" * 160)
    jb.pop()
    states = [jb.pop()[1] for _ in range(8)]
    assert states[:3] == [LOST] * 3 and states[-1] == IDLE and jb.playout is None


def test_rtcp_sender_report_figures_and_rtt():
    st = ReceptionStats()
    for i in range(100):
        if i not in (10, 11, 50, 70, 90):
            st.update(1000 + i, i * 160, i * 160 + (80 if i % 2 else 0))
    wall = 1_700_000_000.0
    data = rtcp.build_report(0x1111, "sw@example", wall, sending=True, rtp_ts=12345, packets=500, octets=80000,
                             remote_ssrc=0x2222, stats=st, lsr=0xABCD0000, lsr_arrival=wall - 0.25)
    sr, sdes = rtcp.parse(data)
    assert (sr.pt, sr.ssrc, sr.packets, sr.octets, sr.rtp_ts) == (rtcp.SR, 0x1111, 500, 80000, 12345)
    assert sr.ntp == rtcp.ntp_time(wall) and sdes.cname == "sw@example"
    rb = sr.reports[0]
    assert (rb.ssrc, rb.cumulative_lost, rb.highest_seq) == (0x2222, 5, 1099)
    assert rb.fraction_lost == (5 * 256) // 100 and abs(rb.loss_percent - 4.69) < 0.01
    assert rb.jitter == int(st.jitter) and 60 < rb.jitter <= 80
    assert rb.lsr == 0xABCD0000 and rb.dlsr == int(0.25 * 65536)
    # the far end echoes our SR in its RR: RTT = now - LSR - DLSR
    state = rtcp.RtcpState()
    sent_at = wall
    lsr = rtcp.ntp_middle(sent_at)
    rr = rtcp.build_report(0x2222, "phone", wall + 0.3, sending=False, remote_ssrc=0x1111, stats=st,
                           lsr=lsr, lsr_arrival=sent_at + 0.04)
    state.on_packet(rr, sent_at + 0.36, 0x1111)       # 40 ms there, 260 ms held, 60 ms back
    assert state.remote.cumulative_lost == 5 and abs(state.rtt - 0.1) < 0.002
    assert rtcp.parse(rtcp.build_bye(7))[0].pt == rtcp.BYE
