"""The metrics registry and exposition (checked with Prometheus' own parser), what the switch counts, read
from a sans-IO core driven with a fake clock, and the readiness checks."""
from __future__ import annotations

import asyncio
import math
import re
from types import SimpleNamespace

import pytest

from softswitch.events import CallEnded, Disposition
from softswitch.metrics import Counter, Registry, SwitchMetrics, mos_estimate
from softswitch.sip.transaction import Peer

from .core_harness import Net, Phone, make_core

parser = pytest.importorskip("prometheus_client.parser")


def families(text: str) -> dict:
    """name -> family, checked for the conventions: HELP and TYPE on every family, counters' samples end in
    _total, histogram buckets cumulative and ending at +Inf = _count, names prefixed."""
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        assert fam.name not in out, f"{fam.name} twice"
        assert fam.documentation, f"{fam.name} has no HELP"
        assert fam.name.startswith(("softswitch_", "process_")), fam.name
        if fam.type == "counter":
            assert all(s.name == fam.name + "_total" for s in fam.samples), fam.samples
        if fam.type == "histogram":
            series: dict = {}
            for s in fam.samples:
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                series.setdefault(key, {"buckets": [], "count": None})
                if s.name.endswith("_bucket"):
                    series[key]["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    series[key]["count"] = s.value
            for key, data in series.items():
                les = [le for le, _ in data["buckets"]]
                counts = [c for _, c in data["buckets"]]
                assert les == sorted(les) and math.isinf(les[-1]), (fam.name, key, les)
                assert counts == sorted(counts), (fam.name, key, counts)
                assert counts[-1] == data["count"], (fam.name, key)
        out[fam.name] = fam
    return out


def value(fams: dict, name: str, **labels) -> float:
    fam = fams[name]
    for s in fam.samples:
        if s.name in (name, name + "_total") and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name} {labels}: {fam.samples}")


def test_exposition_parses_with_the_official_parser():
    r = Registry()
    c = r.counter("softswitch_things_total", "Things, with \\ and\nnewline in the help.", ("kind",))
    c.inc('quote " and \\ and \n newline')
    c.inc("plain", by=3)
    g = r.gauge("softswitch_level", "A level.", ("x",), fn=lambda: {("a",): 1.5, ("b",): None})
    h = r.histogram("softswitch_wait_seconds", "Waits.", (0.1, 1.0), ("queue",), [("q1",)])
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v, "q2")
    h.observe_many([0.2, 0.3], "q1")
    fams = families(r.expose())
    assert value(fams, "softswitch_things", kind='quote " and \\ and \n newline') == 1
    assert value(fams, "softswitch_things", kind="plain") == 3
    assert fams["softswitch_things"].documentation == "Things, with \\ and\nnewline in the help."
    assert [s.labels for s in fams["softswitch_level"].samples] == [{"x": "a"}]   # None: left out
    buckets = {(s.labels["queue"], s.labels.get("le")): s.value for s in fams["softswitch_wait_seconds"].samples
               if s.name.endswith("_bucket")}
    assert buckets[("q2", "0.1")] == 2 and buckets[("q2", "1")] == 3 and buckets[("q2", "+Inf")] == 4
    assert buckets[("q1", "0.1")] == 0 and buckets[("q1", "+Inf")] == 2
    assert g.type == "gauge"
    with pytest.raises(ValueError):
        Counter("softswitch_things", "no _total")
    with pytest.raises(ValueError):
        r.counter("softswitch_things_total", "twice")
    with pytest.raises(ValueError):
        r.gauge("softswitch_things", "the counter's family name")


def test_a_failing_family_is_left_out_and_counted():
    r = Registry()
    r.gauge("softswitch_broken", "Raises.", fn=lambda: 1 / 0)
    r.counter("softswitch_metrics_collect_errors_total", "Errors.")
    fams = families(r.expose())
    assert "softswitch_broken" not in fams
    assert value(fams, "softswitch_metrics_collect_errors") == 1


def test_mos_estimate():
    clean = mos_estimate(0.0, 1.0, 2.0, 40)
    assert 4.3 <= clean <= 4.5
    assert 3.3 < mos_estimate(0.05, 5.0, 20.0, 60) < clean
    assert mos_estimate(0.5, 100.0, 800.0, 400) < 2.0
    assert mos_estimate(1.0, 500.0, 2000.0, 2000) == 1.0


