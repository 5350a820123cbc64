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


def table(out: str) -> list[list[str]]:
    """The rows under the table's header line: agents, P(wait), SL, ASA, occupancy, verdict."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["agents", "P(wait)"])
    return [line.split(None, 5) for line in lines[start + 1:] if line.strip()]


def test_cli(capsys):
    assert main(["--calls-per-hour", "200", "--aht", "180", "--target", "80/20"]) == 0
    out = capsys.readouterr().out
    assert "10.00 Erlangs" in out and "agents needed for 80% in 20 s: 14" in out
    # the inputs as the model reads them
    for echoed in ("arrival rate     200 calls per 3600 s interval = 200 calls/h = 0.0556 calls/s",
                   "AHT              180 s (talk + wrap-up)", "interval         3600 s",
                   "target           80% of calls answered within T = 20 s",
                   "traffic          A = 200 x 180 / 3600 = 10.00 Erlangs"):
        assert echoed in out, echoed
    # and the formulas used
    for formula in ("A          = calls per interval x AHT / interval", "B(k) = A B(k-1) / (k + A B(k-1))",
                    "C(N, A) = N B(N) / (N - A (1 - B(N)))", "SL(T)      = 1 - C(N, A) exp(-(N - A) T / AHT)",
                    "ASA        = C(N, A) AHT / (N - A)", "occupancy  = A / N", "ceil(N / (1 - shrinkage))"):
        assert formula in out, formula
    # the whole table: unstable (N <= A), too few, the answer, over target, comfortably over target
    rows = table(out)
    assert [r[0] for r in rows] == ["10", "11", "12", "13", "14", "15", "16"]
    assert rows[0] == ["10", "100.0%", "0.0%", "inf", "100.0%", "unstable: the queue grows without bound"]
    assert rows[1] == ["11", "68.2%", "39.0%", "122.8", "90.9%", "too few"]        # the worked example's figures
    assert rows[3][5] == "too few (just)"                                           # 79.6 %
    assert rows[4] == ["14", "17.4%", "88.8%", "7.8", "71.4%", "< the answer: the fewest that meet the target"]
    assert [r[5] for r in rows[5:]] == ["comfortably over target"] * 2              # SL >= 90 % (half the gap)
    assert "'comfortably over target' from SL 90%" in out

    # calls per half-hour interval: the same traffic, echoed per interval
    assert main(["--calls", "100", "--interval", "1800", "--aht", "180", "--target", "90/15"]) == 0
    out = capsys.readouterr().out
    assert "arrival rate     100 calls per 1800 s interval = 200 calls/h" in out
    assert "A = 100 x 180 / 1800 = 10.00 Erlangs" in out
    rows = table(out)
    assert rows[0][5].startswith("unstable") and rows[-1][5] == "comfortably over target"
    verdicts = [r[5] for r in rows]
    answer = verdicts.index("< the answer: the fewest that meet the target")
    assert all(v.startswith(("unstable", "too few")) for v in verdicts[:answer])
    assert float(rows[-1][2].rstrip("%")) >= 95.0 and int(rows[-1][0]) >= int(rows[answer][0]) + 2

    # an occupancy cap: rows that meet the target but work agents too hard come before the answer
    assert main(["--calls-per-hour", "200", "--aht", "180", "--max-occupancy", "70"]) == 0
    rows = table(capsys.readouterr().out)
    assert [(r[0], r[5]) for r in rows[4:6]] == [("14", "meets the target, occupancy above the maximum"),
                                                 ("15", "< the answer: the fewest that meet the target")]

    assert main(["--calls-per-hour", "200", "--aht", "180", "--target", "eighty"]) == 2
    assert "percent/seconds" in capsys.readouterr().err
    assert main(["--calls", "10", "--interval", "0", "--aht", "180"]) == 2
    assert "--interval" in capsys.readouterr().err


def test_cli_for_a_huge_centre_stays_a_readable_table(capsys):
    assert main(["--calls-per-hour", "180000", "--aht", "100"]) == 0
    rows = table(capsys.readouterr().out)
    assert rows[0][0] == "5000" and rows[0][5].startswith("unstable") and rows[-1][5] == "comfortably over target"
    assert len(rows) < 40
