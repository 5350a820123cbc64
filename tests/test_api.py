"""The HTTP API through real HTTP on 127.0.0.1 against a real switch process: login and roles,
agent states, customers and work orders, bad input refused without changes, call records and
agent state history written from the switch's events, recordings, voicemails, the CLI tools."""
from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from .conftest import ROOT  # noqa: E402
from .test_api_support import PASSWORDS, Http, db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@pytest.fixture
def api(switch_factory):
    sw, anon = start_api_switch(switch_factory)
    return sw, anon


def test_login_roles_and_sessions(api):
    sw, anon = api
    assert "plain-text password" in sw.log()  # boss: accepted, with a warning
    status, body = anon.get("/api/me")
    assert status == 401 and "not logged in" in body["error"]
    status, body = anon.post("/api/session", {"user": "2001", "password": "wrong"})
    assert status == 401 and body["error"] == "wrong user or password"
    status, body = anon.post("/api/session", {"user": "nobody", "password": "whatever"})
    assert status == 401
    status, body, headers = anon.request("POST", "/api/session", {"user": "2001", "password": PASSWORDS["2001"]})
    assert status == 200 and body["role"] == "agent" and body["agent"]["name"] == "Alice"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # the cookie works as well as the bearer token
    token = cookie.split(";")[0].split("=", 1)[1]
    assert anon.get("/api/me", headers={"Cookie": f"session={token}"})[1]["user"] == "2001"
    # a forged / tampered token is refused
    assert Http(sw.api_port, token[:-2] + "xx").get("/api/me")[0] == 401
    assert Http(sw.api_port, "garbage").get("/api/me")[0] == 401
    assert anon.get("/api/me", headers={"Authorization": "Basic abc"})[0] == 401

    alice, boss = anon.login("2001"), anon.login("boss")
    # agents see only themselves; supervisors everyone
    assert [a["id"] for a in alice.get("/api/agents")[1]] == ["2001"]
    assert sorted(a["id"] for a in boss.get("/api/agents")[1]) == ["2001", "2002"]
    assert alice.post("/api/agents/2002/state", {"action": "ready"})[0] == 403
    assert alice.get("/api/agents/2002/history")[0] == 403
    assert alice.get("/api/reports/queues?since=0&until=2000000000")[0] == 403
    assert boss.get("/api/reports/queues?since=0&until=2000000000")[0] == 200
    status, body = alice.get("/api/records?agent=2002")
    assert status == 403
    # too many failed logins: 429 for that user from this address (others: test_hardening_e2e.py)
    for _ in range(10):
        anon.post("/api/session", {"user": "2002", "password": "bad"})
    assert anon.post("/api/session", {"user": "2002", "password": PASSWORDS["2002"]})[0] == 429
    # logout clears the cookie
    status, _, headers = alice.request("DELETE", "/api/session")
    assert status == 200 and "session=" in headers["Set-Cookie"]


def test_agent_states_and_history(api):
    sw, anon = api
    alice, boss = anon.login("2001"), anon.login("boss")
    # no phone is registered at 1002/1003 here: a ready agent shows "unregistered" (she would not be offered
    # calls), the ACD's own state (history, queue figures) says ready
    status, body = alice.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
    assert status == 200 and body["state"] == "unregistered" and body["registered"] is False, body
    status, body = alice.post("/api/agents/2001/state", {"action": "not_ready", "reason": "lunch"})
    assert body["state"] == "not-ready" and body["reason"] == "lunch"
    assert alice.post("/api/agents/2001/state", {"action": "ready"})[1]["state"] == "unregistered"
    assert boss.post("/api/agents/2002/state", {"action": "login"})[1]["state"] == "unregistered"
    assert boss.post("/api/agents/2002/state", {"action": "logout"})[1]["state"] == "logged-out"
    assert boss.post("/api/agents/9999/state", {"action": "ready"})[0] == 404
    assert alice.post("/api/agents/2001/state", {"action": "dance"})[0] == 400
    # the switch's agent_state events became history in the store
    hist = wait_for(lambda: (lambda h: h if len(h) >= 3 else None)(alice.get("/api/agents/2001/history")[1]))
    assert [h["state"] for h in hist[-3:]] == ["ready", "not-ready", "ready"]
    assert hist[-2]["reason"] == "lunch" and hist[-1]["ended_at"] is None
    queues = alice.get("/api/queues")[1]
    assert queues[0]["queue"] == "support" and queues[0]["agents"]["ready"] == 1
    assert alice.get("/api/calls") == (200, [])
    assert alice.post("/api/calls/nope/hangup", {})[0] == 404
    assert alice.post("/api/calls/nope/transfer", {"target": "1003"})[0] == 404


