"""The sans-IO media engine: endpoints (one per call leg, with an RTP/RTCP port pair), SDP offer/answer,
bridges and conferences, prompts and music, recording, DTMF — driven by datagrams and a 20 ms tick.

The call controller uses it like this (all calls return at once; nothing here touches a socket, a file
or a thread)::

    engine.preload(prompt_files)                              # at start: the only disk reads of prompts
    ep_a = engine.allocate(call_id, "caller 1001")          # RTP port reserved from [media] rtp_ports
    ep_b = engine.allocate(call_id, "agent 2001")
    offer_b = engine.offer(ep_b, prefer=...)                  # SDP for the INVITE to the agent
    engine.accept_answer(ep_b, answer_from_agent)
    answer_a = engine.answer(ep_a, offer_from_caller)         # NegotiationError → 488
    engine.bridge(ep_a, ep_b)                                  # or engine.play(ep_a, "welcome.wav")
    rec = engine.start_recording(call_id, left=ep_a, right=ep_b)
    ...
    engine.answer(ep_a, reinvite_offer)                        # sendonly/inactive: the agent hears music
    engine.release(ep_a); engine.release(ep_b)                 # ports back to the pool

and the I/O edge (``media.edge``) feeds ``datagram_received(port, data, addr, now)`` and calls
``tick(now)`` every 20 ms, sending the returned datagrams and passing the events (DTMF digits,
finished prompts, RTP timeouts, ports that would not bind, recordings that failed) to the controller.
The edge also binds the reserved ports and closes released ones (``take_port_changes``, reporting a
failure with ``port_failed``), and gives the engine a job runner (``use_jobs``, ``media.jobs``) on which
the recorder's file operations run: a thread under the edge, at once (``SyncRunner``) in unit tests.

Per tick the engine works on arrays with one row per leg: the jitter buffers (``media.jitter``, one
payload ring and state vectors for all legs) give one ``legs × 160`` code matrix by fancy indexing, which
is decoded by table, checked for in-band DTMF by one matrix product, mixed by the sparse plan of
``media.mixer``, recorded, encoded by table and given vectorised RTP headers; the outgoing datagrams are
cut from one buffer by one ``struct`` call. There is no per-leg Python loop in a tick (the per-leg
housekeeping visits 1/250 of the legs per tick). The edge hands a tick's packets over in one
``datagrams_received`` call, which takes the common ones (the next 20 ms packet of a known stream) in
with numpy too (``media.reception`` holds the RFC 3550 state as arrays); the rest go packet by packet.
"""
from __future__ import annotations

import logging
import os
import random
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat
from typing import Callable, Iterable, NamedTuple, Sequence, cast

import numpy as np
from numpy.typing import DTypeLike, NDArray

from . import rtcp as rtcp_mod
from . import rtp as rtp_mod
from . import sdp as sdp_mod
from .dtmf import Rfc4733Receiver, Rfc4733Sender, ToneDetector, digit_tone
from .g711 import CODEC_BY_NAME, CODEC_NAMES, SILENCE_BYTE, ULAW, decode_rows, encode_float
from .mixer import Bridge, Member, Plan, Route, compile_plan, empty_plan
from .jobs import JobRunner
from .playback import Players, Sound, SoundBank
from .ports import PortAllocator, PortsExhausted
from .recording import Recorder, Recording
from .srtp import SrtpContext
from .jitter import JitterTable, JitterView
from .reception import ReceptionTable, ReceptionView
from .rtp import FRAME, LOST, PLAY
from .relay import detach, relay_batch, relay_packet, update_relays

_log = logging.getLogger("softswitch.media")
_HOUSEKEEPING_TICKS = 250         # every leg is visited once per 5 s (RTCP, jitter target, timeouts)
_CONCEAL_STEP = np.float32(0.6)   # each concealed frame repeats the previous one, 4.4 dB quieter
_CONCEAL_MAX = 3                  # then silence
LEARN_RUN = 3                     # in-sequence packets of one SSRC from one address that teach a NAT'ed source


# ----------------------------------------------------------------------------------------- config

@dataclass
class MediaConfig:
    """The ``[media]`` table of config.toml: the one media config type. ``softswitch.config`` validates
    and builds it; the engine reads the media fields, call control ``enabled`` and ``record``."""
    enabled: bool = True                  # false: SDP passes through and phones talk directly (call control)
    address: str = "127.0.0.1"            # the switch's media address, as written in SDP ("" in config.toml:
    bind_address: str = "0.0.0.0"         #   [sip] advertised_address or the listen host)
    rtp_ports: str = "10000-20000"
    codecs: Sequence[str] = ("PCMU", "PCMA")
    telephone_event_pt: int = 101
    ptime: int = 20
    jitter_min_ms: int = 40
    jitter_max_ms: int = 240
    rtp_timeout: float = 60.0             # no RTP from a phone that should send: RtpTimeout event
    rtcp_interval: float = 5.0
    inband_dtmf: bool = True
    hold_music: str | os.PathLike[str] | None = None   # a sound file; None: a built-in gentle loop
    recordings_dir: str | os.PathLike[str] = "var/recordings"
    recording_fsync: bool = False         # fsync each 1 s flush too (power-loss safe, costs disk syncs)
    record: str = "extensions"            # which calls call control records: "all" | "none" | "extensions"
    spare_ports: int = 8                  # RTP port pairs the edge keeps bound ahead of need (media.ports)
    port_retry: float = 60.0              # s before a port another program held (EADDRINUSE) is tried again
    reserve_ports: int | None = None      # pairs kept for queue and hotline calls; None: a tenth of the range
    srtp_suites: Sequence[str] = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
    # relay plain two-party calls packet for packet (``media.relay``); config.toml's default is true, the
    # sans-IO default false so that unit tests of the mixing path see it
    fast_path: bool = False
    # media worker processes (``media.workers``): 0 runs the engine in the switch's own process; -1 ("auto"
    # in config.toml, the shipped default) one per spare core, resolved by the switch when it starts
    workers: int = 0


# ----------------------------------------------------------------------------------------- events

@dataclass(frozen=True)
class DtmfReceived:
    endpoint: "Endpoint"
    digit: str
    source: str             # "rfc4733" | "inband"
    duration_ms: int


@dataclass(frozen=True)
class PlaybackFinished:
    endpoint: "Endpoint"
    playback: int


@dataclass(frozen=True)
class RtpTimeout:
    endpoint: "Endpoint"
    silent_for: float


@dataclass(frozen=True)
class AudioChunk:
    """What a listened-to leg said over the last ``LISTEN_FRAMES`` ticks (8 kHz, int16 scale):
    for speech recognition (``MediaEngine.listen``)."""
    endpoint: "Endpoint"
    samples: np.ndarray


LISTEN_FRAMES = 10  # 200 ms per AudioChunk


@dataclass(frozen=True)
class SourceLatched:
    endpoint: "Endpoint"
    addr: tuple[str, int]


@dataclass(frozen=True)
class PortFailed:
    """The edge could not open (bind) this leg's reserved RTP/RTCP ports (only when no bound spare was left
    for it: ``media.ports``): the leg carries no media; call control should hang the leg up (``release`` it)."""
    endpoint: "Endpoint"
    port: int
    reason: str = ""


@dataclass(frozen=True)
class RecordingFailed:
    """A recording's file could not be opened or written (disk full, permissions): it records nothing more."""
    recording: Recording
    error: str


@dataclass(frozen=True)
class MediaLost:
    """The media worker process carrying this leg died (``media.workers``): the leg has no media any more;
    call control ends its call like an RTP time-out."""
    endpoint: "Endpoint"
    reason: str = ""


MediaEvent = MediaLost | DtmfReceived | PlaybackFinished | RtpTimeout | AudioChunk | SourceLatched | PortFailed | RecordingFailed


class PortChanges(NamedTuple):
    """What the edge must do with sockets since the last ``take_port_changes``: bind ``to_open`` (even RTP
    port and the RTCP port above it), close ``to_close``. A port appears at most once, in its latest state."""
    to_open: list[int]
    to_close: list[int]


class Datagram(NamedTuple):
    port: int                   # local port to send from (RTP port, or RTP port + 1 for RTCP)
    data: bytes
    addr: tuple[str, int]


