"""'Press 1 to be called back and keep your place', end to end: a real switch, SIPp callers sending the digit
as RFC 4733 (SIPp's pcaps), SIPp phones for the agent and for the caller's callback. The caller who pressed 1
is called back before a caller who queued after him and stayed on the line."""
from __future__ import annotations

import re
import wave
from pathlib import Path

import numpy as np
import pytest

from .conftest import DOMAIN, PCAP_DIR, SIPP_ANSWER_BYE, SIPP_DIR, free_port, requires_sipp, sipp, sipp_ok, wait_for, wait_udp_bound
from .test_api_support import db_rows, start_api_switch
from .e2e_configs import media_extra

pytestmark = [pytest.mark.e2e, pytest.mark.slow, requires_sipp, pytest.mark.timeout(120),
              pytest.mark.skipif(not (PCAP_DIR / "dtmf_2833_1.pcap").exists(), reason="SIPp RTP pcaps not installed")]


def caller_scenario(tmp: Path, name: str, after_ack: str) -> Path:
    """caller.xml with ``after_ack`` in place of its talk-then-BYE."""
    text = (SIPP_DIR / "caller.xml").read_text().replace('<recv response="180"/>',
                                                          '<recv response="180" optional="true"/>')
    head, rest = text.split('  <pause milliseconds="300"/>', 1)
    tail = rest[rest.index('  <recv response="200"/>') + len('  <recv response="200"/>'):]
    p = tmp / f"{name}.xml"
    p.write_text(head + after_ack + tail)
    return p


PRESS_1 = f'''  <pause milliseconds="2500"/>
  <nop><action><exec play_pcap_audio="{PCAP_DIR}/dtmf_2833_1.pcap"/></action></nop>
{SIPP_ANSWER_BYE}'''

WAIT_THEN_BYE = '''  <pause milliseconds="20000"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: <sip:[caller]@[domain]>;tag=[pid]C[call_number]
      To: <sip:[service]@[domain]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 3 BYE
      [routes]
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
'''


def silence(path: Path, seconds: float = 0.3) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.zeros(int(8000 * seconds), np.int16).tobytes())


def register(sw, tmp: Path, number: str, port: int) -> None:
    sipp_ok(sipp("register.xml", sw.addr, "-s", number, "-au", number, "-ap", sw.extensions[number],
                 "-key", "domain", DOMAIN, "-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(port),
                 "-key", "expires", "300", cwd=tmp), tmp)


def test_press_1_is_called_back_in_his_original_place(switch_factory, tmp_path):
    for name in ("callback-offer", "callback-confirmed"):
        silence(tmp_path / "var" / "prompts" / "en" / f"{name}.wav")
    extra = media_extra(tmp_path) + '''
[outbound]
caller_id = "4008001234"
tick = 0.2
[outbound.callbacks]
offer_after = 1
'''
    sw, anon = start_api_switch(switch_factory, extensions={"1001": "secret-1001", "1002": "secret-1002",
                                                             "1003": "secret-1003"}, extra=extra)
    callback_port, agent_port = free_port(), free_port()
    hangup = tmp_path / "customer_hangs_up.xml"
    hangup.write_text((SIPP_DIR / "callee.xml").read_text().replace("<!-- HANGUP -->", '<nop next="hangup"/>'))
    procs = [sipp(hangup, sw.addr, "-p", str(callback_port), cwd=tmp_path, background=True, timeout=90),
             sipp(SIPP_DIR / "callee.xml", sw.addr, "-p", str(agent_port), "-m", "5", cwd=tmp_path,
                  background=True, timeout=90)]
    try:
        wait_udp_bound(callback_port)
        wait_udp_bound(agent_port)
        register(sw, tmp_path, "1001", callback_port)   # where the callback reaches the caller
        register(sw, tmp_path, "1002", agent_port)      # agent 2001's phone
        first = sipp(caller_scenario(tmp_path, "press_1", PRESS_1), sw.addr, "-s", "500", "-au", "1001", "-ap",
                     "secret-1001", "-key", "domain", DOMAIN, "-key", "caller", "1001", cwd=tmp_path,
                     background=True, timeout=60)
        sw.wait_log(r"1001 entered queue support", timeout=15)
        later = sipp(caller_scenario(tmp_path, "stays", WAIT_THEN_BYE), sw.addr, "-s", "500", "-au", "1003",
                     "-ap", "secret-1003", "-key", "domain", DOMAIN, "-key", "caller", "1003", cwd=tmp_path,
                     background=True, timeout=60)
        procs += [first, later]
        sw.wait_log(r"1003 entered queue support", timeout=15)
        sw.wait_log(r"1001 chose a callback and keeps place in queue support", timeout=20)
        out, _ = first.communicate(timeout=20)                # thanked and hung up by the switch
        assert first.returncode == 0, out
        wait_for(lambda: db_rows(sw, "SELECT kind, number, state FROM outbound_contacts") == [
            ("queue", "1001", "held")])
        boss = anon.login("boss")
        status, body = boss.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})
        assert status == 200, body
        sw.wait_log(r"agent 2001 on the line; ringing 1001", timeout=20)
        later_call = sw.wait_log(r"call (\w+): 1003 entered queue support").group(1)
        sw.wait_log(rf"call {later_call}: queue support offers the call to agent 2001", timeout=20)
        log = sw.log()
        assert log.index("agent 2001 on the line; ringing 1001") < log.index(
            f"call {later_call}: queue support offers the call to agent 2001")   # his place came first
        wait_for(lambda: db_rows(sw, "SELECT result FROM outbound_attempts") == [("completed",)], timeout=20)
        assert db_rows(sw, "SELECT state, last_result FROM outbound_contacts") == [("done", "completed")]
        assert re.search(r"callback offered in queue support", log)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate()
