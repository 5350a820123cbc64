"""The report page in headless Chromium: the scripted day of test_reports in the switch's database; a supervisor
opens /reports for that day; the page shows the hand-computed figures and its six charts load (SVG drawn by
the server); the JSON, the CSV and the XLSX downloads say the same; an agent may not see reports."""
from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import io
import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("playwright.sync_api")

from .test_api_support import start_api_switch  # noqa: E402
from .test_reports import D, scripted_day  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_report_page_charts_and_downloads_of_a_scripted_day(switch_factory, browser_page, tmp_path):
    page = browser_page
    (tmp_path / "var").mkdir()

    async def prepare() -> None:
        store, centre, _ = await scripted_day(tmp_path / "var" / "softswitch.db")
        await store.close()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:   # (Playwright's loop runs in this thread)
        pool.submit(asyncio.run, prepare()).result()
    # queue "support" with the default 20 s threshold; the nightly export on
    sw, anon = start_api_switch(switch_factory, extra='[reports]\nexport_dir = "exports"\nexport_time = "00:15"\n')
    sw.wait_log(r"reports: nightly export to \S+/exports at 00:15 \(csv, xlsx\)")
    boss, agent = anon.login("boss"), anon.login("2001")
    qs = f"since={int(D)}&until={int(D + 86400)}&period=day"
    assert agent.get(f"/api/reports?{qs}")[0] == 403
    status, rep = boss.get(f"/api/reports?{qs}")
    assert status == 200, rep
    s = next(r for r in rep["queues"] if r["queue"] == "support")
    assert (s["offered"], s["answered"], s["abandoned"], s["service_level_pct"], s["asa_s"], s["aht_s"]) == (
        6, 3, 2, 40.0, 15.0, 146.67)
    status, body, headers = boss.request("GET", f"/api/reports/export?format=csv&section=queues&{qs}")
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    row = next(r for r in csv.DictReader(io.StringIO(body.decode())) if r["queue"] == "support")
    assert row["service_level_pct"] == "40.0" and row["aht_s"] == "146.67"
    status, body, headers = boss.request("GET", f"/api/reports/export?format=xlsx&{qs}")
    assert status == 200 and body[:2] == b"PK" and "spreadsheetml" in headers["Content-Type"]
    status, body, headers = boss.request("GET", f"/api/reports/charts/service_level?{qs}")
    assert status == 200 and headers["Content-Type"] == "image/svg+xml" and b"<svg" in body

    page.goto(f"http://127.0.0.1:{sw.api_port}/reports?since=2026-03-02&until=2026-03-02&period=day")
    page.fill("#login-user", "boss")
    page.fill("#login-password", "boss-pw-333")
    page.click("#login-button")
    page.wait_for_selector("body[data-loaded='1']")
    table = page.inner_text("#t-queues")
    assert "support" in table and "146.67" in table and "40" in table
    assert "hold_s" in table and "avg_hold_s" in table and "25" in table   # hold apart: 75 s over 3 answered calls
    assert "renewals" in page.inner_text("#t-campaigns")
    charts = page.locator("img[data-chart]")
    deadline = time.monotonic() + 15
    while not all(charts.evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")):
        assert time.monotonic() < deadline, "the charts did not load"
        time.sleep(0.1)   # (wait_for_function evaluates a string: the page's CSP forbids eval)
    assert page.locator("img[data-chart]").count() == 6
    assert "format=xlsx" in (page.get_attribute("#xlsx", "href") or "")
