"""Media workers without processes: the channel's framing, the worker's command core on a real engine, and
the controller (``WorkerMedia``) with its channel replaced by a list of frames."""
from __future__ import annotations

import struct
from typing import Any

import pytest

from media.engine import DtmfReceived, MediaConfig, MediaEngine, MediaLost
from media.ports import PortsExhausted
from media.workers import messages as W
from media.workers.channel import MAX_FRAME, FrameDecoder, FrameError, encode
from media.workers.pool import WorkerMedia, split_ports
from media.workers.worker import Worker

OFFER = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
         "a=sendrecv\r\n")


def test_frames_survive_any_split_and_come_out_in_order():
    msgs = [W.Release(i) for i in range(5)] + [W.Play(3, "x.wav", True, False, 9)]
    stream = b"".join(encode(m) for m in msgs)
    for chunk in (1, 3, 7, len(stream)):
        dec = FrameDecoder()
        out: list[Any] = []
        for i in range(0, len(stream), chunk):
            out += dec.feed(stream[i:i + chunk])
        assert out == msgs and dec.pending == 0


def test_an_oversized_or_garbled_frame_is_refused():
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))
    with pytest.raises(FrameError):
        FrameDecoder().feed(struct.pack(">I", 3) + b"\x00\x01\x02")
    assert FrameDecoder().feed(struct.pack(">I", 10) + b"abc") == []    # incomplete: held, not an error


class _Evil:
    def __reduce__(self) -> Any:
        import os
        return (os.system, ("touch /tmp/media-channel-pwned",))


def test_a_frame_naming_anything_but_a_message_part_is_refused_not_run():
    import pickle
    import numpy as np
    from pathlib import Path
    from media.engine import AudioChunk
    for bad in (_Evil(), print, Path.home):
        payload = pickle.dumps(bad)
        with pytest.raises(FrameError):
            FrameDecoder().feed(struct.pack(">I", len(payload)) + payload)
    ok = [W.Init(0, MediaConfig(recordings_dir=Path("/tmp"))), W.AddSound("<t>", np.arange(160, dtype=np.int16)),
          W.Event(AudioChunk(3, np.zeros(160, np.float32)))]          # type: ignore[arg-type]
    got = FrameDecoder().feed(b"".join(encode(m) for m in ok))
    assert got[0] == ok[0] and np.array_equal(got[1].samples, ok[1].samples)
    assert np.array_equal(got[2].event.samples, ok[2].event.samples)


def test_ports_are_split_in_whole_pairs_without_overlap():
    slices = split_ports("10000-10100", 3)
    assert slices == ["10000-10031", "10032-10065", "10066-10099"]
    from media.ports import PortAllocator
    assert sum(PortAllocator(x).capacity for x in slices) == PortAllocator("10000-10100").capacity
    assert sum(PortAllocator(x).capacity for x in split_ports("10000-10019", 2)) == 10
    with pytest.raises(ValueError):
        split_ports("10000-10004", 3)


def test_the_worker_core_runs_commands_and_keys_events_by_leg():
    engine = MediaEngine(MediaConfig(rtp_ports="20000-20100", address="127.0.0.1"))
    sent: list[Any] = []
    w = Worker(engine, sent.append)
    shadow = MediaEngine(MediaConfig(rtp_ports="20000-20100", address="127.0.0.1"))
    ep = shadow.allocate("c1", "caller")
    shadow.answer(ep, OFFER)
    assert w.handle(W.Allocate(77, ep.port, "c1", "caller", None, "off"))
    w.handle(W.Apply(77, ep.params))                     # type: ignore[arg-type]
    mine = w.eps[77]
    assert mine.port == ep.port and mine.params == ep.params and engine.ports.in_use == 1
    w.events([DtmfReceived(mine, "5", "rfc4733", 100)])
    assert sent == [W.Event(DtmfReceived(77, "5", "rfc4733", 100))]    # type: ignore[arg-type]
    w.handle(W.Release(77))
    assert engine.ports.in_use == 0 and 77 not in w.eps
    assert isinstance(sent[-1], W.Stats) and sent[-1].legs[0][0] == 77
    w.handle(W.Hold(77, True))                           # a leg already gone: ignored
    assert not w.handle(W.Shutdown())


