"""CPU per browser-phone leg against a SIP leg.

Usage: .venv/bin/python bench/browser_phone.py [--seconds 8] [--write] [LEGS ...]   (default: 1 4 8)

Three processes, so that each one's CPU is its own:

* **browsers** (child): LEGS aiortc peer connections standing in for Chromium: each sends a 48 kHz
  melody (Opus, as Chrome does) and decodes what it receives.
* **server** (this process): per leg exactly the switch's server side of a browser phone
  (``softswitch.browserphone``): an aiortc peer connection (ICE, DTLS-SRTP, Opus decode and encode),
  the ``EngineTrack`` that paces the downlink, the ``Uplink`` that resamples the browser's audio to
  8 kHz, and the ``Hop`` that codes G.711 and moves RTP on 127.0.0.1.
* **engine stand-in** (child): reflects each hop's RTP back at 50 packets/s (what the engine's leg sends),
  so both directions carry audio. The engine's own cost for the leg is the same as for any SIP leg.

Reported per leg, as CPU milliseconds per second of call (1,000 = one core busy): the server process
(aiortc + hop), the hop alone (its work per 20 ms both ways, measured by itself in the same run), and a
SIP leg in the same run: the media engine's cost per leg (``bench/mixer.py``'s measurement at 100 legs)
plus the socket I/O of 50 packets in and 50 out per second (the reflector's measured CPU per packet,
stock asyncio). A browser leg costs the SIP leg's engine work *plus* the server column.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import multiprocessing as mp
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from softswitch.browserphone import hop as hop_mod  # noqa: E402


# ---------------------------------------------------------------------------------- engine stand-in
def reflector(port_q: Any, stop: Any, cpu_q: Any) -> None:
    """Echo every datagram back to its sender (an engine leg answering a hop), counting packets and CPU."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    port_q.put(s.getsockname()[1])
    n, t0 = 0, time.process_time()
    while not stop.is_set():
        try:
            data, addr = s.recvfrom(2048)
        except socket.timeout:
            continue
        s.sendto(data, addr)
        n += 1
    cpu_q.put((time.process_time() - t0, n))


# ------------------------------------------------------------------------------------------ browsers
def browsers(legs: int, conn: Any, seconds: float) -> None:
    asyncio.run(_browsers(legs, conn, seconds))


async def _browsers(legs: int, conn: Any, seconds: float) -> None:
    import fractions

    import av
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

    rng = np.random.default_rng(3)
    t = np.arange(48000 * 2) / 48000
    tone = (8000 * np.sin(2 * np.pi * (300 + 900 * rng.random()) * t)).astype(np.int16)

    class Mic(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0
            self.start: float | None = None

        async def recv(self) -> Any:
            if self.start is None:
                self.start = time.monotonic()
            else:
                self.pts += 960
                await asyncio.sleep(max(0.0, self.start + self.pts / 48000 - time.monotonic()))
            i = self.pts % (len(tone) - 960)
            f = av.AudioFrame.from_ndarray(tone[i:i + 960].reshape(1, -1), format="s16", layout="mono")
            f.sample_rate, f.pts, f.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
            return f

    pcs, tasks, senders = [], [], []

    async def drain(track: Any) -> None:
        try:
            while True:
                await track.recv()
        except Exception:
            return

    for _ in range(legs):
        pc = RTCPeerConnection()
        senders.append(pc.addTrack(Mic()))
        pc.on("track", lambda tr: tasks.append(asyncio.ensure_future(drain(tr))))
        await pc.setLocalDescription(await pc.createOffer())
        conn.send(pc.localDescription.sdp)
        answer = await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        pcs.append(pc)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)     # "idle": as the desk page between calls
    for snd in senders:
        snd.replaceTrack(None)
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)     # "stop"
    for pc in pcs:
        await pc.close()


# -------------------------------------------------------------------------------------------- server
async def _hop_micro(frames: int) -> tuple[float, float]:
    """CPU µs the hop spends per 20 ms in both directions, alone, and the part of it a direct frame
    interface to the engine would save (G.711 coding, RTP and the loopback datagrams): one browser frame
    (48 kHz stereo, as aiortc's Opus decoder gives it) resampled, coded and sent; one engine packet
    received, decoded, queued, taken and made the ``AudioFrame`` aiortc encodes for the browser."""
    import av

    from media import g711
    from media import rtp as rtp_mod

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    hop = await hop_mod.Hop.open()
    hop.configure("127.0.0.1", sink.getsockname()[1], 0, 0, 101, True)
    transport = [0.0]

    def send(pcm: Any) -> None:
        t = time.process_time()
        hop.send(pcm)
        transport[0] += time.process_time() - t
    up = hop_mod.Uplink(None, send)
    track = hop_mod.EngineTrack(hop.pop)
    pcm = (3000 * np.sin(np.arange(960 * 2) / 7)).astype(np.int16).reshape(1, -1)
    inputs = []
    for i in range(frames):
        f = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        f.sample_rate, f.pts = 48000, i * 960
        inputs.append(f)
    packets = [rtp_mod.build(0, i, i * 160, 1234, g711.encode(pcm[0, :160], 0).tobytes()) for i in range(frames)]
    t0 = time.process_time()
    for i in range(frames):
        up.feed(inputs[i])
        t = time.process_time()
        hop.datagram_received(packets[i], ("127.0.0.1", 1))
        transport[0] += time.process_time() - t
        track.make_frame(av)
    cpu = time.process_time() - t0
    hop.close()
    sink.close()
    return 1e6 * cpu / frames, 1e6 * transport[0] / frames


