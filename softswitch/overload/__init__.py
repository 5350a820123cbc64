"""Overload control: admission in front of the expensive work (see ``admission`` for the policy).

``peek`` (a cheap look at a datagram), ``admission`` (sans-IO: ranks, queues, sheds), ``config`` (the
``[overload]`` section) and ``udp`` (the asyncio edge: the SIP UDP socket drained in batches).
``for_switch`` wires admission to a switch: which numbers and phones are the call centre's own.
"""
from __future__ import annotations

from typing import Any, Callable

from .admission import Admission, Answer, Mode, Process, Rank, SHED_REASONS
from .config import OVERLOAD, OverloadConfig

__all__ = ["Admission", "Answer", "Mode", "OVERLOAD", "OverloadConfig", "Process", "Rank", "SHED_REASONS",
           "for_switch"]


def for_switch(config: Any, registrar: Any, clock: Callable[[], float]) -> Admission:
    """Admission for a switch with ``config``: calls to queue (dialplan) and IVR numbers and REGISTERs of
    agents' phones go first, and so do REGISTERs of phones refreshing a live binding from the same
    address (``registrar``'s bindings, on the switch's monotonic ``clock``)."""
    numbers: set[str] = set()
    extensions: set[str] = set()
    acd = config.acd
    if acd is not None:
        numbers.update(d.number for d in acd.dialplan)
        extensions.update(a.extension for a in acd.agents)
        extensions.update(acd.supervisors)
    if config.ivr is not None:
        numbers.update(config.ivr.numbers)

    def known_phone(aor: str, host: str) -> bool:
        for b in registrar.lookup(aor, clock()):
            received = b.received or ""
            if received.rpartition(":")[0].partition(":")[2].strip("[]") == host:
                return True
        return False

    return Admission(config.overload, t1=config.sip.t1_ms / 1000, centre_numbers=frozenset(numbers),
                     centre_extensions=frozenset(extensions), known_phone=known_phone)
