"""``softswitch staffing --calls-per-hour N --aht S --target 80/20``: Erlang C staffing from the
command line. Prints the inputs as the model reads them, the formulas, and the whole table from too few
agents (an unstable queue, then a service level far below target) to comfortably over target, the answer
marked."""
from __future__ import annotations

import argparse
import math
import sys

from .erlang import asa, erlang_c, occupancy, parse_target, service_level, staff

__all__ = ["build_parser", "main", "table_rows"]

MAX_ROWS = 400  # a table longer than this (a centre of thousands of agents) is cut in the middle

FORMULAS = """\
formulas (Erlang C: Poisson arrivals, exponential handle times, callers who never abandon)
  A          = calls per interval x AHT / interval            offered traffic, Erlangs
  B(0) = 1,  B(k) = A B(k-1) / (k + A B(k-1))                  Erlang B, k = 1..N
  P(wait)    = C(N, A) = N B(N) / (N - A (1 - B(N)))           N > A; N <= A: everyone waits, unstable
  SL(T)      = 1 - C(N, A) exp(-(N - A) T / AHT)               share answered within T seconds
  ASA        = C(N, A) AHT / (N - A)                           average speed of answer, all calls
  occupancy  = A / N
  scheduled  = ceil(N / (1 - shrinkage))"""


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="softswitch staffing", description=__doc__)
    rate = p.add_mutually_exclusive_group(required=True)
    rate.add_argument("--calls-per-hour", type=float, help="offered calls per hour")
    rate.add_argument("--calls", type=float, help="offered calls per interval (see --interval)")
    p.add_argument("--interval", type=float, default=3600.0,
                   help="the planning interval in seconds that --calls counts (default 3600; 1800 for half hours)")
    p.add_argument("--aht", type=float, required=True, help="average handle time in seconds (talk + wrap-up)")
    p.add_argument("--target", default="80/20", help='service level "percent/seconds" (default 80/20)')
    p.add_argument("--shrinkage", type=float, default=0.0, help="percent of paid time off the phones (default 0)")
    p.add_argument("--max-occupancy", type=float, default=100.0, help="percent (default 100)")
    return p


def comfortable_level(target: float) -> float:
    """'Comfortably over target': half of what the target leaves short of 100 % made up (80 % -> 90 %)."""
    return target + (1.0 - target) / 2.0


def table_rows(a: float, aht: float, threshold: float, target: float, answer: int,
               max_occupancy: float = 1.0) -> list[tuple[int, float, float, float, float, str]]:
    """(agents, P(wait), SL, ASA, occupancy, verdict) from the last unstable staffing (N <= A, when
    there is one) up to the first N comfortably over target and at least two past ``answer``."""
    comfortable = comfortable_level(target)
    rows = []
    n = max(1, math.floor(a))
    while True:
        c = erlang_c(n, a)
        sl, wait, occ = service_level(n, a, aht, threshold, c), asa(n, a, aht, c), occupancy(n, a)
        if n <= a and a > 0:
            verdict = "unstable: the queue grows without bound"
        elif sl < target:
            verdict = "too few" if sl < target - 0.1 else "too few (just)"
        elif occ > max_occupancy + 1e-12:
            verdict = "meets the target, occupancy above the maximum"
        elif n == answer:
            verdict = "< the answer: the fewest that meet the target"
        elif sl < comfortable:
            verdict = "over target"
        else:
            verdict = "comfortably over target"
        rows.append((n, c, sl, wait, occ, verdict))
        if n >= answer + 2 and sl >= comfortable:
            return rows
        n += 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.interval <= 0:
            raise ValueError("--interval must be more than 0 seconds")
        calls_per_hour = args.calls_per_hour if args.calls is None else args.calls * 3600.0 / args.interval
        if calls_per_hour is None or calls_per_hour < 0:
            raise ValueError("the number of calls must not be negative")
        target, threshold = parse_target(args.target)
        s = staff(calls_per_hour, args.aht, target, threshold, args.shrinkage / 100.0, args.max_occupancy / 100.0)
    except ValueError as e:
        print(f"softswitch staffing: {e}", file=sys.stderr)
        return 2
    interval = args.interval
    per_interval = calls_per_hour * interval / 3600.0
    print("inputs")
    print(f"  arrival rate     {per_interval:g} calls per {interval:g} s interval = {calls_per_hour:g} calls/h "
          f"= {calls_per_hour / 3600.0:.4f} calls/s")
    print(f"  AHT              {args.aht:g} s (talk + wrap-up)")
    print(f"  interval         {interval:g} s")
    print(f"  target           {target:.0%} of calls answered within T = {threshold:g} s")
    print(f"  shrinkage        {args.shrinkage:g}%")
    print(f"  max occupancy    {args.max_occupancy:g}%")
    print(f"  traffic          A = {per_interval:g} x {args.aht:g} / {interval:g} = {s.traffic:.2f} Erlangs")
    print(FORMULAS)
    print()
    print(f"agents needed for {target:.0%} in {threshold:g} s: {s.agents}"
          + (f" ({s.scheduled} scheduled with {args.shrinkage:g}% shrinkage)" if args.shrinkage else ""))
    print(f"  SL {s.service_level:.1%}, ASA {s.asa:.1f} s, occupancy {s.occupancy:.1%}; 'comfortably over "
          f"target' from SL {comfortable_level(target):.0%}")
    print()
    print(f"{'agents':>6}  {'P(wait)':>7}  {'SL':>6}  {'ASA s':>8}  {'occupancy':>9}  verdict")
    rows = table_rows(s.traffic, args.aht, threshold, target, s.agents, args.max_occupancy / 100.0)
    half = MAX_ROWS // 2
    for i, (n, c, sl, wait, occ, verdict) in enumerate(rows):
        if len(rows) > MAX_ROWS and half <= i < len(rows) - half:  # both ends: the start and the answer
            if i == half:
                print(f"{'...':>6}  ({len(rows) - MAX_ROWS} rows left out)")
            continue
        shown_asa = "inf" if math.isinf(wait) else f"{wait:.1f}"
        print(f"{n:>6}  {c:>7.1%}  {sl:>6.1%}  {shown_asa:>8}  {occ:>9.1%}  {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
