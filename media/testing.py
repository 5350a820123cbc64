"""A scripted SIP-less phone for tests and benchmarks: SDP offers/answers and RTP packets to an engine.

``Phone`` plays the far end of one leg; ``run_ticks`` moves time forward, feeding each phone's
packets to the engine and routing the engine's datagrams back to the phone they are addressed to.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import g711, rtp
from .engine import Datagram, Endpoint, MediaEngine, MediaEvent

FRAME = rtp.FRAME


@dataclass(eq=False)
class Phone:
    addr: tuple[str, int]
    law: int = g711.ULAW
    te_pt: int | None = 101
    ptime: int = 20
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts: int = field(default_factory=lambda: random.getrandbits(32))
    inbox: list[bytes] = field(default_factory=list)
    rtcp_inbox: list[bytes] = field(default_factory=list)

    def sdp(self, direction: str = "sendrecv", codecs: tuple[int, ...] | None = None, version: int = 1) -> str:
        laws = codecs if codecs is not None else (self.law,)
        fmts = [str(g711.STATIC_PT[c]) for c in laws] + ([str(self.te_pt)] if self.te_pt is not None else [])
        lines = ["v=0", f"o=phone 42 {version} IN IP4 {self.addr[0]}", "s=call", f"c=IN IP4 {self.addr[0]}",
                 "t=0 0", f"m=audio {self.addr[1]} RTP/AVP {' '.join(fmts)}"]
        lines += [f"a=rtpmap:{g711.STATIC_PT[c]} {g711.CODEC_NAMES[c]}/8000" for c in laws]
        if self.te_pt is not None:
            lines += [f"a=rtpmap:{self.te_pt} telephone-event/8000", f"a=fmtp:{self.te_pt} 0-16"]
        lines += [f"a=ptime:{self.ptime}", f"a={direction}"]
        return "\r\n".join(lines) + "\r\n"

    def packet(self, payload: bytes, pt: int | None = None, marker: bool = False, ts: int | None = None,
               advance: int | None = None) -> bytes:
        p = rtp.build(g711.STATIC_PT[self.law] if pt is None else pt, self.seq, self.ts if ts is None else ts,
                      self.ssrc, payload, marker)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + (len(payload) if advance is None else advance)) & 0xFFFFFFFF
        return p

    def audio(self, samples: np.ndarray) -> bytes:
        return self.packet(g711.encode_float(np.asarray(samples, dtype=np.float64), self.law).tobytes())

    def received_audio(self) -> np.ndarray:
        """Decoded audio of the RTP packets received so far (audio payload types only), in order of arrival."""
        out = []
        for d in self.inbox:
            p = rtp.parse(d)
            if p.pt in (0, 8):
                out.append(g711.decode(p.payload, g711.ULAW if p.pt == 0 else g711.ALAW))
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def deliver(phones: list[Phone], datagrams: list[Datagram]) -> None:
    by_addr = {p.addr: p for p in phones}
    rtcp_addr = {(p.addr[0], p.addr[1] + 1): p for p in phones}
    for d in datagrams:
        if d.addr in by_addr:
            by_addr[d.addr].inbox.append(d.data)
        elif d.addr in rtcp_addr:
            rtcp_addr[d.addr].rtcp_inbox.append(d.data)


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def run_ticks(engine: MediaEngine, clock: Clock, legs: list[tuple[Phone, Endpoint]], ticks: int,
              source: Callable[[Phone, int], np.ndarray | None] | None = None,
              events: list[MediaEvent] | None = None) -> None:
    """``ticks`` ticks; ``source(phone, i)`` returns the 160 samples (or None) each phone sends at tick i."""
    phones = [p for p, _ in legs]
    for i in range(ticks):
        for phone, ep in legs:
            s = source(phone, i) if source else None
            if s is not None:
                engine.datagram_received(ep.port, phone.audio(s), phone.addr, clock.t)
        out = engine.tick(clock.t)
        deliver(phones, out.datagrams)
        if events is not None:
            events += out.events
        clock.t += 0.02
