"""``[log] format = "json"``: one JSON object per line with time, level, logger, message and the call, leg, agent
and queue fields (from ``extra`` or from the format string); the plain format stays the default."""
from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from softswitch.config import parse_config
from base.logfmt import JsonFormatter, fields_of

from .conftest import ROOT


def record(msg: str, *args, exc_info=None, **extra) -> logging.LogRecord:
    r = logging.LogRecord("softswitch.apps.queue", logging.INFO, __file__, 1, msg, args, exc_info)
    r.__dict__.update(extra)
    return r


def test_fields_from_the_format_string_and_extra():
    r = record("call %s: queue %s offers the call to agent %s at %s", "c-17", "support", "2001", "1002")
    assert fields_of(r) == {"call": "c-17", "queue": "support", "agent": "2001"}
    assert fields_of(record("call from %s to %s refused: busy (486)", "1001", "1002")) == {}
    assert fields_of(record("%d%% of call %s after %.1f s", 5, "c-9", 1.5)) == {"call": "c-9"}
    assert fields_of(record("call %*d: leg %s", 3, 4, "L1")) == {"call": "4", "leg": "L1"}
    assert fields_of(record("agent %s is %s", "2001", "ready", queue="support", call="")) == \
        {"agent": "2001", "queue": "support"}
    assert fields_of(record("call %s ended", "c-1", call="c-2")) == {"call": "c-2"}     # extra wins
    assert fields_of(record("call %s: too few args")) == {}
    assert fields_of(record("call %(id)s", {"id": "x"})) == {}                           # a mapping: left alone


def test_json_line():
    line = JsonFormatter().format(record("call %s: survey score %d", "c-5", 4, agent="2002"))
    entry = json.loads(line)
    assert set(entry) == {"time", "level", "logger", "message", "call", "agent"}
    assert entry["message"] == "call c-5: survey score 4" and entry["level"] == "INFO"
    assert entry["logger"] == "softswitch.apps.queue"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    try:
        raise ValueError("boom")
    except ValueError:
        line = JsonFormatter().format(record("failed", exc_info=sys.exc_info()))
    entry = json.loads(line)
    assert "\n" not in line and "ValueError: boom" in entry["exc"]


def test_the_switchs_call_log_lines_name_their_call():
    """Every log format string in the switch that starts with "call %s" yields the call field."""
    found = 0
    for path in (ROOT / "softswitch").rglob("*.py"):
        for fmt in re.findall(r'log\.\w+\(\s*"(call %s[^"]*)"', path.read_text()):
            n = len(re.findall(r"%[-#0 +.\d]*[sdifr]", fmt))
            assert fields_of(record(fmt, *[f"v{i}" for i in range(n)])).get("call") == "v0", fmt
            found += 1
    assert found >= 10


def test_config():
    base = {"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "x"}, "store": {"path": "a.db"}}
    assert parse_config(base).log.format == "plain"
    assert parse_config({**base, "log": {"format": "JSON"}}).log.format == "json"
    with pytest.raises(Exception, match="log.format"):
        parse_config({**base, "log": {"format": "xml"}})


@pytest.mark.e2e
def test_switch_logs_json_lines(switch_factory):
    sw = switch_factory(extra='[log]\nformat = "json"\n[api]\nenabled = false\n[media]\nworkers = 1\n')
    sw.wait_log(r'"message": "softswitch running')
    sw.wait_log(r'"message": "media worker 0 \(pid \d+\): RTP ports')     # a worker process's own line
    assert sw.stop() == 0
    lines = [line for line in sw.log().splitlines() if line.strip()]
    assert len(lines) > 3
    for line in lines:
        entry = json.loads(line)
        assert {"time", "level", "logger", "message"} <= set(entry), entry
    assert any(json.loads(line)["message"] == "stopped" for line in lines)
    assert any(json.loads(line)["message"].startswith("media worker 0: 0 endpoint(s) open") for line in lines)
