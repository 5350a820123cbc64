"""Kamailio as the upstream provider (Debian ``kamailio``, tests/kamailio/provider.cfg), real pjsua2 phones.

- the switch registers to Kamailio with digest (401 answered), keeps it alive with OPTIONS;
- a pjsua2 "customer" registered at Kamailio dials the DID: Kamailio delivers the call to the switch's
  registered contact (the DID in To, the caller in P-Asserted-Identity); the switch routes it to the
  queue, a pjsua2 agent answers; both hear each other; the agent's screen pop (WebSocket) and the call
  record show the customer's number in E.164;
- an extension dials the customer's national number: the switch's INVITE to Kamailio answers its 407
  with the trunk's credentials and the customer's phone rings and answers;
- Kamailio restarts (forgetting every registration): the switch sees the trunk down, then up, and
  registers again.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
ws_client = pytest.importorskip("websockets.sync.client")

from . import audio  # noqa: E402
from .conftest import DOMAIN, free_port, rtp_low, wait_udp_bound  # noqa: E402
from .test_api_calls import Socket  # noqa: E402
from .test_api_support import db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180),
              pytest.mark.skipif(shutil.which("kamailio") is None, reason="kamailio not installed (bin/setup --test)"),
              pytest.mark.skipif(importlib.util.find_spec("pjsua2") is None, reason="pjsua2 not installed")]

CFG = Path(__file__).resolve().parent / "kamailio" / "provider.cfg"
DID = "4008001234"
CUSTOMER = "013800138000"            # as the provider knows the customer (national form)
CUSTOMER_E164 = "+8613800138000"
EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


class Kamailio:
    def __init__(self, tmp: Path, port: int):
        self.port, self.tmp = port, tmp
        self.cfg = tmp / "provider.cfg"
        self.cfg.write_text(CFG.read_text().replace("__PORT__", str(port)).replace("__DID__", DID))
        self.log_path = tmp / "kamailio.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        run = self.tmp / "kamailio-run"
        run.mkdir(exist_ok=True)
        self.proc = subprocess.Popen(["kamailio", "-f", str(self.cfg), "-DD", "-E", "-m", "64", "-M", "8",
                                      "-Y", str(run)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.log_path, "a"), start_new_session=True)
        wait_udp_bound(self.port, timeout=15)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def kamailio(tmp_path):
    k = Kamailio(tmp_path, free_port())
    k.start()
    yield k
    k.stop()


def trunk_config(k: Kamailio) -> str:
    lo = rtp_low()
    return f"""
[media]
rtp_ports = "{lo}-{lo + 99}"

[numbering]
country_code = "86"

[[trunks]]
name = "provider"
host = "127.0.0.1"
port = {k.port}
match = ["127.0.0.1:{k.port}"]
from_domain = "provider.test"
username = "callcentre"
password = "trunk-secret"
register = true
register_expires = 60
retry_min = 1
retry_max = 4
options_interval = 1
options_failures = 2
caller_id = "+864008001234"
dids = {{ "{DID}" = "500" }}

[[dial_rules]]
prefix = "0"
trunks = ["provider"]
"""


def customer_phone(phones, k: Kamailio):
    c = phones("customer")
    reg = c.register(CUSTOMER, "pw" + CUSTOMER, "provider.test", f"sip:127.0.0.1:{k.port}")
    assert reg["code"] == 200, reg
    return c


def talk(a, a_call: int, b, b_call: int, tmp: Path) -> tuple[float, float]:
    """Each phone plays its own melody; returns how well each recording matches the other's melody."""
    a_says = audio.write_wav(tmp / "a_says.wav", audio.melody(2.0, seed=71))
    b_says = audio.write_wav(tmp / "b_says.wav", audio.melody(2.0, seed=72))
    a.record(a_call, tmp / "a_heard.wav")
    b.record(b_call, tmp / "b_heard.wav")
    time.sleep(0.3)  # pacing: the recorders run before the audio starts
    a.play(a_call, a_says)
    b.play(b_call, b_says)
    time.sleep(3.0)  # pacing: the 2 s melodies reach the other phone in real time (asserted below)
    a.stop_record(a_call)
    b.stop_record(b_call)
    return (audio.windowed_correlation(audio.read_mono(b_says), audio.read_mono(tmp / "a_heard.wav")),
            audio.windowed_correlation(audio.read_mono(a_says), audio.read_mono(tmp / "b_heard.wav")))