@dataclass
class TickOutput:
    datagrams: list[Datagram]
    events: list[MediaEvent]


@dataclass
class LegStats:
    codec: str | None
    remote: tuple[str, int] | None
    rx_packets: int
    rx_lost: int
    rx_jitter_ms: float
    rx_late: int
    rx_concealed: int
    jitter_buffer_ms: int
    tx_packets: int
    tx_octets: int
    remote_loss_percent: float | None     # what the phone reports about our stream (RTCP)
    remote_jitter_ms: float | None
    rtt_ms: float | None
    srtp: str | None = None               # the SRTP suite, None: plain RTP
    relayed: int = 0                      # packets sent to this leg by the fast path (forwarded, not mixed)


@dataclass
class TickStats:
    """How long ticks take and how late they start (lateness is measured by the edge)."""
    ticks: int = 0
    total: float = 0.0
    max: float = 0.0
    late_ticks: int = 0                  # started more than 5 ms after their due time
    max_late: float = 0.0
    recent: deque[float] = field(default_factory=lambda: deque(maxlen=3000))
    stages: dict[str, float] = field(default_factory=dict)   # seconds spent per stage, summed over all ticks

    def add(self, dt: float, late: float | None) -> None:
        self.ticks += 1
        self.total += dt
        self.max = max(self.max, dt)
        self.recent.append(dt)
        if late is not None:
            self.max_late = max(self.max_late, late)
            if late > 0.005:
                self.late_ticks += 1

    @property
    def mean(self) -> float:
        return self.total / self.ticks if self.ticks else 0.0

    def percentile(self, p: float) -> float:
        return float(np.percentile(np.fromiter(self.recent, float), p)) if self.recent else 0.0


# ----------------------------------------------------------------------------------------- endpoint

class Endpoint:
    """One leg's media: its port pair, negotiated stream, reception state and place in the topology."""

    def __init__(self, eid: int, call_id: str, label: str, port: int, row: int, local: sdp_mod.LocalSdp,
                 jb: JitterView, now: float, engine: "MediaEngine"):
        self._eng = engine                               # reception state lives in the engine's row arrays
        self.id = eid
        self.call_id = call_id
        self.label = label
        self.port = port
        self.row = row
        self.local = local
        self.params: sdp_mod.StreamParams | None = None
        self.remote: tuple[str, int] | None = None       # where RTP goes (SDP address, then the latched source)
        self.latched = False                             # media accepted from ``remote`` only, for good
        self.source_ip: str | None = None                # the IP the leg's signalling comes from (allocate)
        self.learning: tuple[tuple[str, int], int, int, int] | None = None   # (addr, ssrc, seq, run) of a candidate
        self.srtp: SrtpContext | None = None             # SRTP agreed in the SDP (media.srtp), else plain RTP
        self.rtcp_remote: tuple[str, int] | None = None
        self.rx = ReceptionView(engine.rxt, row)          # RFC 3550 statistics of what the phone sends
        self.jb = jb
        self.rx_ssrc = None
        self.dtmf_rx = Rfc4733Receiver()
        self.dtmf_tx = Rfc4733Sender()
        self.rtcp = rtcp_mod.RtcpState(next_report=now + random.uniform(0.5, 1.5))
        self.bridge: Bridge | None = None
        self.prompt: int | None = None                   # player row
        self.prompt_id = 0
        self.prompt_mix = False
        self.music: int | None = None                    # player row of a music channel
        self.held = False                                # the switch holds this party (it hears music)
        self.holding = False                             # this party's phone put the call on hold
        self.last_rx = now
        self.rx_packets = 0
        self.rx_foreign = 0                              # packets from an address we did not accept
        self.out_buf = bytearray()                       # audio waiting for a ptime other than 20 ms
        self.out_ts = 0
        self.timeout_reported = False
        self.released = False
        self.port_failed = False                         # the edge could not bind the port (PortFailed)
        self.tx_since_report = False

    @property
    def codec(self) -> str | None:
        return CODEC_NAMES[self.params.codec] if self.params else None

    # per-row engine arrays (so a tick's packets can be taken in with numpy: MediaEngine.datagrams_received)
    @property
    def rx_ssrc(self) -> int | None:
        v = self._eng._m_rx_ssrc[self.row]
        return None if v < 0 else v

    @rx_ssrc.setter
    def rx_ssrc(self, v: int | None) -> None:
        self._eng._m_rx_ssrc[self.row] = -1 if v is None else v

    @property
    def last_rx(self) -> float:
        return self._eng._m_last_rx[self.row]

    @last_rx.setter
    def last_rx(self, v: float) -> None:
        self._eng._m_last_rx[self.row] = v

    @property
    def rx_packets(self) -> int:
        return self._eng._m_rx_packets[self.row]

    @rx_packets.setter
    def rx_packets(self, v: int) -> None:
        self._eng._m_rx_packets[self.row] = v

    @property
    def timeout_reported(self) -> bool:
        return self._eng._m_timeout_reported[self.row]

    @timeout_reported.setter
    def timeout_reported(self, v: bool) -> None:
        self._eng._m_timeout_reported[self.row] = v

    def __repr__(self) -> str:
        return f"<Endpoint {self.id} {self.label!r} port={self.port} codec={self.codec}>"


# ----------------------------------------------------------------------------------------- engine

