"""``[work_orders]``: how often overdue orders are looked for, and who they are escalated to."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from base.checks import between, nonempty, printable
from base.schema import INTEGER, STRING, Context, Invalid, Key, Scalar, Table


@dataclass(frozen=True)
class WorkOrdersConfig:
    overdue_check: int = 60                 # seconds between looks for overdue orders
    escalate_after: int = 3600              # seconds overdue before the order is escalated (0: at once)
    escalate_to: str = ""                   # the supervisor (an [[api.users]] id) overdue orders escalate to
    escalate_to_by_region: dict[str, str] = field(default_factory=dict)   # region -> supervisor (else escalate_to)


def _by_region(raw: Any, ctx: Context) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise Invalid("expected a table region = \"supervisor id\"")
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str) or not v.strip():
            raise Invalid(f"{k}: expected a supervisor's user id (a non-empty string)")
        out[str(k)] = v
    return out


WORK_ORDERS = Table(WorkOrdersConfig, {
    "overdue_check": Key(INTEGER, 60, (between(1, 86400),)),
    "escalate_after": Key(INTEGER, 3600, (between(0, 30 * 86400),)),
    "escalate_to": Key(STRING, "", (lambda v: printable(nonempty(v)) if v else v,)),
    "escalate_to_by_region": Key(Scalar("table", (dict,), _by_region), {}),
})
