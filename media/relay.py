"""The fast path: a plain two-party call's packets forwarded as they arrive, without decoding, mixing or encoding.

Most anchored calls are two phones talking: same codec, same packet time, nobody recording, listening in,
playing a prompt or music, no DTMF to send. For those the full path (jitter buffer, decode, mix, encode,
re-packetise to 20 ms) does work nobody hears: a relay such as rtpengine forwards each packet with its
header rewritten. So does this module, for the pairs ``update_relays`` finds eligible whenever the
topology changes (``MediaEngine._compile``):

- an audio packet of leg A that passed the engine's checks (latched source address, RFC 3550 statistics,
  SRTP legs are never relayed) is sent at once from B's port to B's phone with B's payload type, B's SSRC,
  and sequence number and timestamp moved by offsets fixed when A's stream was first relayed (so loss and
  timing stay visible to B, and B sees one continuous stream: the first relayed packet continues the
  sequence and timestamp the engine used before, with the marker bit set);
- RFC 4733 events and RTCP are not forwarded: the engine still takes them (DTMF digits reach call control,
  RTCP reports stay per leg); a leg whose audio is searched for in-band DTMF (``[media] inband_dtmf`` on, and
  the phone has sent no RFC 4733 event yet) is not relayed, so a deployment whose phones send no
  telephone-event relays only with ``inband_dtmf = false`` (what rtpengine does: it never looks);
- anything that needs the audio (a prompt, music or hold, recording, a listened-to leg, a supervisor
  joining, DTMF to send, a re-INVITE that changes codec, ptime or direction) makes ``update_relays`` return
  the pair to the full path in the same tick: the legs' jitter buffers start afresh, the next packets the
  tick sends continue the sequence numbers with the marker bit set; a leg released or leaving its bridge
  takes itself and its peer off the relay at once (``detach``), before its row can be reused.

The common packets of a drained batch are checked and rewritten together with numpy (``relay_batch``), the
rest one by one (``relay_packet``); the edge forwards between ticks (``MediaEdge.relay_step``).
The engine logs each pair entering and leaving the fast path (INFO, with the reason) and counts
``relay_pairs`` (now) and ``relayed_packets`` (since start); ``LegStats.relayed`` goes into call records.
"""
from __future__ import annotations

import logging
import struct
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from .jitter import JitterTable
from .reception import ReceptionTable
from .recording import Recorder

# What the fast path reads and writes of the engine, named here so that this module does not import the
# engine that imports it. The engine's legs (``media.engine.Endpoint``) are ``Endpoint`` below.
Endpoint = Any


class _Config(Protocol):
    @property
    def fast_path(self) -> bool: ...


class MediaEngine(Protocol):
    """The part of ``media.engine.MediaEngine`` the fast path works on: its leg table (one row per leg)."""
    @property
    def config(self) -> _Config: ...
    endpoints: dict[int, Endpoint]
    _by_row: dict[int, Endpoint]
    _listening: dict[Endpoint, list[NDArray[Any]]]
    _lists_dirty: bool
    _recorder: Recorder | None
    _remote_of_row: list[tuple[str, int] | None]
    jitter: JitterTable
    rxt: ReceptionTable
    relay_pairs: int
    relayed_packets: int
    pt: NDArray[np.int64]
    seq: NDArray[np.int64]
    ts: NDArray[np.int64]
    ssrc: NDArray[np.int64]
    marker: NDArray[np.bool_]
    inband: NDArray[np.bool_]
    conceal_run: NDArray[np.int16]
    tx_packets: NDArray[np.int64]
    tx_octets: NDArray[np.int64]
    prev: NDArray[np.float32]
    rx_ssrc: NDArray[np.int64]
    last_rx: NDArray[np.float64]
    rx_packets: NDArray[np.int64]
    timeout_reported: NDArray[np.bool_]
    latched: NDArray[np.bool_]
    relay_to: NDArray[np.int64]
    rl_ssrc: NDArray[np.int64]
    rl_seq_off: NDArray[np.int64]
    rl_ts_off: NDArray[np.int64]
    relayed: NDArray[np.int64]

