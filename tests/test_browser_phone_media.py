"""The browser phone's audio path without a browser: an aiortc peer connection stands in for the page,
the server side is the switch's own (``engine_track``, ``Uplink``, ``Hop``), and a UDP socket stands in for
the engine leg. Both codecs a browser may choose are run: Opus and G.711 (PCMU). What the "page" says
arrives at the "engine" as G.711 RTP, and what the engine sends is heard by the page, checked by
correlation; RFC 4733 digits go to the engine; an idle phone sends nothing."""
from __future__ import annotations

import asyncio
import fractions
import socket
import time
from typing import Any

import numpy as np
import pytest

aiortc = pytest.importorskip("aiortc")
av = pytest.importorskip("av")

from media import g711  # noqa: E402
from media import rtp as rtp_mod  # noqa: E402
from softswitch.browserphone import hop as hop_mod  # noqa: E402
from tests import audio  # noqa: E402

pytestmark = [pytest.mark.timeout(60)]


class Speaker(aiortc.MediaStreamTrack):  # type: ignore[name-defined]  # (importorskip'd module)
    """The page's microphone: a melody at 48 kHz, paced in real time."""
    kind = "audio"

    def __init__(self, signal: np.ndarray):
        super().__init__()
        self.signal = (signal * 32767).astype(np.int16)
        self.pts = 0
        self.start: float | None = None

    async def recv(self) -> Any:
        if self.start is None:
            self.start = time.monotonic()
        else:
            self.pts += 960
            await asyncio.sleep(max(0.0, self.start + self.pts / 48000 - time.monotonic()))
        i = self.pts % (len(self.signal) - 960)
        f = av.AudioFrame.from_ndarray(self.signal[i:i + 960].reshape(1, -1), format="s16", layout="mono")
        f.sample_rate, f.pts, f.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        return f


async def run_call(codec: str, tmp: Any) -> dict:
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    page_says = audio.melody(3.0, rate=48000, seed=181)
    engine_says = audio.melody(3.0, seed=182)
    engine = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    engine.bind(("127.0.0.1", 0))
    engine.setblocking(False)
    hop = await hop_mod.Hop.open()
    hop.configure("127.0.0.1", engine.getsockname()[1], g711.ULAW, 0, 101, True)
    idle = [False]

    page = RTCPeerConnection()
    tr = page.addTransceiver(Speaker(page_says), direction="sendrecv")
    prefs = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType.lower() == f"audio/{codec.lower()}"]
    tr.setCodecPreferences(prefs)
    heard: list[np.ndarray] = []
    got_track = asyncio.Event()

    @page.on("track")
    def on_page_track(track: Any) -> None:
        async def listen() -> None:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=8000)
            try:
                while True:
                    for f in resampler.resample(await track.recv()):
                        heard.append(f.to_ndarray().reshape(-1).astype(np.float32) / 32768)
            except Exception:
                return
        asyncio.ensure_future(listen())
        got_track.set()

    server = RTCPeerConnection()
    server_track = hop_mod.engine_track(hop.pop, idle=lambda: idle[0])
    uplinks: list[hop_mod.Uplink] = []

    @server.on("track")
    def on_server_track(track: Any) -> None:
        up = hop_mod.Uplink(track, hop.send)
        uplinks.append(up)
        asyncio.ensure_future(up.run())

    await page.setLocalDescription(await page.createOffer())
    await server.setRemoteDescription(RTCSessionDescription(sdp=page.localDescription.sdp, type="offer"))
    server.addTrack(server_track)
    await server.setLocalDescription(await server.createAnswer())
    await page.setRemoteDescription(RTCSessionDescription(sdp=server.localDescription.sdp, type="answer"))
    await asyncio.wait_for(got_track.wait(), 10)

    # the engine: sends its melody as PCMU at 50 packets/s to the hop, and keeps what the hop sends
    got: list[rtp_mod.RtpPacket] = []
    t0 = time.monotonic()
    for k in range(200):                                   # 4 s
        chunk = engine_says[(k * 160) % (len(engine_says) - 160):][:160]
        engine.sendto(rtp_mod.build(0, k, k * 160, 4321, g711.encode((chunk * 32767).astype(np.int16), g711.ULAW)
                                    .tobytes()), ("127.0.0.1", hop.port))
        if k == 150:
            hop.dtmf("5")
        while True:
            try:
                got.append(rtp_mod.parse(engine.recv(2048)))
            except BlockingIOError:
                break
        await asyncio.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))
    # idle: the server's track stops sending (no Opus for silence)
    idle[0] = True
    await asyncio.sleep(0.3)            # the frames already queued when the call went idle drain
    frames_idle = server_track.pacer.frames
    await asyncio.sleep(0.5)            # a measuring window: an idle phone encodes nothing in it (25 frames if it did)
    still = server_track.pacer.frames - frames_idle
    codec_used = server.getTransceivers()[0]._codecs[0].mimeType
    await page.close()
    await server.close()
    hop.close()
    engine.close()
    voice = [p for p in got if p.pt == 0]
    events = [p for p in got if p.pt == 101]
    to_engine = np.concatenate([g711.decode(p.payload, g711.ULAW) for p in voice]).astype(np.float32) / 32768
    return {"codec": codec_used, "to_engine": to_engine, "heard": np.concatenate(heard) if heard else np.zeros(1),
            "page_says": audio.read_mono(audio.write_wav(tmp / "page.wav", page_says, 48000)),
            "engine_says": engine_says, "events": events, "frames_while_idle": still}


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
def test_audio_both_ways_through_the_hop(codec, tmp_path):
    r = asyncio.run(run_call(codec, tmp_path))
    assert r["codec"].lower() == f"audio/{codec.lower()}", r["codec"]
    tiled_page = np.concatenate([r["page_says"]] * 3)
    to_engine = audio.windowed_correlation(r["to_engine"][audio.RATE: 3 * audio.RATE], tiled_page)
    heard = audio.windowed_correlation(r["heard"][audio.RATE: 3 * audio.RATE], np.concatenate([r["engine_says"]] * 3))
    assert to_engine > 0.8, f"the engine did not get the page's voice ({to_engine:.2f})"
    assert heard > 0.8, f"the page did not hear the engine ({heard:.2f})"
    # RFC 4733: digit 5, volume 10, the last three packets marked end, one timestamp
    assert r["events"] and {p.payload[0] for p in r["events"]} == {5}
    assert sum(1 for p in r["events"] if p.payload[1] & 0x80) == 3 and len({p.ts for p in r["events"]}) == 1
    assert r["frames_while_idle"] == 0, "an idle browser phone still encodes audio"
