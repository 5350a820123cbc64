"""Campaigns, callback tasks, result codes and the do-not-call list through the HTTP API of a real switch
process; the dialler's state in its SQLite file survives kill -9."""
from __future__ import annotations

import signal
import socket

import pytest

from .conftest import DOMAIN, free_port, requires_sipp, sipp, start_switch, wait_for, wait_udp_bound
from .test_api_support import Http, api_config, db_rows, start_api_switch

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

OUTBOUND = '''
[outbound]
caller_id = "4008001234"
timezone = "Asia/Shanghai"
calling_hours = ["daily 00:00-24:00"]
tick = 0.2
[[outbound.campaigns]]
name = "followup"
mode = "progressive"
queue = "support"
start = false
'''


def test_campaign_contacts_callbacks_result_codes_and_dnc(switch_factory):
    sw, anon = start_api_switch(switch_factory, extra=OUTBOUND)
    alice, boss = anon.login("2001"), anon.login("boss")
    contacts = [{"number": f"1380013{i:04d}", "name": f"C{i}", "key": f"wo-{i}", "data": {"order": i}}
                for i in range(5)]
    status, body = boss.post("/api/outbound/campaigns/followup/contacts", {"contacts": contacts})
    assert status == 200 and body["added"] == 5 and body["figures"]["remaining"] == 5, body
    status, body = boss.post("/api/outbound/campaigns/followup/contacts",
                             {"csv": "number,name,key,product\n13800139999,Wang,wo-9,kettle\n13800130000,,wo-0,\n"})
    assert status == 200 and body["added"] == 1, body                      # wo-0 was added already
    # bad input: clear answers, nothing added
    status, body = boss.post("/api/outbound/campaigns/followup/contacts",
                             {"contacts": [{"number": "13800131111"}, {"number": "not a number"}]})
    assert status == 400 and body["field"] == "contacts[1].number", body
    status, body = boss.post("/api/outbound/campaigns/followup/contacts",
                             {"contacts": [{"number": "13800131111", "timezone": "Mars/Base"}]})
    assert status == 400 and "time zone" in body["error"], body
    assert boss.post("/api/outbound/campaigns/nope/contacts", {"contacts": contacts})[0] == 404
    assert alice.post("/api/outbound/campaigns/followup/contacts", {"contacts": contacts})[0] == 403
    status, camps = alice.get("/api/outbound/campaigns")
    followup = next(c for c in camps if c["name"] == "followup")
    assert followup["figures"]["contacts"] == 6 and followup["figures"]["running"] == 0
    # a web callback request: a task in the queue, persisted
    status, task = alice.post("/api/outbound/callbacks", {"queue": "support", "number": "139 0013 0001",
                                                        "note": "about my order"})
    assert status == 201 and task["number"] == "13900130001" and task["kind"] == "web", task
    assert [t["id"] for t in alice.get("/api/outbound/callbacks")[1]] == [task["id"]]
    assert alice.post("/api/outbound/callbacks", {"queue": "nope", "number": "13900130001"})[0] == 400
    # the agent's result code: "refused" finishes the contact and puts the number on the do-not-call list
    first = min(r[0] for r in db_rows(sw, "SELECT id FROM outbound_contacts WHERE campaign = 'followup'"))
    status, c = alice.post(f"/api/outbound/contacts/{first}/result", {"result": "refused"})
    assert status == 200 and c["state"] == "done" and c["last_result"] == "refused", c
    assert alice.post(f"/api/outbound/contacts/{first}/result", {"result": "dnc"})[0] == 400
    assert alice.post("/api/outbound/contacts/999999/result", {"result": "busy"})[0] == 404
    wait_for(lambda: db_rows(sw, "SELECT number FROM outbound_dnc") == [("13800130000",)])
    assert boss.post("/api/outbound/dnc", {"number": "13800130001"})[0] == 200
    status, c = alice.get(f"/api/outbound/contacts/{first}")
    assert status == 200 and c["history"] == [] and c["data"] == {"order": 0}
    rows = db_rows(sw, "SELECT state, COUNT(*) FROM outbound_contacts GROUP BY state ORDER BY state")
    assert rows == [("done", 1), ("waiting", 6)], rows


@requires_sipp
def test_kill_9_during_a_call_loses_no_task_and_redials_nothing_inside_its_retry_window(switch_factory, tmp_path):
    """A progressive attempt is in progress (the agent, a SIPp phone, answered; the customer, another, rings)
    when the switch is killed. After the restart the interrupted attempt counts: its contact is not dialled
    again inside its retry window while the next contact is; the callback task is still there."""
    extra = OUTBOUND.replace("start = false", "start = true") + """
[outbound.retry.no_answer]
interval = 3600
"""
    exts = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}
    port = free_port()
    sw = start_switch(tmp_path, exts, extra + api_config(free_port(socket.SOCK_STREAM)), port=port)
    try:
        agent_port, customer_port = free_port(), free_port()
        agent = sipp("callee.xml", sw.addr, "-p", str(agent_port), cwd=tmp_path, background=True, timeout=60)
        customer = sipp("callee_cancel.xml", sw.addr, "-p", str(customer_port), cwd=tmp_path, background=True,
                        timeout=60)
        wait_udp_bound(agent_port)
        wait_udp_bound(customer_port)
        for number, p in (("1002", agent_port), ("1003", customer_port)):
            r = sipp("register.xml", sw.addr, "-s", number, "-au", number, "-ap", exts[number], "-key", "domain",
                     DOMAIN, "-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(p), "-key", "expires",
                     "600", cwd=tmp_path)
            assert r.returncode == 0, r.stdout
        api_port = int(sw.wait_log(r"api listening on http://127\.0\.0\.1:(\d+)").group(1))
        boss = Http(api_port).login("boss")
        boss.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
        assert boss.post("/api/outbound/callbacks", {"queue": "support", "number": "13900130001",
                                                     "due": 4_000_000_000})[0] == 201
        assert boss.post("/api/outbound/campaigns/followup/contacts", {"contacts": [{"number": "1003"}]})[0] == 200
        sw.wait_log(r"agent 2001 on the line; ringing 1003", timeout=20)
        assert db_rows(sw, "SELECT COUNT(*) FROM outbound_attempts WHERE ended_at IS NULL") == [(1,)]
    finally:
        sw.proc.send_signal(signal.SIGKILL)
        sw.proc.wait()
    sw2, anon2 = start_api_switch(switch_factory, extensions=exts, extra=extra)
    sw2.wait_log(r"dialler: 2 contact\(s\) and callback task\(s\) loaded, 1 interrupted attempt")
    boss2 = anon2.login("boss")
    assert boss2.post("/api/outbound/campaigns/followup/contacts", {"contacts": [{"number": "1001"}]})[0] == 200
    wait_for(lambda: db_rows(sw2, "SELECT COUNT(*) FROM outbound_attempts") == [(2,)], timeout=20)
    rows = db_rows(sw2, "SELECT a.number, a.result, c.next_due - a.started_at FROM outbound_attempts a "
                        "JOIN outbound_contacts c ON c.id = a.contact_id ORDER BY a.id")
    assert rows[0][:2] == ("1003", "interrupted") and rows[0][2] >= 3600 - 1, rows
    assert rows[1][0] == "1001"                                          # the next contact was dialled
    camps = {c["name"]: c["figures"] for c in boss2.get("/api/outbound/campaigns")[1]}
    assert camps["callbacks"]["remaining"] == 1, camps
    for proc in (agent, customer):
        proc.kill()
        proc.communicate()
