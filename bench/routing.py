#!/usr/bin/env python3
"""ACD routing decision time: 100 / 1000 / 5000 agents x 50 / 500 waiting calls.

Measures, per event, the time from the event to the ring decision:
  agent-free   one agent becomes ready while N-1 are busy and M calls wait (engine, end to end)
  call-arrives a call arrives while half the agents are ready and none wait (engine, end to end)
  burst        half the agents ready and M calls waiting, all paired in one Router.assign pass
  py-loop      the call-arrives ranking done as a plain Python loop over agents (the baseline the
               numpy matrix replaces)
Skills: 10 skills, each agent holds 3 at random levels 1-10; 10 queues with minimum levels 1-5;
strategy longest-idle with skill-level first on half the queues.

Usage: bench/routing.py [--reps N] [--no-write]   (writes bench/ACD.md unless --no-write)
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd import Acd, parse_acd_config  # noqa: E402
from acd.events import AgentLogin, AgentNotReady, AgentReady, CallAbandoned, CallArrived  # noqa: E402
from acd.routing import AgentState, WaitingCalls  # noqa: E402

SKILLS = 10
AGENTS = (100, 1000, 5000)
WAITING = (50, 500)


def build(n_agents: int, seed: int = 1) -> Acd:
    rng = np.random.default_rng(seed)
    agents = []
    for i in range(n_agents):
        held = rng.choice(SKILLS, 3, replace=False)
        agents.append({"id": str(100000 + i), "name": f"A{i}", "extension": str(200000 + i),
                       "skills": {f"s{k}": int(rng.integers(1, 11)) for k in held}})
    raw = {
        "skills": [{"name": f"s{k}"} for k in range(SKILLS)],
        "agents": agents,
        "queues": [{"name": f"q{k}", "skill": f"s{k}", "min_level": 1 + k % 5, "skill_level_first": k % 2 == 0,
                    "wrapup_time": 0} for k in range(SKILLS)],
    }
    acd = Acd(parse_acd_config(raw, "bench"), seed=seed)
    t = 0.0
    for a in raw["agents"]:
        t += 0.001
        acd.handle(AgentLogin(a["id"]), t)
    return acd


def timed(fn, reps: int) -> tuple[float, float]:
    """Median and 99th percentile in microseconds."""
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def agent_free(n: int, m: int, reps: int) -> tuple[float, float]:
    acd = build(n)
    ids = list(acd.agent_index)
    now = 10.0
    for aid in ids:
        acd.handle(AgentNotReady(aid, "busy"), now)
    for j in range(m):
        acd.handle(CallArrived(f"c{j}", f"q{j % SKILLS}", f"0{j}"), now + j * 0.01)
    rng = np.random.default_rng(2)
    clock = [now + 100.0]

    def one() -> None:
        aid = ids[int(rng.integers(n))]
        clock[0] += 0.01
        acd.handle(AgentReady(aid), clock[0])
        pending.append(aid)

    pending: list[str] = []
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        one()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
        acd.handle(AgentNotReady(pending.pop(), "busy"), clock[0])  # undo: the offer goes back to the head
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def half_ready(n: int) -> Acd:
    acd = build(n)
    rng = np.random.default_rng(3)
    for i in rng.choice(n, n // 2, replace=False):
        acd.handle(AgentNotReady(str(100000 + int(i)), "busy"), 5.0)
    return acd


def call_arrives(n: int, reps: int) -> tuple[float, float]:
    acd = half_ready(n)
    samples = []
    now = 10.0
    for r in range(reps):
        now += 0.01
        t0 = time.perf_counter_ns()
        acd.handle(CallArrived(f"x{r}", f"q{r % SKILLS}", "0301"), now)
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
        acd.handle(CallAbandoned(f"x{r}"), now)  # undo: the agent is ready again
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def burst(n: int, m: int, reps: int) -> tuple[float, float, int]:
    acd = half_ready(n)
    rows = [(j % SKILLS, int(j % 7 == 0) * 10, False, float(j), j, -1, 0.0) for j in range(m)]
    calls = WaitingCalls.build(rows)
    paired = len(acd.router.assign(calls, 100.0))
    med, p99 = timed(lambda: acd.router.assign(WaitingCalls.build(rows), 100.0), reps)
    return med, p99, paired


def py_loop(n: int, reps: int) -> tuple[float, float]:
    """Baseline: the same call-arrives ranking as a Python loop over agent objects."""
    acd = half_ready(n)
    m = acd.matrix
    agents = [dict(state=int(m.state[i]), busy=bool(m.phone_busy[i]), level=[int(x) for x in m.level[i]],
                   ready_since=float(m.ready_since[i])) for i in range(n)]
    q = acd.router.queues[0]

    def rank() -> int:
        best, best_key = -1, None
        for i, a in enumerate(agents):
            if a["state"] != AgentState.READY or a["busy"] or a["level"][q.skill] < q.min_level:
                continue
            key = (-a["level"][q.skill] if q.skill_level_first else 0, a["ready_since"], i)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best

    return timed(rank, reps)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    rows = []
    for n in AGENTS:
        arr = call_arrives(n, args.reps)
        base = py_loop(n, args.reps)
        for w in WAITING:
            free = agent_free(n, w, args.reps)
            b_med, b_p99, paired = burst(n, w, max(20, args.reps // 5))
            rows.append((n, w, free, arr, (b_med, b_p99), paired, base))
            print(f"{n:>5} agents {w:>4} waiting | agent-free {free[0]:8.1f} µs (p99 {free[1]:8.1f}) | "
                  f"call-arrives {arr[0]:7.1f} µs (p99 {arr[1]:7.1f}) | burst {b_med / 1000:6.2f} ms for {paired} pairs"
                  f" | py-loop rank {base[0]:8.1f} µs", flush=True)
    if not args.no_write:
        write(rows, args.reps)
    return 0


def write(rows: list, reps: int) -> None:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    lines = [
        "# ACD routing decision time",
        "",
        f"`bench/routing.py` ({reps} events per cell; median and 99th percentile; Python "
        f"{platform.python_version()}, numpy {np.__version__}, {cpu}, one core).",
        "",
        "10 skills, each agent holds 3 at random levels 1–10; 10 queues (minimum level 1–5, longest-idle, "
        "skill-level first on half of them).",
        "",
        "- **agent free**: one agent becomes ready while every other agent is busy and *waiting* calls are "
        "queued across the 10 queues; engine `handle(AgentReady)` end to end, ring decision included.",
        "- **call arrives**: a call arrives while half the agents are ready; engine `handle(CallArrived)` "
        "end to end (no calls waiting, so the waiting column does not apply).",
        "- **burst**: half the agents ready and *waiting* calls queued; one `Router.assign` pass pairs them all.",
        "- **Python loop**: the call-arrives ranking as a plain loop over agent objects (what the numpy "
        "matrix replaces), for scale.",
        "",
        "| agents | waiting | agent free µs (p99) | call arrives µs (p99) | burst ms (pairs) | Python loop rank µs |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n, w, free, arr, b, paired, base in rows:
        lines.append(f"| {n} | {w} | {free[0]:.0f} ({free[1]:.0f}) | {arr[0]:.0f} ({arr[1]:.0f}) | "
                     f"{b[0] / 1000:.2f} ({paired}) | {base[0]:.0f} |")
    lines += [
        "",
        "Reading: an event costs tens of microseconds end to end and stays nearly flat from 100 to 5000",
        "agents and from 50 to 500 waiting calls, because the agents are numpy rows and the waiting calls",
        "persistent numpy columns (nothing is rebuilt per event). The Python-loop column is the ranking alone",
        "(no engine work around it): it is cheaper at 100 agents, where numpy's per-call overhead dominates,",
        "and grows linearly to several times the whole numpy event at 5000 agents. Even the worst burst (500",
        "calls paired in one pass) is about a millisecond, below a SIP round trip. The machine is shared with",
        "other jobs, so the p99 column is noisy.",
        "",
    ]
    (ROOT / "bench" / "ACD.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
