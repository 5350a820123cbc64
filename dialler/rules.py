"""When a contact may be called again: result codes, retry rules, calling hours in the contact's time zone.

Pure functions of wall-clock time (Unix seconds) and ``zoneinfo`` zones. The dialler's clock is the wall
clock, not the switch's monotonic one, because every rule here is a calendar rule ("every 4 hours, at
most 3 a day, never before 09:00 where the customer lives") and because the next-due times are written
to the store and must mean the same thing after a restart.

The default rule is the one call centres ask for: retry every 4 hours, at most 3 attempts a (local)
day, then roll over to the next day's first calling window. A contact busy at 09:00 on a 09:00-20:00
day is retried at 13:00 and 17:00, then at 09:00 the next day.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CallingHours", "DEFAULT_RULES", "Result", "RetryRule", "Window", "local_day", "next_due", "parse_hours",
    "parse_window", "zone",
]


class Result(str, Enum):
    """What an attempt came to. The SIP side sets busy / no_answer / unreachable / completed from the
    customer leg's final status; the agent may correct it at wrap-up (wrong number, a fax or answering
    machine, "call me later", "never call again")."""
    COMPLETED = "completed"          # reached and dealt with
    BUSY = "busy"                    # 486 / 600
    NO_ANSWER = "no_answer"          # rang out: 408 / 480 / 487, or our ring time-out
    UNREACHABLE = "unreachable"      # failed: 404, 5xx, no route, the number does not exist now
    MACHINE = "machine"              # fax or answering machine (agent's code)
    WRONG_NUMBER = "wrong_number"    # wrong contact / empty number (agent's code)
    CALLBACK = "callback"            # the customer asked to be called later (agent's code)
    REFUSED = "refused"              # the customer does not want calls: goes on the do-not-call list
    DNC = "dnc"                      # never dialled: the number is on the do-not-call list
    EXHAUSTED = "exhausted"          # the maximum attempt count was reached

    def __str__(self) -> str:
        return self.value


# result codes an agent may set at wrap-up (the others are the switch's)
AGENT_CODES = frozenset({Result.COMPLETED, Result.MACHINE, Result.WRONG_NUMBER, Result.CALLBACK, Result.REFUSED,
                         Result.BUSY, Result.NO_ANSWER})


@dataclass(frozen=True)
class RetryRule:
    """``retry = False``: the contact is finished with this result. Otherwise it is due again ``interval``
    seconds after the attempt, at most ``per_day`` attempts on one local day, then the next day."""
    retry: bool = True
    interval: int = 4 * 3600
    per_day: int = 3


DEFAULT_RULES: dict[Result, RetryRule] = {
    Result.BUSY: RetryRule(),
    Result.NO_ANSWER: RetryRule(),
    Result.UNREACHABLE: RetryRule(),
    Result.MACHINE: RetryRule(),
    Result.CALLBACK: RetryRule(interval=3600, per_day=3),
    Result.COMPLETED: RetryRule(retry=False),
    Result.WRONG_NUMBER: RetryRule(retry=False),
    Result.REFUSED: RetryRule(retry=False),
    Result.DNC: RetryRule(retry=False),
    Result.EXHAUSTED: RetryRule(retry=False),
}

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """Calls allowed on ``days`` (0 = Monday) from ``start`` to ``end`` (minutes after local midnight)."""
    days: frozenset[int]
    start: int
    end: int


@dataclass(frozen=True)
class CallingHours:
    windows: tuple[Window, ...]

    def open_at(self, t: float, tz: ZoneInfo) -> bool:
        local = dt.datetime.fromtimestamp(t, tz)
        minute = local.hour * 60 + local.minute
        return any(local.weekday() in w.days and w.start <= minute < w.end for w in self.windows)

    def next_open(self, t: float, tz: ZoneInfo) -> float | None:
        """The first instant at or after ``t`` inside a window (``t`` itself if it is inside one);
        None if there are no windows."""
        if not self.windows:
            return None
        local = dt.datetime.fromtimestamp(t, tz)
        for add in range(8):
            day = local.date() + dt.timedelta(days=add)
            best: float | None = None
            for w in self.windows:
                if day.weekday() not in w.days:
                    continue
                start = _at(day, w.start, tz)
                end = _at(day, w.end, tz)
                if t < end:
                    cand = max(t, start)
                    best = cand if best is None else min(best, cand)
            if best is not None:
                return best
        return None

    def next_day_open(self, t: float, tz: ZoneInfo) -> float | None:
        """The first window opening on a local day after the day of ``t``."""
        local = dt.datetime.fromtimestamp(t, tz)
        midnight = _at(local.date() + dt.timedelta(days=1), 0, tz)
        return self.next_open(midnight, tz)


def _at(day: dt.date, minute: int, tz: ZoneInfo) -> float:
    """Unix time of ``minute`` past local midnight of ``day`` (24:00 is the next midnight). In a DST gap
    the wall time is read with fold=0, i.e. as the offset before the change (a 02:30 that does not exist
    is 03:30): never earlier than the window says."""
    base = dt.datetime.combine(day, dt.time(), tz) + dt.timedelta(minutes=minute)
    return dt.datetime(base.year, base.month, base.day, base.hour, base.minute, tzinfo=tz).timestamp()


def local_day(t: float, tz: ZoneInfo) -> str:
    """The contact's local date of ``t`` (ISO), the unit of "at most N attempts a day"."""
    return dt.datetime.fromtimestamp(t, tz).date().isoformat()


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name (cached); ValueError for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r}") from e