def test_customer_via_provider_reaches_an_agent_through_the_did(switch_factory, kamailio, phones, tmp_path):
    sw, anon = start_api_switch(switch_factory, EXTS, extra=trunk_config(kamailio))
    sw.wait_log(rf"trunk provider: registered to 127\.0\.0\.1:{kamailio.port} \(expires 60 s\)", timeout=15)
    assert "provider: registered callcentre" in kamailio.log()
    alice_api = anon.login("2001")
    # the CRM has the customer's mobile as people write it in China (no prefix): the same number
    status, cust = alice_api.post("/api/customers", {"name": "Li Lei", "vip_level": 3, "phones": ["138 0013 8000"]})
    assert status == 201 and cust["phones"] == [CUSTOMER_E164], cust
    alice = phones("alice")
    assert alice.register("1002", EXTS["1002"], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    alice.auto_answer(code=200, delay_ms=1000)
    customer = customer_phone(phones, kamailio)
    ws = Socket(sw.api_port, alice_api.token)
    try:
        assert alice_api.post("/api/agents/2001/state", {"action": "login"})[1]["state"] == "ready"
        ws.next("agent_state", state="ready")
        call = customer.call(f"sip:{DID}@provider.test")
        offer = ws.next("offer", timeout=20)
        assert offer["caller"] == CUSTOMER_E164, offer          # the screen pop: the normalised number
        assert offer["pop"]["customer"]["name"] == "Li Lei", offer["pop"]   # ... and the customer it is
        customer.wait_call_state(call, "CONFIRMED", timeout=20)
        a_in = alice.wait_event("incoming", timeout=20)
        alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
        customer.wait_event("media_state", call=call, active=True, timeout=5)
        alice.wait_event("media_state", call=a_in["call"], active=True, timeout=5)
        heard_by_customer, heard_by_alice = talk(customer, call, alice, a_in["call"], tmp_path)
        assert heard_by_customer > 0.8 and heard_by_alice > 0.8, (heard_by_customer, heard_by_alice)
        customer.hangup(call)
        alice.wait_call_state(a_in["call"], "DISCONNECTED", timeout=10)
    finally:
        ws.close()
    sw.wait_log(rf"inbound on trunk provider: \{CUSTOMER_E164} \(presented {CUSTOMER}\) -> DID {DID} -> 500")
    rows = wait_for(lambda: db_rows(sw, "SELECT caller, queue, disposition, direction, trunk, did, external "
                                        "FROM call_records"), timeout=10)
    assert rows == [(CUSTOMER_E164, "support", "answered", "inbound", "provider", DID, CUSTOMER_E164)], rows


@pytest.mark.slow
def test_extension_dials_out_through_the_provider_answering_its_407(switch_factory, kamailio, phones, tmp_path):
    """Also: the far end's early media (183 with SDP) reaches the caller before the answer, and RFC 4733
    digits cross the bridged call both ways (working a carrier's or a bank's IVR)."""
    sw, anon = start_api_switch(switch_factory, EXTS, extra=trunk_config(kamailio))
    sw.wait_log(r"trunk provider: registered to", timeout=15)
    customer = customer_phone(phones, kamailio)
    customer.auto_answer(code=183)                       # early media first (an announcement), answer later
    desk = phones("desk")
    assert desk.register("1001", EXTS["1001"], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    call = desk.call(f"sip:{CUSTOMER}@{DOMAIN}")
    c_in = customer.wait_event("incoming", timeout=20)
    assert "+864008001234" in c_in["from"], c_in          # the hotline's number presented
    customer.wait_event("media_state", call=c_in["call"], active=True, timeout=10)
    desk.wait_call_state(call, "EARLY", timeout=10)
    desk.wait_event("media_state", call=call, active=True, timeout=10)
    announcement = audio.write_wav(tmp_path / "announcement.wav", audio.melody(2.0, seed=73))
    desk.record(call, tmp_path / "desk_early.wav")
    time.sleep(0.3)  # pacing: the recorder runs before the announcement starts
    customer.play(c_in["call"], announcement)
    time.sleep(2.8)  # pacing: the 2 s announcement reaches the caller in real time (asserted below)
    desk.stop_record(call)
    customer.stop_play(c_in["call"])
    early = audio.windowed_correlation(audio.read_mono(announcement), audio.read_mono(tmp_path / "desk_early.wav"))
    assert early > 0.8, early
    assert desk.events("call_state") and not any(e["state"] == "CONFIRMED" for e in desk.events("call_state"))

    customer.answer(c_in["call"], 200)
    desk.wait_call_state(call, "CONFIRMED", timeout=10)
    customer.wait_call_state(c_in["call"], "CONFIRMED", timeout=10)
    heard_by_desk, heard_by_customer = talk(desk, call, customer, c_in["call"], tmp_path)
    assert heard_by_desk > 0.8 and heard_by_customer > 0.8, (heard_by_desk, heard_by_customer)
    # digits both ways: RFC 4733 events from one phone are regenerated towards the other (one at a time,
    # each after the far phone reported the previous one: tests/README.md)
    for digit in "12#":
        desk.dtmf(call, digit)
        assert customer.wait_event("dtmf", call=c_in["call"], timeout=10)["digit"] == digit
    for digit in "9*":
        customer.dtmf(c_in["call"], digit)
        assert desk.wait_event("dtmf", call=call, timeout=10)["digit"] == digit
    desk.hangup(call)
    customer.wait_call_state(c_in["call"], "DISCONNECTED", timeout=10)
    sw.wait_log(rf"1001 -> \{CUSTOMER_E164} out via trunk provider as {CUSTOMER}")
    assert f"provider: INVITE from callcentre for {CUSTOMER}" in kamailio.log()   # it passed the 407
    rows = wait_for(lambda: db_rows(sw, "SELECT caller, callee, disposition, direction, trunk, external "
                                        "FROM call_records"), timeout=10)
    assert rows == [("1001", CUSTOMER_E164, "answered", "outbound", "provider", CUSTOMER_E164)], rows


def test_registration_survives_the_provider_restarting(switch_factory, kamailio, tmp_path):
    sw, anon = start_api_switch(switch_factory, EXTS, extra=trunk_config(kamailio))
    boss = anon.login("boss")
    sw.wait_log(r"trunk provider: registered to", timeout=15)
    sw.wait_log(r"trunk provider: up \(OPTIONS answered\)", timeout=10)
    status, trunks = boss.get("/api/trunks")
    assert status == 200 and [(t["name"], t["health"], t["registration"]["state"]) for t in trunks] == [
        ("provider", "up", "registered")], trunks
    assert "trunk-secret" not in json.dumps(trunks) and "trunk-secret" not in sw.log()
    assert anon.login("2001").get("/api/trunks")[0] == 403      # supervisors only
    metrics = anon.get("/metrics")[1].decode()
    for line in ('softswitch_trunk_up{trunk="provider"} 1', 'softswitch_trunk_registered{trunk="provider"} 1',
                 'softswitch_trunk_channels{trunk="provider"} 0'):
        assert line in metrics, metrics
    kamailio.stop()
    sw.wait_log(r"trunk provider: down \(2 OPTIONS unanswered\)", timeout=20)
    assert boss.get("/api/trunks")[1][0]["health"] == "down"
    assert 'softswitch_trunk_up{trunk="provider"} 0' in anon.get("/metrics")[1].decode()
    kamailio.start()
    sw.wait_log(r"trunk provider: registering to 127\.0\.0\.1:\d+ \(the carrier is reachable again\)", timeout=20)
    wait_for(lambda: sw.log().count("trunk provider: registered to") >= 2, timeout=20)
    wait_for(lambda: kamailio.log().count("provider: registered callcentre") >= 2, timeout=5)
    # stopping, the switch unregisters: the provider no longer sends calls to a contact that is gone
    assert sw.stop() == 0
    assert "trunk provider: unregistering from" in sw.log()
    wait_for(lambda: "provider: unregistered callcentre" in kamailio.log(), timeout=5)


def test_click_to_dial_an_external_number_through_the_provider(switch_factory, kamailio, phones, tmp_path):
    """POST /api/calls with an external ``to``: the agent's phone rings first; when it answers, the
    customer is dialled through the dial rules and the provider (its 407 answered) and they talk."""
    sw, anon = start_api_switch(switch_factory, EXTS, extra=trunk_config(kamailio))
    sw.wait_log(r"trunk provider: registered to", timeout=15)
    alice_api = anon.login("2001")                          # agent 2001 at extension 1002
    customer = customer_phone(phones, kamailio)
    customer.auto_answer(code=200, delay_ms=1000)
    alice = phones("alice")
    assert alice.register("1002", EXTS["1002"], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    alice.auto_answer(code=200, delay_ms=300)
    status, body = alice_api.post("/api/calls", {"from": "1002", "to": CUSTOMER})
    assert status == 201, body
    a_in = alice.wait_event("incoming", timeout=10)
    c_in = customer.wait_event("incoming", timeout=20)
    assert "+864008001234" in c_in["from"], c_in
    customer.wait_call_state(c_in["call"], "CONFIRMED", timeout=10)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    customer.wait_event("media_state", call=c_in["call"], active=True, timeout=5)
    heard_by_alice, heard_by_customer = talk(alice, a_in["call"], customer, c_in["call"], tmp_path)
    assert heard_by_alice > 0.8 and heard_by_customer > 0.8, (heard_by_alice, heard_by_customer)
    customer.hangup(c_in["call"])
    alice.wait_call_state(a_in["call"], "DISCONNECTED", timeout=10)
    sw.wait_log(rf"call {body['id']}: 1002 -> \{CUSTOMER_E164} out via trunk provider as {CUSTOMER}")
    rows = wait_for(lambda: db_rows(sw, "SELECT caller, callee, disposition, direction, trunk, external "
                                        "FROM call_records"), timeout=10)
    assert rows == [("1002", CUSTOMER_E164, "answered", "outbound", "provider", CUSTOMER_E164)], rows
