"""A progressive campaign of 200 contacts run to completion by a real switch process: SIPp agents' phones
(answering), and SIPp carriers behind trunks whose answers are scripted per dial rule: the customer answers
(and hangs up), is busy (486), never answers (rings until the switch gives up) or is unreachable (a trunk
nobody listens on). Retry rules accelerated to 1 s so the run is short; every count is exact."""
from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from .conftest import DOMAIN, SIPP_DIR, free_port, requires_sipp, sipp, sipp_ok, wait_udp_bound, write_config
from .test_api_support import Http, api_config, db_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow, requires_sipp, pytest.mark.timeout(420)]

AGENTS = 8
KINDS = {"0101": "answer", "0102": "busy", "0103": "noanswer", "0104": "dead"}


def number(i: int) -> str:
    """40 % answer, 20 % busy, 30 % no answer, 10 % unreachable."""
    d = i % 10
    prefix = "0101" if d < 4 else "0102" if d < 6 else "0103" if d < 9 else "0104"
    return f"{prefix}{i:07d}"


def national(n: str) -> str:
    return "0" + n[3:] if n.startswith("+86") else n


def config(ports: dict[str, int], api_port: int) -> str:
    text = '[numbering]\ncountry_code = "86"\n'
    for prefix, kind in KINDS.items():
        text += f'''
[[trunks]]
name = "{kind}"
host = "127.0.0.1"
port = {ports[kind]}
match = ["127.0.0.1:{ports[kind]}"]
options_interval = 0
progress_timeout = 1
[[dial_rules]]
prefix = "{prefix}"
trunks = ["{kind}"]
'''
    text += '[acd]\n[[acd.skills]]\nname = "out"\n'
    for a in range(AGENTS):
        text += f'[[acd.agents]]\nid = "{3101 + a}"\nname = "Agent {a}"\nextension = "{1101 + a}"\nskills = {{ out = 5 }}\n'
    text += '''[[acd.queues]]
name = "out"
skill = "out"
ring_time = 10
wrapup_time = 0
announce_agent = false
[outbound]
caller_id = "4008001234"
timezone = "Asia/Shanghai"
calling_hours = ["daily 00:00-24:00"]
max_attempts = 3
tick = 0.1
[outbound.retry.busy]
interval = 1
per_day = 100
[outbound.retry.no_answer]
interval = 1
per_day = 100
[outbound.retry.unreachable]
interval = 1
per_day = 100
[[outbound.campaigns]]
name = "survey"
mode = "progressive"
queue = "out"
start = false
'''
    return text + api_config(api_port, agents=False).replace("max_body = 8192", "max_body = 1048576")


def uas(scenario: str | Path, sw_addr: str, port: int, tmp: Path) -> subprocess.Popen:
    proc = sipp(scenario, sw_addr, "-p", str(port), "-m", "100000", cwd=tmp, background=True, timeout=400)
    wait_udp_bound(port)
    return proc