def test_customers_and_work_orders(api):
    sw, anon = api
    alice = anon.login("2001")
    status, c = alice.post("/api/customers", {"name": "Mrs O'Brien; DROP TABLE customers;--", "address": "1 Main St",
                                              "vip_level": 3, "phones": ["030 1234-567", "+4915112345"]})
    assert status == 201, c
    assert sorted(c["phones"]) == ["+4915112345", "0301234567"] and c["vip_level"] == 3
    cid = c["id"]
    assert alice.get(f"/api/customers/{cid}")[1]["name"] == "Mrs O'Brien; DROP TABLE customers;--"
    page = alice.get("/api/customers?name=mrs%20o'b")[1]
    assert [x["id"] for x in page["items"]] == [cid]
    page = alice.get("/api/customers?number=030")[1]
    assert [x["id"] for x in page["items"]] == [cid]
    assert alice.get("/api/customers?name=%25")[1]["items"] == []           # LIKE wildcard: no match
    assert alice.get("/api/customers?name=x'%20OR%20'1'='1")[1]["items"] == []
    status, body = alice.get("/api/customers")
    assert status == 400 and "exactly one" in body["error"]
    c2 = alice.patch(f"/api/customers/{cid}", {"notes": "prefers mornings"})[1]
    assert c2["notes"] == "prefers mornings"
    assert "040777" in alice.post(f"/api/customers/{cid}/phones", {"number": "040-777", "label": "work"})[1]["phones"]
    assert sorted(alice.delete(f"/api/customers/{cid}/phones/040777")[1]["phones"]) == ["+4915112345", "0301234567"]
    assert alice.delete(f"/api/customers/{cid}/phones/040777")[0] == 404
    # the number belongs to another customer already
    status, body = alice.post("/api/customers", {"phones": ["0301234567"]})
    assert status == 400 and "already belongs" in body["error"]

    status, o = alice.post("/api/orders", {"kind": "repair", "customer_id": cid, "summary": "washing machine leaks"})
    assert status == 201 and o["status"] == "open" and o["created_by"] == "2001"
    oid = o["id"]
    assert alice.post(f"/api/orders/{oid}/assign", {"assignee": "tech-7"})[1]["status"] == "assigned"
    assert alice.post(f"/api/orders/{oid}/status", {"status": "in_progress"})[1]["status"] == "in_progress"
    status, body = alice.post(f"/api/orders/{oid}/status", {"status": "open", "expect": "open"})
    assert status == 409
    assert alice.post(f"/api/orders/{oid}/notes", {"note": "parts ordered"})[0] == 200
    assert alice.patch(f"/api/orders/{oid}", {"details": "drum bearing"})[1]["details"] == "drum bearing"
    assert alice.post(f"/api/orders/{oid}/escalate", {})[0] == 409  # only complaints escalate
    comp = alice.post("/api/orders", {"kind": "complaint", "customer_id": cid, "summary": "late"})[1]
    assert alice.post(f"/api/orders/{comp['id']}/escalate", {"note": "angry"})[1]["escalation"] == 1
    detail = alice.get(f"/api/orders/{oid}")[1]
    assert [e["action"] for e in detail["history"]] == ["created", "assigned", "status", "note"]
    page = alice.get(f"/api/orders?customer_id={cid}&status=in_progress")[1]
    assert [x["id"] for x in page["items"]] == [oid]
    pop = alice.get("/api/screen-pop?number=%2B4915112345")[1]
    assert pop["customer"]["id"] == cid and {x["id"] for x in pop["orders"]} == {oid, comp["id"]}
    new = alice.get("/api/screen-pop?number=0899999")[1]
    assert new["is_new"] is True and new["customer"]["id"] is None
    assert alice.get("/api/orders/99999")[0] == 404
    assert alice.get("/api/customers/99999")[0] == 404
    # pagination: keyset cursors
    for i in range(5):
        alice.post("/api/orders", {"kind": "pickup", "customer_id": cid, "summary": f"p{i}"})
    p1 = alice.get("/api/orders?kind=pickup&limit=3")[1]
    p2 = alice.get(f"/api/orders?kind=pickup&limit=3&after={p1['next']}")[1]
    assert len(p1["items"]) == 3 and len(p2["items"]) == 2 and p2["next"] is None