class _Writer:
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.dec = FrameDecoder()

    def write(self, data: bytes) -> None:
        self.frames += self.dec.feed(data)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _pool(n: int = 2) -> tuple[WorkerMedia, list[_Writer]]:
    pool = WorkerMedia(MediaConfig(rtp_ports="30000-30200", address="127.0.0.1"), n)
    writers = []
    for s in pool.slots:
        wr = _Writer()
        s.writer, s.alive, s.generation = wr, True, 1    # type: ignore[assignment]
        writers.append(wr)
    return pool, writers


def test_the_controller_keeps_a_call_in_one_worker_and_spreads_calls():
    pool, writers = _pool()
    a = pool.allocate("call-1", "caller")
    b = pool.allocate("call-1", "callee")
    c = pool.allocate("call-2", "caller")
    assert pool._worker_of[a.id] == pool._worker_of[b.id] != pool._worker_of[c.id]
    assert len({a.id, b.id, c.id}) == 3
    body = pool.answer(a, OFFER)
    assert f"m=audio {a.port} " in body
    pool.bridge(a, b)
    w = writers[pool._worker_of[a.id]]
    kinds = [type(m).__name__ for m in w.frames]
    assert kinds == ["Allocate", "Allocate", "Apply", "MakeBridge"], kinds
    lo, hi = (int(x) for x in pool.slots[pool._worker_of[a.id]].config.rtp_ports.split("-"))
    assert lo <= a.port < hi and lo <= b.port < hi
    pool.release(a)
    pool.release(b)
    assert isinstance(w.frames[-1], W.Release) and pool.ports.in_use == 1


def test_a_dead_worker_loses_its_legs_frees_their_ports_and_gets_no_commands():
    pool, writers = _pool(1)
    events: list[Any] = []
    pool.on_events = events.extend
    a = pool.allocate("call-1", "caller")
    b = pool.allocate("call-1", "callee")
    pool._died(pool.slots[0], "test")
    assert [type(e) for e in events] == [MediaLost, MediaLost] and {e.endpoint for e in events} == {a, b}
    assert pool.ports.in_use == 0 and not pool.endpoints
    n = len(writers[0].frames)
    pool.release(a)                                      # call control hangs up afterwards: nothing to send
    pool.hold(b, True)
    assert len(writers[0].frames) == n
    with pytest.raises(PortsExhausted):                  # no live worker until the restart
        pool.allocate("call-2", "caller")


def test_a_sound_made_here_is_sent_to_the_worker_once_before_it_is_played():
    pool, writers = _pool(1)
    a = pool.allocate("call-1", "caller")
    snd = pool.bank.add("<confirm>", [1000.0] * 800)
    p1 = pool.play(a, snd)
    p2 = pool.play(a, "<confirm>")
    frames = writers[0].frames
    kinds = [type(m).__name__ for m in frames]
    assert kinds == ["Allocate", "AddSound", "Play", "Play"], kinds
    assert frames[1].name == "<confirm>" and len(frames[1].samples) == 800 and float(frames[1].samples[0]) == 1000.0
    assert (frames[2].playback, frames[3].playback) == (p1, p2) and p1 != p2
    with pytest.raises(KeyError):                        # not loaded: refused here, as the engine refuses it
        pool.play(a, "nowhere.wav")


def test_the_worker_core_adds_a_sent_sound_and_plays_it():
    engine = MediaEngine(MediaConfig(rtp_ports="20000-20100", address="127.0.0.1"))
    w = Worker(engine, lambda m: None)
    w.handle(W.Allocate(5, 20010, "c", "caller", None, "off"))
    w.handle(W.AddSound("<beep>", [500.0] * 160))
    w.handle(W.Play(5, "<beep>", False, False, 42))
    assert engine.bank.find("<beep>") is not None and 42 in w.playbacks.values()


def test_a_port_another_program_holds_is_never_handed_out():
    import socket

    from .conftest import rtp_low

    lo = rtp_low()
    pool = WorkerMedia(MediaConfig(rtp_ports=f"{lo}-{lo + 19}", address="127.0.0.1"), 1)
    slot = pool.slots[0]
    slot.writer, slot.alive, slot.generation = _Writer(), True, 1    # type: ignore[assignment]
    held = []
    try:
        for k in range(7):                                 # seven of ten pairs: the RTP port of some, RTCP of others
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", lo + 2 * k + (k & 1)))
            held.append(s)
        eps = [pool.allocate(f"c{i}", "caller") for i in range(3)]
        assert {e.port for e in eps} == {lo + 14, lo + 16, lo + 18}, [e.port for e in eps]
        assert slot.shadow.ports.quarantined <= {lo + 2 * k for k in range(7)}
    finally:
        for s in held:
            s.close()


