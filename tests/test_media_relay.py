"""The fast path (media.relay): a plain two-party call is forwarded packet for packet, and falls back to
the full path (decode, mix, encode) the moment a feature needs its audio, with one continuous stream for
each phone (same SSRC, sequence numbers without a gap, marker bit at each switch)."""
import logging

import numpy as np

from media import MediaConfig, MediaEngine, g711, rtp
from media.engine import DtmfReceived, PlaybackFinished
from media.jobs import SyncRunner
from media.testing import Clock, Phone, deliver, run_ticks


def _engine(tmp_path=None, **kw):
    clock = Clock()
    kw.setdefault("fast_path", True)
    kw.setdefault("inband_dtmf", False)
    cfg = MediaConfig(rtp_ports="30000-30100", recordings_dir=str(tmp_path or "/nonexistent"), **kw)
    return MediaEngine(cfg, now=clock, jobs=SyncRunner()), clock


def _call(eng, law_a=g711.ULAW, law_b=g711.ULAW, ptime=20):
    a, b = Phone(("10.0.0.1", 4000), law=law_a, ptime=ptime), Phone(("10.0.0.2", 4000), law=law_b, ptime=ptime)
    ea, eb = eng.allocate("call-1", "caller 1001"), eng.allocate("call-1", "agent 2001")
    eng.answer(ea, a.sdp())
    eng.answer(eb, b.sdp())
    bridge = eng.bridge(ea, eb)
    return a, ea, b, eb, bridge


def _tone(freq):
    def src(phone, i):
        t = (np.arange(160) + i * 160) / 8000
        return 8000 * np.sin(2 * np.pi * freq * t)
    return src


def _stream(phone):
    """(ssrc, seq, ts, marker, pt, payload) of the audio packets a phone received."""
    out = []
    for d in phone.inbox:
        p = rtp.parse(d)
        if p.pt in (0, 8):
            out.append((p.ssrc, p.seq, p.ts, p.marker, p.pt, p.payload))
    return out


def _continuous(stream):
    """One SSRC, sequence numbers +1 each packet (no gap, no repeat)."""
    assert len({s[0] for s in stream}) == 1
    seqs = [s[1] for s in stream]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), seqs


def test_a_plain_call_is_relayed_byte_for_byte_with_its_own_ssrc_and_sequence(caplog):
    eng, clock = _engine()
    a, ea, b, eb, _ = _call(eng)
    caplog.set_level(logging.INFO, "softswitch.media")
    run_ticks(eng, clock, [(a, ea), (b, eb)], 50, source=_tone(440))
    assert eng.relay_pairs == 1
    assert "on the fast path" in caplog.text
    sent_by_a = [rtp.parse(d) for d in _sent(a, 50)]
    got = _stream(b)
    # everything after latching went through untouched: the payloads are A's own bytes
    payloads = [p.payload for p in sent_by_a]
    relayed = [s for s in got if s[5] in payloads]
    assert len(relayed) >= 45
    assert eng.leg_stats(eb).relayed == len(relayed) and eng.relayed_packets >= 2 * 45
    _continuous(got)
    assert {s[0] for s in got} == {int(eng.ssrc[eb.row])} != {sent_by_a[0].ssrc}
    # A's timestamp steps are kept (offset, not re-timed)
    ts = [s[2] for s in relayed]
    assert all((y - x) & 0xFFFFFFFF == 160 for x, y in zip(ts, ts[1:]))
    # the relayed legs are not decoded: nothing in their jitter buffers, no concealment
    assert eng.leg_stats(ea).rx_packets >= 49 and eng.leg_stats(ea).rx_concealed == 0


def _sent(phone, n):
    """Re-create the packets a Phone sent (same ssrc/seq/ts as it used), for comparing payloads."""
    p = Phone(phone.addr, law=phone.law, ssrc=phone.ssrc, seq=(phone.seq - n) & 0xFFFF,
              ts=(phone.ts - 160 * n) & 0xFFFFFFFF)
    return [p.audio(_tone(440)(p, i)) for i in range(n)]


