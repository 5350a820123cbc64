"""``[wallboard]``: when the floor turns amber and red.

Thresholds are seconds (0 turns one off) and a service-level target in percent; each queue's own
``service_level_threshold`` (the "20" of 80/20) says which answers count as within the target.
"""
from __future__ import annotations

from dataclasses import dataclass

from base.checks import between
from base.schema import FLOAT, INTEGER, Key, Table


@dataclass(frozen=True)
class WallboardConfig:
    longest_wait_warning: int = 30      # s: the queue's longest wait turns amber
    longest_wait_alarm: int = 60        # s: red, and an alarm
    service_level_target: float = 80.0  # %: today's service level under it is an alarm (after min_calls)
    service_level_min_calls: int = 5    # answered + abandoned today before the service level alarm can fire
    not_ready_limit: int = 900          # s an agent may stay not ready before an alarm
    wrapup_limit: int = 120             # s in wrap-up
    ringing_limit: int = 30             # s ringing (a phone that never answers)
    on_call_limit: int = 0              # s on one call (0: no alarm)
    push_interval_ms: int = 200         # events within this window make one push to the page


WALLBOARD = Table(WallboardConfig, {
    "longest_wait_warning": Key(INTEGER, 30, (between(0, 86400),)),
    "longest_wait_alarm": Key(INTEGER, 60, (between(0, 86400),)),
    "service_level_target": Key(FLOAT, 80.0, (between(0, 100),)),
    "service_level_min_calls": Key(INTEGER, 5, (between(0, 100000),)),
    "not_ready_limit": Key(INTEGER, 900, (between(0, 86400),)),
    "wrapup_limit": Key(INTEGER, 120, (between(0, 86400),)),
    "ringing_limit": Key(INTEGER, 30, (between(0, 86400),)),
    "on_call_limit": Key(INTEGER, 0, (between(0, 86400),)),
    "push_interval_ms": Key(INTEGER, 200, (between(0, 5000),)),
})
