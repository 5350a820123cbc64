"""The report page's charts: SVG drawn on the server by pygal (a well-kept pure-Python charting library,
installed by bin/setup from setup.cfg; nothing is copied into the repository and the browser runs no
chart code). Each function takes the report (``store.reports.build_report``) and returns an SVG document.

The SVG carries no script (pygal's tooltip script and its config are left out): the page shows it as an ``<img>``, which
the desk's Content-Security-Policy allows, and the chart reads the same rows as the JSON and the exports.
"""
from __future__ import annotations

import re
from typing import Any, Callable

import pygal
from pygal.style import Style

__all__ = ["CHARTS", "chart"]

STYLE = Style(background="white", plot_background="white", foreground="#222", foreground_strong="#000",
              foreground_subtle="#666", colors=("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
                                                "#e377c2", "#7f7f7f"), font_family="sans-serif")
OPTIONS: dict[str, Any] = {"style": STYLE, "js": [], "width": 800, "height": 360, "legend_at_bottom": True,
                           "print_values": False, "disable_xml_declaration": False, "no_data_text": "no data"}


def _periods(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({r["period"] for r in rows})


def calls_by_queue(report: dict[str, Any]) -> Any:
    """Offered calls per queue and period, answered and abandoned stacked."""
    rows = report["queues"]
    c = pygal.StackedBar(title="Calls per queue: answered / abandoned / other", x_label_rotation=20, **OPTIONS)
    keys = [(r["period"], r["queue"]) for r in rows]
    c.x_labels = [f"{q} {p}" for p, q in keys]
    c.add("answered", [r["answered"] for r in rows])
    c.add("abandoned", [r["abandoned"] for r in rows])
    c.add("other", [r["offered"] - r["answered"] - r["abandoned"] for r in rows])
    return c


def service_level(report: dict[str, Any]) -> Any:
    """Service level (%) per queue over the periods."""
    rows = report["queues"]
    periods = _periods(rows)
    c = pygal.Line(title="Service level %", range=(0, 100), **OPTIONS)
    c.x_labels = periods
    for q in sorted({r["queue"] for r in rows}):
        by = {r["period"]: r["service_level_pct"] for r in rows if r["queue"] == q}
        c.add(q, [by.get(p) for p in periods])
    return c


def handle_time(report: dict[str, Any]) -> Any:
    """AHT (talk + hold + wrap-up), the average hold in it, and ASA per queue, seconds."""
    rows = report["queues"]
    c = pygal.Bar(title="Average handle time, hold and speed of answer (s)", x_label_rotation=20, **OPTIONS)
    c.x_labels = [f"{r['queue']} {r['period']}" for r in rows]
    c.add("AHT", [r["aht_s"] for r in rows])
    c.add("average hold", [r["avg_hold_s"] for r in rows])
    c.add("ASA", [r["asa_s"] for r in rows])
    c.add("abandoned after", [r["abandoned_wait_s"] for r in rows])
    return c


def satisfaction(report: dict[str, Any]) -> Any:
    """Survey scores 1-5, all queues of the range together."""
    totals = {str(s): 0 for s in range(1, 6)}
    for r in report["queues"]:
        for k, v in r["satisfaction"].items():
            totals[k] += v
    c = pygal.Bar(title="Satisfaction (survey score)", **OPTIONS)
    c.x_labels = list(totals)
    c.add("calls", list(totals.values()))
    return c


def agent_states(report: dict[str, Any]) -> Any:
    """Hours per state per agent over the range (occupancy in the agent's label)."""
    rows = report["agents"]
    agents = sorted({r["agent"] for r in rows})
    states = sorted({s for r in rows for s in r["state_s"] if s not in ("logged-out", "unknown")})
    c = pygal.HorizontalStackedBar(title="Agent time by state (h)", **OPTIONS)
    c.x_labels = agents
    for s in states:
        c.add(s, [round(sum(r["state_s"].get(s, 0.0) for r in rows if r["agent"] == a) / 3600, 2) for a in agents])
    return c


def work_orders(report: dict[str, Any]) -> Any:
    """Work orders created, by kind."""
    by: dict[str, int] = {}
    for r in report["orders"]:
        by[r["kind"]] = by.get(r["kind"], 0) + r["created"]
    c = pygal.Pie(title=f"Work orders by kind ({len(report['overdue'])} overdue now)", **OPTIONS)
    for k, v in sorted(by.items()):
        c.add(k, v)
    return c


CHARTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "calls": calls_by_queue, "service_level": service_level, "handle_time": handle_time,
    "satisfaction": satisfaction, "agent_states": agent_states, "work_orders": work_orders,
}


def chart(name: str, report: dict[str, Any]) -> bytes:
    """The chart ``name`` of ``report`` as an SVG document (bytes)."""
    if name not in CHARTS:
        raise KeyError(name)
    out: bytes = CHARTS[name](report).render()
    return re.sub(rb"<script.*?</script>", b"", out, flags=re.S)   # pygal's config script: not needed for an <img>
