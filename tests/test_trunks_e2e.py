"""SIP trunks end to end: SIPp instances play carriers recognised by their address (no digest), the
switch runs as its own process on 127.0.0.1.

- inbound: a carrier's INVITE to a DID reaches the extension the DID maps to, the caller normalised to
  E.164 from P-Asserted-Identity; the same INVITE from an unknown address is refused (403), an INVITE
  from the carrier to a number that is not its DID is refused (404);
- outbound: a phone dials a national number; the first trunk fails (503, or never answers), the call
  goes out the second with the dial rule's caller ID, its INVITE offering only the second trunk's codec
  (PCMA, while the phone talks PCMU: the switch transcodes); an extension without the permission class gets
  403 for an international number; a stranger's INVITE to an international number (toll fraud) gets 403.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from .conftest import DOMAIN, SIPP_DIR, UdpClient, free_port, requires_sipp, sipp, sipp_ok, wait_for, wait_udp_bound, write_config

pytestmark = [pytest.mark.e2e, requires_sipp, pytest.mark.timeout(120)]

DID = "4008001234"
HOTLINE_CID = "+864008001234"


def trunk_config(carrier_port: int, first_port: int, second_port: int, *, progress_timeout: int = 5) -> str:
    return f"""
[numbering]
country_code = "86"

[[trunks]]
name = "carrier"
host = "127.0.0.1"
port = {carrier_port}
match = ["127.0.0.1:{carrier_port}"]
dids = {{ "{DID}" = "1002" }}
options_interval = 0

[[trunks]]
name = "first"
host = "127.0.0.1"
port = {first_port}
match = ["127.0.0.1:{first_port}"]
options_interval = 0
progress_timeout = {progress_timeout}

[[trunks]]
name = "second"
host = "127.0.0.1"
port = {second_port}
match = ["127.0.0.1:{second_port}"]
options_interval = 0
caller_id = "{HOTLINE_CID}"
codecs = ["PCMA"]

