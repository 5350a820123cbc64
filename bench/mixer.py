"""Media engine tick cost for 100 / 500 / 1,000 / 2,000 legs (bridged in pairs, all talking, in-band DTMF
detection on every leg, every call recorded to stereo WAV, encode and RTP headers for every leg).

Usage: .venv/bin/python bench/mixer.py [--write] [--srtp] [LEGS ...]
Prints, per leg count: time to ingest one tick's packets (parse, stats, jitter buffer) through the batch
call the edge makes (``datagrams_received``) and, on alternate ticks, through the per-packet call
(``datagram_received``), the tick itself (mean / p99 / max), the total (batch ingest + tick) as a share of
the 20 ms budget, where the tick's time goes (``MediaEngine.stats.stages``), and the cost of each array
stage measured alone. --write also records the tables in bench/MEDIA.md. --srtp: every leg negotiates SRTP
(AES_CM_128_HMAC_SHA1_80, SDES) and every packet in and out goes through libsrtp (the ingest and tick
times then include decryption and encryption; the phones' encryption is outside the timed part).
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")    # as media/__init__.py does; before numpy loads
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from media import MediaConfig, MediaEngine, g711, rtp  # noqa: E402
from media.recording import Recorder  # noqa: E402
from media.srtp import Crypto, Keys, SrtpContext, new_key, parse_crypto  # noqa: E402
from media.testing import Clock, Phone  # noqa: E402

WARMUP, TICKS = 50, 250


def run(legs: int, recdir: str, srtp: bool = False) -> dict:
    clock = Clock()
    rec = Recorder(recdir, threaded=True)
    eng = MediaEngine(MediaConfig(rtp_ports="10000-20000"), now=clock, recorder=rec)
    phones, eps, ctxs = [], [], []
    for i in range(legs):
        p = Phone((f"10.{i // 250}.{i % 250}.1", 4000 + i), law=i % 2)    # half PCMU, half PCMA: transcoding
        ep = eng.allocate(f"call{i // 2}", f"leg{i}", srtp="required" if srtp else "off")
        sdp = p.sdp(codecs=(p.law,))
        if srtp:
            mine = Crypto(1, "AES_CM_128_HMAC_SHA1_80", new_key())
            sdp = sdp.replace("RTP/AVP", "RTP/SAVP") + "a=" + mine.attribute() + "\r\n"
            theirs = [parse_crypto(a[2:]) for a in eng.answer(ep, sdp).splitlines() if a.startswith("a=crypto:")][0]
            assert theirs is not None
            ctxs.append(SrtpContext(Keys(mine.suite, mine.key, theirs.key)))
        else:
            eng.answer(ep, sdp)
        phones.append(p)
        eps.append(ep)
    for i in range(0, legs, 2):
        eng.bridge(eps[i], eps[i + 1])
        eng.start_recording(f"call{i // 2}", eps[i], eps[i + 1])
    rng = np.random.default_rng(0)
    speechlike = rng.normal(0, 2000, 160 * 50)
    payloads = [[g711.encode_float(speechlike[k * 160:(k + 1) * 160], law).tobytes() for k in range(50)]
                for law in (0, 1)]
    ingest: list[float] = []
    ingest1: list[float] = []
    ticks: list[float] = []
    sent = 0
    batch_api = hasattr(eng, "datagrams_received")
    for t in range(WARMUP + TICKS):
        now = clock.t
        pkts = []
        for j, (p, ep) in enumerate(zip(phones, eps)):
            data = rtp.build(p.law * 8, p.seq, p.ts, p.ssrc, payloads[p.law][t % 50])
            pkts.append((ep.port, ctxs[j].protect(data) if srtp else data, p.addr, now))
            p.seq = (p.seq + 1) & 0xFFFF
            p.ts = (p.ts + 160) & 0xFFFFFFFF
        if t == WARMUP:
            stages0 = dict(eng.stats.stages)
        t0 = time.perf_counter()
        if batch_api and t % 2 == 0:
            eng.datagrams_received(pkts)
        else:
            recv = eng.datagram_received
            for port, data, addr, at in pkts:
                recv(port, data, addr, at)
        t1 = time.perf_counter()
        out = eng.tick(now)
        t2 = time.perf_counter()
        if t >= WARMUP:
            (ingest if batch_api and t % 2 == 0 else ingest1).append(t1 - t0)
            ticks.append(t2 - t1)
            sent += len(out.datagrams)
        clock.t += 0.02
    in_tick = {k: (v - stages0.get(k, 0.0)) / TICKS * 1e3 for k, v in eng.stats.stages.items()}
    eng.close()
    rec.wait()
    ingest1_ms = np.array(ingest1) * 1e3
    ingest_ms = np.array(ingest) * 1e3 if ingest else ingest1_ms
    ticks_ms = np.array(ticks) * 1e3
    return {"legs": legs, "ingest": ingest_ms.mean(), "ingest1": ingest1_ms.mean(), "tick": ticks_ms.mean(),
            "p99": np.percentile(ticks_ms, 99), "max": ticks_ms.max(), "total": ingest_ms.mean() + ticks_ms.mean(),
            "sent": sent / TICKS, "stages": stages(eng, legs), "in_tick": in_tick}


def stages(eng: MediaEngine, legs: int) -> dict:
    """Each array stage alone on ``legs`` rows (ms per tick)."""
    from media.dtmf import ToneDetector
    from media.mixer import Bridge, Member, Route, compile_plan
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 256, (legs, 160), dtype=np.uint8)
    laws = (np.arange(legs) % 2).astype(np.int8)
    x = g711.decode_rows(codes, laws)
    det = ToneDetector(legs)
    routes = []
    for i in range(0, legs, 2):
        b = Bridge(i, {i: Member(), i + 1: Member()})
        routes += [Route(i, b), Route(i + 1, b)]
    plan = compile_plan(routes, legs, 4)
    pl = np.zeros((4, 160), np.float32)

    def t(fn, n=100):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n * 1e3
    return {"decode": t(lambda: g711.decode_rows(codes, laws)),
            "dtmf": t(lambda: det.process(x)),
            "mix": t(lambda: plan.mix(x, pl)),
            "encode": t(lambda: g711.encode_float(x, laws)),
            "headers": t(lambda: rtp.build_headers(laws.astype(np.int64), np.arange(legs), np.arange(legs),
                                                   np.arange(legs), np.zeros(legs, bool)))}


def table(results: list[dict]) -> str:
    lines = ["| legs (calls) | ingest ms/tick (batch) | ingest per packet call | tick ms mean | tick p99 | tick max "
             "| total ms per 20 ms | CPU share | decode | DTMF | mix | encode | headers |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["stages"]
        lines.append(f"| {r['legs']:,} ({r['legs'] // 2:,}) | {r['ingest']:.2f} | {r['ingest1']:.2f} | {r['tick']:.2f} "
                     f"| {r['p99']:.2f} | {r['max']:.2f} | {r['total']:.2f} | {100 * r['total'] / 20:.0f} % "
                     f"| {s['decode']:.2f} | {s['dtmf']:.2f} | {s['mix']:.2f} | {s['encode']:.2f} | {s['headers']:.2f} |")
    names = list(results[0]["in_tick"]) if results else []
    lines += ["", "Where the tick's time goes (`MediaEngine.stats.stages`, ms per tick, mean over the measured ticks):", "",
              "| legs | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for r in results:
        lines.append(f"| {r['legs']:,} | " + " | ".join(f"{r['in_tick'].get(k, 0.0):.2f}" for k in names) + " |")
    return "\n".join(lines)


def main() -> None:
    args = [a for a in sys.argv[1:] if a not in ("--write", "--srtp")]
    srtp = "--srtp" in sys.argv
    counts = [int(a) for a in args] or [100, 500, 1000, 2000]
    results = []
    with tempfile.TemporaryDirectory() as d:
        for n in counts:
            r = run(n, os.path.join(d, str(n)), srtp)
            results.append(r)
            print(f"{n:5d} legs: ingest {r['ingest']:6.2f} ms (per packet call {r['ingest1']:.2f}), tick {r['tick']:6.2f} ms (p99 {r['p99']:.2f}, "
                  f"max {r['max']:.2f}), total {r['total']:6.2f} ms = {100 * r['total'] / 20:4.0f} % of a core; "
                  f"{r['sent']:.0f} packets out per tick; stages " +
                  ", ".join(f"{k} {v:.2f}" for k, v in r["stages"].items()), flush=True)
    t = table(results)
    print(t)
    if "--write" in sys.argv and not srtp:
        write_md(t)


def write_md(t: str) -> None:
    path = Path(__file__).with_name("MEDIA.md")
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    note = (f"{datetime.date.today().isoformat()}, {cpu}, {os.cpu_count()} cores (VM, shared and noisy), "
            f"Python {platform.python_version()}, numpy {np.__version__}")
    text = path.read_text() if path.exists() else ""
    marker = "<!-- bench/mixer.py results -->"
    block = f"{marker}\nMeasured {note}:\n\n{t}\n{marker}"
    if marker in text:
        head, _, rest = text.partition(marker)
        _, _, tail = rest.partition(marker)
        text = head + block + tail
    else:
        text += "\n" + block + "\n"
    path.write_text(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
