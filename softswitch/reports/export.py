"""A report (``store.reports.build_report``) as CSV (one section) or XLSX (a sheet per section).

Nested figures (dispositions, satisfaction distribution, agent state time, campaign results) become
columns of their own (``satisfaction.5``, ``state_s.on-call``), so a spreadsheet can sum them. XLSX is
written by XlsxWriter (well-kept, pure Python, no template or macro: a plain workbook any office suite opens).
"""
from __future__ import annotations

import csv
import io
from typing import Any

from store.reports import SECTIONS

__all__ = ["flat_rows", "to_csv", "to_xlsx"]


def flat_rows(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) with nested dicts spread into ``parent.key`` columns, in first-seen order."""
    cols: dict[str, None] = {}
    flat: list[dict[str, Any]] = []
    for r in rows:
        f: dict[str, Any] = {}
        for k, v in r.items():
            if isinstance(v, dict):
                for k2, v2 in v.items():
                    f[f"{k}.{k2}"] = v2
            else:
                f[k] = v
        for k in f:
            cols.setdefault(k, None)
        flat.append(f)
    names = list(cols)
    return names, [[f.get(c) for c in names] for f in flat]


def to_csv(report: dict[str, Any], section: str) -> str:
    if section not in SECTIONS:
        raise ValueError(f"section must be one of {', '.join(SECTIONS)}")
    cols, rows = flat_rows(report[section])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    return buf.getvalue()


def _cell(v: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula (=, +, -, @ first) is quoted with '."""
    if v is None:
        return ""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def to_xlsx(report: dict[str, Any]) -> bytes:
    import xlsxwriter

    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
                                   "strings_to_urls": False})
    bold = wb.add_format({"bold": True})
    about = wb.add_worksheet("report")
    for i, (k, v) in enumerate([("period", report["period"]), ("since", report["since"]), ("until", report["until"]),
                                ("utc_offset_s", report["utc_offset_s"]), ("generated_at", report["generated_at"])]):
        about.write(i, 0, k, bold)
        about.write(i, 1, v)
    for section in SECTIONS:
        ws = wb.add_worksheet(section)
        cols, rows = flat_rows(report[section])
        ws.write_row(0, 0, cols, bold)
        for i, r in enumerate(rows, start=1):
            ws.write_row(i, 0, ["" if v is None else v for v in r])
        ws.freeze_panes(1, 0)
    wb.close()
    return buf.getvalue()
