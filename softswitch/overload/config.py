"""The ``[overload]`` section of config.toml: when the switch sheds load, and whose traffic goes first.

Composed into ``softswitch.config.ROOT`` as ``"overload": Key(OVERLOAD, {})``; the defaults protect a
switch that has no section at all.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from base.checks import between, ext_number, unique
from base.schema import BOOLEAN, INTEGER, STRING, Array, Invalid, Key, Table

__all__ = ["OVERLOAD", "OverloadConfig"]


@dataclass(frozen=True)
class OverloadConfig:
    """``[overload]``. The switch counts as overloaded when a new request has waited a quarter of
    ``max_delay_ms``, the event loop lags ``max_lag_ms`` or half of ``max_backlog`` requests wait; then the
    newest requests are served first, and a new one that has waited ``max_delay_ms`` (the call centre's
    traffic and answers to challenges: twice that) is answered 503 with a Retry-After drawn between ``retry_after_min`` and ``retry_after_max``
    seconds (spread, so that the phones do not all come back in the same second); in-dialog requests and
    responses are never shed. ``priority_numbers`` (dialled numbers) and ``priority_extensions`` (whose
    REGISTERs go first) add to what always goes first: calls to queue and IVR numbers, agents' phones and
    phones refreshing a live registration."""

    enabled: bool = True
    max_delay_ms: int = 1000       # longest a new request waits while overloaded (then: 503): 2 x T1, so a
    # stall the switch catches up with loses nothing (a retransmission meanwhile is absorbed for ~10 us)
    max_lag_ms: int = 150          # event-loop lag that counts as overload
    max_backlog: int = 10000       # requests held waiting at most (beyond: the oldest, lowest first, shed)
    retry_after_min: int = 5
    retry_after_max: int = 30
    priority_numbers: list[str] = field(default_factory=list)
    priority_extensions: list[str] = field(default_factory=list)


def _post(v: dict[str, Any]) -> None:
    if v["retry_after_min"] > v["retry_after_max"]:
        raise Invalid(f"retry_after_min ({v['retry_after_min']}) is above retry_after_max "
                      f"({v['retry_after_max']})", ".retry_after_min")


OVERLOAD = Table(OverloadConfig, {
    "enabled": Key(BOOLEAN, True),
    "max_delay_ms": Key(INTEGER, 1000, (between(40, 30000),)),
    "max_lag_ms": Key(INTEGER, 150, (between(10, 10000),)),
    "max_backlog": Key(INTEGER, 10000, (between(100, 1000000),)),
    "retry_after_min": Key(INTEGER, 5, (between(1, 3600),)),
    "retry_after_max": Key(INTEGER, 30, (between(1, 3600),)),
    "priority_numbers": Key(Array(STRING, each=(ext_number,)), [], (unique,)),
    "priority_extensions": Key(Array(STRING, each=(ext_number,)), [], (unique,)),
}, post=_post)
