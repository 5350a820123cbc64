"""The work-order loop end to end: a real switch with ``[work_orders]`` checking every second; a complaint
created already past its due time is announced to the supervisor's desk WebSocket (``order_overdue``), then
escalated to the named supervisor (``order_escalated``, a note in its history, its level raised) and shown
as a wallboard alarm; on the /orders page in headless Chromium the supervisor filters the overdue orders,
assigns it and closes it, and the alarm goes away."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("playwright.sync_api")
pytest.importorskip("websockets.sync.client")

from .test_api_calls import Socket  # noqa: E402
from .test_api_support import start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_overdue_alert_escalation_wallboard_and_the_orders_page(switch_factory, browser_page):
    page = browser_page
    sw, anon = start_api_switch(switch_factory, extra='[work_orders]\noverdue_check = 1\nescalate_after = 2\n'
                                                      'escalate_to = "boss"\n')
    boss = anon.login("boss")
    desk = Socket(sw.api_port, boss.token)
    try:
        cust = boss.post("/api/customers", {"name": "Ada", "phones": ["13800138000"]})[1]
        status, o = boss.post("/api/orders", {"kind": "complaint", "customer_id": cust["id"], "summary": "late parcel",
                                              "due_at": time.time() - 1})
        assert status == 201, o
        alert = desk.next("order_overdue", timeout=10, order=o["id"])
        assert alert["kind"] == "complaint" and alert["overdue_s"] >= 1
        esc = desk.next("order_escalated", timeout=10, order=o["id"])
        assert esc["to"] == "boss"
    finally:
        desk.close()
    detail = boss.get(f"/api/orders/{o['id']}")[1]
    assert detail["order"]["escalation"] == 1
    assert any(h["actor"] == "overdue-watch" and "escalated to boss" in h["note"] for h in detail["history"])
    alarms = boss.get("/api/wallboard")[1]["alarms"]
    assert any(a["kind"] == "overdue_orders" and a["level"] == "alarm" for a in alarms), alarms
    [row] = boss.get("/api/overdue-orders")[1]
    assert row["id"] == o["id"] and row["escalated_to"] == "boss"

    page.goto(f"http://127.0.0.1:{sw.api_port}/orders")
    page.fill("#login-user", "boss")
    page.fill("#login-password", "boss-pw-333")
    page.click("#login-button")
    page.wait_for_selector(f'tr[data-order="{o["id"]}"].overdue')
    page.check("#f-overdue")
    page.click("#f-apply")
    page.wait_for_selector(f'tr[data-order="{o["id"]}"] td.due:has-text("escalated to boss")')
    page.fill(f'tr[data-order="{o["id"]}"] input', "tech-7")
    page.click(f'tr[data-order="{o["id"]}"] button[data-action="assign"]')
    page.wait_for_selector(f'tr[data-order="{o["id"]}"] td.assignee:text-is("tech-7")')
    page.select_option("#f-status", "all")
    page.uncheck("#f-overdue")
    page.click("#f-apply")
    page.click(f'tr[data-order="{o["id"]}"] button[data-action="close"]')
    page.wait_for_selector(f'tr[data-order="{o["id"]}"] td.status:text-is("closed")')
    assert boss.get(f"/api/orders/{o['id']}")[1]["order"]["status"] == "closed"
    wait_for(lambda: not any(a["kind"] == "overdue_orders" for a in boss.get("/api/wallboard")[1]["alarms"]),
             timeout=10)
