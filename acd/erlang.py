"""Erlang C staffing: agents needed for a service-level target, with ASA and occupancy.

Computed with the Erlang B recurrence B(k) = A·B(k-1) / (k + A·B(k-1)) and C = N·B / (N − A·(1 − B)):
no factorials or powers, so it stays exact to float precision for thousands of agents (the textbook
formula overflows a float at N ≈ 170). Assumes Poisson arrivals, exponential handle times and
callers who never abandon: the standard planning model, slightly pessimistic in real centres.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Staffing", "asa", "erlang_b", "erlang_c", "occupancy", "parse_target", "service_level", "staff",
           "traffic"]


def traffic(calls_per_hour: float, aht: float) -> float:
    """Offered load in Erlangs (agent-hours of work arriving per hour)."""
    return calls_per_hour * aht / 3600.0


def erlang_b(n: int, a: float) -> float:
    """Blocking probability with n servers and a Erlangs offered."""
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    return b


def _c_from_b(n: int, a: float, b: float) -> float:
    if n <= a:
        return 1.0  # an overloaded queue: every caller waits (and the wait grows without bound)
    return n * b / (n - a * (1.0 - b))


def erlang_c(n: int, a: float) -> float:
    """Probability that a caller has to wait (all n agents busy)."""
    return _c_from_b(n, a, erlang_b(n, a))


def service_level(n: int, a: float, aht: float, threshold: float, p_wait: float | None = None) -> float:
    """Share of calls answered within ``threshold`` seconds."""
    if n <= a:
        return 0.0
    c = erlang_c(n, a) if p_wait is None else p_wait
    return max(0.0, 1.0 - c * math.exp(-(n - a) * threshold / aht))


def asa(n: int, a: float, aht: float, p_wait: float | None = None) -> float:
    """Average speed of answer in seconds (over all calls, those answered at once included)."""
    if n <= a:
        return math.inf
    c = erlang_c(n, a) if p_wait is None else p_wait
    return c * aht / (n - a)


def occupancy(n: int, a: float) -> float:
    return min(1.0, a / n) if n else 1.0


@dataclass(frozen=True)
class Staffing:
    agents: int  # on the phones, before shrinkage
    scheduled: int  # agents to schedule once shrinkage (breaks, training, absence) is added
    traffic: float  # Erlangs
    p_wait: float
    service_level: float
    asa: float
    occupancy: float


def staff(calls_per_hour: float, aht: float, target: float, threshold: float, shrinkage: float = 0.0,
          max_occupancy: float = 1.0, max_agents: int = 100_000) -> Staffing:
    """The fewest agents that reach ``target`` (0..1) of calls answered within ``threshold`` seconds and
    keep occupancy at or below ``max_occupancy``. Walks N upward carrying the Erlang B value, so the
    whole search costs O(N) however large the centre."""
    if calls_per_hour < 0 or aht <= 0 or not 0 < target < 1 or threshold < 0 or not 0 <= shrinkage < 1:
        raise ValueError("need calls_per_hour >= 0, aht > 0, 0 < target < 1, threshold >= 0, 0 <= shrinkage < 1")
    a = traffic(calls_per_hour, aht)
    b, n = 1.0, 0
    while True:
        n += 1
        b = a * b / (n + a * b)
        if n <= a or a / n > max_occupancy:
            continue
        c = _c_from_b(n, a, b)
        sl = service_level(n, a, aht, threshold, c)
        if sl >= target or a == 0:
            return Staffing(n, math.ceil(n / (1.0 - shrinkage) - 1e-9), a, c, sl, asa(n, a, aht, c), occupancy(n, a))
        if n >= max_agents:
            raise ValueError(f"target not reachable with {max_agents} agents")


def parse_target(text: str) -> tuple[float, float]:
    """ "80/20" -> (0.80, 20.0): the share of calls (percent) answered within the seconds."""
    pct, sep, secs = text.partition("/")
    try:
        p, s = float(pct), float(secs)
    except ValueError:
        raise ValueError(f'expected "percent/seconds" like "80/20", got {text!r}') from None
    if not sep or not 0 < p < 100 or s < 0:
        raise ValueError(f'expected "percent/seconds" with 0 < percent < 100, like "80/20", got {text!r}')
    return p / 100.0, s