def _server(core, **kw):
    fields = dict(core=core, now=lambda: 1_800_000_100.0, _conns={}, media_edge=None, store=None)
    return SimpleNamespace(**{**fields, **kw})


ACD = {"skills": [{"name": "support"}],
       "agents": [{"id": "2001", "name": "A", "extension": "1002", "skills": {"support": 5}},
                  {"id": "2002", "name": "B", "extension": "1003", "skills": {"support": 5}}],
       "queues": [{"name": "support", "skill": "support"}],
       "dialplan": [{"number": "500", "queue": "support"}]}


def test_switch_metrics_from_a_core():
    core = make_core(acd=ACD, media={"enabled": True, "rtp_ports": "30000-30100"})
    net = Net(core)
    m = SwitchMetrics(_server(core, now=lambda: net.now))
    assert m._version is None     # the installed version is looked up at the first scrape, not at start
    phone = Phone(net, "1001", "pw-1001-x", Peer("udp", "127.0.0.1", 40001))
    # the edge counts every message in and out by its first bytes
    first = phone.msg("REGISTER", f"sip:{phone.net.core.config.sip.domain}")
    m.sip_in(first)
    for _, resp in net.deliver(first, phone.peer):
        m.sip_out(resp.serialize())
    m.sip_in(b"SIP/2.0 180 Ringing\r\n")
    m.sip_in(b"GARBAGE-METHOD sip:x SIP/2.0\r\n")
    m.sip_out(b"OPTIONS sip:1001@127.0.0.1 SIP/2.0\r\n")
    assert phone.register().status == 200               # authenticated: a registration
    phone.register(password="wrong-password")           # a failed authentication
    fams = families(m.expose())
    from importlib.metadata import version
    assert value(fams, "softswitch_build_info", version=version("softswitch")) == 1
    assert value(fams, "softswitch_sip_requests_received", method="REGISTER") == 1
    assert value(fams, "softswitch_sip_requests_received", method="other") == 1
    assert value(fams, "softswitch_sip_responses_received", code="1xx") == 1
    assert value(fams, "softswitch_sip_responses_sent", code="4xx") == 1
    assert value(fams, "softswitch_sip_requests_sent", method="OPTIONS") == 1
    assert value(fams, "softswitch_registrations") == 1
    assert value(fams, "softswitch_sip_auth_failures") == 1
    assert value(fams, "softswitch_sip_transactions_active") == len(core.tl) >= 1
    assert value(fams, "softswitch_sip_transactions", side="server") >= 3
    # a call waiting in the queue, no agent logged in
    phone.invite("500")
    fams = families(m.expose())
    assert value(fams, "softswitch_calls", state="queued") == 1
    assert value(fams, "softswitch_calls", state="answered") == 0
    assert value(fams, "softswitch_queue_waiting", queue="support") == 1
    assert value(fams, "softswitch_queue_calls_offered", queue="support") == 1
    assert value(fams, "softswitch_agents", state="logged-out") == 2
    assert value(fams, "softswitch_queue_agents", queue="support", state="logged-out") == 2
    assert "softswitch_queue_service_level_ratio" in fams           # no sample before any call finished
    assert value(fams, "softswitch_queue_longest_wait_seconds", queue="support") == 0
    net.advance(3.0)
    fams = families(m.expose())
    assert value(fams, "softswitch_queue_longest_wait_seconds", queue="support") == pytest.approx(3.0)
    # retransmissions: a request seen again is counted, not a new transaction
    before, started = core.tl.retransmissions_received, core.tl.server_transactions
    options = phone.msg("OPTIONS", "sip:callcenter.local")
    net.deliver(options, phone.peer)
    net.deliver(options, phone.peer)
    assert core.tl.retransmissions_received == before + 1
    assert core.tl.server_transactions == started + 1


