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
           "for_switch", "priorities", "reconfigure"]


def for_switch(config: Any, core: Any, clock: Callable[[], float]) -> Admission:
    """Admission for a switch with ``config`` (``priorities``); REGISTERs of phones refreshing a live binding
    from the same address (the ``core``'s registrar, on the switch's monotonic ``clock``) go before
    newcomers; retransmissions of answered requests get their answer from the core's transaction layer."""
    registrar = core.registrar

    def known_phone(aor: str, host: str) -> bool:
        for b in registrar.lookup(aor, clock()):
            received = b.received or ""
            if received.rpartition(":")[0].partition(":")[2].strip("[]") == host:
                return True
        return False

    numbers, extensions, carrier = priorities(config)
    return Admission(config.overload, t1=config.sip.t1_ms / 1000, centre_numbers=numbers,
                     centre_extensions=extensions, known_phone=known_phone, carrier=carrier,
                     resend=core.tl.answer_to_retransmission)


def priorities(config: Any) -> tuple[frozenset[str], frozenset[str], Callable[[str], bool] | None]:
    """The call centre's own traffic in ``config``: dialled numbers (queue and IVR numbers, and the trunks'
    DIDs that lead to them), extensions whose REGISTERs go first (agents' phones, supervisors), and whether
    an address is a carrier's (a trunk's host or ``match``: its calls are customers calling in)."""
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

    return frozenset(numbers), frozenset(extensions), (carrier if hosts or networks else None)


def reconfigure(admission: Admission, config: Any) -> None:
    """A reloaded config (``Server.reload``): new limits and priorities from now on; what waits stays.
    Turning ``[overload]`` on or off takes a restart (it changes how the socket is read)."""
    numbers, extensions, carrier = priorities(config)
    admission.configure(config.overload, centre_numbers=numbers, centre_extensions=extensions, carrier=carrier)
