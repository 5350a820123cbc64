"""Erlang C staffing against published worked examples and the direct (factorial) formula."""
from __future__ import annotations

import math

import pytest

from acd.erlang import asa, erlang_b, erlang_c, parse_target, service_level, staff, traffic
from acd.staffing_cli import main


def erlang_c_direct(n: int, a: float) -> float:
    """The textbook formula, exact with Python ints/floats for small n: the reference."""
    top = a ** n / math.factorial(n) * n / (n - a)
    return top / (sum(a ** k / math.factorial(k) for k in range(n)) + top)


def test_call_centre_helper_worked_example():
    # callcentrehelper.com "Erlang C formula made simple": 100 calls per 30 min, AHT 180 s, 80/20
    # -> 10 Erlangs; 11 agents: P(wait) 68.2 %, SL 39.0 %; 14 agents reach 80/20: SL 88.8 %,
    # ASA 7.8 s, occupancy 71.4 %
    a = traffic(200, 180)
    assert a == pytest.approx(10.0)
    assert erlang_c(11, a) == pytest.approx(0.6821, abs=1e-4)
    assert service_level(11, a, 180, 20) == pytest.approx(0.3896, abs=1e-4)
    s = staff(200, 180, 0.80, 20)
    assert s.agents == 14
    assert s.service_level == pytest.approx(0.8884, abs=1e-4)
    assert s.asa == pytest.approx(7.84, abs=0.01)
    assert s.occupancy == pytest.approx(0.714, abs=1e-3)


def test_westbay_erlang_c_example():
    # the classic "Erlang-C formula" page: 360 calls per half hour, 240 s, 55 agents, 15 s target
    # -> A = 48 Erlangs, occupancy 87.3 %, E_C = 0.2387, ASA 8.18 s, SL(15 s) 84.6 %
    a = traffic(720, 240)
    assert a == pytest.approx(48.0)
    assert erlang_c(55, a) == pytest.approx(0.2387, abs=1e-4)
    assert asa(55, a, 240) == pytest.approx(8.18, abs=0.01)
    assert service_level(55, a, 240, 15) == pytest.approx(0.846, abs=1e-3)


@pytest.mark.parametrize("n, a", [(1, 0.5), (2, 1.5), (5, 3.0), (20, 17.3), (60, 55.0), (120, 100.0)])
def test_recurrence_equals_direct_formula(n, a):
    assert erlang_c(n, a) == pytest.approx(erlang_c_direct(n, a), rel=1e-10)


def test_stable_for_huge_centres():
    # n = 5000 would overflow a**n / n! in floats; the recurrence does not
    c = erlang_c(5000, 4900.0)
    assert 0.0 < c < 1.0 and math.isfinite(c)
    s = staff(calls_per_hour=180_000, aht=100, target=0.8, threshold=20)
    assert s.agents > s.traffic and s.service_level >= 0.8
    assert erlang_b(10_000, 9000.0) < 0.01


def test_overload_and_edges():
    assert erlang_c(10, 10.0) == 1.0 and service_level(10, 12.0, 180, 20) == 0.0 and asa(5, 6.0, 60) == math.inf
    assert staff(0, 180, 0.8, 20).agents == 1
    assert staff(200, 180, 0.8, 20, shrinkage=0.3).scheduled == math.ceil(14 / 0.7)
    assert staff(200, 180, 0.8, 20, max_occupancy=0.65).agents == 16
    with pytest.raises(ValueError):
        staff(100, 0, 0.8, 20)


def test_parse_target():
    assert parse_target("80/20") == (0.8, 20.0)
    assert parse_target("90/10.5") == (0.9, 10.5)
    for bad in ("80", "x/20", "100/20", "80/-1"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_cli(capsys):
    assert main(["--calls-per-hour", "200", "--aht", "180", "--target", "80/20"]) == 0
    out = capsys.readouterr().out
    assert "10.00 Erlangs" in out and "agents needed for 80% in 20 s: 14" in out
    assert main(["--calls-per-hour", "200", "--aht", "180", "--target", "eighty"]) == 2
    assert "percent/seconds" in capsys.readouterr().err