def test_a_leg_of_another_worker_joins_a_bridge_over_a_trunk_and_leaves_no_port_behind():
    pool, writers = _pool(2)
    a = pool.allocate("call-1", "caller")
    b = pool.allocate("call-1", "agent")
    sup = pool.allocate("call-2", "supervisor")          # fewest legs: the other worker
    home, other = pool._worker_of[a.id], pool._worker_of[sup.id]
    assert home != other
    br = pool.bridge(a, b)
    for w in writers:
        w.frames.clear()
    pool.join(br, sup, "whisper", whisper_to=b)
    near, far = pool._trunks[sup.id][0]
    assert (pool._worker_of[near.id], pool._worker_of[far.id]) == (other, home)
    assert near.params is not None and far.params is not None
    assert (near.params.remote_port, far.params.remote_port) == (far.port, near.port)   # each sends to the other
    there = [type(m).__name__ for m in writers[other].frames]
    here = [type(m).__name__ for m in writers[home].frames]
    assert there == ["Allocate", "Apply", "MakeBridge"] and here == ["Allocate", "Apply", "Join"], (there, here)
    join = writers[home].frames[-1]
    assert (join.bridge, join.leg, join.mode, join.whisper_to) == (br.id, far.id, "whisper", (b.id,))
    pool.set_mode(br, sup, "barge")
    assert writers[home].frames[-1] == W.SetMode(br.id, far.id, "barge", ())
    pool.release(sup)                                     # the supervisor hangs up: the trunk goes with it
    assert pool.ports.in_use == 2 and not pool._partner
    assert any(isinstance(m, W.Release) and m.leg == far.id for m in writers[home].frames)


def test_a_dead_worker_takes_the_other_half_of_its_trunks_with_it():
    pool, writers = _pool(2)
    a = pool.allocate("call-1", "caller")
    b = pool.allocate("call-1", "agent")
    sup = pool.allocate("call-2", "supervisor")
    br = pool.bridge(a, b)
    pool.join(br, sup, "listen")
    pool._died(pool.slots[pool._worker_of[a.id]], "test")
    assert pool.ports.in_use == 1 and not pool._partner     # only the supervisor's own leg is left


def test_the_worker_reports_its_tick_times_and_counters_once_each():
    engine = MediaEngine(MediaConfig(rtp_ports="20200-20300", address="127.0.0.1"))
    sent: list[Any] = []
    w = Worker(engine, sent.append)
    for t in (0.001, 0.002, 0.003):
        engine.stats.add(t, 0.010 if t == 0.003 else 0.0)    # the third started 10 ms late
    engine.relayed_packets = 42
    w._stats()
    w._stats()
    first, second = sent
    assert first.ticks == (0.001, 0.002, 0.003) and second.ticks == ()     # no tick reported twice
    counters = dict(first.counters)
    assert set(counters) == set(W.COUNTERS)
    assert counters["late_ticks"] == 1 and counters["relayed_packets"] == 42


def test_the_controller_sums_worker_counters_and_keeps_a_dead_workers_share():
    pool, _ = _pool(2)
    one, two = pool.slots
    stats = {k: 0 for k in W.COUNTERS}
    pool._deliver(one, [W.Stats((), 100, 90, (0.004, 0.005),
                                tuple({**stats, "relayed_packets": 70, "relay_pairs": 3, "late_ticks": 2}.items()))])
    pool._deliver(two, [W.Stats((), 10, 9, (0.006,), tuple({**stats, "relayed_packets": 5, "relay_pairs": 1}.items()))])
    assert pool.relayed_packets == 75 and pool.relay_pairs == 4 and pool.stats.late_ticks == 2
    assert pool.stats.ticks == 3 and list(pool.stats.recent) == [0.004, 0.005, 0.006]    # the metrics fold these
    pool._died(one, "test")
    assert pool.relayed_packets == 75 and pool.relay_pairs == 1     # a counter never goes back; a level does
    pool._deliver(one, [W.Stats((), 1, 1, (), tuple({**stats, "relayed_packets": 4}.items()))])   # its successor
    assert pool.relayed_packets == 79


