"""The nightly export: at ``[reports] export_time`` (local) the previous day's report is written to
``[reports] export_dir`` — on Mondays also the previous week's, on the 1st the previous month's — as
``report-<period>-<first day>.xlsx`` and ``.csv`` files (one per section), written to a temporary name and
renamed, so a tool collecting the folder never reads half a file. A run that finds its files already there
(a restart after the export) writes nothing again.

``due(today)`` and ``next_run(now)`` are pure (dates in, dates out); ``NightlyExport`` is the asyncio edge.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from .export import to_csv, to_xlsx

log = logging.getLogger("softswitch.reports")

__all__ = ["NightlyExport", "due", "next_run", "write_report"]


def due(today: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """(period, first day, day after the last) of the reports to write on ``today``."""
    out = [("day", today - dt.timedelta(days=1), today)]
    if today.weekday() == 0:
        out.append(("week", today - dt.timedelta(days=7), today))
    if today.day == 1:
        first = (today - dt.timedelta(days=1)).replace(day=1)
        out.append(("month", first, today))
    return out


def next_run(now: dt.datetime, at: str) -> dt.datetime:
    """The next local time ``at`` ("HH:MM") after ``now`` (a naive local datetime)."""
    h, m = (int(x) for x in at.split(":"))
    run = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return run if run > now else run + dt.timedelta(days=1)


def local_ts(day: dt.date) -> float:
    """Unix time of local midnight starting ``day``."""
    return time.mktime((day.year, day.month, day.day, 0, 0, 0, 0, 0, -1))


def write_report(folder: Path, name: str, report: dict[str, Any], formats: list[str]) -> list[Path]:
    """The report's files in ``folder`` (created), each written whole then renamed into place."""
    from store.reports import SECTIONS

    folder.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Path, bytes]] = []
    if "xlsx" in formats:
        files.append((folder / f"{name}.xlsx", to_xlsx(report)))
    if "csv" in formats:
        files += [(folder / f"{name}-{s}.csv", to_csv(report, s).encode("utf-8")) for s in SECTIONS]
    if "json" in formats:
        files.append((folder / f"{name}.json", json.dumps(report, ensure_ascii=False, indent=1).encode()))
    for path, data in files:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return [p for p, _ in files]


class NightlyExport:
    """Sleeps until the next export time, builds the due reports (``build(period, since, until)``, a
    coroutine) and writes them in a worker thread."""

    def __init__(self, folder: Path, at: str, formats: list[str],
                 build: Callable[[str, float, float], Awaitable[dict[str, Any]]]):
        self.folder, self.at, self.formats, self.build = folder, at, list(formats), build
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())
        log.info("reports: nightly export to %s at %s (%s)", self.folder, self.at, ", ".join(self.formats))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            now = dt.datetime.now()
            await asyncio.sleep(max(1.0, (next_run(now, self.at) - now).total_seconds()))
            try:
                await self.run(dt.date.today())
            except Exception:
                log.exception("reports: nightly export failed")

    async def run(self, today: dt.date) -> list[Path]:
        """Write the reports due on ``today`` (also called by hand and by tests); returns the files written."""
        written: list[Path] = []
        for period, first, end in due(today):
            name = f"report-{period}-{first.isoformat()}"
            if any(self.folder.glob(f"{name}*")):
                continue   # already written (a restart after the export)
            report = await self.build(period, local_ts(first), local_ts(end))
            files = await asyncio.get_running_loop().run_in_executor(
                None, write_report, self.folder, name, report, self.formats)
            log.info("reports: %s written (%d file(s))", name, len(files))
            written += files
        return written
