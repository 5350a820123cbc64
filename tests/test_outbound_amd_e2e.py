"""Answering-machine detection end to end: a real switch runs a predictive campaign with ``amd = true``;
the customer is a pjsua2 phone behind a SIP trunk that answers and plays a voicemail greeting (espeak-ng)
over RTP. The switch decides MACHINE from the audio, hangs up, records the attempt as ``machine`` with
the detector's cause, and never rings the logged-in agent's phone; a customer saying "Hello?" is put
through to the agent."""
from __future__ import annotations

import importlib.util
import shutil

import pytest

pytest.importorskip("aiohttp")

from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120),
              pytest.mark.skipif(importlib.util.find_spec("pjsua2") is None, reason="pjsua2 not installed"),
              pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")]

EXTS = {"1002": "secret-1002", "1003": "secret-1003"}
GREETING = ("Hi, you have reached the voicemail of John Smith. I am not available to take your call right now. "
            "Please leave your name, number and a short message after the tone.")


def campaign_switch(switch_factory, phones):
    """A switch with the predictive campaign `sales` (amd = true) running on one contact behind the trunk
    `carrier` (the pjsua2 phone `customer`), agent 2001 logged in at 1002 (the pjsua2 phone `agent`)."""
    customer, agent = phones("customer"), phones("agent")
    port = customer.info()["port"]
    customer.account("customer", "127.0.0.1")   # the carrier's side: takes the trunk's INVITE, no registration
    customer.auto_answer(code=200, delay_ms=300)
    extra = rtp_extra() + f'''[numbering]
country_code = "86"
[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {port}
match = ["127.0.0.1:{port}"]
options_interval = 0
[[dial_rules]]
prefix = "0"
trunks = ["carrier"]
[outbound]
caller_id = "4008001234"
calling_hours = ["daily 00:00-24:00"]
tick = 0.1
[[outbound.campaigns]]
name = "sales"
mode = "predictive"
queue = "support"
start = false
amd = true
'''
    sw, anon = start_api_switch(switch_factory, EXTS, extra=extra)
    boss = anon.login("boss")
    assert agent.register("1002", EXTS["1002"], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    agent.auto_answer(code=200)
    status, body = boss.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
    assert status == 200 and body["state"] == "ready", body
    assert boss.post("/api/outbound/campaigns/sales/contacts", {"contacts": [{"number": "013800138000"}]})[0] == 200
    assert boss.post("/api/outbound/campaigns/sales/state", {"running": True})[0] == 200
    return sw, boss, customer, agent


def test_a_voicemail_greeting_through_a_trunk_is_hung_up_as_machine(switch_factory, phones, tmp_path):
    from ivr.tts import SpeechCache

    greeting = SpeechCache(tmp_path / "tts").render(GREETING, "en")
    sw, boss, customer, agent = campaign_switch(switch_factory, phones)
    inc = customer.wait_event("incoming", timeout=15)
    customer.wait_event("media_state", call=inc["call"], active=True, timeout=10)
    customer.play(inc["call"], greeting)                   # "Hi, you have reached ..." over RTP
    customer.wait_call_state(inc["call"], "DISCONNECTED", timeout=15)   # the switch hung up on the machine
    sw.wait_log(r"AMD MACHINE cause (LONGGREETING|MAXWORDS)-\d+-\d+ .*: hangup", timeout=5)
    wait_for(lambda: db_rows(sw, "SELECT result FROM outbound_attempts WHERE ended_at IS NOT NULL") != [], timeout=10)
    [(result, amd)] = db_rows(sw, "SELECT result, amd FROM outbound_attempts")
    assert result == "machine" and amd.startswith("MACHINE "), (result, amd)
    assert not agent.events("incoming")                    # the agent's phone never rang
    figures = next(c["figures"] for c in boss.get("/api/outbound/campaigns")[1] if c["name"] == "sales")
    assert figures["machines"] == 1 and figures["amd"] == 1, figures


def test_a_person_saying_hello_is_put_through_to_the_agent(switch_factory, phones, tmp_path):
    from ivr.tts import SpeechCache

    hello = SpeechCache(tmp_path / "tts").render("Hello?", "en")
    sw, boss, customer, agent = campaign_switch(switch_factory, phones)
    inc = customer.wait_event("incoming", timeout=15)
    customer.wait_event("media_state", call=inc["call"], active=True, timeout=10)
    customer.play(inc["call"], hello)
    agent.wait_event("incoming", timeout=10)               # HUMAN: the agent's phone rings
    sw.wait_log(r"AMD HUMAN cause HUMAN-\d+-800 .*: agent", timeout=5)
    customer.hangup(inc["call"])
    wait_for(lambda: db_rows(sw, "SELECT result FROM outbound_attempts WHERE ended_at IS NOT NULL") != [], timeout=10)
    [(result, amd)] = db_rows(sw, "SELECT result, amd FROM outbound_attempts")
    assert result == "completed" and amd.startswith("HUMAN HUMAN-"), (result, amd)
