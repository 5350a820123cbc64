"""The work-order loop's decisions (``softswitch.workorders.overdue``), with a fake clock: an order past its due
time is alerted once, escalated once after ``escalate_after`` to its region's supervisor (else the default
one), never again after a restart that knows it from the order's history; the wallboard alarm follows."""
from __future__ import annotations

from softswitch.workorders.config import WorkOrdersConfig
from softswitch.workorders.overdue import Alert, Escalate, OverdueOrder, OverdueWatch

CFG = WorkOrdersConfig(overdue_check=60, escalate_after=3600, escalate_to="boss",
                       escalate_to_by_region={"north": "lead-north"})


def order(i: int, due: float, region: str = "", kind: str = "repair") -> OverdueOrder:
    return OverdueOrder(i, kind, "open", region, "", due)


def test_alert_once_then_escalate_once_to_the_regions_supervisor():
    w = OverdueWatch(CFG)
    a, b = order(1, 1000.0, "north"), order(2, 1500.0)
    out = w.check([a, b], 1600.0)
    assert [type(x) for x in out] == [Alert, Alert] and [x.order.id for x in out] == [1, 2]
    assert w.check([a, b], 1700.0) == []                          # not alerted again
    out = w.check([a, b], 1000.0 + 3600)
    assert [(x.order.id, x.to) for x in out if isinstance(x, Escalate)] == [(1, "lead-north")]
    out = w.check([a, b], 1500.0 + 3600)
    assert [(x.order.id, x.to) for x in out if isinstance(x, Escalate)] == [(2, "boss")]
    assert w.check([a, b], 10_000.0) == []                        # each escalated once
    [alarm] = w.alarms([a, b], 1000.0 + 7200)
    assert alarm.level == "alarm" and "2 work order(s) overdue" in alarm.message and "#1" in alarm.message


def test_a_resolved_order_leaves_and_a_restart_does_not_escalate_again():
    w = OverdueWatch(CFG, escalated=[7])
    late = order(7, 0.0)
    out = w.check([late], 10_000.0)
    assert [type(x) for x in out] == [Alert]                      # told again after the restart, not escalated
    assert w.check([], 10_001.0) == [] and w.alarms([], 10_001.0) == []
    fresh = order(8, 9_000.0)
    [alarm] = OverdueWatch(CFG).alarms([fresh], 9_060.0)
    assert alarm.level == "warning" and alarm.subject == "work orders"


def test_escalate_at_once_when_escalate_after_is_zero():
    w = OverdueWatch(WorkOrdersConfig(escalate_after=0, escalate_to="boss"))
    out = w.check([order(3, 100.0, kind="complaint")], 100.5)
    assert [type(x) for x in out] == [Alert, Escalate] and out[1].to == "boss"
