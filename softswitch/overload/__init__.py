"""Overload control: admission in front of the expensive work (see ``admission`` for the policy).

``peek`` (a cheap look at a datagram), ``admission`` (sans-IO: ranks, queues, sheds), ``config`` (the
``[overload]`` section) and ``udp`` (the asyncio edge: the SIP UDP socket drained in batches).
``for_switch`` wires admission to a switch: which numbers and phones are the call centre's own.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable

from .admission import Admission, Answer, Mode, Process, Rank, SHED_REASONS
from .config import OVERLOAD, OverloadConfig

__all__ = ["Admission", "Answer", "Mode", "OVERLOAD", "OverloadConfig", "Process", "Rank", "SHED_REASONS",
           "for_switch"]


def for_switch(config: Any, registrar: Any, clock: Callable[[], float]) -> Admission:
    """Admission for a switch with ``config``: calls to queue (dialplan) and IVR numbers (and the trunks'
    DIDs that lead to them), calls from the carriers' addresses (customers calling in) and REGISTERs of
    agents' phones go first; REGISTERs of phones refreshing a live binding from the same address
    (``registrar``'s bindings, on the switch's monotonic ``clock``) before newcomers."""
    numbers: set[str] = set()
    extensions: set[str] = set()
    acd = config.acd
    if acd is not None:
        numbers.update(d.number for d in acd.dialplan)
        extensions.update(a.extension for a in acd.agents)
        extensions.update(acd.supervisors)
    if config.ivr is not None:
        numbers.update(config.ivr.numbers)
    hosts: set[str] = set()
    networks: list[Any] = []
    for trunk in getattr(config, "trunks", ()):
        numbers.update(did for did, target in trunk.dids.items() if target in numbers and did != "*")
        for item in trunk.match or [trunk.host]:
            if "/" in item:
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    pass
                continue
            host = item.rsplit(":", 1)[0] if item.count(":") == 1 else item
            hosts.add(host.strip("[]"))

    def carrier(host: str) -> bool:
        if host in hosts:
            return True
        if networks:
            try:
                addr = ipaddress.ip_address(host)
            except ValueError:
                return False
            return any(addr in n for n in networks)
        return False

    def known_phone(aor: str, host: str) -> bool:
        for b in registrar.lookup(aor, clock()):
            received = b.received or ""
            if received.rpartition(":")[0].partition(":")[2].strip("[]") == host:
                return True
        return False

    return Admission(config.overload, t1=config.sip.t1_ms / 1000, centre_numbers=frozenset(numbers),
                     centre_extensions=frozenset(extensions), known_phone=known_phone,
                     carrier=carrier if hosts or networks else None)