def test_recording_monitoring_prompt_and_hold_take_the_call_off_the_fast_path_and_back(tmp_path, caplog):
    eng, clock = _engine(tmp_path)
    eng.bank.add("beep", np.full(800, 3000.0))
    a, ea, b, eb, bridge = _call(eng)
    legs = [(a, ea), (b, eb)]
    caplog.set_level(logging.INFO, "softswitch.media")
    run_ticks(eng, clock, legs, 20, source=_tone(440))
    assert eng.relay_pairs == 1

    rec = eng.start_recording("call-1", ea, eb)
    run_ticks(eng, clock, legs, 1, source=_tone(440))
    assert eng.relay_pairs == 0 and "on the full path (recording)" in caplog.text
    b.inbox.clear()
    run_ticks(eng, clock, legs, 30, source=_tone(440))
    got = _stream(b)
    assert len(got) >= 25 and all(len(s[5]) == 160 for s in got)
    audio = np.concatenate([g711.decode(s[5], g711.ULAW) for s in got[-10:]]).astype(float)
    assert np.abs(audio).max() > 4000                  # the caller's tone, mixed and encoded by the engine
    eng.stop_recording(rec)
    eng.recorder.wait()
    run_ticks(eng, clock, legs, 5, source=_tone(440))
    assert eng.relay_pairs == 1
    assert rec.duration > 0.4                          # the recording got the audio of its 30 ticks

    # a supervisor listens in: three members, mixed
    sup = Phone(("10.0.0.3", 4000))
    es = eng.allocate("call-1", "supervisor 3001")
    eng.answer(es, sup.sdp())
    eng.join(bridge, es, "listen")
    run_ticks(eng, clock, legs + [(sup, es)], 30, source=lambda p, i: _tone(440)(p, i) if p is a else None)
    assert eng.relay_pairs == 0 and "on the full path (monitoring)" in caplog.text
    heard = sup.received_audio()
    assert len(heard) and np.abs(heard[-800:]).max() > 4000
    eng.leave(es)
    eng.release(es)
    run_ticks(eng, clock, legs, 3, source=_tone(440))
    assert eng.relay_pairs == 1

    # a prompt to the agent: full path until it ends, then relayed again
    events = []
    eng.play(eb, "beep")
    run_ticks(eng, clock, legs, 10, source=_tone(440), events=events)
    assert any(isinstance(e, PlaybackFinished) for e in events)
    assert "on the full path (prompt)" in caplog.text
    run_ticks(eng, clock, legs, 3, source=_tone(440))
    assert eng.relay_pairs == 1

    # the caller's phone holds (sendonly): the agent hears music from the engine
    eng.answer(ea, a.sdp("sendonly", version=2))
    run_ticks(eng, clock, legs, 3, source=_tone(440))
    assert eng.relay_pairs == 0 and "on the full path (hold)" in caplog.text
    eng.answer(ea, a.sdp("sendrecv", version=3))
    run_ticks(eng, clock, legs, 3, source=_tone(440))
    assert eng.relay_pairs == 1
    # through all of it, each phone saw one stream: same SSRC, no sequence gap
    _continuous(_stream(a))


def test_what_cannot_be_relayed_is_mixed():
    eng, clock = _engine()
    a, ea, b, eb, _ = _call(eng, g711.ULAW, g711.ALAW)        # transcoding
    run_ticks(eng, clock, [(a, ea), (b, eb)], 10, source=_tone(440))
    assert eng.relay_pairs == 0 and eng.relayed_packets == 0
    assert len(_stream(b)) >= 5 and all(s[4] == 8 for s in _stream(b))

    eng2, clock2 = _engine(fast_path=False)
    a, ea, b, eb, _ = _call(eng2)
    run_ticks(eng2, clock2, [(a, ea), (b, eb)], 10, source=_tone(440))
    assert eng2.relay_pairs == 0 and eng2.relayed_packets == 0


def test_30ms_packets_are_forwarded_as_they_are_and_rfc4733_digits_still_reach_call_control():
    eng, clock = _engine()
    a, ea, b, eb, _ = _call(eng, ptime=30)
    run_ticks(eng, clock, [(a, ea), (b, eb)], 1)
    events = []
    for _ in range(20):
        eng.datagram_received(ea.port, a.audio(np.full(240, 2000.0)), a.addr, clock.t)
        out = eng.tick(clock.t)
        b.inbox += [d.data for d in out.datagrams if d.addr == b.addr]
        events += out.events
        clock.t += 0.03
    got = _stream(b)
    assert eng.relay_pairs == 1 and len(got) >= 17 and all(len(s[5]) == 240 for s in got)
    assert all((y[2] - x[2]) & 0xFFFFFFFF == 240 for x, y in zip(got, got[1:]))
    # an RFC 4733 digit: reported, not forwarded
    n = len(b.inbox)
    for k, end in ((0, False), (1, False), (2, True)):
        payload = bytes([5, (0x80 if end else 0) | 10]) + (160 * (k + 1)).to_bytes(2, "big")
        eng.datagram_received(ea.port, a.packet(payload, pt=101, advance=0), a.addr, clock.t)
    out = eng.tick(clock.t)
    events += out.events
    assert [e.digit for e in events if isinstance(e, DtmfReceived)] == ["5"]
    assert not [d for d in out.datagrams if d.addr == b.addr and rtp.parse(d.data).pt == 101]
    assert len(b.inbox) == n


