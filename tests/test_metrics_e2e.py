"""/metrics during a real call through a queue (pjsua2 phones, a real switch process): the caller waits while
the agent's phone rings (queue waiting 1, the call queued), the agent answers (waiting 0, the call answered,
two media legs whose packet counters move), the caller hangs up (an answered call ended, its legs' packet,
jitter and MOS histograms filled). Every scrape parses with Prometheus' own parser."""
from __future__ import annotations

import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("prometheus_client")

from . import audio  # noqa: E402
from tests.phones.steps import feature_code, register  # noqa: E402

from .conftest import DOMAIN, free_port, wait_for  # noqa: E402
from .e2e_configs import ACD_EXTS as EXTS, acd_config  # noqa: E402
from .test_metrics import value  # noqa: E402
from .test_ops_e2e import scrape  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def metric(port: int, name: str, **labels) -> float:
    return value(scrape(port), name, **labels)


def counts(fams: dict, name: str) -> dict[str, float]:
    """A per-role histogram's observation counts."""
    return {s.labels["role"]: s.value for s in fams[name].samples if s.name == name + "_count"}


def sums(fams: dict, name: str) -> dict[str, float]:
    return {s.labels["role"]: s.value for s in fams[name].samples if s.name == name + "_sum"}


LEG_HISTOGRAMS = ("softswitch_media_leg_received_packets", "softswitch_media_leg_sent_packets",
                  "softswitch_media_leg_jitter_seconds", "softswitch_media_leg_mos")


def test_scrape_during_a_queue_call(switch_factory, phones, tmp_path, sounds):
    api = free_port()
    extra = acd_config(tmp_path, sounds, ring_time=15, announce_agent=False) + f'[api]\nlisten = "127.0.0.1:{api}"\n'
    sw = switch_factory(EXTS, extra=extra)
    sw.wait_log(r"api listening on http://127\.0\.0\.1:\d+")
    alice = register(sw, phones, "alice", "1002")
    caller = register(sw, phones, "caller", "1001")
    assert metric(api, "softswitch_registrations") == 2
    feature_code(sw, alice, "*11*2001")
    sw.wait_log(r"agent 2001 is ready")
    fams = scrape(api)
    assert value(fams, "softswitch_agents", state="ready") == 1
    assert value(fams, "softswitch_queue_agents", queue="support", state="ready") == 1
    assert value(fams, "softswitch_queue_waiting", queue="support") == 0
    assert value(fams, "softswitch_calls_ended", disposition="answered") == 0
    before = {name: counts(fams, name) for name in LEG_HISTOGRAMS}   # the *11* call's leg is in already
    rx_before = sums(fams, "softswitch_media_leg_received_packets")

    answered = sw.log().count("connected to agent")
    alice.auto_answer(code=200, delay_ms=3000)          # the caller waits meanwhile (music, agent ringing)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    incoming = alice.wait_event("incoming", timeout=10)
    fams = scrape(api)
    assert value(fams, "softswitch_queue_waiting", queue="support") == 1, "the caller is not counted waiting"
    assert value(fams, "softswitch_calls", state="queued") == 1
    assert value(fams, "softswitch_agents", state="ringing") == 1
    assert value(fams, "softswitch_queue_calls_offered", queue="support") == 1
    assert sw.log().count("connected to agent") == answered, "answered before the scrape: raise delay_ms"

    # the agent answers: nobody waits any more, the call is answered, both legs carry RTP
    alice.wait_call_state(incoming["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001 at 1002")
    # both talk (pjsua2's silent null device sends nothing while nobody speaks)
    talk = audio.write_wav(tmp_path / "talk.wav", audio.melody(4.0, seed=3))
    alice.play(incoming["call"], talk, loop=True)
    caller.play(call, talk, loop=True)
    fams = wait_for(lambda: (f := scrape(api)) and value(f, "softswitch_calls", state="answered") == 1 and f, 5)
    assert value(fams, "softswitch_queue_waiting", queue="support") == 0
    assert value(fams, "softswitch_calls", state="queued") == 0
    assert value(fams, "softswitch_agents", state="on-call") == 1
    assert value(fams, "softswitch_queue_calls_answered", queue="support") == 1
    assert value(fams, "softswitch_media_legs") >= 2
    rx0 = value(fams, "softswitch_media_packets", direction="received")
    tx0 = value(fams, "softswitch_media_packets", direction="sent")
    assert rx0 > 0 and tx0 > 0
    wait_for(lambda: metric(api, "softswitch_media_packets", direction="received") > rx0 + 50, 5)
    wait_for(lambda: metric(api, "softswitch_media_packets", direction="sent") > tx0 + 50, 5)

    def ticks(f: dict) -> float:
        return sum(s.value for s in f["softswitch_media_tick_seconds"].samples if s.name.endswith("_count"))
    # the 20 ms tick is timed wherever it runs (by default in a media worker, which reports every second)
    wait_for(lambda: ticks(scrape(api)) > ticks(fams) + 25, 5)
    assert value(fams, "softswitch_sip_requests_received", method="INVITE") >= 2     # caller, feature code
    assert value(fams, "softswitch_sip_requests_sent", method="INVITE") >= 1         # to the agent
    assert value(fams, "softswitch_sip_responses_received", code="2xx") >= 1

    caller.hangup(call)
    sw.wait_log(r"1001 -> 500 ended")
    fams = wait_for(lambda: (f := scrape(api)) and value(f, "softswitch_calls_ended", disposition="answered") == 1
                    and f, 5)
    assert value(fams, "softswitch_calls", state="answered") == 0
    assert value(fams, "softswitch_service_calls_ended") == 1          # the *11* login
    for name in LEG_HISTOGRAMS:          # one more leg of each role: the queue call's caller and agent
        now = counts(fams, name)
        assert now["caller"] == before[name]["caller"] + 1 and now["callee"] == before[name]["callee"] + 1, \
            (name, before[name], now)
    rx = sums(fams, "softswitch_media_leg_received_packets")
    assert rx["caller"] - rx_before["caller"] > 10 and rx["callee"] - rx_before["callee"] > 10, (rx_before, rx)
    mos_low = {s.labels["role"]: s.value for s in fams["softswitch_media_leg_mos"].samples
               if s.name.endswith("_bucket") and s.labels["le"] == "4"}
    assert mos_low == {"caller": 0, "callee": 0}, "a clean loopback call estimated below MOS 4"
    assert value(fams, "softswitch_store_writes") >= 1                 # registrations, the call record
    assert sum(s.value for s in fams["softswitch_store_commit_seconds"].samples
               if s.name.endswith("_count")) >= 1
