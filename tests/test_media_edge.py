"""The asyncio edge over real loopback sockets: two phones bridged through the switch."""
import asyncio
import socket

import numpy as np

from media import MediaConfig, MediaEngine, g711, rtp
from media.edge import MediaEdge
from media.testing import Phone


def test_loopback_bridge_through_sockets():
    async def main():
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="41000-41100"))
        events = []
        edge = MediaEdge(eng, on_events=events.extend)
        socks, phones, eps = [], [], []
        for law in (g711.ULAW, g711.ALAW):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            p = Phone(s.getsockname(), law=law)
            ep = eng.allocate("loop")
            answer = eng.answer(ep, p.sdp(codecs=(law,)))
            assert f"m=audio {ep.port} " in answer and ep.port in edge.socks     # a spare bound ahead of need
            edge.sync_ports()                                   # what the switch's edge does after call control
            assert ep.port in edge.socks and ep.port + 1 in edge.socks
            socks.append(s), phones.append(p), eps.append(ep)
        eng.bridge(*eps)
        edge.start()
        sig = 6000 * np.sin(2 * np.pi * 500 * np.arange(160 * 40) / 8000)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(40):
            socks[0].sendto(phones[0].audio(sig[i * 160:(i + 1) * 160]), ("127.0.0.1", eps[0].port))
            socks[1].sendto(phones[1].audio(np.zeros(160)), ("127.0.0.1", eps[1].port))
            # pacing: a packet every 20 ms on the clock, as a phone sends, not 20 ms after the last one (on a
            # busy machine every sleep overshoots, the phones fall behind real time and the switch's jitter
            # buffer rightly conceals the gaps)
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 - loop.time()))
        await asyncio.sleep(0.1)
        got = []
        while True:
            try:
                got.append(socks[1].recv(2048))
            except BlockingIOError:
                break
        await edge.stop()
        for s in socks:
            s.close()
        return eng, edge, got
    eng, edge, got = asyncio.run(main())
    assert len(got) >= 35 and {rtp.parse(d).pt for d in got} == {8}
    audio = np.concatenate([g711.decode(rtp.parse(d).payload, g711.ALAW) for d in got]).astype(float)
    assert np.sqrt(np.mean(audio[160 * 10:160 * 30] ** 2)) > 4000                   # the tone arrived, transcoded
    assert edge.received >= 78 and eng.stats.ticks >= 40
    assert eng.ports.in_use == 0 and not edge.socks                           # stop released everything
