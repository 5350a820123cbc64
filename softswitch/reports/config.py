"""``[reports]``: where and when the nightly export is written."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from base.checks import one_of
from base.schema import PATH, STRING, Array, Invalid, Key, Table


@dataclass(frozen=True)
class ReportsConfig:
    export_dir: Path | None = None          # None: no nightly export
    export_time: str = "00:15"              # local time the previous day (week on Mondays, month on the 1st) is written
    formats: list[str] = field(default_factory=lambda: ["csv", "xlsx"])


def hh_mm(v: str) -> str:
    m = re.fullmatch(r"([01][0-9]|2[0-3]):([0-5][0-9])", v)
    if not m:
        raise Invalid(f'expected "HH:MM" (24-hour local time), got "{v}"')
    return v


REPORTS = Table(ReportsConfig, {
    "export_dir": Key(PATH, None),
    "export_time": Key(STRING, "00:15", (hh_mm,)),
    "formats": Key(Array(STRING, each=(one_of("csv", "xlsx", "json"),), min_len=1), ["csv", "xlsx"]),
})
