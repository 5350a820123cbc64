"""Who may log in as an agent, and where (issue 11: an impostor must not take an agent's queue calls and
screen pops). Sans-IO: the time is passed in.

An agent logs in at its own ``extension`` or one of its ``extensions`` (``[[acd.agents]]``); with a ``pin``
it must give it (``*11*<id>*<pin>``), and may then log in at any phone unless ``extensions`` lists the ones
allowed (hot-desking). Without a PIN only the listed phones will do. A phone that dials wrong PINs is
locked out of PIN logins for a while: the guesser is the dialling extension, never the agent, so nobody
can lock an agent out by guessing on purpose.
"""
from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, field

from .config import AcdAgent

__all__ = ["PinGuard", "WRONG_PIN", "login_refusal"]

WRONG_PIN = "wrong PIN"


def login_refusal(agent: AcdAgent, extension: str, pin: str | None) -> str | None:
    """Why ``agent`` may not log in at ``extension`` with ``pin`` (None = given none), or None if it may."""
    allowed = {agent.extension, *agent.extensions}
    if agent.pin:
        if pin is None:
            return f"agent {agent.id} needs a PIN (*11*{agent.id}*PIN)"
        if not hmac.compare_digest(pin.encode(), agent.pin.encode()):
            return WRONG_PIN
        if agent.extensions and extension not in allowed:
            return f"agent {agent.id} may not log in at {extension}"
        return None
    if extension not in allowed:
        return f"agent {agent.id} may not log in at {extension} (its phones: {', '.join(sorted(allowed))})"
    return None


@dataclass
class PinGuard:
    """Wrong PINs per dialling extension: ``max_failures`` within ``window`` s lock that phone out of PIN
    logins for ``lockout`` s. Bounded by the number of extensions that dial (configured phones only)."""

    max_failures: int = 5
    window: float = 900.0
    lockout: float = 900.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)
    _locked: dict[str, float] = field(default_factory=dict)

    def locked(self, extension: str, now: float) -> bool:
        until = self._locked.get(extension)
        if until is None:
            return False
        if now >= until:
            del self._locked[extension]
            return False
        return True

    def failed(self, extension: str, now: float) -> bool:
        """Count a wrong PIN; True when it locks the phone out."""
        q = self._failures.setdefault(extension, deque())
        while q and now - q[0] >= self.window:
            q.popleft()
        q.append(now)
        if len(q) >= self.max_failures:
            q.clear()
            self._locked[extension] = now + self.lockout
            return True
        return False
