"""The switch's report: ``store.reports.build_report`` with the switch's settings (each queue's service-level
threshold, local day boundaries), run on the store's reader thread."""
from __future__ import annotations

import time
from typing import Any


def utc_offset(at: float) -> int:
    """The local time's offset from UTC at ``at`` (seconds; DST-aware)."""
    return int(time.localtime(at).tm_gmtoff)


async def switch_report(centre: Any, config: Any, period: str, since: float, until: float,
                        now: float | None = None) -> dict[str, Any]:
    from store.reports import build_report

    acd = getattr(config, "acd", None)
    thresholds = {q.name: float(q.service_level_threshold) for q in acd.queues} if acd is not None else {}
    when = time.time() if now is None else now
    off = utc_offset(since)
    result: dict[str, Any] = await centre.store.read_sync(lambda conn: build_report(
        conn, period=period, since=since, until=until, now=when, thresholds=thresholds, utc_offset_s=off))
    return result