def test_a_failed_recording_in_a_worker_reaches_call_control_as_its_own_recording():
    from media.engine import RecordingFailed
    pool, _ = _pool(1)
    events: list[Any] = []
    pool.on_events = events.extend
    a = pool.allocate("call-1", "caller")
    b = pool.allocate("call-1", "callee")
    rec = pool.start_recording("call-1", a, b)
    pool._deliver(pool.slots[0], [W.Event(RecordingFailed(rec.id, "No space left on device"))])  # type: ignore[arg-type]
    assert events == [RecordingFailed(rec, "No space left on device")]     # type: ignore[arg-type]


def test_auto_workers_is_one_per_spare_core():
    import os
    from softswitch.core import media_worker_count
    cpus = len(os.sched_getaffinity(0))
    assert media_worker_count(-1) == max(0, cpus - 1)
    assert media_worker_count(0) == 0 and media_worker_count(3) == 3


def test_a_new_call_goes_to_another_worker_when_its_first_choice_has_no_port_left():
    pool = WorkerMedia(MediaConfig(rtp_ports="30400-30420", address="127.0.0.1", reserve_ports=0), 2)
    for s in pool.slots:
        s.writer, s.alive, s.generation = _Writer(), True, 1    # type: ignore[assignment]
    first = pool.slots[0]
    taken = [first.shadow.ports.allocate(0.0, True)[0] for _ in range(first.shadow.ports.capacity)]
    assert first.shadow.ports.available == 0 and taken           # worker 0's slice is full (not by legs)
    a = pool.allocate("call-1", "caller")                         # worker 0 has fewer legs, but no port
    assert pool._worker_of[a.id] == 1
    b = pool.allocate("call-1", "callee")                         # the call's later legs follow it
    assert pool._worker_of[b.id] == 1
    second = pool.slots[1].shadow.ports
    while second.available:
        second.allocate(0.0, True)
    with pytest.raises(PortsExhausted):                           # no worker has a port: 503 for the call
        pool.allocate("call-2", "caller")


def test_the_controller_remembers_a_leg_it_put_on_hold():
    pool, writers = _pool(1)
    a = pool.allocate("call-1", "caller")
    pool.hold(a, True)                                   # the API's on_hold reads the endpoint, not the worker
    assert a.held and writers[0].frames[-1] == W.Hold(a.id, True)
    pool.hold(a, False)
    assert not a.held


class _Proc:
    pid, kills = 4321, 0

    def kill(self) -> None:
        self.kills += 1


def test_a_worker_that_stops_reporting_is_killed_once():
    from media.workers import pool as P
    Proc = _Proc

    pool, _ = _pool(2)
    procs = [Proc(), Proc()]
    for s, p in zip(pool.slots, procs):
        s.proc, s.heard = p, 100.0                         # type: ignore[assignment]
    assert pool.check_hung(100.0 + P.HUNG_AFTER_START - 1) == []     # starting: more patience
    pool._deliver(pool.slots[1], [], now=129.5)                    # worker 1 reports; worker 0 never did
    assert pool.check_hung(130.5) == [0]
    for t in (131.5, 132.5, 133.5):
        assert pool.check_hung(t) == []                           # worker 1 heard < 5 s ago; 0 already killed
    assert pool.check_hung(134.6) == [1]
    assert [p.kills for p in procs] == [1, 1] and pool.slots[0].hung.startswith("no report for")


def test_a_stall_of_the_switch_itself_kills_no_worker():
    pool, _ = _pool(1)
    pool.slots[0].proc, pool.slots[0].heard, pool.slots[0].heard_any = _Proc(), 100.0, True   # type: ignore[assignment]
    assert pool.check_hung(100.5) == []
    assert pool.check_hung(109.0) == []            # 8.5 s between checks: this process stalled, not the worker
    for t in (110.0, 111.0, 112.0, 113.0, 114.0):
        assert pool.check_hung(t) == []            # its reports get their time back (5 s from the stall)
    assert pool.check_hung(114.5) == [0]           # and a worker still silent after that is killed


def test_a_legs_codecs_restrict_its_sdp_under_workers_too():
    """A trunk's codecs (``allocate(codecs=)``) reach the shadow that negotiates for the worker."""
    pool, _ = _pool(1)
    t = pool.allocate("call-1", "trunk", codecs=("PCMA",))
    m_line = next(ln for ln in pool.offer(t).splitlines() if ln.startswith("m=audio"))
    assert m_line.split()[3:] == ["8", "101"]
