"""Operations endpoints of a real switch process: /metrics (parsed with Prometheus' own parser), /health and
/ready on the API listener, the [metrics] allow-list, and a listener of their own with [api] disabled."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from .conftest import free_port
from .test_api_support import start_api_switch
from .test_metrics import families, value

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

OPTIONS = """OPTIONS sip:{port}@127.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK-ops-{n};rport
Max-Forwards: 70
From: <sip:probe@127.0.0.1>;tag=ops{n}
To: <sip:127.0.0.1>
Call-ID: ops-{n}@127.0.0.1
CSeq: 1 OPTIONS
Content-Length: 0

"""


def get(port: int, path: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def scrape(port: int) -> dict:
    status, text, headers = get(port, "/metrics")
    assert status == 200, text
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    return families(text)


def test_metrics_health_and_ready_on_the_api_listener(switch_factory, udp_client_factory):
    sw, _ = start_api_switch(switch_factory)
    port = sw.api_port
    fams = scrape(port)
    assert value(fams, "softswitch_sip_requests_received", method="OPTIONS") == 0
    client = udp_client_factory(sw.port)
    for n in range(3):
        client.send(OPTIONS.format(port=sw.port, me=client.port, n=n))
        assert client.recv().startswith(b"SIP/2.0 200")
    fams = scrape(port)
    assert value(fams, "softswitch_sip_requests_received", method="OPTIONS") == 3
    assert value(fams, "softswitch_sip_responses_sent", code="2xx") == 3
    assert value(fams, "softswitch_sip_transactions", side="server") == 3
    assert value(fams, "softswitch_registrations") == 0
    assert value(fams, "softswitch_calls", state="answered") == 0
    assert value(fams, "softswitch_queue_waiting", queue="support") == 0
    assert value(fams, "softswitch_agents", state="logged-out") == 2
    assert value(fams, "softswitch_media_legs") == 0
    assert value(fams, "softswitch_media_ports_free") > 0
    assert value(fams, "softswitch_shed_load") == 0
    assert value(fams, "process_resident_memory_bytes") > 1e6
    # the probe runs every 0.5 s, the media tick every 20 ms; the store commits at least the start-up writes
    assert fams["softswitch_media_tick_seconds"].type == "histogram"
    assert fams["softswitch_event_loop_lag_seconds"].type == "histogram"
    status, body, _ = get(port, "/health")
    assert status == 200 and '"status":"alive"' in body
    status, body, _ = get(port, "/ready")
    assert status == 200, body
    assert '"ready":true' in body and '"store":true' in body and '"listening":true' in body
    from softswitch.core import media_worker_count
    n = media_worker_count(-1)                       # [media] workers = "auto", the default, on this machine
    assert (f'"media_workers":"{n}/{n}"' in body) if n else ('"media_workers"' not in body), body


def test_allow_list_and_disabled_metrics(switch_factory):
    sw, _ = start_api_switch(switch_factory, extra='[metrics]\nallow = ["10.1.2.0/24", "::1"]\n')
    status, body, _ = get(sw.api_port, "/metrics")
    assert status == 403 and "[metrics] allow" in body, body
    assert get(sw.api_port, "/health")[0] == 200    # probes are not limited
    assert get(sw.api_port, "/ready")[0] == 200


def test_own_listener_when_the_api_is_disabled(switch_factory):
    port = free_port()
    sw = switch_factory(extra=f'[api]\nenabled = false\n[metrics]\nlisten = "127.0.0.1:{port}"\nallow = ["127.0.0.1"]\n')
    sw.wait_log(rf"metrics listening on http://127\.0\.0\.1:{port}/metrics")
    assert "api listening" not in sw.log()
    fams = scrape(port)
    assert value(fams, "softswitch_calls", state="ringing") == 0
    assert get(port, "/ready")[0] == 200
    assert get(port, "/openapi.json")[0] == 404     # only the operations endpoints here


def test_metrics_disabled(switch_factory):
    sw, _ = start_api_switch(switch_factory, extra="[metrics]\nenabled = false\n")
    assert get(sw.api_port, "/metrics")[0] == 404
    assert get(sw.api_port, "/health")[0] == 200
