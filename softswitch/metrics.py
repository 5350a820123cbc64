"""Prometheus metrics: a small registry, the text exposition format (0.0.4), and what the switch counts.

Counting stays cheap: hot paths increment plain integers in place (``Counter.inc`` is one dict update;
the SIP edge counts with ``SwitchMetrics.sip_in`` / ``sip_out``, a slice and a dict lookup per message),
and everything that already exists somewhere else is read only when Prometheus scrapes: the core's
statistics, the transaction layer's counters, the registrar, live calls, the media engine's and its
edge's counters (no per-packet Python is added to the media tick), the ACD's live queue statistics and
agent states. Media quality comes from the per-leg statistics in ``events.CallEnded.quality`` when a call
ends; the media tick time comes from the engine's own record of recent ticks, folded into a histogram
once a second by the same timer that measures the event loop's lag.

Names follow Prometheus conventions: the ``softswitch_`` prefix, ``_total`` on counters, base units
(seconds, bytes, ratios 0..1) in the name. The list is in the README's "Operations" section.
"""
from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import math
import os
import resource
import time
from typing import Any, Callable, Iterable, Iterator, Sequence

from .events import CallEnded, Disposition, SwitchEvent
from .states import CallState

log = logging.getLogger("softswitch.metrics")

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "SwitchMetrics", "mos_estimate", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]
Sample = tuple[str, Labels, float]          # (name suffix, label values, value)


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _number(v: float) -> str:
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return str(int(v))
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


class Metric:
    """One metric family. ``samples()`` yields (suffix, label values, value)."""

    type = "untyped"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()):
        self.name = name
        self.help = help
        self.labels = tuple(labels)

    def samples(self) -> Iterable[Sample]:
        return ()

    def expose(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} {self.type}")
        for suffix, values, value in self.samples():
            out.append(f"{self.name}{suffix}{self._labels(values)} {_number(value)}")

    def _labels(self, values: Labels, extra: str = "") -> str:
        names = self.labels
        parts = [f'{n}="{_escape_label(v)}"' for n, v in zip(names, values)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""


class Counter(Metric):
    """A monotonic count. ``name`` ends in ``_total``. ``inc`` is a plain in-place update."""

    type = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (), initial: Iterable[Labels] = ()):
        if not name.endswith("_total"):
            raise ValueError(f"counter {name} must end in _total")
        super().__init__(name, help, labels)
        self.values: dict[Labels, float] = {tuple(v): 0 for v in initial}
        if not self.labels:
            self.values.setdefault((), 0)

    def inc(self, *labels: str, by: float = 1) -> None:
        v = self.values
        v[labels] = v.get(labels, 0) + by

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0)

    def samples(self) -> Iterable[Sample]:
        return (("", k, v) for k, v in sorted(self.values.items()))


class Gauge(Metric):
    """A value that goes up and down: set in place, or computed at scrape time by ``fn`` (which returns
    the value, or a mapping label values -> value)."""

    type = "gauge"

    def __init__(self, name: str, help: str, labels: Sequence[str] = (),
                 fn: Callable[[], Any] | None = None):
        super().__init__(name, help, labels)
        self.values: dict[Labels, float] = {}
        self.fn = fn

    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = value

    def samples(self) -> Iterable[Sample]:
        values: Any = self.values
        if self.fn is not None:
            values = self.fn()
            if not isinstance(values, dict):
                values = {} if values is None else {(): values}
        return (("", k if isinstance(k, tuple) else (k,), v) for k, v in sorted(values.items()) if v is not None)


