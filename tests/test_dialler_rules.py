"""Retry rules and calling hours, on a fake clock: wall times built in the contact's own time zone."""
from __future__ import annotations

import datetime as dt

import pytest

from dialler.rules import DEFAULT_RULES, Result, RetryRule, next_due, parse_hours, parse_window, zone

SH = zone("Asia/Shanghai")
NY = zone("America/New_York")
WEEKDAYS = parse_hours(["mon-fri 09:00-20:00"])
DAILY = parse_hours(["daily 09:00-20:00"])


def at(tz, y, mo, d, h, mi=0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


def local(t: float, tz) -> str:
    return dt.datetime.fromtimestamp(t, tz).strftime("%a %Y-%m-%d %H:%M")


def run_busy(start: float, tz, hours, n: int, rule: RetryRule = DEFAULT_RULES[Result.BUSY], limit: int = 99):
    """Attempts of a contact that is busy every time, dialled exactly when due."""
    times, t, day, day_n = [start], start, "", 0
    for i in range(1, n):
        d = dt.datetime.fromtimestamp(t, tz).date().isoformat()
        day_n = day_n + 1 if d == day else 1
        day = d
        nxt = next_due(t, Result.BUSY, rule, hours, tz, day_attempts=day_n, attempts=i, max_attempts=limit)
        if nxt is None:
            break
        times.append(nxt)
        t = nxt
    return [local(x, tz) for x in times]


def test_busy_at_nine_is_retried_at_13_17_then_next_day_at_nine():
    # Monday 2026-12-07
    assert run_busy(at(SH, 2026, 12, 7, 9), SH, DAILY, 7) == [
        "Mon 2026-12-07 09:00", "Mon 2026-12-07 13:00", "Mon 2026-12-07 17:00",
        "Tue 2026-12-08 09:00", "Tue 2026-12-08 13:00", "Tue 2026-12-08 17:00",
        "Wed 2026-12-09 09:00"]


def test_friday_rolls_over_the_weekend_when_hours_are_weekdays_only():
    assert run_busy(at(SH, 2026, 12, 11, 9), SH, WEEKDAYS, 4) == [
        "Fri 2026-12-11 09:00", "Fri 2026-12-11 13:00", "Fri 2026-12-11 17:00", "Mon 2026-12-14 09:00"]


def test_an_interval_that_lands_after_hours_moves_to_the_next_opening():
    # first attempt at 18:00: 22:00 is closed; the day has only one attempt, so the next is the next morning
    t = at(SH, 2026, 12, 7, 18)
    nxt = next_due(t, Result.NO_ANSWER, DEFAULT_RULES[Result.NO_ANSWER], DAILY, SH, day_attempts=1, attempts=1,
                   max_attempts=6)
    assert nxt is not None and local(nxt, SH) == "Tue 2026-12-08 09:00"


def test_never_outside_calling_hours_over_many_random_attempt_times():
    import random

    rnd = random.Random(7)
    hours = parse_hours(["mon-fri 08:30-12:00", "mon-fri 13:30-18:00", "sat 10:00-14:00"])
    rule = RetryRule(interval=5400, per_day=4)
    for _ in range(2000):
        t = at(NY, 2026, 3, 1, 0) + rnd.uniform(0, 40 * 86400)  # spans the March DST change
        nxt = next_due(t, Result.BUSY, rule, hours, NY, day_attempts=rnd.randint(1, 4), attempts=1, max_attempts=9)
        assert nxt is not None and nxt >= t + rule.interval
        assert hours.open_at(nxt, NY), local(nxt, NY)


def test_hours_are_the_contacts_own_time_zone():
    # 09:00 in Shanghai is 20:00 the evening before in New York: the New York contact waits for its morning
    t = at(SH, 2026, 12, 8, 9)
    assert DAILY.open_at(t, SH)
    assert not DAILY.open_at(t, NY)
    nxt = DAILY.next_open(t, NY)
    assert nxt is not None and local(nxt, NY) == "Tue 2026-12-08 09:00"


def test_per_day_counts_the_contacts_local_day():
    # 3 attempts on the Shanghai day of 2026-12-07 (all before 20:00 Shanghai) use up that local day
    rule = RetryRule(interval=3600, per_day=3)
    t = at(SH, 2026, 12, 7, 11)
    nxt = next_due(t, Result.BUSY, rule, DAILY, SH, day_attempts=3, attempts=3, max_attempts=9)
    assert nxt is not None and local(nxt, SH) == "Tue 2026-12-08 09:00"


def test_max_attempts_and_final_results_end_the_contact():
    t = at(SH, 2026, 12, 7, 9)
    assert next_due(t, Result.BUSY, DEFAULT_RULES[Result.BUSY], DAILY, SH, day_attempts=1, attempts=6,
                    max_attempts=6) is None
    for r in (Result.COMPLETED, Result.WRONG_NUMBER, Result.REFUSED):
        assert next_due(t, r, DEFAULT_RULES[r], DAILY, SH, day_attempts=1, attempts=1, max_attempts=6) is None


def test_dst_spring_forward_window_starting_in_the_gap():
    # New York, 2026-03-08: 02:00-03:00 does not exist; a window from 02:30 opens at 03:30 local (EDT)
    hours = parse_hours(["sun 02:30-05:00"])
    nxt = hours.next_open(at(NY, 2026, 3, 8, 0), NY)
    assert nxt is not None and local(nxt, NY) == "Sun 2026-03-08 03:30"


@pytest.mark.parametrize("spec, days, start, end", [
    ("mon-fri 09:00-20:00", {0, 1, 2, 3, 4}, 540, 1200),
    ("daily 00:00-24:00", set(range(7)), 0, 1440),
    ("fri-mon 10:00-12:30", {4, 5, 6, 0}, 600, 750),
    ("SAT 10:00-16:00", {5}, 600, 960),
])
def test_window_syntax(spec, days, start, end):
    w = parse_window(spec)
    assert (set(w.days), w.start, w.end) == (days, start, end)


@pytest.mark.parametrize("spec", ["mon-fri 9-20", "xyz 09:00-10:00", "mon 10:00-09:00", "mon 09:60-10:00", ""])
def test_bad_windows_are_refused_with_the_expected_form(spec):
    with pytest.raises(ValueError):
        parse_window(spec)