_WINDOW = re.compile(r"^\s*(?:([a-z]{3})(?:\s*-\s*([a-z]{3}))?|daily)\s+(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)\s*$")


def parse_window(spec: str) -> Window:
    """``"mon-fri 09:00-20:00"``, ``"sat 10:00-16:00"``, ``"daily 09:00-21:00"``, ``"fri-mon 10:00-12:00"``."""
    m = _WINDOW.match(spec.lower())
    if m is None:
        raise ValueError(f'expected "mon-fri 09:00-20:00" (days, then hours), got {spec!r}')
    first, last, h1, m1, h2, m2 = m.groups()
    if first is None:
        days = frozenset(range(7))
    else:
        if first not in _DAYS or (last is not None and last not in _DAYS):
            raise ValueError(f"unknown day in {spec!r} (days: {', '.join(_DAYS)})")
        a = _DAYS.index(first)
        b = _DAYS.index(last) if last is not None else a
        days = frozenset((a + i) % 7 for i in range((b - a) % 7 + 1))
    start, end = int(h1) * 60 + int(m1), int(h2) * 60 + int(m2)
    if int(m1) > 59 or int(m2) > 59 or not 0 <= start < end <= 24 * 60:
        raise ValueError(f"hours must be HH:MM-HH:MM within one day, start before end, got {spec!r}")
    return Window(days, start, end)


def parse_hours(specs: list[str]) -> CallingHours:
    return CallingHours(tuple(parse_window(s) for s in specs))


def next_due(last: float, result: Result, rule: RetryRule, hours: CallingHours, tz: ZoneInfo, *,
             day_attempts: int, attempts: int, max_attempts: int) -> float | None:
    """When a contact whose attempt at ``last`` ended with ``result`` may be dialled again, or None if it
    is finished. ``day_attempts``: attempts on the local day of ``last`` (this one included);
    ``attempts``: all of them (this one included)."""
    if not rule.retry or attempts >= max_attempts:
        return None
    cand = last + rule.interval
    if day_attempts >= rule.per_day:  # this local day is used up: the next day's first window
        nxt = hours.next_day_open(last, tz)
        if nxt is None:
            return None
        cand = max(cand, nxt)
    return hours.next_open(cand, tz)
