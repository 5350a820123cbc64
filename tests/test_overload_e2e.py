"""Overload end to end: one SIPp floods the switch with digest REGISTERs far past what it can serve, and
meanwhile a call that was up before the flood hangs up (its BYE must go through) and a customer calls the
queue (the agent's phone must ring, answer and get the BYE). SIPp plays every party; the switch runs as
its own process. Also checked: the switch said it was shedding, and the API and the metrics count what it
shed."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import DOMAIN, SIPP_DIR, free_port, requires_sipp, sipp_ok, wait_udp_bound
from .e2e_configs import rtp_extra
from .test_api_support import PASSWORDS, Http, start_api_switch
from .test_sipp_e2e import finish, register

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120), requires_sipp]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004",
        "1005": "secret-1005"}
FLOOD_USERS = range(3000, 3200)
FLOOD_RATE = 6000       # REGISTERs/s offered: several times what one Python core serves
FLOOD_SECONDS = 30      # at most: stopped once the calls are checked


def caller_scenario(tmp: Path, pause_ms: int) -> Path:
    """caller.xml talking ``pause_ms`` before its BYE; 180 optional (the queue answers at once)."""
    text = (SIPP_DIR / "caller.xml").read_text()
    text = text.replace('<recv response="180"/>', '<recv response="180" optional="true"/>\n'
                        '  <recv response="183" optional="true"/>')
    text = text.replace('<pause milliseconds="300"/>', f'<pause milliseconds="{pause_ms}"/>')
    path = tmp / f"caller_{pause_ms}.xml"
    path.write_text(text)
    return path


def phone(sw, scenario: Path, tmp: Path, *args: str) -> subprocess.Popen:
    """One SIPp phone in the background (as conftest's ``sipp``, but its screen is read with undecodable
    bytes replaced: under the storm SIPp's screen once held one, failing the test on a decode error)."""
    cmd = ["sipp", "-nostdin", "-sf", str(scenario), "-i", "127.0.0.1", "-m", "1", "-timeout", "40s",
           "-timeout_error", "-max_recv_loops", "1000", "-trace_err", "-trace_msg", *args, sw.addr]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp, text=True,
                            errors="replace")


def callee(sw, port: int, tmp: Path) -> subprocess.Popen:
    proc = phone(sw, SIPP_DIR / "callee.xml", tmp, "-p", str(port))
    wait_udp_bound(port)
    return proc


def place_call(sw, scenario: Path, number: str, callee_number: str, tmp: Path) -> subprocess.Popen:
    return phone(sw, scenario, tmp, "-s", callee_number, "-au", number, "-ap", sw.extensions[number],
                 "-key", "domain", DOMAIN, "-key", "caller", number, "-p", str(free_port()))


def flood(sw, tmp: Path) -> subprocess.Popen:
    csv = tmp / "flood.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password=pw-{u}];{DOMAIN};5999\n" for u in FLOOD_USERS))
    return subprocess.Popen(
        ["sipp", "-nostdin", "-sf", str(SIPP_DIR / "flood_register.xml"), "-inf", str(csv), "-i", "127.0.0.1",
         "-p", str(free_port()), "-r", str(FLOOD_RATE), "-m", str(FLOOD_RATE * FLOOD_SECONDS),
         "-l", str(FLOOD_RATE * 2), "-buff_size", "4194304", "-timeout", f"{FLOOD_SECONDS + 25}s", sw.addr],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp)


def test_a_flood_sheds_new_registrations_while_a_bye_and_a_queue_call_go_through(switch_factory, tmp_path):
    extensions = {**EXTS, **{str(u): f"pw-{u}" for u in FLOOD_USERS}}
    sw, _ = start_api_switch(switch_factory, extensions, extra=rtp_extra())
    # the agent's phone and phone B register and wait for their call; the agent logs in at the desk (API)
    agent_port, b_port = free_port(), free_port()
    sipp_ok(register(sw, "1002", agent_port, tmp_path), tmp_path)
    sipp_ok(register(sw, "1005", b_port, tmp_path), tmp_path)
    alice = Http(sw.api_port).login("2001", PASSWORDS["2001"])
    status, body = alice.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
    assert status == 200, body
    if body["state"] != "ready":
        assert alice.post("/api/agents/2001/state", {"action": "ready"})[0] == 200
    sw.wait_log(r"agent 2001 is ready")
    agent = callee(sw, agent_port, tmp_path)
    b = callee(sw, b_port, tmp_path)

    # a call up before the flood; it hangs up in the middle of it
    up = place_call(sw, caller_scenario(tmp_path, 6000), "1001", "1005", tmp_path)
    sw.wait_log(r"1001 -> 1005 answered", timeout=15)

    storm = flood(sw, tmp_path)
    try:
        sw.wait_log(r"overload: shedding new requests", timeout=20)
        # a customer calls the queue while the switch sheds the storm
        queued = place_call(sw, caller_scenario(tmp_path, 1500), "1004", "500", tmp_path)
        finish(queued, tmp_path, timeout=40)
        finish(agent, tmp_path, timeout=40)           # the agent's phone rang, answered, got the BYE
        finish(up, tmp_path, timeout=40)              # the BYE of the call in progress went through
        finish(b, tmp_path, timeout=40)
        assert storm.poll() is None, "the storm ended before the calls: it proved nothing"
    finally:
        storm.kill()
        storm.communicate(timeout=20)
    log = sw.log()
    assert re.search(r"call \S+: 1004 connected to agent 2001 at 1002", log), log[-3000:]
    assert re.search(r"1001 -> 1005 ended", log), log[-3000:]
    # what it served and shed, in the API (supervisors) and the metrics
    status, fig = Http(sw.api_port).login("boss").get("/api/overload")
    assert status == 200 and fig["overloads"] >= 1 and fig["shed"]["rejected"] > 0, fig
    assert fig["served"] > 0 and fig["offered"] >= fig["served"] + fig["shed"]["rejected"]
    status, raw = Http(sw.api_port).get("/metrics")
    text = raw.decode() if isinstance(raw, bytes) else raw
    m = re.search(r'softswitch_shed_load_total\{reason="rejected"\} (\d+)', text)
    assert m and int(m.group(1)) > 0, text[-3000:]
