"""A carrier named by host name, end to end: the switch process looks it up (RFC 3263) on a real DNS
server on 127.0.0.1 (tests/dns_server.py), whose SRV records publish two SIPp carriers on different
ports (priority 10 and 20). The first answers 503: the call goes to the second target of the same trunk.
Then the records change; when their TTL runs out the switch looks the name up again and the next call
goes to the new target."""
from __future__ import annotations

import re

import pytest

from .conftest import SIPP_DIR, free_port, requires_sipp, sipp_ok
from .dns_server import DnsServer
from .test_trunks_e2e import EXTENSIONS, _caller, background, finish, messages

pytestmark = [pytest.mark.e2e, requires_sipp, pytest.mark.timeout(90)]


def test_srv_targets_fail_over_on_503_and_ttl_expiry_re_resolves(switch_factory, tmp_path):
    first, second, third = free_port(), free_port(), free_port()
    with DnsServer(ttl=60) as dns:
        dns.add("carrier.test", "A", "127.0.0.1")      # the name exists; it has no NAPTR
        dns.add("_sip._udp.carrier.test", "SRV", f"10 0 {first} a.carrier.test.", f"20 0 {second} b.carrier.test.",
                ttl=2)
        for name in ("a", "b", "c"):
            dns.add(f"{name}.carrier.test", "A", "127.0.0.1")
        sw = switch_factory(EXTENSIONS, extra=f"""
[dns]
nameservers = ["{dns.address}"]
min_ttl = 1
negative_ttl = 1

[numbering]
country_code = "86"

[[trunks]]
name = "carrier"
host = "carrier.test"
match = ["127.0.0.1:{first}", "127.0.0.1:{second}", "127.0.0.1:{third}"]
options_interval = 0
progress_timeout = 2

[[dial_rules]]
prefix = "0"
trunks = ["carrier"]
""")
        sw.wait_log(rf"trunk carrier: carrier\.test -> udp:127\.0\.0\.1:{first}, udp:127\.0\.0\.1:{second} \(srv\)")
        dead = background(sw, "trunk_fails.xml", first, tmp_path)
        good = background(sw, SIPP_DIR / "trunk_uas.xml", second, tmp_path)
        sipp_ok(_caller(sw, tmp_path, "1001", "013800138000"), tmp_path)
        finish(good, tmp_path)
        finish(dead, tmp_path)
        sw.wait_log(rf"trunk carrier target 127\.0\.0\.1:{first} failed \(503 Service Unavailable\): "
                    "trying its next target")
        sw.wait_log(rf"out via trunk carrier at udp:127\.0\.0\.1:{second}")
        invite = messages(tmp_path, "trunk_uas").split("INVITE sip:", 1)[1]
        assert invite.startswith("013800138000@carrier.test SIP/2.0"), invite[:200]   # the domain, no port
        assert "trunk carrier failed" not in sw.log()       # never left the trunk: its second target took it

        # the carrier moves: after the SRV's TTL (2 s) the switch sees the new target
        queried = dns.queries[("_sip._udp.carrier.test", "SRV")]
        dns.set("_sip._udp.carrier.test", "SRV", f"10 0 {third} c.carrier.test.", ttl=2)
        sw.wait_log(rf"trunk carrier: carrier\.test -> udp:127\.0\.0\.1:{third} \(srv\)", timeout=15)
        assert dns.queries[("_sip._udp.carrier.test", "SRV")] > queried
        moved = tmp_path / "moved.xml"
        moved.write_text((SIPP_DIR / "trunk_uas.xml").read_text())
        new = background(sw, moved, third, tmp_path)
        sipp_ok(_caller(sw, tmp_path, "1001", "013800138001"), tmp_path)
        finish(new, tmp_path)
        assert re.search(r"INVITE sip:013800138001@carrier\.test", messages(tmp_path, "moved"))
