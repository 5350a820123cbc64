"""One monotonic clock: the ACD and the IVR take a monotonic ``now`` and add ``wall_offset`` only where
the wall clock matters (queue_log stamps, business hours and holidays, voicemail stamps); timers and
durations stay on ``now``."""
from __future__ import annotations

import datetime

from acd import Acd
from acd.actions import QueueLogLine, RingAgent
from acd.events import AgentLogin, CallArrived, CallEnded, OfferAnswered
from ivr.actions import StartRecording, ToQueue, VoicemailLeft
from ivr.engine import IvrSession
from ivr.events import DigitReceived, PlaybackFinished, RecordingStopped, TimerFired
from ivr.runtime import Ivr
from ivr.testing import MON_10_SHANGHAI, config as ivr_example, one_flow
from tests.test_acd_engine import config as acd_config, one_queue

MONO = 1000.0  # a monotonic clock reading: about 17 minutes after boot
UNIX = MON_10_SHANGHAI  # Monday 2026-11-23 02:00:00 UTC = 10:00 in Shanghai
OFFSET = UNIX - MONO


def utc(year: int, month: int, day: int, hour: int, minute: int) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.timezone.utc).timestamp()


# ------------------------------------------------------------------------------------------ ACD

def _acd_log(wall_offset: float | None, t0: float) -> tuple[list[str], list]:
    cfg = acd_config({"2001": {"sales": 5}}, one_queue(ring_time=15, max_wait=600))
    acd = Acd(cfg, seed=1) if wall_offset is None else Acd(cfg, seed=1, wall_offset=wall_offset)
    out = []
    out += acd.handle(AgentLogin("2001"), t0)
    out += acd.handle(CallArrived("c1", "sales", "0301"), t0 + 2)
    deadline = acd.next_deadline()
    out += acd.handle(OfferAnswered("c1", "2001", "leg1"), t0 + 9)
    out += acd.handle(CallEnded("c1", by_agent=True), t0 + 129)
    rings = [a for a in out if isinstance(a, RingAgent)]
    return [a.line for a in out if isinstance(a, QueueLogLine)], [deadline, rings]


def test_queue_log_stamps_are_wall_clock_with_monotonic_now():
    lines, (deadline, ring) = _acd_log(OFFSET, MONO)
    u = int(UNIX)
    assert lines == [
        f"{u}|NONE|NONE|Agent/2001|AGENTLOGIN|SIP/1001",
        f"{u + 2}|c1|sales|NONE|ENTERQUEUE||0301",
        f"{u + 9}|c1|sales|Agent/2001|CONNECT|7|leg1|7",  # hold and ring times: differences of ``now``
        f"{u + 129}|c1|sales|Agent/2001|COMPLETEAGENT|7|120|1",
    ]
    assert deadline == MONO + 2 + 15  # timers stay on the monotonic clock (the ring time-out)
    assert len(ring) == 1


def test_acd_default_offset_is_zero_and_the_attribute_can_be_moved():
    cfg = acd_config({"2001": {"sales": 5}}, one_queue())
    assert Acd(cfg).wall_offset == 0.0
    unix_lines, _ = _acd_log(None, UNIX)  # the old way: Unix time as ``now``
    mono_lines, _ = _acd_log(OFFSET, MONO)
    assert unix_lines == mono_lines

    acd = Acd(cfg)
    acd.wall_offset = OFFSET  # the edge re-reads the clocks
    out = acd.handle(AgentLogin("2001"), MONO)
    lines = [a.line for a in out if isinstance(a, QueueLogLine)]
    assert lines == [f"{int(UNIX)}|NONE|NONE|Agent/2001|AGENTLOGIN|SIP/1001"]


# ------------------------------------------------------------------------------------------ IVR

def _hours_cfg():
    return one_flow({
        "h": {"type": "hours", "hours": ["mon-fri 09:00-18:00"], "open": "o", "closed": "c", "holiday": "hol"},
        "o": {"type": "queue", "queue": "open"},
        "c": {"type": "queue", "queue": "closed"},
        "hol": {"type": "queue", "queue": "holiday"},
    }, timezone="Asia/Shanghai", holidays=["2026-10-01"])


def _route(cfg, now: float, wall_offset: float) -> str:
    s = IvrSession(cfg.flows["f"], cfg, "+8613800000000", now, "c1", wall_offset=wall_offset)
    out = s.start(now)
    assert isinstance(out[-1], ToQueue)
    return out[-1].queue


def test_business_hours_use_now_plus_wall_offset():
    cfg = _hours_cfg()
    assert _route(cfg, MONO, OFFSET) == "open"  # Monday 10:00 in Shanghai
    assert _route(cfg, MONO, 0.0) == "closed"  # 1970-01-01 08:16 local: the offset is what decides
    assert _route(cfg, MONO, utc(2026, 11, 23, 0, 59) - MONO) == "closed"  # 08:59 local
    assert _route(cfg, MONO, utc(2026, 11, 22, 2, 0) - MONO) == "closed"  # Sunday
    assert _route(cfg, MONO, utc(2026, 10, 1, 2, 0) - MONO) == "holiday"  # Thursday 1 October


def test_runtime_hands_its_wall_offset_to_sessions():
    ivr = Ivr(ivr_example(), wall_offset=OFFSET)
    s = ivr.session("main", "+861", MONO, "c")
    assert s.wall_offset == OFFSET
    ivr.wall_offset = OFFSET + 5
    assert ivr.session("main", "+861", MONO, "c").wall_offset == OFFSET + 5
    assert Ivr(ivr_example()).session("main", "+861", MONO, "c").wall_offset == 0.0


def test_voicemail_stamps_are_wall_clock_and_durations_monotonic():
    cfg = one_flow({"v": {"type": "voicemail", "mailbox": "hotline", "next": "", "ask_callback": False,
                          "max_length": 60}})
    s = IvrSession(cfg.flows["f"], cfg, "+8613800000000", MONO, "c1", wall_offset=OFFSET)
    out = s.start(MONO)
    out = s.handle(PlaybackFinished(out[-1].id), MONO)  # greeting
    out = s.handle(PlaybackFinished(out[-1].id), MONO)  # beep
    rec = out[0]
    assert isinstance(rec, StartRecording) and rec.path.startswith("hotline/20261123T020000Z-+8613800000000-c1")
    assert s.next_deadline() == MONO + 60  # the max-length timer is on the monotonic clock
    out = s.handle(DigitReceived("#"), MONO + 12)
    out = s.handle(RecordingStopped("stopped", None), MONO + 12.5)
    vm = [a for a in out if isinstance(a, VoicemailLeft)][0]
    assert vm.time == UNIX and vm.duration == 12.5 and vm.file == rec.path


def test_ivr_timers_ignore_the_offset():
    cfg = one_flow({"m": {"type": "menu", "prompts": [], "choices": {"1": "o"}, "timeout": 5, "retries": 0,
                          "fallback": "o"},
                    "o": {"type": "queue", "queue": "open"}})
    s = IvrSession(cfg.flows["f"], cfg, "+8613800000000", MONO, "c1", wall_offset=OFFSET)
    s.start(MONO)
    assert s.next_deadline() == MONO + 5
    assert s.handle(TimerFired(), MONO + 5)[-1] == ToQueue("open", 0, "", {"language": "en"})