class Histogram(Metric):
    """Cumulative buckets, a sum and a count per label set (``le`` added on the buckets)."""

    type = "histogram"

    def __init__(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = (),
                 initial: Iterable[Labels] = ()):
        super().__init__(name, help, labels)
        self.bounds = sorted(float(b) for b in buckets)
        self._data: dict[Labels, list[float]] = {}   # per label set: bucket counts..., +Inf count, sum
        for v in initial:
            self._series(tuple(v))
        if not self.labels:
            self._series(())

    def _series(self, labels: Labels) -> list[float]:
        s = self._data.get(labels)
        if s is None:
            s = self._data[labels] = [0] * (len(self.bounds) + 1) + [0.0]
        return s

    def observe(self, value: float, *labels: str) -> None:
        s = self._data.get(labels) or self._series(labels)
        s[bisect.bisect_left(self.bounds, value)] += 1
        s[-1] += value

    def observe_many(self, values: Sequence[float], *labels: str) -> None:
        s = self._data.get(labels) or self._series(labels)
        bounds = self.bounds
        total = 0.0
        for value in values:
            s[bisect.bisect_left(bounds, value)] += 1
            total += value
        s[-1] += total

    def count(self, *labels: str) -> int:
        s = self._data.get(labels)
        return int(sum(s[:-1])) if s else 0

    def samples(self) -> Iterable[Sample]:
        return ()

    def expose(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {_escape_help(self.help)}")
        out.append(f"# TYPE {self.name} {self.type}")
        for labels, s in sorted(self._data.items()):
            cum = 0.0
            for bound, n in zip([*self.bounds, math.inf], s[:-1]):
                cum += n
                le = 'le="' + ("+Inf" if math.isinf(bound) else _number(bound)) + '"'
                out.append(f"{self.name}_bucket{self._labels(labels, le)} {_number(cum)}")
            out.append(f"{self.name}_sum{self._labels(labels)} {_number(s[-1])}")
            out.append(f"{self.name}_count{self._labels(labels)} {_number(cum)}")


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self._families: set[str] = set()

    def add(self, metric: Metric) -> Any:
        family = metric.name.removesuffix("_total")   # a counter's family name (OpenMetrics) must be free too
        if metric.name in self.metrics or family in self._families:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        self._families.add(family)
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = (), initial: Iterable[Labels] = ()) -> Counter:
        return self.add(Counter(name, help, labels, initial))  # type: ignore[no-any-return]

    def gauge(self, name: str, help: str, labels: Sequence[str] = (), fn: Callable[[], Any] | None = None) -> Gauge:
        return self.add(Gauge(name, help, labels, fn))  # type: ignore[no-any-return]

    def histogram(self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = (),
                  initial: Iterable[Labels] = ()) -> Histogram:
        return self.add(Histogram(name, help, buckets, labels, initial))  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[Metric]:
        return iter(self.metrics.values())

    def expose(self) -> str:
        """The whole registry in the Prometheus text format; a family that fails to collect is left
        out (and named in ``softswitch_metrics_collect_errors_total``) rather than failing the scrape."""
        out: list[str] = []
        for m in self.metrics.values():
            part: list[str] = []
            try:
                m.expose(part)
            except Exception:
                errors = self.metrics.get("softswitch_metrics_collect_errors_total")
                if isinstance(errors, Counter):
                    errors.inc()
                continue
            out += part
        return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ quality

def mos_estimate(loss_ratio: float, jitter_ms: float, rtt_ms: float | None = None, buffer_ms: float = 40.0) -> float:
    """A MOS estimate for a G.711 leg from its RTP statistics: the ITU-T G.107 E-model simplified as usual
    for monitoring (G.711 with packet-loss concealment: Ie = 0, Bpl = 25.1; random loss; the one-way delay
    is half the RTCP round trip, the jitter buffer, twice the jitter and a 20 ms packet), R mapped to MOS
    by G.107 Annex B. 4.4 for a clean LAN call; about 3.6 at 5 % loss; 1 at worst."""
    loss_pct = max(0.0, min(1.0, loss_ratio)) * 100.0
    delay = (rtt_ms / 2.0 if rtt_ms else 0.0) + max(0.0, buffer_ms) + 2.0 * max(0.0, jitter_ms) + 20.0
    idd = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    ie_eff = 95.0 * loss_pct / (loss_pct + 25.1)
    r = 93.2 - idd - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return round(max(1.0, min(4.5, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))), 3)


