"""``softswitch staffing --calls-per-hour N --aht S --target 80/20``: Erlang C staffing from the
command line (the lead hooks ``main`` into softswitch.cli as a subcommand)."""
from __future__ import annotations

import argparse
import sys

from .erlang import asa, erlang_c, occupancy, parse_target, service_level, staff

__all__ = ["build_parser", "main"]


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(prog="softswitch staffing", description=__doc__)
    p.add_argument("--calls-per-hour", type=float, required=True, help="offered calls per hour")
    p.add_argument("--aht", type=float, required=True, help="average handle time in seconds (talk + wrap-up)")
    p.add_argument("--target", default="80/20", help='service level "percent/seconds" (default 80/20)')
    p.add_argument("--shrinkage", type=float, default=0.0, help="percent of paid time off the phones (default 0)")
    p.add_argument("--max-occupancy", type=float, default=100.0, help="percent (default 100)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        target, threshold = parse_target(args.target)
        s = staff(args.calls_per_hour, args.aht, target, threshold, args.shrinkage / 100.0,
                  args.max_occupancy / 100.0)
    except ValueError as e:
        print(f"softswitch staffing: {e}", file=sys.stderr)
        return 2
    print(f"traffic {s.traffic:.2f} Erlangs ({args.calls_per_hour:g} calls/h x {args.aht:g} s)")
    print(f"agents needed for {target:.0%} in {threshold:g} s: {s.agents}"
          + (f" ({s.scheduled} scheduled with {args.shrinkage:g}% shrinkage)" if args.shrinkage else ""))
    print(f"{'agents':>6}  {'P(wait)':>7}  {'service':>7}  {'ASA s':>7}  {'occupancy':>9}")
    for n in range(max(1, s.agents - 2), s.agents + 3):
        if n <= s.traffic:
            continue
        c = erlang_c(n, s.traffic)
        mark = " <" if n == s.agents else ""
        print(f"{n:>6}  {c:>7.1%}  {service_level(n, s.traffic, args.aht, threshold, c):>7.1%}  "
              f"{asa(n, s.traffic, args.aht, c):>7.1f}  {occupancy(n, s.traffic):>9.1%}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
