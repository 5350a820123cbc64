"""Length-prefixed frames for the controller ⇄ media worker channel.

A frame is a 4-byte big-endian length and a payload: a pickled frozen dataclass of ``media.workers.messages``.
Pickle is acceptable here because both ends are our own processes over a socket pair that nobody else can
reach (it is created before the worker starts and passed as an inherited descriptor). Even so a frame is
loaded by an unpickler that builds only what a message is made of (``ALLOWED``: the dataclasses and enums of
``media``, numpy arrays and dtypes, paths) — anything else, e.g. a ``__reduce__`` naming ``os.system``, is a
``FrameError`` and closes the channel, never a call. A channel to another host (TCP) would also swap pickle for
a schema'd encoding (the messages are plain dataclasses of numbers, strings and tuples, plus numpy arrays in
``AddSound`` and ``AudioChunk``) — the framing stays.
"""
from __future__ import annotations

import dataclasses
import enum
import io
import pickle
import struct
from typing import Any

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024      # a frame larger than this is a broken peer: the channel is closed


class FrameError(ValueError):
    """The byte stream is not a sequence of frames (a length over MAX_FRAME, or a payload that won't load)."""


# the globals a message may name besides media's own dataclasses and enums (numpy 1 and 2 spell them apart)
ALLOWED = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("pathlib", "PosixPath"), ("pathlib", "PurePosixPath"),
    ("builtins", "set"), ("builtins", "frozenset"),
})


class _Unpickler(pickle.Unpickler):
    """Builds messages only: a global outside ``ALLOWED`` or media's dataclasses/enums is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return super().find_class(module, name)
        if module == "media" or module.startswith("media."):
            found = super().find_class(module, name)
            if isinstance(found, type) and (dataclasses.is_dataclass(found) or issubclass(found, enum.Enum)):
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a media worker message")


def decode(payload: bytes) -> Any:
    """The message of one frame's payload (``FrameError`` if it is not one)."""
    try:
        return _Unpickler(io.BytesIO(payload)).load()
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a broken stream
        raise FrameError(f"undecodable frame: {type(e).__name__}: {e}") from e


def encode(message: Any) -> bytes:
    """One frame for ``message``."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > MAX_FRAME:
        raise FrameError(f"message of {len(payload)} bytes is over the {MAX_FRAME}-byte frame limit")
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Sans-I/O: feed it bytes as they arrive, get the whole messages they complete (in order)."""

    def __init__(self, max_frame: int = MAX_FRAME):
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= HEADER.size:
            (n,) = HEADER.unpack_from(buf, pos)
            if n > self.max_frame:
                raise FrameError(f"frame of {n} bytes announced, limit {self.max_frame}")
            if len(buf) - pos - HEADER.size < n:
                break
            start = pos + HEADER.size
            out.append(decode(bytes(buf[start:start + n])))
            pos = start + n
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)
