"""The switch's report: ``store.reports.build_report`` with the switch's settings (each queue's service-level
threshold, local day boundaries), run on the store's reader thread; and the queue sums the wallboard is
seeded with at start (``switch_queue_totals``), with the same thresholds."""
from __future__ import annotations

import time
from typing import Any


def utc_offset(at: float) -> int:
    """The local time's offset from UTC at ``at`` (seconds; DST-aware)."""
    return int(time.localtime(at).tm_gmtoff)


def thresholds_of(config: Any) -> dict[str, float]:
    """Each queue's service-level threshold (seconds), as the report and the live figures use it."""
    acd = getattr(config, "acd", None)
    return {q.name: float(q.service_level_threshold) for q in acd.queues} if acd is not None else {}


async def switch_report(centre: Any, config: Any, period: str, since: float, until: float,
                        now: float | None = None) -> dict[str, Any]:
    from store.reports import build_report

    thresholds = thresholds_of(config)
    when = time.time() if now is None else now
    off = utc_offset(since)
    result: dict[str, Any] = await centre.store.read_sync(lambda conn: build_report(
        conn, period=period, since=since, until=until, now=when, thresholds=thresholds, utc_offset_s=off))
    return result


async def switch_queue_totals(centre: Any, config: Any, since: float, until: float) -> dict[str, dict[str, Any]]:
    """Per queue, the queue report's raw sums over the calls that arrived in [since, until)."""
    from store.reports import queue_totals

    thresholds = thresholds_of(config)
    result: dict[str, dict[str, Any]] = await centre.store.read_sync(lambda conn: queue_totals(
        conn, since=since, until=until, thresholds=thresholds))
    return result
