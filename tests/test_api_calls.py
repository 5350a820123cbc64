"""Call control and the screen pop through the API with real phones: pjsua2 agents and a caller, a real
switch process, the agents' WebSockets. A known customer calls the queue; the agent's WebSocket gets
the pop (name, open work order) before the phone is answered; the agent holds, records, attaches a
note and transfers to the queue; the next agent's pop carries the note; a supervisor hangs up; the
call record and the recording (downloadable WAV) are in the store."""
from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("aiohttp")
ws_client = pytest.importorskip("websockets.sync.client")

from tests.phones.steps import register  # noqa: E402

from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004"}


class Socket:
    def __init__(self, port: int, token: str):
        self.ws = ws_client.connect(f"ws://127.0.0.1:{port}/api/ws",
                                    additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5).__enter__()
        self.seen: list[dict] = []

    def next(self, type_: str, timeout: float = 15.0, **match) -> dict:
        for m in self.seen:
            if m["type"] == type_ and all(m.get(k) == v for k, v in match.items()):
                self.seen.remove(m)
                return m
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {type_} message {match} (seen {self.seen})")
            try:
                m = json.loads(self.ws.recv(timeout=left))
            except TimeoutError:
                continue
            if m["type"] == type_ and all(m.get(k) == v for k, v in match.items()):
                return m
            self.seen.append(m)

    def close(self) -> None:
        self.ws.close()


