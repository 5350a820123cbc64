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


def test_ports_are_split_in_whole_pairs_without_overlap():
    slices = split_ports("10000-10100", 3)
    assert slices == ["10000-10031", "10032-10065", "10066-10099"]
    from media.ports import PortAllocator
    assert sum(PortAllocator(x).capacity for x in slices) == PortAllocator("10000-10100").capacity
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
