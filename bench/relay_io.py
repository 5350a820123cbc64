#!/usr/bin/env python3
"""Per-packet cost of the media edge with real sockets, beside ``../shared/bench/udp/tick_drain.py``.

N two-party calls through one ``MediaEngine`` + ``MediaEdge`` (its own asyncio loop, as in the switch):
two blaster processes play both phones of every call, each phone sending a 20 ms PCMU packet every 20 ms
from its own socket (the address its SDP names, so the switch latches it). Reported for the fast path
(relayed) and the full path (jitter buffer, decode, mix, encode: ``fast_path = false``), and for the
reference loop that only drains sockets and sends each packet on (``tick_drain.py`` with 2 N sockets),
all in the same run: the switch process's CPU per packet in + out.

Usage: bench/relay_io.py [--calls 200] [--seconds 6] [--write]   (--write: the table into bench/MEDIA.md)
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from media import MediaConfig, MediaEngine  # noqa: E402
from media.edge import MediaEdge  # noqa: E402
from media.testing import Phone  # noqa: E402

TICK_DRAIN = ROOT.parent / "shared" / "bench" / "udp" / "tick_drain.py"
MARK = "<!-- bench/relay_io.py results -->"


def blaster(socks: list[socket.socket], dests: list[int], stop_at: float) -> None:
    """Each socket sends a 20 ms PCMU packet every 20 ms to its switch port (sequence and timestamp running)."""
    hdr = struct.Struct(">BBHII")
    payload = b"\xff" * 160
    seq = [0] * len(socks)
    nxt = time.time()
    k = 0
    while time.time() < stop_at:
        for i, (s, port) in enumerate(zip(socks, dests)):
            try:
                s.sendto(hdr.pack(0x80, 0, seq[i] & 0xFFFF, (k * 160) & 0xFFFFFFFF, 0x1000 + i) + payload,
                         ("127.0.0.1", port))
            except OSError:
                pass
            seq[i] += 1
            try:
                while s.recv(2048):          # what the switch sends the phone: read and forget
                    pass
            except OSError:
                pass
        k += 1
        nxt += 0.02
        d = nxt - time.time()
        if d > 0:
            time.sleep(d)


def run_switch(calls: int, seconds: float, fast: bool) -> dict:
    """One measured run of the engine + edge; returns packets in/out and CPU."""
    async def main() -> dict:
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="52000-59999",
                                      fast_path=fast, inband_dtmf=False, spare_ports=0))
        edge = MediaEdge(eng)
        phone_socks, ports = [], []
        for i in range(calls):
            eps = []
            for _ in range(2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                s.setblocking(False)
                ep = eng.allocate(f"call-{i}")
                eng.answer(ep, Phone(s.getsockname()).sdp())
                phone_socks.append(s)
                ports.append(ep.port)
                eps.append(ep)
            eng.bridge(*eps)
        edge.sync_ports()
        edge.start()
        stop = time.time() + seconds + 2.5
        procs = [mp.Process(target=blaster, args=(phone_socks[j::2], ports[j::2], stop)) for j in range(2)]
        for p in procs:
            p.start()
        await asyncio.sleep(1.5)                      # latching, jitter buffers primed
        r0, s0, c0, t0 = edge.received, edge.sent, time.process_time(), time.time()
        await asyncio.sleep(seconds)
        r1, s1, c1, t1 = edge.received, edge.sent, time.process_time(), time.time()
        pairs = eng.relay_pairs
        failed = edge.ports_failed                    # ports another program held (another port was not tried)
        for p in procs:
            p.join()
        await edge.stop()
        for s in phone_socks:
            s.close()
        dt = t1 - t0
        n_in, n_out = r1 - r0, s1 - s0
        return {"path": "fast" if fast else "full", "pairs": pairs, "in_per_s": n_in / dt, "out_per_s": n_out / dt,
                "cpu": 100 * (c1 - c0) / dt, "us_per_packet": 1e6 * (c1 - c0) / max(1, (n_in + n_out) / 2),
                "ports_failed": failed}
    return asyncio.run(main())


def run_reference(calls: int) -> dict:
    """``tick_drain.py`` with as many sockets as the switch has phone legs (2 per call)."""
    out = subprocess.run([sys.executable, str(TICK_DRAIN), str(2 * calls)], capture_output=True, text=True,
                         timeout=120).stdout
    m = re.search(r"([\d,]+) pkt/s in .*CPU (\d+)%, ([\d.]+) us per packet", out)
    if not m:
        return {"path": "tick_drain.py", "error": out[-300:]}
    return {"path": "tick_drain.py", "pairs": 0, "in_per_s": float(m[1].replace(",", "")),
            "out_per_s": float(m[1].replace(",", "")), "cpu": float(m[2]), "us_per_packet": float(m[3])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8 * a.calls + 256)), hard))
    load0 = os.getloadavg()[0]
    rows = [run_switch(a.calls, a.seconds, True), run_switch(a.calls, a.seconds, False), run_reference(a.calls)]
    load1 = os.getloadavg()[0]
    lines = [f"{a.calls} calls ({2 * a.calls} legs), load average {load0:.1f} -> {load1:.1f}:", "",
             "| path | relayed pairs (legs whose port would not bind) | packets in/s | packets out/s | CPU (one core = 100 %) | µs per packet in + out (CPU over the mean of in and out) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['path']} | error: {r['error']!r} | | | | |")
            continue
        lines.append(f"| {r['path']} | {r['pairs']} ({r.get('ports_failed', 0)}) | {r['in_per_s']:,.0f} | {r['out_per_s']:,.0f} | {r['cpu']:.0f} % | "
                     f"{r['us_per_packet']:.1f} |")
    text = "\n".join(lines)
    print(text)
    if a.write:
        md = ROOT / "bench" / "MEDIA.md"
        body = md.read_text()
        block = f"{MARK}\n{text}\n{MARK}"
        if MARK in body:
            body = re.sub(re.escape(MARK) + r".*?" + re.escape(MARK), lambda _: block, body, flags=re.S)
        else:
            body = body.rstrip("\n") + "\n\n" + block + "\n"
        md.write_text(body)


if __name__ == "__main__":
    main()