def test_screen_pop_call_control_transfer_and_call_record(switch_factory, phones, tmp_path):
    sw, anon = start_api_switch(switch_factory, EXTS, extra=rtp_extra(both_digests=True))
    boss, alice_api, bob_api = anon.login("boss"), anon.login("2001"), anon.login("2002")
    cust = alice_api.post("/api/customers", {"name": "Grace Hopper", "vip_level": 2, "phones": ["1001"]})[1]
    order = alice_api.post("/api/orders", {"kind": "repair", "customer_id": cust["id"], "summary": "router dead"})[1]

    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    caller = register(sw, phones, "caller", "1001")
    alice_ws, bob_ws = Socket(sw.api_port, alice_api.token), Socket(sw.api_port, bob_api.token)
    try:
        assert alice_ws.next("hello")["agent"]["state"] == "logged-out"
        assert alice_api.post("/api/agents/2001/state", {"action": "login"})[1]["state"] == "ready"
        alice_ws.next("agent_state", state="ready")
        alice.auto_answer(code=200, delay_ms=3000)

        call = caller.call(f"sip:500@{DOMAIN}")
        caller.wait_call_state(call, "CONFIRMED", timeout=10)
        offer = alice_ws.next("offer")
        offered_at = time.monotonic()
        pop = offer["pop"]
        assert offer["caller"] == "1001" and offer["queue"] == "support"
        assert pop["customer"]["name"] == "Grace Hopper" and pop["is_new"] is False
        assert [o["id"] for o in pop["orders"]] == [order["id"]]
        call_id = offer["call"]
        # the pop came before the phone was answered
        connected = alice_ws.next("connected", call=call_id)
        assert time.monotonic() - offered_at > 1.5, "the pop should arrive while the phone still rings"
        assert connected["agent"] == "2001"

        calls = alice_api.get("/api/calls")[1]
        assert [c["id"] for c in calls] == [call_id] and calls[0]["agent"] == "2001"
        assert bob_api.get("/api/calls")[1] == []                       # not bob's call
        assert bob_api.post(f"/api/calls/{call_id}/hold", {"on": True})[0] == 404
        # two holds, each bracketed by the test's clock (the switch acted between t0 and t1, t2 and t3...):
        # the desk's hold, then the customer's phone holding with a re-INVITE (sendonly)
        t0 = time.monotonic()
        assert alice_api.post(f"/api/calls/{call_id}/hold", {"on": True}) == (200, {"ok": True})
        t1 = time.monotonic()
        assert wait_for(lambda: alice_api.get("/api/calls")[1][0]["on_hold"])
        time.sleep(1.0)  # pacing: the hold lasts about a second (its length is asserted in the call record)
        t2 = time.monotonic()
        assert alice_api.post(f"/api/calls/{call_id}/hold", {"on": False})[0] == 200
        t3 = time.monotonic()
        assert not alice_api.get("/api/calls")[1][0]["on_hold"]
        t4 = time.monotonic()
        caller.hold(call)
        assert wait_for(lambda: alice_api.get("/api/calls")[1][0]["on_hold"])
        t5 = time.monotonic()
        time.sleep(0.8)  # pacing: the phone's hold
        t6 = time.monotonic()
        caller.unhold(call)
        assert wait_for(lambda: not alice_api.get("/api/calls")[1][0]["on_hold"])
        t7 = time.monotonic()
        held_min, held_max = (t2 - t1) + (t6 - t5), (t3 - t0) + (t7 - t4)
        assert alice_api.post(f"/api/calls/{call_id}/recording", {"on": True})[0] == 200
        assert alice_api.get("/api/calls")[1][0]["recording"] is True
        status, live = alice_api.post(f"/api/calls/{call_id}/context", {"issue": "billing", "note_2001": "angry"})
        assert status == 200 and live["context"]["issue"] == "billing"
        time.sleep(1.5)  # pacing: alice talks for 1.5 s, something to record (its duration is asserted)

        # bob logs in; alice transfers the caller back to the queue: bob's pop carries the notes
        assert boss.post("/api/agents/2002/state", {"action": "login"})[1]["state"] == "ready"
        bob.auto_answer(code=200, delay_ms=500)
        assert alice_api.post(f"/api/calls/{call_id}/transfer", {"target": "500"}) == (200, {"ok": True})
        offer2 = bob_ws.next("offer", call=call_id)
        assert offer2["context"]["issue"] == "billing" and offer2["context"]["note_2001"] == "angry"
        assert offer2["pop"]["customer"]["name"] == "Grace Hopper"
        bob_ws.next("connected", call=call_id)
        assert [c["id"] for c in bob_api.get("/api/calls")[1]] == [call_id]
        time.sleep(1.0)  # pacing: bob talks for a second (his talk time is asserted)
        assert boss.post(f"/api/calls/{call_id}/hangup", {}) == (200, {"ok": True})
        caller.wait_call_state(call, "DISCONNECTED", timeout=10)
        end = bob_ws.next("call_end", call=call_id)
        assert end["agent"] == "2002"
    finally:
        alice_ws.close()
        bob_ws.close()

    # the call record, written from the call_end event
    rec = wait_for(lambda: boss.get("/api/records?caller=1001")[1]["items"])[0]
    assert rec["agent"] == "2002" and rec["queue"] == "support" and rec["disposition"] == "answered"
    assert rec["call_ref"] == call_id and rec["talk_s"] > 0.5 and rec["recording"]
    assert rec["holds"] == 2 and held_min - 0.01 <= rec["hold_seconds"] <= held_max + 0.01, (rec, held_min, held_max)
    assert bob_api.get("/api/records")[1]["items"][0]["id"] == rec["id"]
    assert alice_api.get("/api/records")[1]["items"] == []       # not alice's (the call ended with bob)
    assert alice_api.get(f"/api/records/{rec['id']}")[0] == 404
    since = rec["arrived_at"] - 1
    assert [r["id"] for r in boss.get(f"/api/records?agent=2002&since={since}&min_talk_s=0.5")[1]["items"]] == [rec["id"]]
    assert boss.get(f"/api/records?since={rec['arrived_at'] + 3600}")[1]["items"] == []
    assert boss.get("/api/records?max_talk_s=0.1")[1]["items"] == []
    # the recording of alice's part: indexed, searchable, downloadable as WAV
    recs = wait_for(lambda: boss.get("/api/recordings?caller=1001")[1])
    assert len(recs) == 1 and recs[0]["duration_s"] > 1.0 and "2002" in recs[0]["parties"]
    status, wav, headers = boss.request("GET", f"/api/recordings/{recs[0]['id']}/audio")
    assert status == 200 and headers["Content-Type"] == "audio/wav" and wav[:4] == b"RIFF" and len(wav) > 8000
    assert alice_api.request("GET", f"/api/recordings/{recs[0]['id']}/audio")[0] == 404
    assert bob_api.request("GET", f"/api/recordings/{recs[0]['id']}/audio")[0] == 200
    assert boss.get("/api/recordings?min_duration_s=3600")[1] == []
    # the agents' state history came from the switch's events
    states = [h["state"] for h in boss.get("/api/agents/2001/history")[1]]
    assert states[0] == "ready" and ("ringing" in states or "on-call" in states), states