def test_campaign_of_200_runs_to_completion_with_exactly_the_expected_attempts(switch_factory, tmp_path):
    exts = {str(1101 + a): f"secret-{1101 + a}" for a in range(AGENTS)}
    ports = {k: free_port() for k in ("answer", "busy", "noanswer", "dead", "agents")}
    api_port = free_port()
    sip_port = free_port()
    cfg = tmp_path / "campaign.toml"
    write_config(cfg, sip_port, exts, config(ports, api_port))
    text = cfg.read_text().replace(f'domain = "{DOMAIN}"\n', f'domain = "{DOMAIN}"\nring_timeout = 1\n', 1)
    hangup = tmp_path / "customer_answers.xml"
    hangup.write_text((SIPP_DIR / "callee.xml").read_text().replace("<!-- HANGUP -->", '<nop next="hangup"/>'))
    procs = [uas(SIPP_DIR / "callee.xml", f"127.0.0.1:{sip_port}", ports["agents"], tmp_path),
             uas(hangup, f"127.0.0.1:{sip_port}", ports["answer"], tmp_path),
             uas(SIPP_DIR / "callee_busy.xml", f"127.0.0.1:{sip_port}", ports["busy"], tmp_path),
             uas(SIPP_DIR / "callee_cancel.xml", f"127.0.0.1:{sip_port}", ports["noanswer"], tmp_path)]
    try:
        sw = switch_factory(exts, config_text=text, port=sip_port)
        sw.wait_log(r"api listening")
        for ext, pw in exts.items():
            sipp_ok(sipp("register.xml", sw.addr, "-s", ext, "-au", ext, "-ap", pw, "-key", "domain", DOMAIN,
                         "-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(ports["agents"]),
                         "-key", "expires", "600", cwd=tmp_path), tmp_path)
        boss = Http(api_port).login("boss")
        for a in range(AGENTS):
            status, body = boss.post(f"/api/agents/{3101 + a}/state", {"action": "login", "extension": str(1101 + a)})
            assert status == 200 and body["state"] == "ready", body
        status, body = boss.post("/api/outbound/campaigns/survey/contacts",
                                 {"contacts": [{"number": number(i), "key": f"c{i}"} for i in range(200)]})
        assert status == 200 and body["added"] == 200, body
        assert boss.post("/api/outbound/campaigns/survey/state", {"running": True})[0] == 200
        deadline = time.monotonic() + 360
        figures: dict = {}
        while time.monotonic() < deadline:
            figures = next(c["figures"] for c in boss.get("/api/outbound/campaigns")[1] if c["name"] == "survey")
            if figures["remaining"] == 0:
                break
            time.sleep(0.2)   # a poll: the figures come from one small query
        assert figures["remaining"] == 0, (figures, sw.log()[-3000:])
        # exactly: one attempt for each customer who answers, three (max_attempts) for every other
        assert figures["attempts"] == 80 + 3 * 120 and figures["reached"] == 80, figures
        rows = db_rows(sw, "SELECT c.number, a.result FROM outbound_attempts a "
                           "JOIN outbound_contacts c ON c.id = a.contact_id")
        rows = [(national(n), r) for n, r in rows]   # stored in E.164 (+86...), dialled nationally
        per_number = Counter(n for n, _ in rows)
        results = {KINDS[n[:4]]: set() for n, _ in rows}
        for n, r in rows:
            results[KINDS[n[:4]]].add(r)
        assert all(per_number[number(i)] == (1 if i % 10 < 4 else 3) for i in range(200)), per_number
        assert results == {"answer": {"completed"}, "busy": {"busy"}, "noanswer": {"no_answer"},
                           "dead": {"unreachable"}}, results
        done = dict(db_rows(sw, "SELECT last_result, COUNT(*) FROM outbound_contacts GROUP BY last_result"))
        assert done == {"completed": 80, "exhausted": 120}, done
        # progressive: no customer was rung before an agent was on the line (the switch rings the customer
        # only on that path: one "on the line; ringing" per attempt, after the agent's answer)
        log = sw.log()
        on_line = re.findall(r"call (\w+): agent (\d+) on the line; ringing (\+?\d+)", log)
        assert len(on_line) == 440
        offered = set(re.findall(r"call (\w+): ob-\d+ offered to agent", log))
        assert {c for c, _, _ in on_line} <= offered
        # the carriers saw each customer exactly as often as dialled (the dead trunk sees nothing)
        for kind, expected in (("customer_answers", 80), ("callee_busy", 120), ("callee_cancel", 180)):
            msgs = "".join(f.read_text(errors="replace") for f in tmp_path.glob(f"{kind}*_messages.log"))
            invites = set(re.findall(r"INVITE sip:[^\n]*\n(?:.*\n)*?Call-ID: ([^\r\n]+)", msgs))
            assert len(invites) == expected, (kind, len(invites))
        calls = db_rows(sw, "SELECT COUNT(*) FROM call_records WHERE agent LIKE '31%'")
        assert calls[0][0] >= 440   # every attempt has its call record (with its agent)
    finally:
        for p in procs:
            p.kill()
            p.communicate()