class MediaEngine:
    # Per-row arrays (one entry per leg row), made and grown by ``_grow`` with setattr; declared here for the
    # type checker.
    codec: NDArray[np.int8]                 # g711 law (ULAW / ALAW)
    pt: NDArray[np.int64]                   # payload type we send
    seq: NDArray[np.int64]                  # next RTP sequence number (masked when sent)
    ts: NDArray[np.int64]                   # RTP timestamp (masked when sent)
    ssrc: NDArray[np.int64]
    marker: NDArray[np.bool_]
    fast: NDArray[np.bool_]
    inband: NDArray[np.bool_]
    conceal_run: NDArray[np.int16]
    concealed: NDArray[np.int64]
    tx_packets: NDArray[np.int64]
    tx_octets: NDArray[np.int64]
    prev: NDArray[np.float32]               # rows × FRAME: the last frame decoded (concealment)
    rx_ssrc: NDArray[np.int64]
    last_rx: NDArray[np.float64]
    rx_packets: NDArray[np.int64]
    timeout_reported: NDArray[np.bool_]
    latched: NDArray[np.bool_]
    relay_to: NDArray[np.int64]             # fast path: the row this row's audio packets are forwarded to (-1: mixed)
    rl_ssrc: NDArray[np.int64]              # fast path, per destination row: the source SSRC the offsets are for
    rl_seq_off: NDArray[np.int64]           #   sequence and timestamp offsets from that source's to ours
    rl_ts_off: NDArray[np.int64]
    relayed: NDArray[np.int64]              #   packets forwarded to this row's phone
    _m_rx_ssrc: memoryview[int]             # memoryviews of the four above (Endpoint's properties, per packet)
    _m_last_rx: memoryview[float]
    _m_rx_packets: memoryview[int]
    _m_timeout_reported: memoryview[bool]
    _m_relay_to: memoryview[int]
    _remote_of_row: list[tuple[str, int] | None]   # mirror of Endpoint.remote (set by _rebuild_lists)

    def __init__(self, config: MediaConfig | None = None, *, bank: SoundBank | None = None,
                 recorder: Recorder | None = None, now: Callable[[], float] = time.monotonic,
                 jobs: JobRunner | None = None):
        self.config = config or MediaConfig()
        self.ports = PortAllocator(self.config.rtp_ports, retry_after=self.config.port_retry)
        cfg_reserve = self.config.reserve_ports
        self.ports.reserve = max(0, min(self.ports.capacity - 1, self.ports.capacity // 10 if cfg_reserve is None
                                        else cfg_reserve))
        self.spares_wanted = 0                 # set by the edge: spare pairs to keep bound (config.spare_ports)
        self.sockets_blocked_until = 0.0       # the edge could not open sockets (no descriptors) until then
        self.bank = bank or SoundBank()
        self._recorder = recorder
        self._jobs = jobs                      # file jobs of a recorder made here (None: run at once)
        self._clock = now
        self._port_changes: dict[int, bool] = {}   # port -> must be open (True) / closed (False), for the edge
        self._warned_hold = False
        self.codecs = tuple(CODEC_BY_NAME[c.upper()] for c in self.config.codecs)
        self.players = Players(self.bank)
        self.detector = ToneDetector(64)
        self.jitter = JitterTable()                # every leg's jitter buffer, one row per leg
        self.rxt = ReceptionTable()                # every leg's RFC 3550 reception statistics
        self._row_of_port = np.full(1 << 16, -1, np.int64)   # RTP port -> row (datagrams_received)
        self.tick_no = 0
        self.stats = TickStats()
        self.endpoints: dict[int, Endpoint] = {}
        self._by_port: dict[int, Endpoint] = {}
        self._by_row: dict[int, Endpoint] = {}
        self._free_rows: list[int] = []
        self._next_id = 1
        self._bridge_id = 1
        self._events: list[MediaEvent] = []
        self._pending: list[Datagram] = []
        self._channels: dict[str, int] = {}       # sound name -> shared music player row
        self._prompt_owner: dict[int, Endpoint] = {}
        self._cap = 0
        self._grow(64)
        self._plan: Plan = empty_plan(self._cap, self.players.capacity)
        self._topology_dirty = False
        self._lists_dirty = True
        self._rx_eps: list[Endpoint] = []
        self._rx_rows = np.zeros(0, np.int64)
        self._tx_eps: list[Endpoint] = []
        self._tx_rows = np.zeros(0, np.int64)
        self._tx_ports: list[int] = []
        self._tx_addrs: list[tuple[str, int]] = []
        self._tx_port_arr = np.zeros(0, np.int64)
        self._tx_addr_arr = np.empty(0, dtype=object)
        self._tx_srtp_idx = np.zeros(0, np.int64)     # places in _tx_eps of the legs that send SRTP
        self._hk: list[Endpoint] = []
        self._direct_of_row = np.full(self._cap, -1, np.int64)
        self._dtmf_open: set[Endpoint] = set()
        self._listening: dict[Endpoint, list[np.ndarray]] = {}  # legs whose audio goes out as AudioChunk
        self.dropped_packets = 0
        self.foreign_packets = 0                   # RTP/RTCP from an address a leg does not accept (_admit)
        self.srtp_rejected = 0                     # SRTP/SRTCP packets failing authentication (or replays)
        self._n_srtp = 0                           # legs with SRTP (the ingest and the tick look only then)
        self._srtp_port = np.zeros(1 << 16, bool)  # RTP and RTCP ports of SRTP legs
        self.relay_pairs = 0                       # two-party calls on the fast path now (media.relay)
        self.relayed_packets = 0                   # packets forwarded by it since start

    # ------------------------------------------------------------------------------ row arrays
    def _grow(self, cap: int) -> None:
        old = self._cap

        def ext(name: str, dtype: DTypeLike, fill: float = 0, width: int | None = None) -> None:
            shape = (cap,) if width is None else (cap, width)
            new = np.full(shape, fill, dtype=dtype)
            if old:
                new[:old] = getattr(self, name)
            setattr(self, name, new)
        ext("codec", np.int8)
        ext("pt", np.int64)
        ext("seq", np.int64)
        ext("ts", np.int64)
        ext("ssrc", np.int64)
        ext("marker", bool)
        ext("fast", bool)                       # sends plain 20 ms packets (no DTMF event, no odd ptime)
        ext("inband", bool)
        ext("conceal_run", np.int16)
        ext("concealed", np.int64)
        ext("tx_packets", np.int64)
        ext("tx_octets", np.int64)
        ext("prev", np.float32, 0, FRAME)
        ext("rx_ssrc", np.int64, -1)            # the source we take (-1: none yet)
        ext("last_rx", np.float64)
        ext("rx_packets", np.int64)
        ext("timeout_reported", bool)
        ext("latched", bool)                    # mirrors of Endpoint.latched / .remote, set by _rebuild_lists
        ext("relay_to", np.int64, -1)
        ext("rl_ssrc", np.int64, -1)
        ext("rl_seq_off", np.int64)
        ext("rl_ts_off", np.int64)
        ext("relayed", np.int64)
        for name in ("rx_ssrc", "last_rx", "rx_packets", "timeout_reported", "relay_to"):
            setattr(self, "_m_" + name, memoryview(getattr(self, name)))
        self._remote_of_row = [None] * cap
        self._free_rows = list(range(cap - 1, old - 1, -1)) + self._free_rows
        self._cap = cap
        self.detector.ensure(cap)
        self.jitter.grow(cap)
        self.rxt.grow(cap)
        self._topology_dirty = True
        self._lists_dirty = True
        self._direct_of_row = np.full(cap, -1, np.int64)

    @property
    def recorder(self) -> Recorder:
        """The recorder (made on first use; its file jobs go to ``jobs``: see ``use_jobs``)."""
        if self._recorder is None:
            self._recorder = Recorder(self.config.recordings_dir, fsync=self.config.recording_fsync,
                                      runner=self._jobs)
        return self._recorder

    @property
    def jobs(self) -> JobRunner | None:
        """Where the recorder's file jobs run (None: not chosen yet, they will run at once)."""
        return self._recorder.runner if self._recorder is not None else self._jobs

    def use_jobs(self, runner: JobRunner) -> None:
        """Run every file job (recording) on ``runner`` — the edge passes a ``media.jobs.ThreadRunner``
        so that no file is opened, written or closed on the event loop. The engine starts no threads."""
        self._jobs = runner
        if self._recorder is not None:
            self._recorder.use_runner(runner)

    # ------------------------------------------------------------------------------ ports (for the edge)
    def take_port_changes(self) -> PortChanges:
        """The ports reserved (to bind) and released (to close) since the last call, for the edge.

        ``allocate`` only reserves a port from the pool; the edge opens it (``MediaEdge.sync_ports``, right
        after call control ran and before the next tick) and reports a failure with ``port_failed``.
        Without an edge nobody takes the changes: they stay at most one entry per port.
        """
        ch, self._port_changes = self._port_changes, {}
        return PortChanges([p for p, o in ch.items() if o], [p for p, o in ch.items() if not o])

    def port_failed(self, port: int, reason: str = "", retire: bool = True) -> None:
        """The edge could not bind a leg's ``port`` (or ``port + 1``; a port no spare covered): the leg gets a
        ``PortFailed`` event in the next tick's events (it keeps its endpoint until released). ``retire``
        (address in use, permission): the port is quarantined for ``port_retry`` seconds; otherwise (no file
        descriptors) the port is fine and goes straight back to the pool."""
        if retire:
            self.ports.quarantine(port, self._clock())
        else:
            self.ports.unbindable(port)
            self.sockets_blocked_until = self._clock() + 1.0
        self._port_changes.pop(port, None)
        ep = self._by_port.get(port)
        if ep is not None and not ep.port_failed:
            ep.port_failed = True
            self._events.append(PortFailed(ep, port, reason))

    def take_datagrams(self) -> list[Datagram]:
        """The datagrams waiting for the next tick, now: what the fast path forwarded since the last tick
        (``media.relay``), and RTCP BYEs of released legs. The edge sends them between ticks."""
        out, self._pending = self._pending, []
        return out

    def take_events(self) -> list[MediaEvent]:
        """The events waiting for the next tick, now (the edge delivers a ``PortFailed`` at once)."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------------------------ spares (for the edge)
    def spare_to_bind(self) -> int | None:
        """A port the edge should bind now as a spare (then ``spare_bound`` or ``spare_failed``), or None when
        there are enough (``spares_wanted``), none is free, or sockets cannot be opened at the moment."""
        ports = self.ports
        if ports.spares + len(ports._pending) >= self.spares_wanted:
            return None
        now = self._clock()
        if now < self.sockets_blocked_until:
            return None
        return ports.reserve_spare(now)

    def spare_bound(self, port: int) -> None:
        self.ports.spare_bound(port)

    def spare_failed(self, port: int, reason: str, retire: bool, block_for: float = 1.0) -> None:
        """A spare would not bind: ``retire`` quarantines the port (another program holds it); otherwise
        the process has no descriptors left: no socket is tried for ``block_for`` seconds, and calls that
        find no bound spare meanwhile get PortsExhausted (503) instead of a port that cannot open."""
        now = self._clock()
        self.ports.spare_failed(port, retire, now)
        if not retire:
            self.sockets_blocked_until = now + block_for

    # ------------------------------------------------------------------------------ endpoints
    def allocate(self, call_id: str = "", label: str = "", source: str | None = None,
                 use_reserve: bool = True, srtp: str = "off", port: int | None = None,
                 codecs: Sequence[str] = ()) -> Endpoint:
        """A new endpoint with an RTP port from the pool (raises ports.PortsExhausted: answer 503).

        ``source``: the IP address the leg's signalling comes from (the INVITE's source, or where the
        callee's phone registered from): media is accepted only from the SDP's address or, learned once,
        from this IP (``datagram_received``). ``use_reserve=False``: refused when only the pairs kept for
        queue and hotline calls are left (``MediaConfig.reserve_ports``). ``srtp``: the phone's SRTP policy,
        "off" | "optional" | "required" (``media.srtp``; offers and answers follow it). ``port``: this very
        port (a media worker: its controller chose it), bound by the edge before the next tick.

        Nothing is bound here: a spare the edge bound already is handed out first; otherwise the port is
        recorded for the edge (``take_port_changes``), which opens it before the next tick; if it cannot, a
        ``PortFailed`` event names this endpoint. With no spare left while the edge cannot open sockets (no
        file descriptors), PortsExhausted at once.
        """
        now = self._clock()
        if now < self.sockets_blocked_until and not self.ports.spares:
            raise PortsExhausted("no RTP socket can be opened now (too many open files)")
        if port is not None:
            self.ports.take(port)
            bound = False
        else:
            port, bound = self.ports.allocate(now, use_reserve)
        if not bound:
            self._port_changes[port] = True
        if not self._free_rows:
            self._grow(self._cap * 2)
        row = self._free_rows.pop()
        laws = tuple(CODEC_BY_NAME[c.upper()] for c in codecs) if codecs else self.codecs
        local = sdp_mod.LocalSdp(self.config.address, port, laws, self.config.telephone_event_pt,
                                 self.config.ptime, srtp=srtp, suites=tuple(self.config.srtp_suites))
        self.jitter.init_row(row, max(1, self.config.jitter_min_ms // 20), max(2, self.config.jitter_max_ms // 20))
        self.rxt.reset(row)
        ep = Endpoint(self._next_id, call_id, label, port, row, local, JitterView(self.jitter, row), now, self)
        ep.source_ip = source
        self._next_id += 1
        self.endpoints[ep.id] = ep
        self._by_port[port] = ep
        self._by_row[row] = ep
        self._row_of_port[port] = row
        self.ssrc[row] = random.getrandbits(32)
        self.seq[row] = random.getrandbits(16)
        self.ts[row] = random.getrandbits(32)
        self.marker[row] = True
        self.codec[row] = ULAW
        self.inband[row] = False
        self.detector.reset_rows([row])
        self._lists_dirty = True
        self._topology_dirty = True
        return ep

    def release(self, ep: Endpoint) -> None:
        """End the leg: out of any bridge, prompts stopped, RTCP BYE sent, port and row freed (idempotent)."""
        if ep.released:
            return
        ep.released = True
        detach(self, ep.row, "released")                # before the row can be reused (media.relay)
        self.leave(ep)
        self.stop_playback(ep)
        ep.music = None
        if self._recorder is not None:
            self._recorder.drop_rows({ep.row})
        dest = ep.rtcp_remote or (ep.remote and (ep.remote[0], ep.remote[1] + 1))
        if dest and ep.params is not None:
            bye = rtcp_mod.build_bye(int(self.ssrc[ep.row]))
            self._pending.append(Datagram(ep.port + 1, ep.srtp.protect_rtcp(bye) if ep.srtp else bye, dest))
        if ep.srtp is not None:
            ep.srtp = None
            self._n_srtp -= 1
            self._srtp_port[ep.port:ep.port + 2] = False
        self._dtmf_open.discard(ep)
        self._listening.pop(ep, None)
        del self.endpoints[ep.id]
        del self._by_port[ep.port]
        self._row_of_port[ep.port] = -1
        del self._by_row[ep.row]
        r = ep.row
        self.fast[r] = self.inband[r] = self.marker[r] = False
        self.prev[r] = 0
        self.conceal_run[r] = 0
        self.concealed[r] = self.tx_packets[r] = self.tx_octets[r] = self.relayed[r] = 0
        self._free_rows.append(r)
        if not ep.port_failed:                                  # a failed port stays quarantined
            self.ports.release(ep.port)
            self._port_changes[ep.port] = False                 # the edge closes its sockets
        self._lists_dirty = True
        self._topology_dirty = True

    # ------------------------------------------------------------------------------ SDP
    def offer(self, ep: Endpoint, direction: str = "sendrecv", prefer: str | Endpoint | None = None) -> str:
        """Our SDP offer for this leg; ``prefer`` (a codec name or another leg) goes first to avoid transcoding."""
        if isinstance(prefer, Endpoint):
            prefer = prefer.codec
        law = CODEC_BY_NAME.get(prefer.upper()) if prefer else None
        return ep.local.offer(direction, law)

    def accept_answer(self, ep: Endpoint, answer: str | bytes, offered_direction: str = "sendrecv") -> None:
        """The phone's answer to our offer (raises NegotiationError: the controller hangs up that leg)."""
        self._apply(ep, ep.local.accept_answer(sdp_mod.parse(answer), offered_direction))

    def answer(self, ep: Endpoint, offer: str | bytes) -> str:
        """Answer the phone's offer (first INVITE or re-INVITE); raises NegotiationError → 488, SdpError → 400."""
        body, params = ep.local.answer(sdp_mod.parse(offer))
        self._apply(ep, params)
        return body

    def _apply(self, ep: Endpoint, p: sdp_mod.StreamParams) -> None:
        old = ep.params
        ep.params = p
        if old is None or (old.remote_addr, old.remote_port) != (p.remote_addr, p.remote_port):
            addr = p.remote_addr
            ep.remote = (addr, p.remote_port) if addr and addr != "0.0.0.0" and p.remote_port > 0 else None
            ep.latched = False                              # a new SDP address: settled afresh (_admit)
            ep.learning = None
            ep.rtcp_remote = None
        if p.keys != (old.keys if old is not None else None):
            ep.srtp = SrtpContext(p.keys) if p.keys is not None else None
            self._n_srtp += (ep.srtp is not None) - (old is not None and old.keys is not None)
            self._srtp_port[ep.port:ep.port + 2] = ep.srtp is not None
        r = ep.row
        if old is None or old.codec != p.codec:
            self.codec[r] = p.codec
            self.jitter.set_silence(r, SILENCE_BYTE[p.codec])
            self.jitter.reset(r)
        self.pt[r] = p.pt
        if old is None or old.te_pt != p.te_pt or ep.dtmf_rx.events_received == 0:
            self.inband[r] = self.config.inband_dtmf and ep.dtmf_rx.events_received == 0
        if p.on_hold != ep.holding:
            ep.holding = p.on_hold
            self._topology_dirty = True
        if old is not None and old.send != p.send:
            self.marker[r] = True
        self._update_fast(ep)
        self._lists_dirty = True
        self._topology_dirty = True             # codec, ptime and direction decide the fast path (media.relay)

    def _update_fast(self, ep: Endpoint) -> None:
        fast = bool(ep.params and ep.params.ptime == 20 and not ep.dtmf_tx.busy)
        if fast != self.fast[ep.row]:
            self._topology_dirty = True         # DTMF being sent: off the packet relay until it is done
        self.fast[ep.row] = fast

    # ------------------------------------------------------------------------------ topology
    def bridge(self, *eps: Endpoint) -> Bridge:
        """Connect legs: two make a call, more a conference (each hears all the others)."""
        b = Bridge(self._bridge_id)
        self._bridge_id += 1
        for ep in eps:
            self.join(b, ep)
        return b

    def join(self, b: Bridge, ep: Endpoint, mode: str = "full", whisper_to: Endpoint | Iterable[Endpoint] = ()) -> None:
        """Add a leg: ``full``/``barge`` (talks, hears), ``listen`` (hears only), ``whisper`` (heard by ``whisper_to``)."""
        if ep.bridge is not None and ep.bridge is not b:
            self.leave(ep)
        self.set_mode(b, ep, mode, whisper_to, _join=True)
        ep.bridge = b

    def set_mode(self, b: Bridge, ep: Endpoint, mode: str, whisper_to: Endpoint | Iterable[Endpoint] = (),
                 _join: bool = False) -> None:
        """Change a member's mode (a supervisor going from listen to whisper to barge)."""
        if mode == "barge":
            mode = "full"
        if mode not in ("full", "listen", "whisper"):
            raise ValueError(f"unknown bridge mode {mode!r}")
        if not _join and ep.row not in b.members:
            raise ValueError(f"{ep} is not in bridge {b.id}")
        targets = [whisper_to] if isinstance(whisper_to, Endpoint) else list(whisper_to)
        if mode == "whisper" and not targets:
            raise ValueError("whisper needs whisper_to (the agent)")
        b.members[ep.row] = Member(mode, frozenset(t.row for t in targets))
        self._topology_dirty = True

    def leave(self, ep: Endpoint) -> None:
        b = ep.bridge
        if b is None:
            return
        detach(self, ep.row, "left the bridge")
        b.members.pop(ep.row, None)
        for row, m in list(b.members.items()):
            if ep.row in m.whisper_to:
                b.members[row] = Member(m.mode, m.whisper_to - {ep.row})
        ep.bridge = None
        self._topology_dirty = True

    def hold(self, ep: Endpoint, on: bool = True) -> None:
        """The switch holds this party (agent pressed hold on the desk): it hears music, nobody hears it."""
        if ep.held != on:
            ep.held = on
            self._topology_dirty = True

    # ------------------------------------------------------------------------------ playback
    def load(self, path: str) -> Sound:
        """Load (and cache) a sound file now (reads the disk: at start-up, not while calls run)."""
        return self.bank.load(path)

    def preload(self, paths: Iterable[str] = ()) -> list[Sound]:
        """Load every prompt file at start (and the configured hold music), so that ``play`` and music
        never touch the disk; returns the sounds of ``paths``. Raises OSError/RuntimeError for a bad file."""
        paths = [str(p) for p in paths]
        sounds = self.bank.preload(paths)
        if self.config.hold_music:
            self.bank.preload([self.config.hold_music])
        return sounds

    def play(self, ep: Endpoint, sound: Sound | str, loop: bool = False, mix: bool = False) -> int:
        """Play a prompt to one leg (replacing what it hears, or ``mix``ed over the call); returns its id.

        A ``PlaybackFinished`` event follows when a non-looping prompt ends. A sound given by name or path
        must have been preloaded (``preload``/``load``): raises KeyError otherwise, never reads the disk.
        """
        snd = self.bank.lookup(sound)
        self.stop_playback(ep)
        ep.prompt = self.players.start(snd, loop)
        ep.prompt_id += 1
        ep.prompt_mix = mix
        self._prompt_owner[ep.prompt] = ep
        self._topology_dirty = True
        return ep.prompt_id

    def stop_playback(self, ep: Endpoint) -> None:
        if ep.prompt is not None:
            self.players.stop(ep.prompt)
            self._prompt_owner.pop(ep.prompt, None)
            ep.prompt = None
            self._topology_dirty = True

    def _channel(self, sound: Sound | str | None) -> int:
        if sound is None:                              # the switch's hold music (may run inside a tick)
            sound = self.bank.find(self.config.hold_music) if self.config.hold_music else None
            if sound is None:
                if self.config.hold_music and not self._warned_hold:
                    self._warned_hold = True
                    _log.warning("hold music %s was not preloaded (MediaEngine.preload): built-in music instead",
                                 self.config.hold_music)
                sound = self.bank.sounds.get("<hold>") or self.bank.add("<hold>", default_hold_music())
        snd = self.bank.lookup(sound)
        row = self._channels.get(snd.name)
        if row is None:
            row = self._channels[snd.name] = self.players.start(snd, loop=True)
            self._topology_dirty = True
        return row

    def listen(self, ep: Endpoint, on: bool = True) -> None:
        """Send this leg's decoded audio out as ``AudioChunk`` events (speech input) or stop."""
        if on:
            self._listening.setdefault(ep, [])
        else:
            self._listening.pop(ep, None)
        self._topology_dirty = True             # a listened-to leg needs its audio decoded (media.relay)

    def play_music(self, ep: Endpoint, sound: Sound | str | None = None) -> None:
        """Music to this leg (queue music): a shared looping channel, one stream for all its listeners.
        ``None``: the hold music; a name or path must have been preloaded (KeyError otherwise)."""
        ep.music = self._channel(sound)
        self._topology_dirty = True

    def stop_music(self, ep: Endpoint) -> None:
        if ep.music is not None:
            ep.music = None
            self._topology_dirty = True

    # ------------------------------------------------------------------------------ recording, DTMF out
    def start_recording(self, call_id: str, left: Endpoint | list[Endpoint], right: Endpoint | list[Endpoint],
                        parties: dict[str, str] | None = None, name: str | None = None) -> Recording:
        """Stereo WAV of a call: ``left`` (the caller) and ``right`` (agent/callee) — what each party says.

        Returns at once: the file is opened by the recorder's job runner (a thread under the edge); if that
        fails, a ``RecordingFailed`` event follows."""
        lt = [left] if isinstance(left, Endpoint) else list(left)
        rt = [right] if isinstance(right, Endpoint) else list(right)
        parties = parties or {"left": ", ".join(e.label for e in lt), "right": ", ".join(e.label for e in rt)}
        self._topology_dirty = True             # recorded legs are mixed, not relayed (media.relay)
        return self.recorder.start(call_id, [e.row for e in lt], [e.row for e in rt], parties, self.tick_no, name)

    def stop_recording(self, rec: Recording) -> None:
        self.recorder.stop(rec, self.tick_no)
        self._topology_dirty = True

    def send_dtmf(self, ep: Endpoint, digits: str, duration_ms: int = 100) -> None:
        """Send digits to the phone: RFC 4733 events if it negotiated telephone-event, else tones in the audio."""
        if ep.params is not None and ep.params.te_pt is not None:
            ep.dtmf_tx.send(digits, duration_ms)
            self._update_fast(ep)
        else:
            parts = []
            for d in digits:
                parts += [digit_tone(d, duration_ms, 6000.0), np.zeros(8 * 60)]
            name = f"<dtmf {digits} {duration_ms}>"
            snd = self.bank.sounds.get(name) or self.bank.add(name, np.concatenate(parts))
            self.play(ep, snd, mix=True)

    # ------------------------------------------------------------------------------ statistics
    def leg_stats(self, ep: Endpoint) -> LegStats:
        rb = ep.rtcp.remote
        r = ep.row
        return LegStats(ep.codec, ep.remote, ep.rx.received, max(0, ep.rx.lost), ep.rx.jitter / 8.0,
                        int(self.jitter.late[r]), int(self.concealed[r]), self.jitter.depth(r) * 20,
                        int(self.tx_packets[r]), int(self.tx_octets[r]), rb.loss_percent if rb else None,
                        rb.jitter / 8.0 if rb else None, ep.rtcp.rtt * 1000 if ep.rtcp.rtt is not None else None,
                        ep.srtp.keys.suite if ep.srtp is not None else None, int(self.relayed[r]))

    # ------------------------------------------------------------------------------ packets in
    def datagram_received(self, port: int, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One packet from the edge (RTP on the even port, RTCP on the odd one)."""
        if self._n_srtp:
            plain = self._decrypt(port, data)
            if plain is None:
                return
            data = plain
        self._take(port, data, addr, now)

    def _decrypt(self, port: int, data: bytes) -> bytes | None:
        """An SRTP leg's packet made plain (None: not authentic, dropped); other legs' packets as they are."""
        ep = self._by_port.get(port & ~1)
        if ep is None or ep.srtp is None:
            return data
        plain = ep.srtp.unprotect_rtcp(data) if port & 1 else ep.srtp.unprotect(data)
        if plain is None:
            self.srtp_rejected += 1
        return plain

    def _take(self, port: int, data: bytes, addr: tuple[str, int], now: float) -> None:
        ep = self._by_port.get(port & ~1)
        if ep is None or ep.params is None:
            self.dropped_packets += 1
            return
        if port & 1:                                           # RTCP: from the phone's media IP only
            if addr == ep.rtcp_remote or (ep.rtcp_remote is None and self._justified_ip(ep, addr[0])):
                ep.rtcp_remote = addr
                ep.rtcp.on_packet(data, now, int(self.ssrc[ep.row]))
            else:
                ep.rx_foreign += 1
                self.foreign_packets += 1
            return
        if len(data) < 12:
            self.dropped_packets += 1
            return
        if data[0] == 0x80:                                    # the usual case: no CSRC, extension, padding
            b1 = data[1]
            seq, ts, ssrc = rtp_mod._HDR.unpack_from(data)[2:]
            payload = data[12:]
            marker = b1 & 0x80
            pt = b1 & 0x7F
        else:
            try:
                p = rtp_mod.parse(data)
            except rtp_mod.RtpError:
                self.dropped_packets += 1
                return
            seq, ts, ssrc, payload, marker, pt = p.seq, p.ts, p.ssrc, p.payload, p.marker, p.pt
        if addr != ep.remote or not ep.latched:
            if not self._admit(ep, addr, ssrc, seq):
                return
        r = ep.row
        self._m_last_rx[r] = now
        self._m_timeout_reported[r] = False
        if ssrc != self._m_rx_ssrc[r]:                         # new source (phone restarted its stream)
            self._m_rx_ssrc[r] = ssrc
            self.rxt.reset(r)
            self.jitter.reset(r)
        if not self.rxt.update(r, seq, ts, int(now * 8000)):
            return
        self._m_rx_packets[r] += 1
        params = ep.params
        if pt == params.pt:
            dst = self._m_relay_to[r]
            if dst >= 0:                                       # the fast path: forwarded, not buffered
                self.rxt.unwrap(r, ts)                         # (kept current: the batch path needs it)
                fwd = relay_packet(self, ep, dst, data, seq, ts, ssrc, marker)
                if fwd is not None:                            # sent with this tick's datagrams
                    self._pending.append(Datagram(*fwd))
                return
            self.jitter.put(r, self.rxt.unwrap(r, ts), payload, marker)
        elif pt == params.te_pt and params.te_pt is not None:
            digits = ep.dtmf_rx.on_packet(ts, payload, now)
            if self.inband[ep.row]:                            # the phone sends RFC 4733: trust that only
                self.inband[ep.row] = False
                self.detector.reset_rows([ep.row])
                self._lists_dirty = True
                self._topology_dirty = True                    # no in-band detection: may be relayed now
            self._dtmf_open.add(ep)
            for d in digits:
                self._events.append(DtmfReceived(ep, d.digit, d.source, d.duration_ms))

    @staticmethod
    def _justified_ip(ep: Endpoint, ip: str) -> bool:
        """Whether signalling or SDP names this IP for the leg (once latched: the latched address's IP)."""
        if ep.latched:
            return ep.remote is not None and ip == ep.remote[0]
        return ip == ep.source_ip or (ep.remote is not None and ip == ep.remote[0])

    def _admit(self, ep: Endpoint, addr: tuple[str, int], ssrc: int, seq: int) -> bool:
        """Whether an RTP packet from ``addr`` (not the latched source) may be taken; latches the source.

        The attack this stops (docs/security.md, "Media"): a stranger who sends to a leg's port before the
        phone does, or while it is silent, used to be latched: it heard the other party and spoke for the
        phone. Now the address is settled once per SDP: the SDP's own address and port are taken at the
        first packet; a NAT'ed phone's real source (another port, or the public IP its signalling comes
        from) is learned from ``LEARN_RUN`` in-sequence packets of one SSRC from the IP of its signalling
        or SDP, and never re-learned (a quiet phone does not lose its stream). Only a new SDP address
        (re-INVITE) opens learning again. Everything else is counted in ``rx_foreign`` and dropped.
        """
        if ep.latched:
            ep.rx_foreign += 1
            self.foreign_packets += 1
            return False
        if addr != ep.remote:
            if not self._justified_ip(ep, addr[0]):
                ep.rx_foreign += 1
                self.foreign_packets += 1
                return False
            cand = ep.learning
            if cand is not None and cand[0] == addr and cand[1] == ssrc and (cand[2] + 1) & 0xFFFF == seq:
                run = cand[3] + 1
            else:
                run = 1
            if run < LEARN_RUN:
                ep.learning = (addr, ssrc, seq, run)
                return False
            self._events.append(SourceLatched(ep, addr))
        ep.learning = None
        ep.remote = addr
        ep.latched = True
        self._lists_dirty = True
        return True

    def datagrams_received(self, batch: list[tuple[int, bytes, tuple[str, int], float]]) -> None:
        """Every packet drained in one tick, as ``(port, data, addr, arrival)``: ``datagram_received`` for each,
        in order, with the same results, but the common packets are taken in with numpy.

        Common: a 172-byte RTP packet (20 ms of G.711, no CSRC/extension/padding) of the negotiated payload
        type from the latched address and known SSRC, the next in sequence, on the jitter buffer's grid, no
        marker, and the only packet of its leg in the batch. The rest go through ``datagram_received``.
        """
        if self._n_srtp:                              # SRTP packets made plain first (then the common path)
            secure = np.flatnonzero(self._srtp_port[np.fromiter((p[0] for p in batch), np.int64, len(batch))])
            if len(secure):
                batch = list(batch)
                bad = []
                for i in secure.tolist():
                    port, data, addr, t = batch[i]
                    plain = self._decrypt(port, data)
                    if plain is None:
                        bad.append(i)
                    else:
                        batch[i] = (port, plain, addr, t)
                for i in reversed(bad):
                    del batch[i]
        n = len(batch)
        if n < _BATCH_MIN:
            recv = self._take
            for p in batch:
                recv(*p)
            return
        if self._lists_dirty:
            self._rebuild_lists()                     # fresh latched / remote mirrors
        ports, datas, addrs, nows = zip(*batch)
        rows_all = self._row_of_port[np.array(ports, np.int64)]   # RTCP (odd) ports map to -1
        relayed_i = rows_all[:0]
        if self.relay_pairs:                          # the fast path's common packets (media.relay)
            relayed_i, fwd = relay_batch(self, rows_all, datas, addrs, nows)
            if fwd:
                self._pending += map(tuple.__new__, repeat(Datagram, len(fwd)), fwd)
        size = 12 + FRAME
        cand = (np.fromiter(map(len, datas), np.int64, n) == size) & (rows_all >= 0)
        if self.relay_pairs:
            cand &= self.relay_to[rows_all] < 0                # relayed legs' packets: forwarded (media.relay)
        # a leg with two or more packets in the batch keeps their order: all of them go the scalar way
        known = np.flatnonzero(rows_all >= 0)
        if len(known):
            kr = rows_all[known]
            order = np.argsort(kr, kind="stable")
            srt = kr[order]
            dup = np.zeros(len(known), bool)
            same = srt[1:] == srt[:-1]
            dup[1:] |= same
            dup[:-1] |= same
            cand[known[order[dup]]] = False
        ci = np.flatnonzero(cand)
        fast_i = ci[:0]
        if len(ci):
            pick = ci.tolist()
            buf = b"".join([datas[i] for i in pick])
            pk = np.frombuffer(buf, np.uint8).reshape(len(ci), size)
            hdr = np.frombuffer(buf, _HDR_DTYPE)
            r = rows_all[ci]
            seq = hdr["seq"].astype(np.int64)
            ts = hdr["ts"].astype(np.int64)
            b1 = pk[:, 1]
            ok = (pk[:, 0] == 0x80) & ((b1 & 0x7F) == self.pt[r]) & (hdr["ssrc"].astype(np.int64) == self.rx_ssrc[r])
            ok &= self.latched[r] & self.rxt.steady(r, seq)
            # unwrapped timestamps (rows with a previous one: steady implies it)
            last = self.rxt.ts_last[r]
            ext = last + (((ts - last + (1 << 31)) & 0xFFFFFFFF) - (1 << 31))
            ok &= self.jitter.accepts(r, ext, (b1 & 0x80) != 0)
            if ok.any():
                remotes = self._remote_of_row
                oi = np.flatnonzero(ok)
                same_addr = [addrs[pick[i]] == remotes[row] for i, row in zip(oi.tolist(), r[oi].tolist())]
                ok[oi[~np.array(same_addr, bool)]] = False
            if ok.any():
                fast_i = ci[ok]
                rf, tsf, extf = r[ok], ts[ok], ext[ok]
                now_f = np.array(nows, np.float64)[fast_i]
                self.rxt.update_batch(rf, seq[ok], tsf, (now_f * 8000).astype(np.int64))
                self.rxt.ts_last[rf] = np.maximum(self.rxt.ts_last[rf], extf)
                self.last_rx[rf] = now_f
                self.timeout_reported[rf] = False
                self.rx_packets[rf] += 1
                self.jitter.put_batch(rf, extf, pk[ok, 12:])
        if len(fast_i) + len(relayed_i) == n:
            return
        slow = np.ones(n, bool)
        slow[fast_i] = False
        slow[relayed_i] = False
        recv = self._take
        for i in np.flatnonzero(slow).tolist():
            recv(*batch[i])

    # ------------------------------------------------------------------------------ the tick
    def _rebuild_lists(self) -> None:
        eps = sorted(self.endpoints.values(), key=lambda e: e.row)
        negotiated = [e for e in eps if e.params is not None]
        relay = self._m_relay_to
        self._rx_eps = [e for e in negotiated if relay[e.row] < 0]   # relayed legs: nothing to decode or send
        self._rx_rows = np.array([e.row for e in self._rx_eps], dtype=np.int64)
        self._tx_eps = [e for e in self._rx_eps if e.params is not None and e.params.send and e.remote is not None]
        self._tx_rows = np.array([e.row for e in self._tx_eps], dtype=np.int64)
        self._tx_ports = [e.port for e in self._tx_eps]
        self._tx_addrs = cast("list[tuple[str, int]]", [e.remote for e in self._tx_eps])   # not None: see above
        self._tx_port_arr = np.array(self._tx_ports, dtype=np.int64)
        self._tx_addr_arr = np.fromiter(self._tx_addrs, dtype=object, count=len(self._tx_addrs))
        self._tx_srtp_idx = np.array([i for i, e in enumerate(self._tx_eps) if e.srtp is not None], dtype=np.int64)
        self._hk = eps
        self.latched[:] = False
        self._remote_of_row = [None] * self._cap
        for e in negotiated:
            self.latched[e.row] = e.latched
            self._remote_of_row[e.row] = e.remote
        self._lists_dirty = False

    def _compile(self) -> None:
        if update_relays(self):                  # relayed legs are neither mixed nor sent by the tick
            self._lists_dirty = True
        relay = self._m_relay_to
        hold_row = None
        routes = []
        for ep in self.endpoints.values():
            if relay[ep.row] >= 0:
                continue
            needs_hold = ep.held or (ep.bridge is not None and any(
                self._by_row[r].holding for r in ep.bridge.members if r != ep.row and r in self._by_row))
            if needs_hold and hold_row is None:
                hold_row = self._channel(None)
            routes.append(Route(ep.row, ep.bridge, ep.prompt, ep.prompt_mix, ep.music,
                                hold_row if needs_hold else None, ep.holding, ep.held))
        self._plan = compile_plan(routes, self._cap, self.players.capacity)
        self._direct_of_row = np.full(self._cap, -1, np.int64)
        self._direct_of_row[self._plan.direct_rows] = self._plan.direct_players
        self._topology_dirty = False

    def tick(self, now: float | None = None, due: float | None = None) -> TickOutput:
        """One 20 ms step: play out, detect, mix, record, encode and packetise for every leg."""
        t0 = time.perf_counter()
        if now is None:
            now = self._clock()
        self.tick_no += 1
        if self._topology_dirty or self._plan.n_players != self.players.capacity or self._plan.n_legs != self._cap:
            self._compile()                                   # first: it decides which legs are relayed
        if self._lists_dirty:
            self._rebuild_lists()
        out, self._pending = self._pending, []
        events, self._events = self._events, []
        cap = self._cap

        # 1. one frame out of every jitter buffer, decoded for all legs at once
        x = np.zeros((cap + 1, FRAME), dtype=np.float32)      # + a zero row (recording padding)
        rx_eps, rows = self._rx_eps, self._rx_rows
        n = len(rx_eps)
        if n:
            codes, st = self.jitter.pop_rows(rows)
            tp = time.perf_counter()
            dense = rows[-1] == n - 1                           # rows 0 .. n-1 (sorted, distinct): slices
            xr = decode_rows(codes, self.codec[rows], out=x[:n] if dense else None)
            if st.any():
                lost = st == LOST
                run = np.where(lost, self.conceal_run[rows] + 1, 0).astype(np.int16)
                conceal = lost & (run <= _CONCEAL_MAX)
                xr[conceal] = self.prev[rows[conceal]] * _CONCEAL_STEP
                xr[(st != PLAY) & ~conceal] = 0.0
                self.conceal_run[rows] = run
                self.concealed[rows] += lost
            if dense:                                           # xr is x[:n] already
                self.prev[:n] = xr
            else:
                self.prev[rows] = xr
                x[rows] = xr
            if self._listening:  # only the few legs a recogniser listens to
                for ep, chunks in self._listening.items():
                    chunks.append(x[ep.row].copy())
                    if len(chunks) >= LISTEN_FRAMES:
                        events.append(AudioChunk(ep, np.concatenate(chunks)))
                        chunks.clear()

            # 2. in-band DTMF on the legs that do not send RFC 4733
            inb = self.inband[rows]
            ib = rows[inb]
            if len(ib):
                for row, d in self.detector.process(xr if len(ib) == n else xr[inb], ib):
                    leg = self._by_row.get(row)
                    if leg is not None:
                        events.append(DtmfReceived(leg, d.digit, d.source, d.duration_ms))

        else:
            tp = time.perf_counter()
        t1 = time.perf_counter()
        # 3. players, 4. the mix
        pframes, pidx, finished = self.players.frames()
        mixed = self._plan.mix(x[:cap], pframes)

        t2 = time.perf_counter()
        # 5. recording (what each party says); the file writes are jobs for the recorder's runner
        recorder = self._recorder
        if recorder is not None:
            if recorder.active:
                recorder.write(x, self.tick_no)
            if recorder.failed:
                events += [RecordingFailed(r, r.error or "") for r in recorder.take_failed()]
        t3 = time.perf_counter()

        # 6. encode and packetise
        tx_eps, trows = self._tx_eps, self._tx_rows
        if len(trows):
            laws = self.codec[trows]
            dp = self._direct_of_row[trows]
            direct = dp >= 0
            if direct.any():
                codes_out = np.empty((len(trows), FRAME), dtype=np.uint8)
                mixed_sel = ~direct
                codes_out[mixed_sel] = encode_float(mixed[trows[mixed_sel]], laws[mixed_sel])
                codes_out[direct] = self.bank.encoded[laws[direct].astype(np.int64)[:, None], pidx[dp[direct]]]
            else:
                codes_out = encode_float(mixed[trows], laws)
            te = time.perf_counter()
            fast = self.fast[trows]
            fr = trows[fast]
            if len(fr):
                hdr = rtp_mod.build_headers(self.pt[fr], self.seq[fr] & 0xFFFF, self.ts[fr] & 0xFFFFFFFF,
                                            self.ssrc[fr], self.marker[fr])
                k = len(fr)
                buf = np.concatenate([hdr, codes_out[fast] if k != len(trows) else codes_out], axis=1).tobytes()
                if k == len(trows):
                    ports, addrs = self._tx_ports, self._tx_addrs
                else:
                    ports, addrs = self._tx_port_arr[fast].tolist(), self._tx_addr_arr[fast].tolist()
                # one C-level pass: split the buffer into packets, zip with ports and addresses, make Datagrams
                base = len(out)
                out += map(tuple.__new__, repeat(Datagram, k), zip(ports, _splitter(k).unpack(buf), addrs))
                sidx = self._tx_srtp_idx
                if len(sidx):                                   # SRTP legs: one libsrtp call per packet, only theirs
                    if k != len(trows):
                        sidx = sidx[fast[sidx]]
                        at_of = np.cumsum(fast) - 1                 # a sending leg's place among the fast ones
                        places = (at_of[sidx] + base).tolist()
                    else:
                        places = (sidx + base).tolist()
                    for at, ti in zip(places, sidx.tolist()):
                        dg = out[at]
                        out[at] = Datagram(dg.port, tx_eps[ti].srtp.protect(dg.data), dg.addr)  # type: ignore[union-attr]
                self.seq[fr] += 1
                self.marker[fr] = False
                self.tx_packets[fr] += 1
                self.tx_octets[fr] += FRAME
            if not fast.all():
                for j in np.nonzero(~fast)[0]:
                    self._send_slow(tx_eps[j], codes_out[j], out)
        else:
            te = time.perf_counter()
        self.ts += FRAME                                      # every leg's clock runs, sending or not
        t4 = time.perf_counter()

        # 7. ended prompts, DTMF events that lost their end packets, per-leg housekeeping
        for prow in finished:
            owner = self._prompt_owner.get(int(prow))
            if owner is not None:
                pid = owner.prompt_id
                self.stop_playback(owner)
                events.append(PlaybackFinished(owner, pid))
            else:
                self.players.stop(int(prow))
        if self._dtmf_open:
            for ep in list(self._dtmf_open):
                late_digit = ep.dtmf_rx.poll(now)
                if late_digit is not None:
                    events.append(DtmfReceived(ep, late_digit.digit, late_digit.source, late_digit.duration_ms))
                if ep.dtmf_rx.ended:
                    self._dtmf_open.discard(ep)
        for ep in self._hk[self.tick_no % _HOUSEKEEPING_TICKS::_HOUSEKEEPING_TICKS]:
            if ep.params is not None and not ep.released:
                try:
                    self._housekeeping(ep, now, out, events)
                except Exception:  # one leg's report or timer must not cost every leg its tick
                    _log.exception("media housekeeping failed for %s", ep)

        late = None if due is None else now - due
        t5 = time.perf_counter()
        stages = self.stats.stages
        for name, a, b in (("playout", t0, tp), ("decode+dtmf", tp, t1), ("mix", t1, t2), ("record", t2, t3),
                           ("encode", t3, te), ("packets", te, t4), ("housekeeping", t4, t5)):
            stages[name] = stages.get(name, 0.0) + (b - a)
        self.stats.add(t5 - t0, late)
        return TickOutput(out, events)

    def _send_slow(self, ep: Endpoint, codes: np.ndarray, out: list[Datagram]) -> None:
        """A leg sending a DTMF event or using a ptime other than 20 ms."""
        assert ep.params is not None and ep.remote is not None      # a sending leg (_tx_eps)
        r = ep.row
        if ep.dtmf_tx.busy:
            pk = ep.dtmf_tx.tick(int(self.ts[r]) & 0xFFFFFFFF)
            if pk is not None:
                assert ep.params.te_pt is not None                  # send_dtmf sends events only then
                for payload, marker, ts in pk:
                    data = rtp_mod.build(ep.params.te_pt, int(self.seq[r]), ts, int(self.ssrc[r]), payload, marker)
                    out.append(Datagram(ep.port, ep.srtp.protect(data) if ep.srtp else data, ep.remote))
                    self.seq[r] += 1
                    self.tx_packets[r] += 1
                    self.tx_octets[r] += len(payload)
                ep.out_buf.clear()
                self._update_fast(ep)
                return
            self._update_fast(ep)
        size = ep.params.ptime * 8
        if not ep.out_buf:
            ep.out_ts = int(self.ts[r])
        ep.out_buf += codes.tobytes()
        while len(ep.out_buf) >= size:
            data = rtp_mod.build(int(self.pt[r]), int(self.seq[r]), ep.out_ts, int(self.ssrc[r]),
                                 bytes(ep.out_buf[:size]), bool(self.marker[r]))
            out.append(Datagram(ep.port, ep.srtp.protect(data) if ep.srtp else data, ep.remote))
            del ep.out_buf[:size]
            ep.out_ts += size
            self.seq[r] += 1
            self.marker[r] = False
            self.tx_packets[r] += 1
            self.tx_octets[r] += size
        ep.tx_since_report = True

    def _housekeeping(self, ep: Endpoint, now: float, out: list[Datagram], events: list[MediaEvent]) -> None:
        assert ep.params is not None                                # tick visits negotiated legs only
        self.jitter.set_jitter(ep.row, ep.rx.jitter)
        if ep.params.receive and not ep.timeout_reported and now - ep.last_rx > self.config.rtp_timeout:
            ep.timeout_reported = True
            events.append(RtpTimeout(ep, now - ep.last_rx))
        if now >= ep.rtcp.next_report and ep.remote is not None:
            r = ep.row
            sending = bool(self.tx_packets[r])
            data = rtcp_mod.build_report(int(self.ssrc[r]), f"softswitch-{ep.id}@{self.config.address}", time.time(),
                                         sending=sending, rtp_ts=int(self.ts[r]), packets=int(self.tx_packets[r]),
                                         octets=int(self.tx_octets[r]), remote_ssrc=ep.rx_ssrc, stats=ep.rx,
                                         lsr=ep.rtcp.last_sr_mid, lsr_arrival=_to_wall(ep.rtcp.last_sr_arrival, now))
            dest = ep.rtcp_remote or (ep.remote[0], ep.remote[1] + 1)
            out.append(Datagram(ep.port + 1, ep.srtp.protect_rtcp(data) if ep.srtp else data, dest))
            ep.rtcp.reports_sent += 1
            ep.rtcp.next_report = now + self.config.rtcp_interval * random.uniform(0.5, 1.5)

    def rtcp_report_now(self, ep: Endpoint, wall: float | None = None) -> bytes:
        """Build the leg's RTCP report immediately (tests, and a BYE-time final report)."""
        r = ep.row
        return rtcp_mod.build_report(int(self.ssrc[r]), f"softswitch-{ep.id}@{self.config.address}",
                                     time.time() if wall is None else wall, sending=bool(self.tx_packets[r]),
                                     rtp_ts=int(self.ts[r]), packets=int(self.tx_packets[r]),
                                     octets=int(self.tx_octets[r]), remote_ssrc=ep.rx_ssrc, stats=ep.rx,
                                     lsr=ep.rtcp.last_sr_mid, lsr_arrival=ep.rtcp.last_sr_arrival)

    def close(self, wait: bool = True) -> None:
        """Release everything and finish recordings (shutdown); ``wait``: block until their file jobs ran
        (the edge passes False and waits for the runner off the event loop)."""
        for ep in list(self.endpoints.values()):
            self.release(ep)
        if self._recorder is not None:
            self._recorder.close(self.tick_no, wait=wait)


_BATCH_MIN = 8                    # fewer packets than this: the scalar path is cheaper
_HDR_DTYPE = np.dtype([("b0", "u1"), ("b1", "u1"), ("seq", ">u2"), ("ts", ">u4"), ("ssrc", ">u4"),
                       ("payload", "V160")])


@lru_cache(maxsize=64)
def _splitter(n: int) -> struct.Struct:
    """Unpacks ``n`` back-to-back 20 ms RTP packets (12 + 160 bytes) into ``n`` bytes objects in one call."""
    return struct.Struct(f"{12 + FRAME}s" * n)


def _to_wall(t: float | None, now: float) -> float | None:
    """A time on the tick's clock (monotonic) as wall-clock time, for the DLSR of an RTCP report."""
    return None if t is None else t + (time.time() - now)


def default_hold_music(seconds: float = 8.0) -> np.ndarray:
    """A soft built-in loop (arpeggiated major chords with a few harmonics) when no hold_music is configured."""
    rate = 8000
    t = np.arange(int(rate * 0.5)) / rate
    env = np.minimum(1, t / 0.02) * np.exp(-t * 3)
    notes = []
    for root in (261.63, 220.0, 174.61, 196.0):                       # C, Am, F, G
        for f in (root, root * 1.26, root * 1.5, root * 2):
            tone = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
            notes.append(2500 * env * tone)
    y = np.concatenate(notes)
    return np.tile(y, max(1, int(seconds / (len(y) / rate))))