BAD = [
    ("POST", "/api/customers", {"name": "x", "nickname": "y"}, 400, "unknown field"),
    ("POST", "/api/customers", {"name": 5}, 400, "expected string"),
    ("POST", "/api/customers", {"vip_level": "9"}, 400, "expected integer"),
    ("POST", "/api/customers", {"vip_level": 10}, 400, "at most 9"),
    ("POST", "/api/customers", {"phones": "0301"}, 400, "expected array"),
    ("POST", "/api/customers", {"phones": ["12; DROP TABLE customers"]}, 400, "phones[0]"),
    ("POST", "/api/customers", {"name": "a" * 201}, 400, "too long"),
    ("POST", "/api/customers", [1, 2], 400, "expected object"),
    ("POST", "/api/customers", {"name": "nul\x00"}, 400, "NUL"),
    ("POST", "/api/orders", {"kind": "repair"}, 400, "missing required"),
    ("POST", "/api/orders", {"kind": "bribe", "customer_id": 1}, 400, "must be one of"),
    ("POST", "/api/orders", {"kind": "repair", "customer_id": 1, "created_by": "boss"}, 400, "unknown field"),
    ("POST", "/api/orders", {"kind": "repair", "customer_id": 424242}, 404, "no customer"),
    ("POST", "/api/orders", {"kind": "repair", "customer_id": True}, 400, "expected integer"),
    ("PATCH", "/api/customers/1", {}, 400, "nothing to change"),
    ("GET", "/api/customers/0", None, 400, "at least 1"),
    ("GET", "/api/customers/abc", None, 400, "expected integer"),
    ("GET", "/api/customers/1%20OR%201=1", None, 400, "expected integer"),
    ("GET", "/api/records?since=yesterday", None, 400, "expected number"),
    ("GET", "/api/records?limit=100000", None, 400, "at most 1000"),
    ("GET", "/api/records?limit=5&limit=6", None, 400, "given 2 times"),
    ("GET", "/api/orders?status=open'--", None, 400, "must be one of"),
    ("GET", "/api/orders?after=!!!", None, 400, "does not match"),
    ("GET", "/api/orders?after=AAAA", None, 400, "not a cursor"),
    ("GET", "/api/screen-pop", None, 400, "missing required"),
    ("POST", "/api/calls/x/transfer", {"target": "1002; rm -rf /"}, 400, "does not match"),
    ("POST", "/api/calls/x/context", {"a": 1}, 400, "expected string"),
    ("DELETE", "/api/customers", None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("method,path,body,status,message", BAD, ids=[f"{m} {p} {b!r:.30}" for m, p, b, *_ in BAD])
def test_bad_input_is_refused_with_a_clear_message(api, method, path, body, status, message):
    sw, anon = api
    alice = anon.login("2001")
    before = db_rows(sw, "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM work_orders)")
    got, resp, headers = alice.request(method, path, body)
    assert got == status, resp
    assert headers["Content-Type"].startswith("application/json")
    assert message in resp["error"], resp
    assert resp["status"] == status
    assert db_rows(sw, "SELECT (SELECT COUNT(*) FROM customers), (SELECT COUNT(*) FROM work_orders)") == before


def test_oversized_malformed_and_unauthenticated_bodies(api):
    sw, anon = api
    alice = anon.login("2001")
    status, body, _ = alice.request("POST", "/api/customers", raw=json.dumps({"notes": "x" * 9000}).encode())
    assert status == 413 and "too large" in body["error"]
    status, body, _ = alice.request("POST", "/api/customers", raw=b'{"name": "x",')
    assert status == 400 and "not valid JSON" in body["error"]
    status, body, _ = alice.request("POST", "/api/customers", raw=b'{"vip_level": NaN}')
    assert status == 400
    status, body, _ = alice.request("POST", "/api/customers", raw=b"[" * 4000 + b"]" * 4000)
    assert status == 400
    status, body, _ = alice.request("POST", "/api/customers", raw=b"name=x",
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415
    status, body, _ = alice.request("POST", "/api/customers", raw=b"\xff\xfe")
    assert status == 400
    assert anon.post("/api/customers", {"name": "sneaky"})[0] == 401
    assert db_rows(sw, "SELECT COUNT(*) FROM customers") == [(0,)]
    # the switch still answers afterwards, and never logged a traceback
    assert alice.get("/api/me")[0] == 200
    assert "Traceback" not in sw.log()


def test_openapi_and_desk_are_served(api):
    sw, anon = api
    status, doc = anon.get("/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    status, text, headers = anon.request("GET", "/openapi.yaml")
    assert status == 200 and b"openapi: 3.0.3" in text
    for path in ("/", "/desk"):
        status, html, headers = anon.request("GET", path)
        assert status == 200 and b'src="/static/desk.js"' in html
        assert "default-src 'self'" in headers["Content-Security-Policy"]
    for name in ("desk.js", "login.js"):   # login.js: the login form and API helper every page shares
        status, js, headers = anon.request("GET", f"/static/{name}")
        assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert anon.get("/static/..%2Fapi%2Fapp.py")[0] == 404
    assert anon.get("/static/config.py")[0] == 404


def test_voicemails_from_the_ivr_index(switch_factory, tmp_path):
    """Voicemails in the IVR's JSON-lines index when the switch starts are imported into the store once,
    listed, and can be marked handled once."""
    vm_dir, snd = tmp_path / "vm", tmp_path / "snd"
    vm_dir.mkdir()
    snd.mkdir()
    t0 = time.time() - 60
    entries = [{"file": f"support/msg{i}.wav", "mailbox": "support", "callback_number": "030 1234567",
                "caller": "0301234567", "duration": 7.5 + i, "time": t0 + i, "heard": False} for i in range(2)]
    (vm_dir / "index.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    ivr = f'''[ivr]
default_language = "en"
languages = ["en"]
prompts_dir = "{ROOT / 'prompts'}"
sounds_dir = "{snd}"
voicemail_dir = "{vm_dir}"
numbers = {{ "600" = "main" }}
[ivr.flows.main]
start = "bye"
[ivr.flows.main.nodes.bye]
type = "hangup"
'''
    sw, anon = start_api_switch(switch_factory, agents=False, extra="\n" + ivr)
    boss = anon.login("boss")
    page = boss.get("/api/voicemails")[1]
    assert [v["duration_s"] for v in page["items"]] == [7.5, 8.5]
    assert page["items"][0]["file"] == "support/msg0.wav"  # relative: no absolute path leaves the switch
    assert page["items"][0]["callback_number"] == "0301234567"
    vid = page["items"][0]["id"]
    status, vm = boss.post(f"/api/voicemails/{vid}/handled")
    assert status == 200 and vm["handled_by"] == "boss"
    status, body = boss.post(f"/api/voicemails/{vid}/handled", {})
    assert status == 409 and "already handled" in body["error"]
    assert boss.post("/api/voicemails/9999/handled", {})[0] == 404
    # the index is read once, at start (messages of an earlier version); the IVR files the messages it
    # records in the store itself (test_ivr_e2e), so nothing polls the file
    assert [v["file"].rsplit("/", 1)[1] for v in boss.get("/api/voicemails")[1]["items"]] == ["msg1.wav"]
    assert db_rows(sw, "SELECT COUNT(*) FROM voicemails") == [(2,)]


def test_cli_hash_password_customers_and_records(switch_factory, tmp_path):
    sw, anon = start_api_switch(switch_factory)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cli = [sys.executable, "-m", "softswitch.cli"]
    r = subprocess.run(cli + ["hash-password", "--iterations", "1000"], input="s3cret-pw\n", capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 0 and r.stdout.startswith("pbkdf2_sha256$1000$"), r.stderr
    from softswitch.api.auth import check_password
    assert check_password("s3cret-pw", r.stdout.strip()) and not check_password("other", r.stdout.strip())

    src = tmp_path / "in.csv"
    src.write_text("name,phones,vip_level\nAda Lovelace,030 555;+4917000001,2\nAlan Turing,040 666,0\n")
    r = subprocess.run(cli + ["customers", "import", str(src), "--config", str(sw.config_path)], capture_output=True,
                       text=True, env=env, timeout=30, cwd=tmp_path)
    assert r.returncode == 0 and "2 created" in r.stdout, r.stdout + r.stderr
    alice = anon.login("2001")
    assert alice.get("/api/screen-pop?number=%2B4917000001")[1]["customer"]["name"] == "Ada Lovelace"
    bad = tmp_path / "bad.csv"
    bad.write_text("name,phones\nX,not-a-number\n")
    r = subprocess.run(cli + ["customers", "import", str(bad), "--config", str(sw.config_path)], capture_output=True,
                       text=True, env=env, timeout=30, cwd=tmp_path)
    assert r.returncode == 1 and "line 2" in r.stderr
    out = tmp_path / "out.csv"
    r = subprocess.run(cli + ["customers", "export", str(out), "--config", str(sw.config_path)], capture_output=True,
                       text=True, env=env, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    names = [row["name"] for row in csv.DictReader(out.open())]
    assert names == ["Ada Lovelace", "Alan Turing"]

    r = subprocess.run(cli + ["records", "--since", "2000-01-01", "--config", str(sw.config_path)],
                       capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0][:3] == ["id", "call_ref", "caller"]
    r = subprocess.run(cli + ["records", "--since", "yesterday", "--config", str(sw.config_path)],
                       capture_output=True, text=True, env=env, timeout=30, cwd=tmp_path)
    assert r.returncode == 2 and "not a time" in r.stderr


def test_new_callers_region_and_work_order_dispatch_come_from_config(switch_factory):
    """[store] regions / service_points: a first-time caller's region in the screen pop, and a work order
    for that region goes to its service point."""
    extra = ('[store.regions]\n"+4930" = "Berlin"\n"+4989" = "Munich"\n'
             '[store.service_points]\n"Berlin" = "BER-Mitte"\n')
    sw, anon = start_api_switch(switch_factory, extra=extra)
    alice = anon.login("2001")
    pop = alice.get("/api/screen-pop?number=%2B4930123456")[1]
    assert pop["is_new"] is True and pop["customer"]["region"] == "Berlin"
    cust = alice.post("/api/customers", {"name": "Max", "phones": ["+4930123456"]})[1]
    order = alice.post("/api/orders", {"kind": "pickup", "customer_id": cust["id"], "summary": "parcel"})[1]
    assert order["service_point"] == "BER-Mitte"


def test_queue_report_uses_each_queues_own_service_level_threshold(switch_factory):
    """GET /api/reports/queues: the service level of each queue against its configured threshold (as the
    live figures), time-outs apart from abandons; sl_threshold_s asks for one threshold for all."""
    fast = '[[acd.queues]]\nname = "fast"\nskill = "support"\nservice_level_threshold = 5\n'
    sw, anon = start_api_switch(switch_factory, extra=fast)
    boss = anon.login("boss")
    path = Path(sw.config_path).parent / "var" / "softswitch.db"
    conn = sqlite3.connect(path, timeout=10)
    with conn:  # (the switch's store has the file open in WAL mode: another writer waits its turn)
        for queue, wait, disposition in (("support", 10, "answered"), ("support", 25, "answered"),
                                         ("fast", 4, "answered"), ("fast", 10, "answered"), ("fast", 30, "abandoned"),
                                         ("fast", 60, "timeout")):
            answered = 1_700_000_000 + wait if disposition == "answered" else None
            conn.execute("INSERT INTO call_records (caller, queue, arrived_at, answered_at, ended_at, wait_s, talk_s, "
                         "disposition) VALUES ('1001', ?, 1700000000, ?, 1700000100, ?, ?, ?)",
                         (queue, answered, wait, 100 - wait if answered else None, disposition))
    conn.close()
    status, rows = boss.get("/api/reports/queues?since=1600000000&until=1800000000")
    assert status == 200
    got = {r["queue"]: (r["sl_threshold_s"], r["answered_within"], r["abandoned"], r["timed_out"],
                        r["service_level_pct"]) for r in rows}
    assert got == {"support": (20.0, 1, 0, 0, 50.0), "fast": (5.0, 1, 1, 1, 33.33)}
    status, rows = boss.get("/api/reports/queues?since=1600000000&until=1800000000&sl_threshold_s=30")
    assert {r["queue"]: (r["sl_threshold_s"], r["answered_within"]) for r in rows} == {
        "support": (30.0, 2), "fast": (30.0, 2)}
