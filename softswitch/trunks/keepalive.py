"""OPTIONS keep-alive: whether a trunk answers at all (Asterisk's ``qualify``, Kamailio's dispatcher probing).

Every ``options_interval`` seconds an OPTIONS goes to the trunk; any response (a 200, but also a 404
or 405 from a carrier that does not like OPTIONS) proves it alive. ``options_failures`` pings in a row
without a response within ``min(interval, 5 s)`` mark it down: the dialer then tries it last, and the
log says so once. The first response after that marks it up again (and, for a registering trunk, the
runtime registers at once: the carrier may have restarted and forgotten us). Sans-IO: the runtime sends
the pings and reports responses and the time.
"""
from __future__ import annotations

import logging
from enum import Enum
from typing import Mapping

from ..states import move
from .config import Trunk

log = logging.getLogger("softswitch.trunks")


class Health(str, Enum):
    UNKNOWN = "unknown"      # no verdict yet (or keep-alive off)
    UP = "up"
    DOWN = "down"

    def __str__(self) -> str:
        return self.value


HEALTH_TRANSITIONS: Mapping[Health, frozenset[Health]] = {
    Health.UNKNOWN: frozenset({Health.UP, Health.DOWN}),
    Health.UP: frozenset({Health.DOWN}),
    Health.DOWN: frozenset({Health.UP}),
}


class KeepAlive:
    def __init__(self, trunk: Trunk):
        self.trunk = trunk
        self.health = Health.UNKNOWN
        self.interval = float(trunk.options_interval)
        self.timeout = min(self.interval, 5.0)
        self.missed = 0
        self.outstanding: float | None = None   # when the ping out now was sent
        self.next_ping: float | None = 0.0 if trunk.options_interval else None

    @property
    def enabled(self) -> bool:
        return self.trunk.options_interval > 0

    def next_deadline(self) -> float | None:
        if self.outstanding is not None:
            return self.outstanding + self.timeout
        return self.next_ping

    def due(self, now: float) -> bool:
        """Whether to send a ping now (also books the missed one, if its time is over)."""
        if self.outstanding is not None and now >= self.outstanding + self.timeout:
            self.outstanding = None
            self._missed()
        if self.outstanding is None and self.next_ping is not None and now >= self.next_ping:
            self.outstanding = now
            self.next_ping = now + self.interval
            return True
        return False

    def answered(self, now: float) -> bool:
        """A response to a ping; True when the trunk just came (back) up."""
        self.outstanding = None
        self.missed = 0
        if self.health is Health.UP:
            return False
        was = self.health
        self.health = move(self.health, Health.UP, HEALTH_TRANSITIONS, f"trunk {self.trunk.name}")
        log.info("trunk %s: up (OPTIONS answered)", self.trunk.name)
        return was is Health.DOWN

    def _missed(self) -> None:
        self.missed += 1
        if self.missed >= self.trunk.options_failures and self.health is not Health.DOWN:
            self.health = move(self.health, Health.DOWN, HEALTH_TRANSITIONS, f"trunk {self.trunk.name}")
            log.warning("trunk %s: down (%d OPTIONS unanswered)", self.trunk.name, self.missed)
