"""Limits on SIP stream (TCP/TLS) connections, sans-IO: what an outsider can make the switch hold.

Every inbound connection costs a file descriptor and a read buffer, descriptors the media needs too (a
switch out of descriptors cannot open an RTP port). So the edge asks ``ConnectionGuard`` before it keeps
a connection and, once a second, which ones to close:

- at most ``max_connections`` in all and ``max_per_address`` from one address (an IPv6 /64 counts as
  one; ``ban_exempt`` addresses, trunks and SBCs, have no per-address cap);
- a message must arrive whole within ``message_timeout`` seconds of its first byte (slowloris: a header
  sent a byte at a time, or a body that never comes);
- a connection that carries no registration and no call, and has been silent for ``idle_timeout``
  seconds, is closed (a phone registered over TCP keeps its connection as long as it likes);
- a peer that does not read what we send cannot make us buffer more than ``max_write_buffer`` bytes.

Connections the switch opened itself (to a phone or a trunk) count towards the total but are not
refused or idle-closed here: their lifetime is the transactions' business.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .security import source_key

__all__ = ["ConnectionGuard", "ConnectionLimits", "ConnState"]


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int = 4096
    max_per_address: int = 64
    message_timeout: float = 5.0
    idle_timeout: float = 120.0
    max_write_buffer: int = 1 << 20


@dataclass(slots=True)
class ConnState:
    """What the guard knows of one connection (the edge updates it as bytes move)."""

    conn_id: int
    source: str          # the address key (IPv4 address / IPv6 /64)
    inbound: bool
    opened: float
    last_activity: float
    partial_since: float | None = None  # first byte of a message not yet complete
    counted: bool = True


@dataclass
class ConnectionGuard:
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    conns: dict[int, ConnState] = field(default_factory=dict)
    per_source: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    closed_slow: int = 0
    closed_idle: int = 0

    def admit(self, conn_id: int, host: str, now: float, *, inbound: bool = True, exempt: bool = False) -> str | None:
        """Register a new connection; returns why it must be closed at once (None: keep it)."""
        src = source_key(host)
        if inbound:
            if len(self.conns) >= self.limits.max_connections:
                self.refused += 1
                return f"{len(self.conns)} connections open (max_connections)"
            if not exempt and self.per_source.get(src, 0) >= self.limits.max_per_address:
                self.refused += 1
                return f"{self.per_source[src]} connections from {src} (tcp_max_per_address)"
        self.conns[conn_id] = ConnState(conn_id, src, inbound, now, now)
        self.per_source[src] = self.per_source.get(src, 0) + 1
        return None

    def gone(self, conn_id: int) -> None:
        st = self.conns.pop(conn_id, None)
        if st is None:
            return
        n = self.per_source.get(st.source, 0) - 1
        if n > 0:
            self.per_source[st.source] = n
        else:
            self.per_source.pop(st.source, None)

    def received(self, conn_id: int, now: float, buffered: int) -> None:
        """Bytes arrived; ``buffered`` is what the framer still holds of an incomplete message."""
        st = self.conns.get(conn_id)
        if st is None:
            return
        st.last_activity = now
        if buffered == 0:
            st.partial_since = None
        elif st.partial_since is None:
            st.partial_since = now

    def sent(self, conn_id: int, now: float) -> None:
        st = self.conns.get(conn_id)
        if st is not None:
            st.last_activity = now

    def sweep(self, now: float, in_use: "set[int] | None" = None) -> list[tuple[int, str]]:
        """Connections to close now, with why. ``in_use``: ids carrying a registration or a call (asked
        for only when some inbound connection is idle long enough to matter; None = compute nothing)."""
        out: list[tuple[int, str]] = []
        lim = self.limits
        for st in self.conns.values():
            if st.partial_since is not None and now - st.partial_since >= lim.message_timeout:
                out.append((st.conn_id, f"no complete message within {lim.message_timeout:g} s"))
                self.closed_slow += 1
            elif (st.inbound and now - st.last_activity >= lim.idle_timeout
                  and (in_use is None or st.conn_id not in in_use)):
                out.append((st.conn_id, f"idle {lim.idle_timeout:g} s without a registration or a call"))
                self.closed_idle += 1
        return out

    def idle_candidates(self, now: float) -> bool:
        """Whether any inbound connection has been idle long enough that ``sweep`` needs ``in_use``."""
        lim = self.limits
        return any(st.inbound and now - st.last_activity >= lim.idle_timeout for st in self.conns.values())
