"""Batch ingest (MediaEngine.datagrams_received) against per-packet ingest (datagram_received) on messy
traffic: loss, reordering, duplicates, bursts, stalls, SSRC restarts, talk-spurt markers, sequence jumps,
RFC 4733 events, RTCP, strangers and garbage. Same datagrams out, same events, same statistics."""
import random
from dataclasses import asdict

import numpy as np
import pytest

from media import MediaConfig, MediaEngine, g711, rtcp
from media.testing import Clock, Phone


def traffic(seed: int, legs: int, ticks: int):
    """Phones (with ptime) and, per tick, the datagrams (leg, rtcp?, data, addr, arrival offset) they send."""
    rng = random.Random(seed)
    random.seed(seed)
    phones = [Phone((f"10.1.{i}.2", 5000 + 2 * i), law=i % 2, ptime=rng.choice([20] * 6 + [10, 30]),
                    te_pt=101 if i % 3 else None) for i in range(legs)]
    speech = np.random.default_rng(seed).normal(0, 3000, 8000)
    held: list[list] = [[] for _ in range(legs)]
    acc = [0] * legs
    stall = [0] * legs
    out = []
    for t in range(ticks):
        pk = []
        for i, p in enumerate(phones):
            acc[i] += 160
            n = p.ptime * 8
            if stall[i]:
                stall[i] -= 1
                while acc[i] >= n:
                    acc[i] -= n
                    p.packet(bytes(n))                          # sent while stalled: lost
                continue
            while acc[i] >= n:
                acc[i] -= n
                r = rng.random()
                k = (t * 160 + i * 37) % (8000 - n)
                if r < 0.004:
                    p.ssrc, p.seq, p.ts = rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(32)
                elif r < 0.008:
                    p.ts = (p.ts + 160 * rng.randint(3, 80)) & 0xFFFFFFFF
                    pk.append((i, False, p.packet(g711.encode_float(speech[k:k + n], p.law).tobytes(), marker=True),
                               p.addr, rng.random() * 0.02))
                    continue
                elif r < 0.010:
                    p.seq = (p.seq + rng.choice([500, 4000, 30000])) & 0xFFFF
                elif r < 0.014:
                    stall[i] = rng.randint(1, 20)
                data = p.audio(speech[k:k + n])
                r = rng.random()
                if r < 0.04:
                    continue                                    # lost
                if r < 0.10:
                    held[i].append(data)
                    continue
                pk.append((i, False, data, p.addr, rng.random() * 0.02))
                if r < 0.12:
                    pk.append((i, False, data, p.addr, rng.random() * 0.02))          # duplicate
            if held[i] and rng.random() < 0.3:
                rng.shuffle(held[i])
                pk += [(i, False, d, p.addr, rng.random() * 0.02) for d in held[i]]
                held[i] = []
            r = rng.random()
            if r < 0.01 and p.te_pt is not None:
                ev = bytes([rng.randint(0, 11), 0x0A | (0x80 if rng.random() < 0.5 else 0), 0, 160])
                pk.append((i, False, p.packet(ev, pt=p.te_pt, advance=0), p.addr, rng.random() * 0.02))
            elif r < 0.02:
                pk.append((i, True, rtcp.build_report(p.ssrc, "phone", 1e9 + t, sending=True), (p.addr[0], p.addr[1] + 1),
                           rng.random() * 0.02))
            elif r < 0.025:
                pk.append((i, False, p.audio(speech[:160]), ("192.0.2.9", 7000), rng.random() * 0.02))
            elif r < 0.03:
                pk.append((i, False, rng.choice([b"\x80\x00", b"\x40" + bytes(171), bytes(172)]), p.addr, 0.0))
        rng.shuffle(pk)
        out.append(pk)
    return phones, out


def build(phones, seed):
    random.seed(seed + 1)
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="20000-20400", rtcp_interval=1000.0), now=clock)
    eng.ports.randbelow = random.Random(seed).randrange     # the same ports in both runs
    eps = []
    for i, p in enumerate(phones):
        ep = eng.allocate(f"c{i // 2}", f"leg{i}")
        eng.answer(ep, p.sdp())
        eps.append(ep)
    for i in range(0, len(eps) - 1, 2):
        eng.bridge(eps[i], eps[i + 1])
    return eng, eps, clock