def test_a_leg_searched_for_inband_dtmf_is_mixed_until_it_sends_rfc4733():
    eng, clock = _engine(inband_dtmf=True)
    a, ea, b, eb, _ = _call(eng)
    run_ticks(eng, clock, [(a, ea), (b, eb)], 5, source=_tone(440))
    assert eng.relay_pairs == 0
    for phone, ep in ((a, ea), (b, eb)):          # both phones show they send RFC 4733: no tone search
        eng.datagram_received(ep.port, phone.packet(bytes([1, 0x80 | 10, 0, 160]), pt=101, advance=0),
                              phone.addr, clock.t)
    run_ticks(eng, clock, [(a, ea), (b, eb)], 5, source=_tone(440))
    assert eng.relay_pairs == 1


def test_a_drained_batch_is_relayed_with_numpy_and_odd_packets_go_the_packet_by_packet_way():
    """MediaEdge.drain hands a batch: the common relayed packets are rewritten together; a stranger's packet,
    a packet of another size and a second packet of one leg in the same batch are handled one by one."""
    eng, clock = _engine()
    calls = [_call(eng) for _ in range(6)]
    phones = {}
    for i, (a, ea, b, eb, _) in enumerate(calls):             # distinct addresses per call
        a.addr, b.addr = ("10.0.1.%d" % (i + 1), 4000), ("10.0.2.%d" % (i + 1), 4000)
        eng.answer(ea, a.sdp(version=2))
        eng.answer(eb, b.sdp(version=2))
        phones[ea.port], phones[eb.port] = (a, b), (b, a)
    legs = [(p, e) for a, ea, b, eb, _ in calls for p, e in ((a, ea), (b, eb))]
    run_ticks(eng, clock, legs, 5, source=_tone(300))
    assert eng.relay_pairs == 6
    for p, _ in legs:
        p.inbox.clear()
    stranger = Phone(("6.6.6.6", 4000))
    for k in range(3):
        batch, want = [], {}
        for p, e in legs:
            if e is legs[1][1]:                                 # this leg's phone is quiet; a stranger is not
                batch.append((e.port, stranger.packet(b"\x22" * 160), stranger.addr, clock.t))
                continue
            payload = bytes([(k * 16 + e.port) & 0xFF]) * (160 if e.port != legs[3][1].port or k < 2 else 240)
            batch.append((e.port, p.packet(payload, advance=160), p.addr, clock.t))
            want.setdefault(phones[e.port][1].addr, []).append(payload)
        batch.insert(4, (legs[0][1].port, stranger.packet(b"\x00" * 160), stranger.addr, clock.t))
        p0, e0 = legs[5]
        extra = p0.packet(b"\x11" * 160)
        want[phones[e0.port][1].addr].append(b"\x11" * 160)
        batch.append((e0.port, extra, p0.addr, clock.t))           # a second packet of one leg
        eng.datagrams_received(batch)
        out = eng.tick(clock.t)
        deliver([p for p, _ in legs], out.datagrams)
        clock.t += 0.02
        got: dict = {}
        for dg in out.datagrams:
            pk = rtp.parse(dg.data)
            if pk.pt in (0, 8):
                got.setdefault(dg.addr, []).append(pk.payload)
        assert got == want
    for p, _ in legs[1:]:                                       # (legs[0]'s phone heard only the quiet one)
        _continuous(_stream(p))
    assert legs[0][1].rx_foreign >= 3 and legs[1][1].rx_foreign >= 3


def test_a_released_leg_gets_nothing_more_and_its_row_reused_by_another_call_hears_nothing_of_this_one():
    eng, clock = _engine()
    calls = [_call(eng) for _ in range(5)]
    for i, (a, ea, b, eb, _) in enumerate(calls):
        a.addr, b.addr = ("10.0.1.%d" % (i + 1), 4000), ("10.0.2.%d" % (i + 1), 4000)
        eng.answer(ea, a.sdp(version=2))
        eng.answer(eb, b.sdp(version=2))
    legs = [(p, e) for a, ea, b, eb, _ in calls for p, e in ((a, ea), (b, eb))]
    run_ticks(eng, clock, legs, 5, source=_tone(300))
    assert eng.relay_pairs == 5
    a0, ea0, b0, eb0, _ = calls[0]
    eng.release(eb0)                                  # the callee hangs up; the caller's leg stays a moment
    stranger = Phone(("10.9.9.9", 4000))
    en = eng.allocate("call-new", "new")              # takes the released row
    assert en.row == eb0.row
    eng.answer(en, stranger.sdp())
    # the old caller keeps sending, in a batch (numpy path) and alone (packet by packet): no exception, and the
    # new leg gets none of it
    batch = [(e.port, p.audio(_tone(300)(p, 0)), p.addr, clock.t) for p, e in legs if e is not eb0]
    eng.datagrams_received(batch)
    eng.datagram_received(ea0.port, a0.audio(_tone(300)(a0, 1)), a0.addr, clock.t)
    out = eng.tick(clock.t)
    assert not [d for d in out.datagrams if d.addr == stranger.addr and rtp.parse(d.data).pt in (0, 8)
                and rtp.parse(d.data).payload != bytes([g711.SILENCE_BYTE[g711.ULAW]]) * 160]
    assert eng.relay_pairs == 4