log = logging.getLogger("softswitch.media")
_HDR_TAIL = struct.Struct(">BHII")    # byte 1 (marker | payload type), sequence, timestamp, SSRC


def why_not(eng: "MediaEngine", a: "Endpoint", b: "Endpoint") -> str | None:
    """Why the bridged pair ``a``, ``b`` cannot be relayed now (None: it can)."""
    bridge = a.bridge
    if bridge is None or bridge is not b.bridge or len(bridge.members) != 2:
        return "not a two-party bridge"
    for ep in (a, b):
        p = ep.params
        if p is None or ep.remote is None:
            return "not negotiated"
        if ep.released or ep.port_failed:
            return "released"
        if bridge.members[ep.row].mode != "full":
            return "monitoring"
        if ep.srtp is not None:
            return "SRTP"
        if not (p.send and p.receive) or ep.holding or ep.held:
            return "hold"
        if ep.prompt is not None:
            return "prompt"
        if ep.music is not None:
            return "music"
        if ep.dtmf_tx.busy:
            return "sending DTMF"
        if ep in eng._listening:
            return "speech input"
        if eng.inband[ep.row]:
            return "in-band DTMF detection"
    pa, pb = a.params, b.params
    assert pa is not None and pb is not None
    if pa.codec != pb.codec:
        return "transcoding"
    if pa.ptime != pb.ptime:
        return "ptime"
    rec = eng._recorder
    if rec is not None and rec.active:
        for r in rec.active.values():
            if a.row in r.left or a.row in r.right or b.row in r.left or b.row in r.right:
                return "recording"
    return None


def update_relays(eng: "MediaEngine") -> bool:
    """Decide which legs are relayed after a topology change; True when that set changed.

    Legs entering the fast path get fresh offsets at their first relayed packet; legs leaving it get an
    empty jitter buffer and the marker bit on the next packet the tick sends them."""
    cap = len(eng.relay_to)
    want = np.full(cap, -1, np.int64)
    reasons: dict[int, str] = {}
    if eng.config.fast_path:
        seen: set[int] = set()
        for ep in eng.endpoints.values():
            b = ep.bridge
            if b is None or b.id in seen:
                continue
            seen.add(b.id)
            if len(b.members) != 2:
                why = "monitoring" if any(m.mode != "full" for m in b.members.values()) else "conference"
                reasons.update((r, why) for r in b.members)
                continue
            ra, rb = b.members
            a, c = eng._by_row.get(ra), eng._by_row.get(rb)
            if a is None or c is None:
                continue
            reason = why_not(eng, a, c)
            if reason is None:
                want[ra], want[rb] = rb, ra
            else:
                reasons[ra] = reasons[rb] = reason
    old = eng.relay_to.copy()
    changed = np.flatnonzero(old != want)
    if not len(changed):
        return False
    for r in changed.tolist():
        if old[r] >= 0:                                     # leaving (or changing peer)
            eng.jitter.reset(r)
            eng.prev[r] = 0
            eng.conceal_run[r] = 0
            eng.marker[r] = True                            # what the tick sends this leg now is a new talkspurt
        if want[r] >= 0:
            eng.rl_ssrc[r] = -1                             # offsets fixed at the first relayed packet to r
    eng.relay_to[:] = want
    for r in changed.tolist():
        leg = eng._by_row.get(r)
        if leg is None or r > (want[r] if want[r] >= 0 else old[r]):
            continue                                        # log each pair once (from its lower row)
        peer = eng._by_row.get(int(want[r] if want[r] >= 0 else old[r]))
        if want[r] >= 0:
            log.info("media: call %s: %s <-> %s on the fast path (relayed, %s)", leg.call_id, leg.label,
                     peer.label if peer else "?", leg.codec)
        else:
            log.info("media: call %s: %s <-> %s on the full path (%s)", leg.call_id, leg.label,
                     peer.label if peer else "?", reasons.get(r, "unbridged"))
    eng.relay_pairs = int(np.count_nonzero(want >= 0)) // 2
    return True