def run(seed, batch: bool, legs=40, ticks=400):
    phones, pkts = traffic(seed, legs, ticks)
    eng, eps, clock = build(phones, seed)
    log = []
    for pk in pkts:
        items = [(eps[i].port + (1 if is_rtcp else 0), data, addr, clock.t + off) for i, is_rtcp, data, addr, off in pk]
        if batch:
            eng.datagrams_received(items)
        else:
            for it in items:
                eng.datagram_received(*it)
        out = eng.tick(clock.t + 0.02)
        log.append([d for d in out.datagrams if not d.port & 1])            # RTCP carries wall-clock time
        log.append(sorted((type(e).__name__, e.endpoint.id,          # (legs polled from a set)
                           tuple(v for k, v in vars(e).items() if k != "endpoint" and not isinstance(v, np.ndarray)))
                          for e in out.events))
        clock.t += 0.02
    stats = [{k: v for k, v in asdict(eng.leg_stats(ep)).items() if k != "rtt_ms"} for ep in eps]
    return log, stats, eng


@pytest.mark.parametrize("seed", range(4))
def test_batch_ingest_matches_per_packet(seed):
    log_a, stats_a, _ = run(seed, batch=False)
    log_b, stats_b, eng = run(seed, batch=True)
    assert stats_a == stats_b
    for t, (a, b) in enumerate(zip(log_a, log_b)):
        assert a == b, t
    assert sum(s["rx_packets"] for s in stats_a) > 3_000


def test_batch_ingest_takes_the_common_packets_with_numpy(monkeypatch):
    phones, _ = traffic(0, 40, 1)
    eng, eps, clock = build(phones, 0)
    calls = []
    orig = eng._take                                  # the per-packet path (datagram_received decrypts, then this)
    monkeypatch.setattr(eng, "_take", lambda *a: (calls.append(a), orig(*a)))
    for _ in range(10):
        items = [(ep.port, p.audio(np.zeros(p.ptime * 8)), p.addr, clock.t) for p, ep in zip(phones, eps)]
        calls.clear()
        eng.datagrams_received(items)
        eng.tick(clock.t)
        clock.t += 0.02
    twenty = sum(p.ptime == 20 for p in phones)
    assert len(calls) == len(phones) - twenty        # steady 20 ms streams: none through the scalar path


def test_reception_table_matches_reception_stats():
    from media.reception import ReceptionTable, ReceptionView
    from media.rtp import ReceptionStats, TimestampUnwrapper
    rng = random.Random(7)
    legs = 16
    tab = ReceptionTable(legs)
    refs, tsus, views = [], [], []
    for r in range(legs):
        tab.reset(r)
        refs.append(ReceptionStats())
        tsus.append(TimestampUnwrapper())
        views.append(ReceptionView(tab, r))
    seq = [rng.getrandbits(16) for _ in range(legs)]
    ts = [rng.getrandbits(32) for _ in range(legs)]
    for t in range(3000):
        batch = []
        for r in range(legs):
            x = rng.random()
            step = 1 if x < 0.9 else rng.choice([0, 2, -3, 200, 5000, 40000])
            seq[r] = (seq[r] + step) & 0xFFFF
            ts[r] = (ts[r] + 160 * step + (rng.randint(-2, 2) << 28 if x > 0.995 else 0)) & 0xFFFFFFFF
            arrival = t * 160 + rng.randint(0, 400)
            if r % 2 and tab.started[r] and tab.has_ts[r]:
                batch.append((r, seq[r], ts[r], arrival))      # odd rows: the array path when it applies
                continue
            assert refs[r].update(seq[r], ts[r], arrival) == tab.update(r, seq[r], ts[r], arrival)
            assert tsus[r](ts[r]) == tab.unwrap(r, ts[r])
        rows = np.array([b[0] for b in batch], np.int64)
        s = np.array([b[1] for b in batch], np.int64)
        tsa = np.array([b[2] for b in batch], np.int64)
        arr = np.array([b[3] for b in batch], np.int64)
        steady = tab.steady(rows, s) if len(rows) else np.zeros(0, bool)
        ext = tab.unwrap_batch(rows[steady], tsa[steady]) if steady.any() else []
        if steady.any():
            tab.update_batch(rows[steady], s[steady], tsa[steady], arr[steady])
        for j, (r, sq, tt, a) in enumerate(batch):
            if steady[j]:
                assert refs[r].update(sq, tt, a)
                assert tsus[r](tt) == ext[int(np.flatnonzero(np.flatnonzero(steady) == j)[0])]
            else:
                assert refs[r].update(sq, tt, a) == tab.update(r, sq, tt, a)
                assert tsus[r](tt) == tab.unwrap(r, tt)
        for r in range(legs):
            ref, v = refs[r], views[r]
            assert (ref.received, ref.lost, ref.jitter, ref.extended_max, ref.duplicates) == \
                   (v.received, v.lost, v.jitter, v.extended_max, v.duplicates)
            if t % 50 == r:
                assert ref.interval_fraction_lost() == v.interval_fraction_lost()
