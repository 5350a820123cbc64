"""systemd's ``sd_notify`` protocol, without libsystemd: datagrams to the ``$NOTIFY_SOCKET`` unix socket.

The switch runs as a ``Type=notify`` service (``deploy/softswitch.service``): it sends ``READY=1`` once it
listens (SIP sockets, store, media, API), ``WATCHDOG=1`` every half ``WatchdogSec`` from a timer on its event
loop (a loop stuck for longer than ``WatchdogSec`` gets the service restarted; so does a dead media tick,
which stops the pings), and ``STOPPING=1`` when it shuts down. Without ``$NOTIFY_SOCKET`` (not started by
systemd) every call is a no-op.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import Callable

__all__ = ["Notifier"]

log = logging.getLogger("softswitch.systemd")


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int = 0):
        self.address = address
        self.interval = watchdog_usec / 2e6 if watchdog_usec > 0 else 0.0    # seconds between pings
        self._sock: socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alive: Callable[[], bool] = lambda: True
        self.sent = 0

    @classmethod
    def from_env(cls) -> "Notifier":
        """From ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` (honoured only when ``$WATCHDOG_PID`` is unset or ours)."""
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec = 0
        pid = os.environ.get("WATCHDOG_PID")
        if pid is None or pid == str(os.getpid()):
            try:
                usec = int(os.environ.get("WATCHDOG_USEC", "0"))
            except ValueError:
                usec = 0
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False (logged once at DEBUG) when it cannot be sent."""
        if self.address is None:
            return False
        addr = self.address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]                 # abstract namespace
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), addr)
        except OSError as e:
            log.debug("sd_notify to %s failed: %s", self.address, e)
            return False
        self.sent += 1
        return True

    def ready(self, loop: asyncio.AbstractEventLoop, status: str = "",
              alive: Callable[[], bool] | None = None) -> None:
        """``READY=1`` now, then ``WATCHDOG=1`` pings while ``alive()`` is true."""
        if self.address is None:
            return
        self.notify("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))
        if alive is not None:
            self._alive = alive
        if self.interval > 0:
            self._loop = loop
            self._ping()

    def _ping(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if self._alive():
            self.notify("WATCHDOG=1")
        else:
            log.error("not pinging systemd's watchdog: the media tick is not running")
        self._timer = loop.call_later(self.interval, self._ping)

    def stopping(self, status: str = "") -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._loop = None
        self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