def detach(eng: "MediaEngine", r: int, why: str) -> None:
    """Take row ``r`` and its peer off the fast path at once (``release``, ``leave``): no packet may be
    forwarded to a row that is gone or, worse, reused by another call before the next tick decides."""
    d = int(eng.relay_to[r])
    if d < 0:
        return
    for x in (r, d):
        eng.relay_to[x] = -1
        eng.jitter.reset(x)
        eng.prev[x] = 0
        eng.conceal_run[x] = 0
        eng.marker[x] = True
    eng.relay_pairs -= 1
    eng._lists_dirty = True
    leg, peer = eng._by_row.get(r), eng._by_row.get(d)
    if leg is not None:
        log.info("media: call %s: %s <-> %s on the full path (%s)", leg.call_id, leg.label,
                 peer.label if peer else "?", why)


def relay_packet(eng: "MediaEngine", src: "Endpoint", dst_row: int, data: bytes, seq: int, ts: int, ssrc: int,
                 marker: int) -> "tuple[int, bytes, tuple[str, int]] | None":
    """One audio packet of ``src`` (already admitted and counted by the engine) rewritten for its peer's phone:
    (port to send from, packet, address), or None when the pair is being taken apart (the tick decides)."""
    dst = eng._by_row.get(dst_row)
    if dst is None or dst.remote is None or dst.bridge is not src.bridge:
        return None
    if eng.rl_ssrc[dst_row] != ssrc:                       # a new source: continue the stream dst knows
        eng.rl_ssrc[dst_row] = ssrc
        eng.rl_seq_off[dst_row] = (int(eng.seq[dst_row]) - seq) & 0xFFFF
        eng.rl_ts_off[dst_row] = (int(eng.ts[dst_row]) - ts) & 0xFFFFFFFF
        marker = 0x80
    out_seq = (seq + int(eng.rl_seq_off[dst_row])) & 0xFFFF
    pkt = bytearray(data)
    _HDR_TAIL.pack_into(pkt, 1, (0x80 if marker else 0) | int(eng.pt[dst_row]), out_seq,
                        (ts + int(eng.rl_ts_off[dst_row])) & 0xFFFFFFFF, int(eng.ssrc[dst_row]))
    eng.seq[dst_row] = out_seq + 1
    eng.tx_packets[dst_row] += 1
    eng.tx_octets[dst_row] += len(data) - 12
    eng.relayed[dst_row] += 1
    eng.relayed_packets += 1
    return dst.port, bytes(pkt), dst.remote