async def server(legs: int, seconds: float, engine_port: int) -> dict:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=browsers, args=(legs, there, seconds), daemon=True)
    child.start()
    loop = asyncio.get_running_loop()
    pcs, hops = [], []
    idle = [False]
    for _ in range(legs):
        offer = await loop.run_in_executor(None, here.recv)
        hop = await hop_mod.Hop.open()
        hop.configure("127.0.0.1", engine_port, 0, 0, 101, True)
        pc = RTCPeerConnection()
        pc.addTrack(hop_mod.engine_track(hop.pop, idle=lambda: idle[0]))

        def on_track(track: Any, hop: Any = hop) -> None:
            up = hop_mod.Uplink(track, hop.send)
            asyncio.ensure_future(up.run())
        pc.on("track", on_track)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        here.send(pc.localDescription.sdp)
        pcs.append(pc)
        hops.append(hop)
    await asyncio.sleep(2.0)                                  # ICE, DTLS, the first frames
    c0, w0 = time.process_time(), time.monotonic()
    rx0 = sum(h.rx_packets for h in hops)
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.monotonic() - w0
    rx = sum(h.rx_packets for h in hops) - rx0
    idle[0] = True                                            # no call: the phones wait (page and server side)
    here.send("idle")
    await asyncio.sleep(1.0)
    c1, w1 = time.process_time(), time.monotonic()
    await asyncio.sleep(min(seconds, 5.0))
    idle_cpu, idle_wall = time.process_time() - c1, time.monotonic() - w1
    here.send("stop")
    for pc in pcs:
        await pc.close()
    for h in hops:
        h.close()
    child.join(10)
    return {"legs": legs, "server_ms": 1000 * cpu / wall / legs, "rx_pps": rx / wall / legs, "wall": wall,
            "idle_ms": 1000 * idle_cpu / idle_wall / legs}


def sip_leg_ms(engine_legs: int = 100) -> float:
    """The media engine's CPU per leg per second (bench/mixer.py's run, in this process)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import mixer  # type: ignore[import-not-found]
    with tempfile.TemporaryDirectory() as d:
        r = mixer.run(engine_legs, d)
    return float(r["total"]) / engine_legs * 50     # ms per 20 ms tick for all legs -> ms per second per leg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("legs", nargs="*", type=int, default=[1, 4, 8])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    port_q, cpu_q, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    refl = ctx.Process(target=reflector, args=(port_q, stop, cpu_q), daemon=True)
    refl.start()
    port = port_q.get(timeout=10)
    rows = []
    for n in args.legs:
        r = asyncio.run(server(n, args.seconds, port))
        rows.append(r)
        print(f"{n} browser leg(s): server {r['server_ms']:.1f} ms CPU/s per leg on a call, {r['idle_ms']:.2f} idle, "
              f"{r['rx_pps']:.0f} packets/s from the engine per leg", flush=True)
    stop.set()
    refl_cpu, refl_n = cpu_q.get(timeout=10)
    refl.join(5)
    io_us = 1e6 * refl_cpu / max(1, refl_n)                  # one packet in + one out, stock asyncio-free loop
    engine_ms = sip_leg_ms()
    sip_ms = engine_ms + 50 * io_us / 1000                   # 50 packets in and 50 out per second
    hop_us, hop_rtp_us = asyncio.run(_hop_micro(2000))
    hop_ms, hop_rtp_ms = hop_us * 50 / 1000, hop_rtp_us * 50 / 1000
    load = os.getloadavg()[0]
    table = ["| browser legs | server CPU per leg (aiortc + hop), ms/s | of which the hop (alone) | of which G.711 + RTP + "
             "loopback (what a direct frame interface saves) | SIP leg (engine + socket I/O), ms/s | browser leg / SIP leg "
             "| idle browser phone (no call), ms/s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['legs']} | {r['server_ms']:.1f} | {hop_ms:.1f} | {hop_rtp_ms:.1f} | {sip_ms:.2f} "
                     f"| {(r['server_ms'] + sip_ms) / sip_ms:.0f} × | {r['idle_ms']:.2f} |")
    text = "\n".join(table)
    note = (f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores (shared VM), "
            f"load average {load:.1f} at the end (other work running: indicative), Python {platform.python_version()}; "
            f"SIP leg = engine {engine_ms:.2f} ms/s per leg (bench/mixer.py, 100 legs) + socket I/O "
            f"{io_us:.1f} µs per packet in+out × 50/s (blocking-socket reflector); hop alone {hop_us:.0f} µs per 20 ms "
            f"both ways, {hop_rtp_us:.0f} µs of it G.711 + RTP + loopback (2,000 frames)")
    print(text)
    print(note)
    if args.write:
        path = Path(__file__).with_name("BROWSER_PHONE.md")
        marker = "<!-- bench/browser_phone.py results -->"
        block = f"{marker}\nMeasured {note}:\n\n{text}\n{marker}"
        old = path.read_text()
        i, j = old.find(marker), old.rfind(marker)
        path.write_text(old[:i] + block + old[j + len(marker):] if 0 <= i < j else old + "\n" + block + "\n")


if __name__ == "__main__":
    main()
