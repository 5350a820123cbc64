"""One extension cannot take every RTP port (issue 11, item 7), against a real switch with pjsua2 phones:
its extra call is refused (503, Warning naming max_calls), a call between extensions cannot take the ports
kept for queue and hotline calls, and a queue call still gets one and is answered with audio."""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from .conftest import DOMAIN, rtp_range  # noqa: E402
from .e2e_configs import support_agents  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


def config(tmp: Path, prompts: Path) -> str:
    """Six port pairs, two of them kept for queue/hotline calls; extension 1001 may place two calls at once."""
    (tmp / "var").mkdir(exist_ok=True)
    (tmp / "var" / "prompts").symlink_to(prompts, target_is_directory=True)
    return f'''auth_algorithms = ["MD5", "SHA-256"]
[media]
rtp_ports = "{rtp_range(12)}"
reserve_ports = 2
record = "none"
[acd]
queue_log = "{tmp / 'queue_log'}"
{support_agents(bob=False)}[[acd.queues]]
name = "support"
skill = "support"
[[acd.dialplan]]
number = "500"
queue = "support"
[[extensions]]
number = "1001"
password = "secret-1001"
max_calls = 2
[[extensions]]
number = "1002"
password = "secret-1002"
busy_limit = 0
[[extensions]]
number = "1003"
password = "secret-1003"
'''


def test_extension_call_limit_and_the_port_reserve_for_queue_calls(switch_factory, phones, sounds, tmp_path):
    sw = switch_factory(extensions={}, extra=config(tmp_path, sounds))
    a, b, c = phones("a"), phones("b"), phones("c")
    for p, n in ((a, "1001"), (b, "1002"), (c, "1003")):
        reg = p.register(n, EXTS[n], DOMAIN, f"sip:{sw.addr}")
        assert reg["code"] == 200, reg
    b.auto_answer(code=200)
    up = []
    for _ in range(2):                            # 1001's two calls: four of the six pairs
        call = a.call(f"sip:1002@{DOMAIN}")
        a.wait_call_state(call, "CONFIRMED", timeout=15)
        up.append(call)
    third = a.call(f"sip:1002@{DOMAIN}")          # over max_calls
    ev = a.wait_call_state(third, "DISCONNECTED", timeout=15)
    assert ev["code"] == 503, ev
    sw.wait_log(r"call from 1001 refused \(503\): extension 1001 has 2 calls up \(max_calls = 2\)")
    # the two pairs left are the reserve: another extension's call to a phone cannot have them...
    other = c.call(f"sip:1002@{DOMAIN}")
    ev = c.wait_call_state(other, "DISCONNECTED", timeout=15)
    assert ev["code"] == 503, ev
    sw.wait_log(r"no RTP port for caller 1003: only the 2 RTP port pair\(s\) kept for queue and hotline calls")
    # ...but a call to the queue gets one, is answered, and hears the queue (announcement, music)
    q = c.call(f"sip:500@{DOMAIN}")
    c.wait_call_state(q, "CONFIRMED", timeout=15)
    c.wait_event("media_state", call=q, active=True, timeout=10)
    c.record(q, tmp_path / "queue_heard.wav")
    time.sleep(2.0)                               # pacing: 2 s of what the queue plays
    c.stop_record(q)
    heard = audio.read_mono(tmp_path / "queue_heard.wav")
    assert audio.rms(heard[4000:]) > 0.01, "the queue caller hears nothing"
    c.hangup(q)
    for call in up:
        a.hangup(call)
    sw.wait_log(r"(?s)(ended: .*){3}", timeout=10)
    assert not re.search(r"Traceback", sw.log())
