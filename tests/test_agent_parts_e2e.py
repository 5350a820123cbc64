"""Transfers credited per agent, end to end (a real switch process, pjsua2 phones): a customer calls the queue,
agent 2001 answers at her phone (1002) and transfers the caller with her phone's transfer key to 1003, where
agent 2002 is logged in — blind (REFER; 1003 answers) or attended (2001 holds the customer, calls 1003, 2002
answers, then REFER with Replaces joins the customer and 2002); the customer hangs up. The stored parts say who talked when,
and the day's per-agent report credits 2001 with a handled and transferred call (her talk only) and 2002 with
a handled call (hers); the queue counts the call once, transferred."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")

from softswitch.wallboard.model import local_midnight  # noqa: E402

from .conftest import DOMAIN, wait_for  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import PASSWORDS, db_rows, start_api_switch  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


@pytest.mark.parametrize("kind", ["blind", "attended"])
def test_a_transfer_between_agents_credits_each_agents_part(switch_factory, phones, kind):
    sw, anon = start_api_switch(switch_factory, EXTS, extra=rtp_extra())
    customer, alice_phone, bob_phone = phones("customer"), phones("alice"), phones("bob")
    for p, n in ((customer, "1001"), (alice_phone, "1002"), (bob_phone, "1003")):
        assert p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    alice_phone.auto_answer(code=200)
    bob_phone.auto_answer(code=200)
    alice = anon.login("2001", PASSWORDS["2001"])
    status, body = alice.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
    assert status == 200, body
    if body["state"] != "ready":
        assert alice.post("/api/agents/2001/state", {"action": "ready"})[0] == 200

    call = customer.call(f"sip:500@{DOMAIN}")
    a_in = alice_phone.wait_event("incoming", timeout=10)
    alice_phone.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001", timeout=10)
    # 2002 logs in at 1003 while 2001 talks (no call waits for her), so 1003 is an agent's phone by login
    bob = anon.login("2002", PASSWORDS["2002"])
    status, body = bob.post("/api/agents/2002/state", {"action": "login", "extension": "1003"})
    assert status == 200, body
    time.sleep(1.0)   # pacing: 2001 talks a second before she transfers (her part must last)
    if kind == "blind":
        alice_phone.transfer(a_in["call"], f"sip:1003@{DOMAIN}")
        sw.wait_log(r"transfer to 1003 answered", timeout=10)
        b_in = bob_phone.wait_event("incoming", timeout=10)
        bob_phone.wait_call_state(b_in["call"], "CONFIRMED", timeout=10)
    else:
        alice_phone.hold(a_in["call"])
        sw.wait_log(r"put the call on hold", timeout=10)
        consult = alice_phone.call(f"sip:1003@{DOMAIN}")
        b_in = bob_phone.wait_event("incoming", timeout=10)
        alice_phone.wait_call_state(consult, "CONFIRMED", timeout=10)
        alice_phone.transfer_replaces(a_in["call"], consult)
        sw.wait_log(r"attended transfer: 1002 connects 1001 with 1003", timeout=10)
    time.sleep(1.5)   # pacing: 2002 talks longer than 2001 (asserted below)
    customer.hangup(call)
    bob_phone.wait_call_state(b_in["call"], "DISCONNECTED", timeout=10)

    parts = wait_for(lambda: db_rows(sw, "SELECT agent, queue, answered_at, ended_at, talk_s, transferred "
                                         "FROM call_agent_parts ORDER BY seq") or None, timeout=10)
    assert [(p[0], p[1], p[5]) for p in parts] == [("2001", "support", 1), ("2002", "", 0)]
    (_, _, a_start, a_end, a_talk, _), (_, _, b_start, b_end, b_talk, _) = parts
    assert a_end <= b_start < a_end + 5 and 0.8 < a_talk < b_talk   # 2002 begins when her phone answers
    [(talk_s, transfers, agent)] = db_rows(sw, "SELECT talk_s, transfers, agent FROM call_records WHERE queue = 'support'")
    assert transfers == 1 and agent == "2001" and abs(talk_s - a_talk) < 0.01   # the queue's talk: 2001's part

    boss = anon.login("boss")
    day = local_midnight(a_start)
    status, rep = boss.get(f"/api/reports?since={int(day)}&until={int(day + 86400)}&period=day")
    assert status == 200, rep
    agents = {r["agent"]: r for r in rep["agents"]}
    assert (agents["2001"]["handled"], agents["2001"]["transferred"]) == (1, 1)
    assert (agents["2002"]["handled"], agents["2002"]["transferred"]) == (1, 0)
    for agent, talk in (("2001", a_talk), ("2002", b_talk)):      # the report's talk is without hold (2001 held)
        assert abs(agents[agent]["talk_s"] + agents[agent]["hold_s"] - talk) < 0.02, agents[agent]
    assert (agents["2001"]["holds"], agents["2002"]["holds"]) == ((1, 0) if kind == "attended" else (0, 0))
    [q] = [r for r in rep["queues"] if r["queue"] == "support"]
    assert (q["offered"], q["answered"], q["transferred"]) == (1, 1, 1)