def test_call_end_feeds_dispositions_and_quality_histograms():
    m = SwitchMetrics(_server(make_core()))
    good = {"rx_packets": 1500, "rx_lost": 0, "tx_packets": 1490, "rx_jitter_ms": 2.0, "rtt_ms": None,
            "jitter_buffer_ms": 40}
    lossy = dict(good, rx_lost=150, rx_jitter_ms=25.0)
    m.on_event(CallEnded("c1", "1001", "500", Disposition.ANSWERED, 100.0, 105.0, 135.0,
                         quality={"caller": good, "callee": lossy}))
    m.on_event(CallEnded("c2", "1001", "500", Disposition.ABANDONED, 200.0, None, 210.0))
    m.on_event(CallEnded("c3", "1002", "*11*2001", Disposition.ANSWERED, 300.0, 300.0, 301.0, service=True))
    fams = families(m.expose())
    assert value(fams, "softswitch_calls_ended", disposition="answered") == 1
    assert value(fams, "softswitch_calls_ended", disposition="abandoned") == 1
    assert value(fams, "softswitch_calls_ended", disposition="busy") == 0
    assert value(fams, "softswitch_service_calls_ended") == 1
    assert value(fams, "softswitch_media_packets_lost", role="callee") == 150
    assert m.leg_rx.count("caller") == 1 and m.leg_mos.count("callee") == 1
    talk = {s.name: s.value for s in fams["softswitch_call_talk_seconds"].samples if not s.labels}
    assert talk["softswitch_call_talk_seconds_sum"] == 30.0
    mos = {(s.labels["role"], s.labels.get("le")): s.value for s in fams["softswitch_media_leg_mos"].samples
           if s.name.endswith("_bucket")}
    assert mos[("caller", "4.2")] == 0 and mos[("caller", "4.5")] == 1      # a clean leg: above 4.2
    assert mos[("callee", "4")] == 1                                        # 9 % loss: below 4


def test_media_tick_times_are_folded_from_the_engines_record():
    from collections import deque
    stats = SimpleNamespace(ticks=0, recent=deque(maxlen=3000), late_ticks=0)
    engine = SimpleNamespace(stats=stats, endpoints={}, ports=SimpleNamespace(in_use=0, available=10),
                             dropped_packets=0)
    edge = SimpleNamespace(engine=engine, received=0, sent=0, send_drops=0, send_errors=0)
    m = SwitchMetrics(_server(make_core(), media_edge=edge))
    for dt in (0.001, 0.002, 0.03):
        stats.ticks += 1
        stats.recent.append(dt)
    m.fold_ticks()
    m.fold_ticks()                       # nothing new: nothing counted twice
    stats.ticks += 1
    stats.recent.append(0.004)
    m.fold_ticks()
    assert m.tick.count() == 4
    fams = families(m.expose())
    assert value(fams, "softswitch_media_packets", direction="sent") == 0


def test_loop_lag_probe_runs_on_the_loop():
    m = SwitchMetrics(_server(make_core()))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        m.start(loop)
        while m.loop_lag.count() < 1:
            await asyncio.sleep(0.05)
        m.stop()

    asyncio.run(asyncio.wait_for(run(), 5))
    assert m.loop_lag.count() >= 1


def test_readiness_reasons():
    from softswitch.api.ops import readiness

    core = make_core()

    class Store:
        closed = False

        async def fetchall(self, sql):
            return [(1,)]

    ports = SimpleNamespace(available=0, in_use=4, quarantined=frozenset({1234}))
    server = SimpleNamespace(running=True, config=core.config, core=SimpleNamespace(local=core.local, media=None),
                             _udp={}, store=Store(), media_edge=None)
    reasons, checks = asyncio.run(readiness(server))
    assert reasons == [] and checks == {"listening": True, "store": True}
    server.core.media = SimpleNamespace(ports=ports)
    server.store = None
    server.running = False
    reasons, checks = asyncio.run(readiness(server))
    assert "not started yet, or shutting down" in reasons
    assert "store not open" in reasons
    assert any(r.startswith("media ports exhausted: 0 RTP port pair(s) free") for r in reasons), reasons
    assert "media tick not running" in reasons
    assert checks["media_ports_free"] == 0


def test_readme_lists_every_metric():
    from .conftest import ROOT
    readme = (ROOT / "README.md").read_text()
    listed = dict(re.findall(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \|", readme, re.M))
    registry = SwitchMetrics(_server(make_core())).registry
    assert listed == {m.name: m.type for m in registry}, "README's Operations metric table is out of date"
