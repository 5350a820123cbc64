"""``[log] format = "json"``: one JSON object per line, for Loki, Elasticsearch/Logstash, Vector, journald's
JSON output...

Each line holds ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and ``message``, plus
``call``, ``leg``, ``agent`` and ``queue`` when the log call passes them (``log.info(..., extra={"call":
call.id})``) or when its format string names them: the argument after "call %s", "leg %s", "agent %s" or
"queue %s" in ``log.info("call %s: queue %s offers the call to agent %s", ...)`` is that field. The
format string is looked at once and remembered, so a line costs a dict and one ``json.dumps``. An
exception adds ``exc`` (its traceback as text). The plain format stays the default.
"""
from __future__ import annotations

import json
import logging
import re
import time
from functools import lru_cache
from typing import Any

__all__ = ["FIELDS", "JsonFormatter", "fields_of"]

FIELDS = ("call", "leg", "agent", "queue")

# "%s", "%d", "%r", "%.1f", "%-5s"... (not "%%"); the word before it names the field
_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_NAMED = re.compile(r"\b(call|leg|agent|queue)\s*$")


@lru_cache(maxsize=4096)
def _positions(fmt: str) -> tuple[tuple[str, int], ...]:
    """(field, argument index) for each field a %-format string names with the word before a placeholder."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    index = 0
    last = 0
    for m in _PLACEHOLDER.finditer(fmt):
        if m.group(1) == "%":
            last = m.end()
            continue
        word = _NAMED.search(fmt, last, m.start())
        if word is not None and word.group(1) not in seen:
            seen.add(word.group(1))
            out.append((word.group(1), index + m.group(0).count("*")))   # after any "*" width/precision
        index += 1 + m.group(0).count("*")
        last = m.end()
    return tuple(out)


def fields_of(record: logging.LogRecord) -> dict[str, str]:
    """The call/leg/agent/queue fields of a record: from ``extra``, else from its format string."""
    out: dict[str, str] = {}
    args = record.args
    if isinstance(record.msg, str) and isinstance(args, tuple) and args:
        for name, i in _positions(record.msg):
            if i < len(args):
                out[name] = str(args[i])
    for name in FIELDS:
        v = record.__dict__.get(name)
        if v is not None and v != "":
            out[name] = str(v)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = record.created
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(fields_of(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
