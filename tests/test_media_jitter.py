"""media.jitter.JitterTable against the reference media.rtp.JitterBuffer: same frames, states and counters."""
import random

import numpy as np
import pytest

from media.jitter import JitterTable
from media.rtp import FRAME, PLAY, JitterBuffer

COUNTERS = ("played", "lost", "late", "dropped", "duplicates", "underruns")


def payload(k: int, n: int) -> bytes:
    return bytes((k * 7 + i) % 251 for i in range(n))


def stream(rng: random.Random, ticks: int, ptime: int):
    """Per tick, the packets (ts, payload, marker) a messy phone delivers: loss, reordering, bursts,
    duplicates, stalls, talk-spurts with markers, timestamp jumps."""
    n = ptime * 8
    ts, k, held = rng.getrandbits(20), 0, []
    acc = 0
    out: list[list[tuple[int, bytes, bool]]] = []
    for _ in range(ticks):
        pk = []
        acc += 160
        while acc >= n:
            acc -= n
            marker = False
            r = rng.random()
            if r < 0.01:
                ts += rng.choice([n * 60, n * 5, -n * 3])         # jump / gap (new talk-spurt) / rewind
                marker = True
            p = (ts, payload(k, n), marker)
            ts += n
            k += 1
            r = rng.random()
            if r < 0.05:
                continue                                        # lost
            if r < 0.12:
                held.append(p)                                  # delayed
                continue
            pk.append(p)
            if r < 0.15:
                pk.append(p)                                    # duplicated
        if held and rng.random() < 0.3:
            rng.shuffle(held)
            pk += held
            held = []
        if rng.random() < 0.02:
            out += [[] for _ in range(rng.randint(1, 15))]      # stall (hold, silence suppression)
        out.append(pk)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_table_matches_jitter_buffer(seed):
    rng = random.Random(seed)
    legs = 24
    refs = [JitterBuffer(rng.randint(1, 3), rng.randint(4, 12), 0xFF if i % 2 else 0xD5) for i in range(legs)]
    tab = JitterTable(legs + 3)
    rows = np.array(sorted(rng.sample(range(legs + 3), legs)), np.int64)
    for ref, r in zip(refs, rows):
        tab.init_row(int(r), ref.min_delay, ref.max_delay, ref.silence)
    streams = [stream(rng, 400, rng.choice([20, 20, 20, 10, 30, 40, 60])) for _ in range(legs)]
    for t in range(max(map(len, streams))):
        for i, (ref, r) in enumerate(zip(refs, rows)):
            for ts, data, marker in (streams[i][t] if t < len(streams[i]) else []):
                ref.put(ts, data, marker)
                tab.put(int(r), ts, data, marker)
            if t % 97 == i:
                j = rng.random() * 2000
                ref.set_jitter(j)
                tab.set_jitter(int(r), j)
            if t == 200 + i:
                ref.reset()
                tab.reset(int(r))
        codes, states = tab.pop_rows(rows)
        for i, (ref, r) in enumerate(zip(refs, rows)):
            f, st = ref.pop()
            assert st == states[i], (t, i)
            if st == PLAY:
                assert f == codes[i].tobytes(), (t, i)
            for c in COUNTERS:
                assert getattr(ref, c) == int(getattr(tab, c)[r]), (t, i, c)
            assert ref.depth() == tab.depth(int(r))
            assert ref.target == tab.target[r]


def test_table_grows_and_keeps_rows():
    tab = JitterTable(2)
    tab.init_row(1, 1, 4)
    tab.put(1, 1000, b"\x01" * FRAME)
    tab.grow(64)
    codes, states = tab.pop_rows(np.array([1], np.int64))
    assert states[0] == PLAY and codes[0].tobytes() == b"\x01" * FRAME
