"""Sans-IO media engine: SDP offer/answer, RTP/RTCP, G.711, DTMF, mixing, playback and recording.

Public entry points: ``media.engine.MediaEngine`` / ``MediaConfig`` (the controller's facade) and
``media.edge.MediaEdge`` (the asyncio socket tick). See media/engine.py for the call-flow example.
"""
import os as _os

# The tick multiplies small matrices (legs × 160 by 160 × 32): multi-threaded BLAS only adds thread
# hand-offs and, on a busy machine, stalls of several milliseconds. Must be set before numpy loads.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_os.environ.setdefault("OMP_NUM_THREADS", "1")

from .engine import (AudioChunk, Datagram, DtmfReceived, Endpoint, LegStats, MediaConfig, MediaEngine, PlaybackFinished,
                     PortChanges, PortFailed, RecordingFailed, RtpTimeout, SourceLatched, TickOutput)
from .ports import PortsExhausted
from .sdp import NegotiationError, SdpError

__all__ = ["AudioChunk", "Datagram", "DtmfReceived", "Endpoint", "LegStats", "MediaConfig", "MediaEngine", "NegotiationError",
           "PlaybackFinished", "PortChanges", "PortFailed", "PortsExhausted", "RecordingFailed", "RtpTimeout", "SdpError",
           "SourceLatched", "TickOutput"]
