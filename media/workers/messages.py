"""Commands (controller → worker) and replies (worker → controller) of the media worker channel.

Legs are named by the controller's endpoint id (``leg``); bridges by the controller's bridge id. Every
message is a small frozen dataclass (``channel`` frames them).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..engine import LegStats, MediaConfig
from ..sdp import StreamParams


# ---------------------------------------------------------------------------- controller → worker
@dataclass(frozen=True)
class Init:
    """First message: the worker's index and its engine's config (``rtp_ports`` is its slice)."""
    index: int
    config: MediaConfig


@dataclass(frozen=True)
class Allocate:
    leg: int
    port: int
    call_id: str
    label: str
    source: str | None
    srtp: str


@dataclass(frozen=True)
class Apply:
    """What offer/answer agreed for the leg (the shadow engine ran the SDP)."""
    leg: int
    params: StreamParams


@dataclass(frozen=True)
class Release:
    leg: int


@dataclass(frozen=True)
class MakeBridge:
    bridge: int
    legs: tuple[int, ...]


@dataclass(frozen=True)
class Join:
    bridge: int
    leg: int
    mode: str
    whisper_to: tuple[int, ...]


@dataclass(frozen=True)
class SetMode:
    bridge: int
    leg: int
    mode: str
    whisper_to: tuple[int, ...]


@dataclass(frozen=True)
class Leave:
    leg: int


@dataclass(frozen=True)
class Hold:
    leg: int
    on: bool


@dataclass(frozen=True)
class AddSound:
    """A sound made in the signalling process (tones, prompt sequences: ``SoundBank.add``), not a file the
    worker could read: its 8 kHz samples, sent once per worker before the first ``Play`` of it."""
    name: str
    samples: Any


@dataclass(frozen=True)
class Play:
    leg: int
    sound: str          # the sound's file (the worker loads it into its own bank)
    loop: bool
    mix: bool
    playback: int       # the controller's id for it (PlaybackFinished comes back with it)


@dataclass(frozen=True)
class StopPlayback:
    leg: int


@dataclass(frozen=True)
class Music:
    leg: int
    sound: str | None


@dataclass(frozen=True)
class StopMusic:
    leg: int


@dataclass(frozen=True)
class Listen:
    leg: int
    on: bool


@dataclass(frozen=True)
class SendDtmf:
    leg: int
    digits: str
    duration_ms: int


@dataclass(frozen=True)
class StartRecording:
    recording: int
    call_id: str
    left: tuple[int, ...]
    right: tuple[int, ...]
    parties: dict[str, str] | None
    name: str           # the file (absolute: the controller chose it and told call control)


@dataclass(frozen=True)
class StopRecording:
    recording: int


@dataclass(frozen=True)
class Shutdown:
    """Release everything, log the shutdown line, exit."""


# ---------------------------------------------------------------------------- worker → controller
@dataclass(frozen=True)
class Ready:
    index: int
    pid: int


@dataclass(frozen=True)
class Event:
    """One engine event with its endpoint (or recording) replaced by the controller's id."""
    event: Any


@dataclass(frozen=True)
class Stats:
    """Every second and at release: the legs' statistics (``leg_stats``) and the worker's counters (the
    switch's metrics sum them over workers): packets in and out, the durations of the ticks run since the
    last report, and the engine's and edge's counters (``COUNTERS``, cumulative since the worker started)."""
    legs: tuple[tuple[int, LegStats], ...]
    received: int
    sent: int
    ticks: tuple[float, ...] = ()
    counters: tuple[tuple[str, int], ...] = ()


# engine / edge counters a worker reports (``Stats.counters``); relay_pairs is a level, the rest only grow
COUNTERS = ("late_ticks", "relay_pairs", "relayed_packets", "dropped_packets", "foreign_packets", "srtp_rejected",
            "send_failures")