# ------------------------------------------------------------------------------ the switch's

# Methods counted by name; anything else (a scanner's garbage) is "other", so labels stay few.
SIP_METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "INFO", "UPDATE", "PRACK", "REFER",
               "NOTIFY", "SUBSCRIBE", "MESSAGE", "PUBLISH")
_METHOD = {m.encode(): m for m in SIP_METHODS}
_CLASS = {str(c).encode(): f"{c}xx" for c in range(1, 7)}
CODE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "6xx")
AGENT_STATES = ("logged-out", "ready", "not-ready", "ringing", "on-call", "wrap-up")
LIVE_CALL_STATES = (CallState.RINGING.value, CallState.QUEUED.value, CallState.ANSWERED.value)
ROLES = ("caller", "callee")

TIME_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
PACKET_BUCKETS = (0, 10, 50, 250, 1000, 3000, 10000, 30000, 100000, 300000)
LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
JITTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)
MOS_BUCKETS = (1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.3, 4.4, 4.5)
TALK_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 3600)

PROBE_INTERVAL = 0.5          # seconds between event-loop lag probes (and media tick folds)


class SwitchMetrics:
    """The switch's metrics, read from ``server`` (``transport.Server``) at scrape time where they exist,
    counted here where they do not. The edge calls ``sip_in``/``sip_out`` per SIP message, subscribes
    ``on_event`` to the switch's events, and ``start``/``stop`` the probe timer."""

    def __init__(self, server: Any):
        self.server = server
        self.started = time.time()
        self._version: str | None = None   # looked up at the first scrape (see ``version``)
        r = self.registry = Registry()
        self._req_in: dict[str, int] = {}      # method -> count (the hot path's plain dicts)
        self._resp_in: dict[str, int] = {}     # status class -> count
        self._req_out: dict[str, int] = {}
        self._resp_out: dict[str, int] = {}
        self._probe: asyncio.TimerHandle | None = None
        self._probe_due = 0.0
        self._ticks_seen = 0
        self._loop: asyncio.AbstractEventLoop | None = None

        r.gauge("softswitch_build_info", "The switch's version (value 1).", ("version",),
                fn=lambda: {(self.version,): 1})
        r.gauge("process_start_time_seconds", "When the process started (Unix time).", fn=lambda: self.started)
        r.counter("process_cpu_seconds_total", "CPU time used by the process (user + system).")
        r.gauge("process_resident_memory_bytes", "Resident memory of the process.", fn=_rss_bytes)
        r.gauge("process_open_fds", "Open file descriptors.", fn=_open_fds)

        # SIP
        r.add(_DictCounter("softswitch_sip_requests_received_total", "SIP requests received, by method "
                           "(retransmissions included; unknown methods as \"other\").", "method",
                           self._req_in, SIP_METHODS))
        r.add(_DictCounter("softswitch_sip_responses_received_total", "SIP responses received, by status class.",
                           "code", self._resp_in, CODE_CLASSES))
        r.add(_DictCounter("softswitch_sip_requests_sent_total", "SIP requests sent, by method "
                           "(retransmissions included).", "method", self._req_out, SIP_METHODS))
        r.add(_DictCounter("softswitch_sip_responses_sent_total", "SIP responses sent, by status class "
                           "(retransmissions included).", "code", self._resp_out, CODE_CLASSES))
        r.gauge("softswitch_sip_transactions_active", "SIP transactions in progress (client and server).",
                fn=lambda: len(self.core.tl))
        r.add(_ReadCounter("softswitch_sip_transactions_total", "SIP transactions started, by side.", ("side",),
                           lambda: {("server",): self.core.tl.server_transactions,
                                    ("client",): self.core.tl.client_transactions}))
        r.add(_ReadCounter("softswitch_sip_retransmissions_total", "SIP retransmissions: sent by the switch's "
                           "timers, and received (a request or final response seen again).", ("direction",),
                           lambda: {("sent",): self.core.tl.retransmissions_sent,
                                    ("received",): self.core.tl.retransmissions_received}))
        r.add(_ReadCounter("softswitch_sip_parse_errors_total", "SIP messages that did not parse.", (),
                           lambda: self.core.stats.parse_errors))
        r.add(_ReadCounter("softswitch_sip_auth_failures_total", "Failed digest authentications (wrong user "
                           "or password).", (), lambda: self.core.stats.auth_failures))
        r.add(_ReadCounter("softswitch_sip_bans_total", "Addresses banned after repeated failed "
                           "authentications.", (), lambda: self.core.stats.bans))
        r.add(_ReadCounter("softswitch_sip_banned_dropped_total", "SIP messages from banned addresses, dropped "
                           "unanswered.", (), lambda: self.core.stats.dropped_banned))
        r.gauge("softswitch_sip_banned_addresses", "Addresses banned now.",
                fn=lambda: len(self.core.bans.banned(self.server.now())))
        r.gauge("softswitch_sip_connections", "Open TCP/TLS connections.", fn=lambda: len(self.server._conns))
        r.add(_ReadCounter("softswitch_sip_connections_closed_total", "TCP/TLS connections refused at accept "
                           "(over tcp_max_connections / tcp_max_per_address) or closed by the switch (a message "
                           "not whole within tcp_message_timeout; silent for tcp_idle_timeout without a "
                           "registration or a call).", ("reason",),
                           lambda: {("refused",): self.server.guard.refused, ("slow",): self.server.guard.closed_slow,
                                    ("idle",): self.server.guard.closed_idle}))
        r.gauge("softswitch_registrations", "Registered contacts (bindings) now.",
                fn=lambda: self.core.registrar.count())

        # calls
        r.gauge("softswitch_calls", "Calls in progress, by state (ringing: not answered yet; queued: "
                "answered by the switch: IVR, queue, service; answered: talking to a party).", ("state",),
                fn=self._calls_by_state)
        self.calls_ended = r.counter("softswitch_calls_ended_total", "Calls ended, by disposition (as in the "
                                     "call records; feature-code and monitoring calls not included).",
                                     ("disposition",), [(d.value,) for d in Disposition])
        self.service_calls = r.counter("softswitch_service_calls_ended_total", "Feature-code and supervisor "
                                       "monitoring calls ended (no call record).")
        self.talk = r.histogram("softswitch_call_talk_seconds", "Talk time of answered calls.", TALK_BUCKETS)

        # media
        r.gauge("softswitch_media_legs", "Media legs (RTP endpoints) open now.", fn=self._media_legs)
        r.gauge("softswitch_media_ports_in_use", "RTP ports (even RTP + odd RTCP pairs) in use.",
                fn=lambda: self._media_engine_attr(lambda e: e.ports.in_use))
        r.gauge("softswitch_media_ports_free", "RTP port pairs free.",
                fn=lambda: self._media_engine_attr(lambda e: e.ports.available))
        r.add(_ReadCounter("softswitch_media_packets_total", "RTP and RTCP datagrams received and sent by the "
                           "media engine.", ("direction",), self._media_packets))
        r.add(_ReadCounter("softswitch_media_send_failures_total", "Media datagrams not sent (socket full or "
                           "error).", (), lambda: self._media_edge_attr(lambda m: m.send_drops + m.send_errors)))
        r.gauge("softswitch_media_relayed_calls", "Two-party calls on the media fast path now (relayed packet "
                "for packet, not mixed).", fn=lambda: self._media_engine_attr(lambda e: e.relay_pairs))
        r.add(_ReadCounter("softswitch_media_relayed_packets_total", "RTP packets forwarded by the media fast "
                           "path.", (), lambda: self._media_engine_attr(lambda e: e.relayed_packets)))
        r.add(_ReadCounter("softswitch_media_stray_packets_total", "Datagrams for no open leg, dropped.", (),
                           lambda: self._media_engine_attr(lambda e: e.dropped_packets)))
        r.add(_ReadCounter("softswitch_media_foreign_packets_total", "RTP/RTCP for a leg from an address its "
                           "signalling and SDP do not justify (docs/security.md), dropped.", (),
                           lambda: self._media_engine_attr(lambda e: e.foreign_packets)))
        r.add(_ReadCounter("softswitch_media_srtp_rejected_total", "SRTP/SRTCP packets failing authentication "
                           "or replayed, dropped.", (), lambda: self._media_engine_attr(lambda e: e.srtp_rejected)))
        self.lost = r.counter("softswitch_media_packets_lost_total", "RTP packets lost (sequence gaps) on the "
                              "legs of ended calls.", ("role",), [(x,) for x in ROLES])
        self.leg_rx = r.histogram("softswitch_media_leg_received_packets", "RTP packets received per leg, at "
                                  "call end.", PACKET_BUCKETS, ("role",), [(x,) for x in ROLES])
        self.leg_tx = r.histogram("softswitch_media_leg_sent_packets", "RTP packets sent per leg, at call end.",
                                  PACKET_BUCKETS, ("role",), [(x,) for x in ROLES])
        self.leg_lost = r.histogram("softswitch_media_leg_lost_packets", "RTP packets lost per leg, at call "
                                    "end.", PACKET_BUCKETS, ("role",), [(x,) for x in ROLES])
        self.leg_loss = r.histogram("softswitch_media_leg_loss_ratio", "Fraction of RTP packets lost per leg "
                                    "(0..1), at call end.", LOSS_BUCKETS, ("role",), [(x,) for x in ROLES])
        self.leg_jitter = r.histogram("softswitch_media_leg_jitter_seconds", "Interarrival jitter (RFC 3550) "
                                      "per leg, at call end.", JITTER_BUCKETS, ("role",), [(x,) for x in ROLES])
        self.leg_mos = r.histogram("softswitch_media_leg_mos", "MOS estimate per leg (E-model from loss, "
                                   "jitter, round trip; 1..4.5), at call end.", MOS_BUCKETS, ("role",),
                                   [(x,) for x in ROLES])
        self.tick = r.histogram("softswitch_media_tick_seconds", "Time one 20 ms media tick takes.", TIME_BUCKETS)
        r.add(_ReadCounter("softswitch_media_ticks_late_total", "Media ticks started more than 5 ms late.", (),
                           lambda: self._media_engine_attr(lambda e: e.stats.late_ticks)))

        # the edge
        self.loop_lag = r.histogram("softswitch_event_loop_lag_seconds", "How late a timer on the event "
                                    "loop fires (the loop busy elsewhere), probed every 0.5 s.", LAG_BUCKETS)
        self.store_commit = r.histogram("softswitch_store_commit_seconds", "Time one group commit of the "
                                        "store takes (every write waiting for it shares it).", TIME_BUCKETS)
        self.store_writes = r.counter("softswitch_store_writes_total", "Writes committed through the store's "
                                      "group commit (registrations, call records, work orders...).")
        self.store_failures = r.counter("softswitch_store_commit_failures_total", "Group commits that failed.")
        # overload control (softswitch.overload): absent figures read 0 when [overload] enabled = false
        r.add(_ReadCounter("softswitch_shed_load_total", "SIP datagrams not served to shed load, by reason: "
                           "rejected (answered 503 after waiting too long while overloaded), backlog (answered 503: "
                           "too many waiting), retransmission (a copy of a request waiting or served), stale "
                           "(older than a transaction lives), refused_dialog (ACK or BYE of a 503 of ours).",
                           ("reason",), self._shed))
        r.gauge("softswitch_overload", "1 while the switch sheds load (newest requests first, 503 to those that "
                "waited too long), else 0.", fn=lambda: self._overload(lambda f: int(f.mode.value == "overloaded")))
        r.gauge("softswitch_overload_backlog", "SIP datagrams read and waiting to be served.",
                fn=lambda: self._overload(lambda f: f.backlog))
        r.gauge("softswitch_overload_delay_seconds", "How long the oldest waiting SIP request has waited "
                "(from the kernel's receive time).", fn=lambda: self._overload(lambda f: f.delay))
        r.gauge("softswitch_overload_load_ratio", "Share of the last second the SIP edge spent reading and "
                "serving (0..1).", fn=lambda: self._overload(lambda f: f.load))
        r.gauge("softswitch_overload_write_delay_seconds", "How long the oldest registration being committed "
                "by the store has waited (past 0.4 x T1, new REGISTERs are held back).",
                fn=lambda: self._overload(lambda f: f.write_delay))
        r.add(_ReadCounter("softswitch_overload_episodes_total", "Times the switch went into overload.", (),
                           lambda: self._overload(lambda f: f.overloads)))

        # SIP trunks
        r.gauge("softswitch_trunk_up", "1 while the trunk's OPTIONS keep-alive is answered, 0 when it is down "
                "(absent while unknown or keep-alive is off).", ("trunk",), fn=lambda: self._trunks("up"))
        r.gauge("softswitch_trunk_registered", "1 while the switch is registered to the trunk's carrier "
                "(trunks with register = true).", ("trunk",), fn=lambda: self._trunks("registered"))
        r.gauge("softswitch_trunk_channels", "Calls on the trunk now (in and out).", ("trunk",),
                fn=lambda: self._trunks("channels"))

        # call centre
        r.gauge("softswitch_queue_waiting", "Callers waiting in the queue now.", ("queue",),
                fn=lambda: self._queue(lambda s: s.waiting))
        r.gauge("softswitch_queue_longest_wait_seconds", "How long the longest-waiting caller has waited.",
                ("queue",), fn=lambda: self._queue(lambda s: s.longest_wait))
        r.gauge("softswitch_queue_service_level_ratio", "Calls answered within the queue's service-level "
                "threshold / (answered + abandoned), since start (absent before any).", ("queue",),
                fn=lambda: self._queue(lambda s: s.service_level))
        r.gauge("softswitch_queue_average_speed_of_answer_seconds", "Average wait of answered calls, since "
                "start.", ("queue",), fn=lambda: self._queue(lambda s: s.asa))
        r.gauge("softswitch_queue_average_handle_seconds", "Average talk + wrap-up time, since start.",
                ("queue",), fn=lambda: self._queue(lambda s: s.aht))
        for what in ("offered", "answered", "abandoned", "timed_out"):
            r.add(_ReadCounter(f"softswitch_queue_calls_{what}_total", f"Queue calls {what.replace('_', ' ')}, "
                               "since start.", ("queue",), functools.partial(self._queue_counter, what)))
        r.gauge("softswitch_queue_agents", "Member agents of the queue, by state (phone-busy: ready but on a "
                "direct call).", ("queue", "state"), fn=self._queue_agents)
        r.gauge("softswitch_agents", "ACD agents, by state.", ("state",), fn=self._agents)
        r.counter("softswitch_metrics_collect_errors_total", "Metric families that failed to collect at a scrape.")

    @property
    def version(self) -> str:
        """The softswitch_build_info label: looked up once, at the first scrape (``_version``)."""
        if self._version is None:
            self._version = _version()
        return self._version

    # ------------------------------------------------------------------------------ hot paths
    def sip_in(self, data: bytes) -> None:
        """Count one SIP message received (a datagram or a framed stream message) by its first bytes."""
        if data[:8] == b"SIP/2.0 ":
            d, key = self._resp_in, _CLASS.get(data[8:9], "other")
        else:
            sp = data.find(b" ", 0, 12)
            d, key = self._req_in, (_METHOD.get(data[:sp], "other") if sp > 0 else "other")
        d[key] = d.get(key, 0) + 1

    def sip_out(self, data: bytes) -> None:
        """Count one SIP message sent."""
        if data[:8] == b"SIP/2.0 ":
            d, key = self._resp_out, _CLASS.get(data[8:9], "other")
        else:
            sp = data.find(b" ", 0, 12)
            d, key = self._req_out, (_METHOD.get(data[:sp], "other") if sp > 0 else "other")
        d[key] = d.get(key, 0) + 1

    # ------------------------------------------------------------------------------ events
    def on_event(self, ev: SwitchEvent) -> None:
        if not isinstance(ev, CallEnded):
            return
        if ev.service:
            self.service_calls.inc()
        else:
            self.calls_ended.inc(ev.disposition.value)
            if ev.answered is not None:
                self.talk.observe(max(0.0, ev.ended - ev.answered))
        for role, st in ev.quality.items():
            if role not in ROLES or not st:
                continue
            rx, lost, tx = int(st.get("rx_packets") or 0), int(st.get("rx_lost") or 0), int(st.get("tx_packets") or 0)
            jitter = float(st.get("rx_jitter_ms") or 0.0)
            self.lost.inc(role, by=lost)
            self.leg_rx.observe(rx, role)
            self.leg_tx.observe(tx, role)
            self.leg_lost.observe(lost, role)
            if rx + lost:
                ratio = lost / (rx + lost)
                self.leg_loss.observe(ratio, role)
                self.leg_jitter.observe(jitter / 1000.0, role)
                self.leg_mos.observe(mos_estimate(ratio, jitter, st.get("rtt_ms"),
                                                  float(st.get("jitter_buffer_ms") or 40)), role)

    def store_batch(self, seconds: float, writes: int, ok: bool) -> None:
        """The store's group-commit writer reports each batch (``GroupWriter.observer``)."""
        self.store_commit.observe(seconds)
        if ok:
            self.store_writes.inc(by=writes)
        else:
            self.store_failures.inc()

    # ------------------------------------------------------------------------------ the probe
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the probe: every 0.5 s, how late it fires (event-loop lag) and the media ticks since."""
        self._loop = loop
        store = getattr(self.server, "store", None)
        if store is not None and hasattr(store, "writer"):
            store.writer.observer = self.store_batch
        self._schedule()

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        self._loop = None

    def _schedule(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._probe_due = loop.time() + PROBE_INTERVAL
        self._probe = loop.call_at(self._probe_due, self._on_probe)

    def _on_probe(self) -> None:
        loop = self._loop
        if loop is None:
            return
        try:
            self.loop_lag.observe(max(0.0, loop.time() - self._probe_due))
            self.fold_ticks()
        except Exception:  # metrics must never take the loop's timer down with them
            log.debug("metrics probe failed", exc_info=True)
        self._schedule()

    def fold_ticks(self) -> None:
        """The media ticks run since the last fold, from the engine's record of recent tick times (3,000
        ticks, a minute: folded every 0.5 s nothing is missed)."""
        engine = self._engine()
        if engine is None:
            return
        st = engine.stats
        new = st.ticks - self._ticks_seen
        if new <= 0:
            return
        self._ticks_seen = st.ticks
        recent = st.recent
        n = min(new, len(recent))
        self.tick.observe_many([recent[i] for i in range(len(recent) - n, len(recent))])

    # ------------------------------------------------------------------------------ exposition
    def expose(self) -> str:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = self.registry.metrics["process_cpu_seconds_total"]
        assert isinstance(cpu, Counter)
        cpu.values[()] = usage.ru_utime + usage.ru_stime
        return self.registry.expose()

    # ------------------------------------------------------------------------------ readers
    @property
    def core(self) -> Any:
        return self.server.core

    def _overload(self, fn: Callable[[Any], float]) -> float:
        adm = getattr(self.server, "overload", None)
        return fn(adm.figures) if adm is not None else 0

    def _shed(self) -> dict[Labels, float]:
        from .overload import SHED_REASONS

        adm = getattr(self.server, "overload", None)
        return {(r,): (adm.figures.shed[r] if adm is not None else 0) for r in SHED_REASONS}

    def _engine(self) -> Any:
        edge = getattr(self.server, "media_edge", None)
        return edge.engine if edge is not None else None

    def _media_engine_attr(self, fn: Callable[[Any], float]) -> float | None:
        engine = self._engine()
        return fn(engine) if engine is not None else None

    def _media_edge_attr(self, fn: Callable[[Any], float]) -> float:
        edge = getattr(self.server, "media_edge", None)
        return fn(edge) if edge is not None else 0

    def _media_legs(self) -> int:
        engine = self._engine()
        return len(engine.endpoints) if engine is not None else 0

    def _media_packets(self) -> dict[Labels, float]:
        edge = getattr(self.server, "media_edge", None)
        return {("received",): edge.received if edge else 0, ("sent",): edge.sent if edge else 0}

    def _calls_by_state(self) -> dict[Labels, float]:
        counts: dict[Labels, float] = {(s,): 0 for s in LIVE_CALL_STATES}
        for c in self.core.b2bua.calls.values():
            key = (c.state.value,)
            if key in counts:
                counts[key] += 1
        return counts

    def _acd(self) -> Any:
        return self.core.router.queue.acd

    def _trunks(self, what: str) -> dict[Labels, float | None]:
        out: dict[Labels, float | None] = {}
        for t in self.core.trunk_runtime.status(self.server.now()):
            if what == "up" and t["health"] != "unknown":
                out[(t["name"],)] = 1.0 if t["health"] == "up" else 0.0
            elif what == "registered" and t["registration"] is not None:
                out[(t["name"],)] = 1.0 if t["registration"]["state"] == "registered" else 0.0
            elif what == "channels":
                out[(t["name"],)] = float(t["channels"])
        return out

    def _queue(self, fn: Callable[[Any], float | None]) -> dict[Labels, float | None]:
        acd = self._acd()
        now = self.server.now()
        return {(q.name,): fn(acd.queue_stats(q.name, now)) for q in acd.config.queues}

    def _queue_counter(self, attr: str) -> dict[Labels, float]:
        acd = self._acd()
        return {(q.name,): float(getattr(acd.counters[acd.queue_index[q.name]], attr)) for q in acd.config.queues}

    def _queue_agents(self) -> dict[Labels, float]:
        acd = self._acd()
        now = self.server.now()
        out: dict[Labels, float] = {}
        for q in acd.config.queues:
            for state, n in acd.queue_stats(q.name, now).agents.items():
                out[(q.name, state)] = n
        return out

    def _agents(self) -> dict[Labels, float]:
        acd = self._acd()
        counts: dict[Labels, float] = {(s,): 0 for s in AGENT_STATES}
        for a in acd.config.agents:
            state, _ = acd.agent_state(a.id)
            counts[(state,)] = counts.get((state,), 0) + 1
        return counts


class _DictCounter(Counter):
    """A counter family whose values live in a plain dict counted on a hot path (the SIP edge's)."""

    def __init__(self, name: str, help: str, label: str, source: dict[str, int], known: Sequence[str]):
        super().__init__(name, help, (label,))
        self.values.clear()
        self.source = source
        self.known = known

    def samples(self) -> Iterable[Sample]:
        values: dict[str, int] = {k: 0 for k in self.known}
        values.update(self.source)
        return (("", (k,), v) for k, v in sorted(values.items()))


class _ReadCounter(Counter):
    """A counter family read at scrape time from counters kept elsewhere (the core's, the media engine's)."""

    def __init__(self, name: str, help: str, labels: Sequence[str], fn: Callable[[], Any]):
        super().__init__(name, help, labels)
        self.values.clear()
        self.fn = fn

    def samples(self) -> Iterable[Sample]:
        v = self.fn()
        if v is None:
            return ()
        if not isinstance(v, dict):
            v = {(): v}
        return (("", k, float(x)) for k, x in sorted(v.items()))


def _rss_bytes() -> float | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _open_fds() -> float | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _version() -> str:
    """The installed package's version. Costs ~25 ms of import (importlib.metadata) and ~45 ms of scanning the
    installed distributions: looked up when /metrics is first scraped, not at every start."""
    try:
        from importlib.metadata import version
        return version("softswitch")
    except Exception:
        return "unknown"
