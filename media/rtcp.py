"""RTCP (RFC 3550 §6): sender/receiver reports with SDES CNAME, and reading the phone's reports.

Each leg keeps two sets of figures: what the switch measured of the phone's stream (loss, jitter,
in ``ReceptionStats``) and what the phone says it measured of ours (from its report blocks), plus
the round-trip time from LSR/DLSR. Reports are sent about every 5 s per leg.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Protocol

SR, RR, SDES, BYE = 200, 201, 202, 203
NTP_EPOCH_OFFSET = 2208988800            # 1900 → 1970


def ntp_time(unix: float) -> tuple[int, int]:
    t = unix + NTP_EPOCH_OFFSET
    sec = int(t)
    return sec & 0xFFFFFFFF, int((t - sec) * (1 << 32)) & 0xFFFFFFFF


def ntp_middle(unix: float) -> int:
    msw, lsw = ntp_time(unix)
    return ((msw & 0xFFFF) << 16) | (lsw >> 16)


@dataclass
class ReportBlock:
    ssrc: int
    fraction_lost: int          # 8-bit fixed point (lost/expected × 256)
    cumulative_lost: int
    highest_seq: int            # extended
    jitter: int                 # timestamp units
    lsr: int
    dlsr: int                   # 1/65536 s

    @property
    def loss_percent(self) -> float:
        return self.fraction_lost * 100.0 / 256.0


@dataclass
class RtcpPacket:
    pt: int
    ssrc: int
    ntp: tuple[int, int] | None = None
    rtp_ts: int | None = None
    packets: int | None = None
    octets: int | None = None
    reports: list[ReportBlock] = field(default_factory=list)
    cname: str | None = None


class ReceptionReport(Protocol):
    """What a report block reads of the switch's reception statistics: a ``media.rtp.ReceptionStats``, or
    one leg's row of the engine's ``media.reception.ReceptionTable`` (``ReceptionView``)."""
    @property
    def started(self) -> bool: ...
    @property
    def jitter(self) -> float: ...
    @property
    def lost(self) -> int: ...
    @property
    def extended_max(self) -> int: ...
    def interval_fraction_lost(self) -> int: ...


def _block(ssrc: int, st: ReceptionReport, lsr: int, dlsr: int) -> bytes:
    # Every field is clamped to its wire range: duplicates make loss negative (fraction 0, signed
    # 24-bit cumulative), and a report must never be what stops a media tick.
    frac = max(0, min(255, st.interval_fraction_lost()))
    cum = max(-(1 << 23), min((1 << 23) - 1, st.lost)) & 0xFFFFFF
    u32 = 0xFFFFFFFF
    return struct.pack("!IIIIII", ssrc & u32, (frac << 24) | cum, st.extended_max & u32,
                       max(0, min(u32, int(st.jitter))), lsr & u32, max(0, min(u32, dlsr)))


def build_report(ssrc: int, cname: str, now: float, *, sending: bool, rtp_ts: int = 0, packets: int = 0,
                 octets: int = 0, remote_ssrc: int | None = None, stats: ReceptionReport | None = None,
                 lsr: int = 0, lsr_arrival: float | None = None) -> bytes:
    """Compound SR (when we sent since the last report) or RR, followed by SDES CNAME."""
    blocks = b""
    if remote_ssrc is not None and stats is not None and stats.started:
        dlsr = int((now - lsr_arrival) * 65536) if (lsr and lsr_arrival is not None) else 0
        blocks = _block(remote_ssrc, stats, lsr, dlsr)
    rc = len(blocks) // 24
    if sending:
        msw, lsw = ntp_time(now)
        body = struct.pack("!IIIIII", ssrc, msw, lsw, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF,
                           octets & 0xFFFFFFFF) + blocks
        first = struct.pack("!BBH", 0x80 | rc, SR, (len(body) + 4) // 4 - 1) + body
    else:
        body = struct.pack("!I", ssrc) + blocks
        first = struct.pack("!BBH", 0x80 | rc, RR, (len(body) + 4) // 4 - 1) + body
    cn = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(cn)) + cn + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    sdes = struct.pack("!BBH", 0x81, SDES, (len(chunk) + 4) // 4 - 1) + chunk
    return first + sdes


def build_bye(ssrc: int) -> bytes:
    return struct.pack("!BBHI", 0x81, BYE, 1, ssrc)


def parse(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; unknown packet types are skipped, malformed ones end parsing."""
    out: list[RtcpPacket] = []
    off = 0
    while off + 8 <= len(data):
        b0, pt, length = struct.unpack_from("!BBH", data, off)
        if b0 >> 6 != 2:
            break
        end = off + 4 * (length + 1)
        if end > len(data):
            break
        count = b0 & 0x1F
        ssrc = struct.unpack_from("!I", data, off + 4)[0]
        p = RtcpPacket(pt, ssrc)
        pos = off + 8
        if pt == SR and pos + 20 <= end:
            msw, lsw, p.rtp_ts, p.packets, p.octets = struct.unpack_from("!IIIII", data, pos)
            p.ntp = (msw, lsw)
            pos += 20
        if pt in (SR, RR):
            for _ in range(count):
                if pos + 24 > end:
                    break
                s, fl, hs, j, lsr, dlsr = struct.unpack_from("!IIIIII", data, pos)
                cum = fl & 0xFFFFFF
                if cum & 0x800000:
                    cum -= 1 << 24
                p.reports.append(ReportBlock(s, fl >> 24, cum, hs, j, lsr, dlsr))
                pos += 24
        elif pt == SDES and count:
            pos = off + 8
            while pos + 2 <= end and data[pos] != 0:
                item, ln = data[pos], data[pos + 1]
                if item == 1:
                    p.cname = data[pos + 2:pos + 2 + ln].decode("utf-8", "replace")
                pos += 2 + ln
        out.append(p)
        off = end
    return out


@dataclass
class RtcpState:
    """Per-leg RTCP bookkeeping."""
    next_report: float = 0.0
    last_sr_mid: int = 0               # middle 32 bits of the NTP time in the phone's last SR
    last_sr_arrival: float | None = None
    remote: ReportBlock | None = None  # the phone's view of our stream
    rtt: float | None = None           # seconds
    reports_sent: int = 0
    reports_received: int = 0

    def on_packet(self, data: bytes, now: float, our_ssrc: int) -> None:
        for p in parse(data):
            if p.pt not in (SR, RR):
                continue
            self.reports_received += 1
            if p.pt == SR and p.ntp:
                self.last_sr_mid = ((p.ntp[0] & 0xFFFF) << 16) | (p.ntp[1] >> 16)
                self.last_sr_arrival = now
            for rb in p.reports:
                if rb.ssrc != our_ssrc:
                    continue
                self.remote = rb
                if rb.lsr:
                    rtt_units = (ntp_middle(now) - rb.lsr - rb.dlsr) & 0xFFFFFFFF
                    if rtt_units < (1 << 31):
                        self.rtt = rtt_units / 65536.0
