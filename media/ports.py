"""RTP port allocation from the configured range (``[media] rtp_ports = "10000-20000"``).

RTP takes even ports and RTCP the odd port above (RFC 3550 §11). Ports freed by a call go to the
back of the queue, so a port is reused as late as possible and stray packets of an old call do not
land in a new one. ``in_use`` is what the leak test watches.
"""
from __future__ import annotations

from collections import deque


class PortsExhausted(RuntimeError):
    """No free RTP port: the controller answers 503."""


def parse_port_range(spec: str | tuple[int, int]) -> tuple[int, int]:
    """``"10000-20000"`` → (10000, 20000), validated; raises ValueError with the reason."""
    if isinstance(spec, tuple):
        lo, hi = spec
    else:
        try:
            a, _, b = spec.partition("-")
            lo, hi = int(a), int(b)
        except ValueError:
            raise ValueError(f"rtp_ports must look like \"10000-20000\", not {spec!r}") from None
    if not (1024 <= lo < hi <= 65535):
        raise ValueError(f"rtp_ports {lo}-{hi}: need 1024 <= low < high <= 65535")
    if hi - lo < 3:
        raise ValueError(f"rtp_ports {lo}-{hi}: range holds no RTP/RTCP pair")
    return lo, hi


class PortAllocator:
    def __init__(self, spec: str | tuple[int, int] = "10000-20000"):
        self.low, self.high = parse_port_range(spec)
        first = self.low + (self.low & 1)
        self._free: deque[int] = deque(range(first, self.high, 2))    # port+1 must be <= high too
        self._used: set[int] = set()
        self._quarantined: set[int] = set()
        self.capacity = len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._used)

    @property
    def available(self) -> int:
        return len(self._free)

    def allocate(self) -> int:
        """An even RTP port (RTCP is port + 1)."""
        if not self._free:
            raise PortsExhausted(f"all {self.capacity} RTP ports in {self.low}-{self.high} are in use")
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Return a port; releasing one that is not allocated is a bug in the caller and raises."""
        self._used.remove(port)
        self._free.append(port)

    def quarantine(self, port: int) -> None:
        """A port the OS would not bind (used by another program): never hand it out again (idempotent)."""
        if port in self._quarantined:
            return
        if port in self._used:
            self._used.discard(port)
        else:
            try:
                self._free.remove(port)           # released meanwhile: take it out of the queue
            except ValueError:
                return                            # not ours (outside the range)
        self._quarantined.add(port)

    @property
    def quarantined(self) -> frozenset[int]:
        return frozenset(self._quarantined)