[[dial_rules]]
prefix = "0"
trunks = ["first", "second"]
"""


EXTENSIONS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


def start(switch_factory, tmp: Path, carrier: int, first: int, second: int, extra: str = "", **kw):
    port = free_port()
    cfg = tmp / "trunks.toml"
    write_config(cfg, port, EXTENSIONS, extra + trunk_config(carrier, first, second, **kw))
    # 1003 is the last extension written: the appended line is its permission (local calls only)
    return switch_factory(EXTENSIONS, config_text=cfg.read_text() + 'permission = "local"\n', port=port)


def carrier_scenario(tmp: Path, status: int) -> Path:
    text = (SIPP_DIR / "carrier_call.xml").read_text().replace('response="EXPECT"', f'response="{status}"')
    if status == 200:
        text = text.replace("ACKBRANCH", "a2").replace("<!-- TALK -->", """<pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=z9hG4bK-[pid]-[call_number]-b3
      From: <sip:[from]@carrier.example>;tag=[pid]K[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>""")
    else:
        text = text.replace("ACKBRANCH", "c1")
    p = tmp / f"carrier_{status}.xml"
    p.write_text(text)
    return p


def carrier_call(sw, tmp: Path, port: int, status: int, did: str = DID, pai: str = "013800138000",
                 from_user: str = "0000") -> subprocess.CompletedProcess:
    return sipp(carrier_scenario(tmp, status), sw.addr, "-p", str(port), "-s", did, "-key", "pai", pai,
                "-key", "from", from_user, cwd=tmp)


def register(sw, number: str, contact_port: int, tmp: Path) -> None:
    sipp_ok(sipp("register.xml", sw.addr, "-s", number, "-au", number, "-ap", sw.extensions[number],
                 "-key", "domain", DOMAIN, "-key", "contact_host", "127.0.0.1", "-key", "contact_port",
                 str(contact_port), "-key", "expires", "300", cwd=tmp), tmp)


def background(sw, scenario: str | Path, port: int, tmp: Path) -> subprocess.Popen:
    proc = sipp(scenario, sw.addr, "-p", str(port), cwd=tmp, background=True, timeout=30)
    wait_udp_bound(port)
    return proc


def finish(proc: subprocess.Popen, tmp: Path, timeout: float = 30) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    sipp_ok(subprocess.CompletedProcess(proc.args, proc.returncode, out, ""), tmp)
    return out


def messages(tmp: Path, scenario: str) -> str:
    return "".join(f.read_text(errors="replace") for f in tmp.glob(f"{scenario}*_messages.log"))


def test_inbound_did_reaches_its_extension_with_the_caller_in_e164(switch_factory, tmp_path):
    carrier, phone = free_port(), free_port()
    sw = start(switch_factory, tmp_path, carrier, free_port(), free_port())
    register(sw, "1002", phone, tmp_path)
    callee = background(sw, "callee.xml", phone, tmp_path)
    sipp_ok(carrier_call(sw, tmp_path, carrier, 200), tmp_path)
    finish(callee, tmp_path)
    sw.wait_log(rf"inbound on trunk carrier: \+8613800138000 \(presented 013800138000\) -> DID {DID} -> 1002")
    sw.wait_log(r"\+8613800138000 -> 1002 answered")
    # the agent's phone sees the normalised number, not the carrier's national form
    invite = messages(tmp_path, "callee").split("INVITE sip:", 1)[1]
    assert re.search(r"From: .*<sip:\+8613800138000@", invite), invite[:800]


def test_unknown_address_and_non_did_are_refused(switch_factory, tmp_path):
    carrier = free_port()
    sw = start(switch_factory, tmp_path, carrier, free_port(), free_port())
    # the carrier's own address, but a number that is not its DID: 404, never routed
    sipp_ok(carrier_call(sw, tmp_path, carrier, 404, did="1001"), tmp_path)
    sw.wait_log(r"INVITE from trunk carrier \(127\.0\.0\.1:\d+\) to 1001 refused \(404\): not one of its DIDs")
    # the DID from an address that is no trunk: 403 (no challenge to guess at)
    sipp_ok(carrier_call(sw, tmp_path, free_port(), 403), tmp_path)
    sw.wait_log(rf"INVITE from 127\.0\.0\.1:\d+ \(From 0000\) to {DID} refused \(403\): not a trunk address")


def test_toll_fraud_invite_to_an_international_number_is_refused(switch_factory, tmp_path):
    sw = start(switch_factory, tmp_path, free_port(), free_port(), free_port())
    c = UdpClient(sw.port)
    try:
        c.send(f"INVITE sip:0046701234567@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{c.port};branch=z9hG4bKfraud1\n"
               f"From: \"sipvicious\" <sip:100@1.1.1.1>;tag=f1\nTo: <sip:0046701234567@127.0.0.1>\n"
               "Call-ID: fraud-1@x\nCSeq: 1 INVITE\nMax-Forwards: 70\nContent-Length: 0\n\n")
        resp = wait_for(lambda: c.recv(timeout=1.0), timeout=10)
        assert resp.startswith(b"SIP/2.0 403 "), resp[:200]
    finally:
        c.close()
    sw.wait_log(r"to 0046701234567 refused \(403\): not a trunk address and not an extension of ours - an attempt "
                r"to call out through us \(toll fraud\?\)")
    assert "out via trunk" not in sw.log()


def _caller(sw, tmp: Path, number: str, dialled: str, scenario: str | Path = "caller.xml"):
    return sipp(scenario, sw.addr, "-s", dialled, "-au", number, "-ap", sw.extensions[number],
                "-key", "domain", DOMAIN, "-key", "caller", number, cwd=tmp, timeout=30)


@pytest.mark.parametrize("first_fails_by", ["503", "silence"])
def test_outbound_fails_over_to_the_second_trunk(switch_factory, tmp_path, first_fails_by):
    first, second = free_port(), free_port()
    sw = start(switch_factory, tmp_path, free_port(), first, second, progress_timeout=1)
    dead = background(sw, "trunk_fails.xml", first, tmp_path) if first_fails_by == "503" else None
    # the second trunk is PCMA-only (codecs = ["PCMA"]): its carrier answers in A-law
    alaw = tmp_path / "trunk_uas_alaw.xml"
    alaw.write_text((SIPP_DIR / "trunk_uas.xml").read_text().replace("RTP/AVP 0 101", "RTP/AVP 8 101")
                    .replace("a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"))
    good = background(sw, alaw, second, tmp_path)
    sipp_ok(_caller(sw, tmp_path, "1001", "013800138000"), tmp_path)
    finish(good, tmp_path)
    if dead is not None:
        finish(dead, tmp_path)
        sw.wait_log(r"trunk first failed \(503 Service Unavailable\): trying the next")
    else:
        sw.wait_log(r"no response from 013800138000 within its progress time-out")
        sw.wait_log(r"trunk first failed \(408 No Response\): trying the next")
    sw.wait_log(r"1001 -> \+8613800138000 out via trunk second as 013800138000")
    sw.wait_log(r"1001 -> 013800138000 answered by 013800138000")
    invite = messages(tmp_path, "trunk_uas_alaw").split("INVITE sip:", 1)[1]
    assert invite.startswith(f"013800138000@127.0.0.1:{second} SIP/2.0"), invite[:200]
    # the trunk's codecs restrict the offer: A-law and telephone-event only (the phone offered PCMU)
    sdp = invite.split("\n-----", 1)[0].split("\r\n\r\n", 1)[-1]      # the trace's first message, its body
    assert re.search(r"^m=audio \d+ RTP/AVP 8 101\r?$", sdp, re.M), invite[:1200]
    assert "PCMU" not in sdp and "a=rtpmap:8 PCMA/8000" in sdp, sdp
    assert "unusable SDP answer" not in sw.log()
    assert re.search(r"From: .*<sip:\+864008001234@127\.0\.0\.1>", invite), invite[:800]  # the hotline's number
    assert "P-Asserted-Identity: <sip:+864008001234@127.0.0.1>" in invite


def test_permission_class_refuses_international_but_allows_emergency(switch_factory, tmp_path):
    second = free_port()
    sw = start(switch_factory, tmp_path, free_port(), free_port(), second)
    expect = tmp_path / "caller_expect_403.xml"
    expect.write_text((SIPP_DIR / "caller_expect.xml").read_text().replace('response="EXPECT"', 'response="403"'))
    sipp_ok(_caller(sw, tmp_path, "1003", "0044207946000", expect), tmp_path)
    sw.wait_log(r"1003 may not dial 0044207946000 \(international number, permission local\)")
    # 1001 has the default class (national): international is refused too, national is not
    sipp_ok(_caller(sw, tmp_path, "1001", "0044207946000", expect), tmp_path)
    sw.wait_log(r"1001 may not dial 0044207946000 \(international number, permission national\)")
    assert "out via trunk" not in sw.log()


def test_withheld_and_blacklisted_callers(switch_factory, tmp_path):
    carrier, phone = free_port(), free_port()
    # the blacklist is written in E.164: the carrier's national "013900000001" must match it
    sw = start(switch_factory, tmp_path, carrier, free_port(), free_port(), extra='[security]\nblacklist = ["+86139*"]\n')
    sipp_ok(carrier_call(sw, tmp_path, carrier, 403, pai="013900000001"), tmp_path)
    sw.wait_log(rf"call from \+8613900000001 on trunk carrier to {DID} refused: caller on the blacklist \(403\)")
    register(sw, "1002", phone, tmp_path)
    callee = background(sw, "callee.xml", phone, tmp_path)
    sipp_ok(carrier_call(sw, tmp_path, carrier, 200, pai="anonymous", from_user="anonymous"), tmp_path)
    finish(callee, tmp_path)
    sw.wait_log(rf"inbound on trunk carrier: anonymous \(presented anonymous\) -> DID {DID} -> 1002")
    sw.wait_log(r"anonymous -> 1002 answered")