def relay_batch(eng: "MediaEngine", rows_all: np.ndarray, datas: "tuple[bytes, ...]",
                addrs: "tuple[tuple[str, int], ...]", nows: "tuple[float, ...]"
                ) -> "tuple[np.ndarray, list[tuple[int, bytes, tuple[str, int]]]]":
    """The common relayed packets of one drained batch, taken in and rewritten with numpy.

    Common: a relayed leg's packet with a plain 12-byte header of its audio payload type, from the latched
    address and known SSRC, next in sequence, whose stream is relayed already (offsets fixed), and the only
    packet of its leg in the batch. Returns the indices handled and ``(port, packet, address)`` to send,
    in batch order; everything else goes the engine's packet-by-packet way (``relay_packet``)."""
    none = np.zeros(0, np.int64)
    idx = np.flatnonzero(rows_all >= 0)
    if not len(idx):
        return none, []
    idx = idx[eng.relay_to[rows_all[idx]] >= 0]
    if not len(idx):
        return none, []
    r = rows_all[idx]
    order = np.argsort(r, kind="stable")                   # a leg with two packets here: both the slow way
    srt = r[order]
    dup = np.zeros(len(r), bool)
    same = srt[1:] == srt[:-1]
    dup[1:] |= same
    dup[:-1] |= same
    keep = np.ones(len(r), bool)
    keep[order[dup]] = False
    idx, r = idx[keep], r[keep]
    pick = idx.tolist()
    lens = np.fromiter((len(datas[i]) for i in pick), np.int64, len(pick))
    ok = (lens >= 13) & (lens <= 1500)
    if not ok.all():
        idx, r, lens = idx[ok], r[ok], lens[ok]
        pick = idx.tolist()
    if not pick:
        return none, []
    arr = np.frombuffer(bytearray(b"".join([datas[i] for i in pick])), np.uint8)
    offs = np.cumsum(lens) - lens
    h = arr[offs[:, None] + np.arange(12)].astype(np.int64)   # the headers, one row each
    seq = (h[:, 2] << 8) | h[:, 3]
    ts = (h[:, 4] << 24) | (h[:, 5] << 16) | (h[:, 6] << 8) | h[:, 7]
    ssrc = (h[:, 8] << 24) | (h[:, 9] << 16) | (h[:, 10] << 8) | h[:, 11]
    d = eng.relay_to[r]
    ok = ((h[:, 0] == 0x80) & ((h[:, 1] & 0x7F) == eng.pt[r]) & (ssrc == eng.rx_ssrc[r]) & eng.latched[r]
          & (eng.rl_ssrc[d] == ssrc) & (eng.relay_to[d] == r) & eng.rxt.steady(r, seq))
    if ok.any():
        remotes = eng._remote_of_row
        oi = np.flatnonzero(ok)
        same_addr = np.fromiter((addrs[pick[i]] == remotes[row] for i, row in zip(oi.tolist(), r[oi].tolist())),
                                bool, len(oi))
        ok[oi[~same_addr]] = False
    if not ok.any():
        return none, []
    whole = bool(ok.all())                                 # every joined packet is sent: cut in one call
    if not whole:
        idx, r, d, lens, offs = idx[ok], r[ok], d[ok], lens[ok], offs[ok]
        seq, ts, h = seq[ok], ts[ok], h[ok]
    # taken in: the statistics, the unwrapper, the time-out clock
    rxt = eng.rxt
    now_f = np.array(nows, np.float64)[idx]
    rxt.update_batch(r, seq, ts, (now_f * 8000).astype(np.int64))
    rxt.unwrap_batch(r, ts)
    eng.last_rx[r] = now_f
    eng.timeout_reported[r] = False
    eng.rx_packets[r] += 1
    # rewritten for the peer: its payload type and SSRC, the stream's offsets
    out_seq = (seq + eng.rl_seq_off[d]) & 0xFFFF
    out_ts = (ts + eng.rl_ts_off[d]) & 0xFFFFFFFF
    ossrc = eng.ssrc[d]
    new = np.empty((len(r), 11), np.uint8)
    new[:, 0] = (h[:, 1] & 0x80) | eng.pt[d]
    new[:, 1], new[:, 2] = out_seq >> 8, out_seq & 0xFF
    for k in range(4):
        new[:, 3 + k] = (out_ts >> (24 - 8 * k)) & 0xFF
        new[:, 7 + k] = (ossrc >> (24 - 8 * k)) & 0xFF
    arr[offs[:, None] + np.arange(1, 12)] = new
    eng.seq[d] = out_seq + 1
    eng.tx_packets[d] += 1
    eng.tx_octets[d] += lens - 12
    eng.relayed[d] += 1
    eng.relayed_packets += len(d)
    buf = arr.tobytes()
    if whole and (lens == lens[0]).all():
        packets = _cutter(int(lens[0]), len(lens)).unpack(buf)
    else:
        ends = (offs + lens).tolist()
        packets = tuple(buf[a:b] for a, b in zip(offs.tolist(), ends))
    by_row = eng._by_row
    dl = d.tolist()
    ports = [by_row[x].port for x in dl]
    dests = [remotes[x] for x in dl]
    return idx, list(zip(ports, packets, dests))


_cutters: dict[tuple[int, int], struct.Struct] = {}


def _cutter(size: int, n: int) -> struct.Struct:
    """Splits ``n`` back-to-back packets of ``size`` bytes in one call (cached per shape)."""
    key = (size, n)
    s = _cutters.get(key)
    if s is None:
        if len(_cutters) > 256:
            _cutters.clear()
        s = _cutters[key] = struct.Struct(f"{size}s" * n)
    return s
