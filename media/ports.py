"""RTP port allocation from the configured range (``[media] rtp_ports = "10000-20000"``).

RTP takes even ports and RTCP the odd port above (RFC 3550 §11). Three rules come from attacks on a
running switch (docs/security.md, "Media"):

* **Ports are drawn at random** from the free ones (``secrets``), not in sequence: a stranger cannot
  guess the next call's port from the last one. A port freed by a call cools down (it goes to the back of
  a queue of recently freed ports, holding up to half the range) before it can be drawn again, so stray
  packets of an old call do not land in a new one.
* **A port the OS would not bind is retired only for a while** (``quarantine``): another program holds it
  (address in use) or it is forbidden (permission). It is tried again after ``retry_after`` seconds.
  Running out of file descriptors says nothing about a port and never retires one (the edge's business).
* **Spares**: the edge binds a few ports ahead of need (``reserve_spare`` → ``spare_bound``), so that a
  call's SDP names a port that is known to be open; ``allocate`` hands those out first. Spares are not
  "in use" (``in_use`` counts ports held by call legs only: what the leak tests and the shutdown line watch).

``reserve`` pairs are kept back for calls allowed to use them (queue and hotline calls): ``allocate``
with ``use_reserve=False`` refuses when no more than ``reserve`` pairs are left.
"""
from __future__ import annotations

import secrets
from collections import deque


class PortsExhausted(RuntimeError):
    """No free RTP port (or no socket can be opened now): the controller answers 503."""


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
    def __init__(self, spec: str | tuple[int, int] = "10000-20000", retry_after: float = 60.0, reserve: int = 0):
        self.low, self.high = parse_port_range(spec)
        first = self.low + (self.low & 1)
        self._free: list[int] = list(range(first, self.high, 2))      # port+1 must be <= high too
        self.capacity = len(self._free)
        self._cooling: deque[int] = deque()                           # recently freed, oldest first
        self._cool_max = self.capacity // 2
        self._used: set[int] = set()
        self._ready: list[int] = []                                   # spares the edge has bound
        self._pending: set[int] = set()                               # spares the edge is to bind
        self._quarantined: dict[int, float] = {}                      # port -> when to try it again
        self._next_retry = float("inf")
        self.retry_after = retry_after
        self.reserve = max(0, min(reserve, self.capacity - 1))
        self.randbelow = secrets.randbelow                            # tests that compare two runs seed this

    @property
    def in_use(self) -> int:
        """Ports held by call legs (not spares, not quarantined ones)."""
        return len(self._used)

    @property
    def available(self) -> int:
        """Ports a call could still get: free, cooling and bound spares."""
        return len(self._free) + len(self._cooling) + len(self._ready)

    @property
    def spares(self) -> int:
        """Spares bound by the edge and not yet handed out."""
        return len(self._ready)

    def _draw(self, now: float) -> int | None:
        """A random free port (cooling ones only when no other is left), or None."""
        if now >= self._next_retry:
            self._readmit(now)
        while len(self._cooling) > self._cool_max:
            self._free.append(self._cooling.popleft())
        free = self._free
        if free:
            i = self.randbelow(len(free))
            free[i], free[-1] = free[-1], free[i]
            return free.pop()
        if self._cooling:
            return self._cooling.popleft()
        return None

    def allocate(self, now: float = 0.0, use_reserve: bool = True) -> tuple[int, bool]:
        """An even RTP port (RTCP is port + 1) for a call leg, and whether the edge has it bound already
        (a spare). Raises PortsExhausted when none is left (or only the reserve, for ``use_reserve=False``)."""
        if not use_reserve and self.available <= self.reserve:
            raise PortsExhausted(f"only the {self.reserve} RTP port pair(s) kept for queue and hotline calls are left")
        if self._ready:
            spare = self._ready.pop()
            self._used.add(spare)
            return spare, True
        port = self._draw(now)
        if port is None:
            raise PortsExhausted(f"all {self.capacity} RTP ports in {self.low}-{self.high} are in use")
        self._used.add(port)
        return port, False

    def take(self, port: int) -> None:
        """Hold this very port for a leg (a media worker: the controller chose it from the worker's slice)."""
        if port in self._used:
            raise PortsExhausted(f"RTP port {port} is in use")
        for pool in (self._free, self._ready):
            if port in pool:
                pool.remove(port)
        if port in self._cooling:
            self._cooling.remove(port)
        self._pending.discard(port)
        self._quarantined.pop(port, None)
        self._used.add(port)

    def release(self, port: int) -> None:
        """Return a port; releasing one that is not allocated is a bug in the caller and raises."""
        self._used.remove(port)
        self._cooling.append(port)

    # ------------------------------------------------------------------ spares (the edge)
    def reserve_spare(self, now: float = 0.0) -> int | None:
        """A random free port for the edge to bind as a spare (``spare_bound``/``spare_failed`` after), or None."""
        port = self._draw(now)
        if port is not None:
            self._pending.add(port)
        return port

    def spare_bound(self, port: int) -> None:
        self._pending.discard(port)
        self._ready.append(port)

    def spare_failed(self, port: int, retire: bool, now: float = 0.0) -> None:
        """The edge could not bind a spare: ``retire`` (address in use, permission) quarantines it for
        ``retry_after`` seconds; otherwise (no descriptors) it simply goes back to the free ports."""
        self._pending.discard(port)
        if retire:
            self._quarantine(port, now)
        else:
            self._free.append(port)

    def drop_spares(self) -> list[int]:
        """Every bound spare, no longer spare (the edge closes them at shutdown)."""
        ready, self._ready = self._ready, []
        self._free.extend(ready)
        return ready

    # ------------------------------------------------------------------ failures
    def quarantine(self, port: int, now: float = 0.0) -> None:
        """A port the OS would not bind (another program holds it, or it is forbidden): not handed out
        again for ``retry_after`` seconds (idempotent)."""
        if port in self._quarantined:
            return
        if port in self._used:
            self._used.discard(port)
        elif port in self._pending or port in self._ready:
            self._pending.discard(port)
            if port in self._ready:
                self._ready.remove(port)
        else:
            for pool in (self._free, self._cooling):
                if port in pool:
                    pool.remove(port)
                    break
            else:
                return                            # not ours (outside the range)
        self._quarantine(port, now)

    def _quarantine(self, port: int, now: float) -> None:
        until = now + self.retry_after
        self._quarantined[port] = until
        self._next_retry = min(self._next_retry, until)

    def unbindable(self, port: int) -> None:
        """A leg's port could not be bound for a reason that is not the port's (no descriptors): the leg
        gives it up, the port goes straight back to the free ports."""
        if port in self._used:
            self._used.discard(port)
            self._free.append(port)

    def _readmit(self, now: float) -> None:
        back = [p for p, until in self._quarantined.items() if until <= now]
        for p in back:
            del self._quarantined[p]
            self._free.append(p)
        self._next_retry = min(self._quarantined.values(), default=float("inf"))

    @property
    def quarantined(self) -> frozenset[int]:
        return frozenset(self._quarantined)
