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

--large: the issue's case instead, 1,000 agents x 64 skills with 1,000 waiting calls in steady state
(every agent on a call, 1,000 more callers queued); per "agent becomes ready" event (a call ends with no
wrap-up, or a not-ready agent presses ready) the engine's decision latency p50/p99/max and decisions/s.
Writes its own section of bench/ACD.md (between <!-- bench/routing.py --large --> markers).
"""
from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from acd import Acd, parse_acd_config  # noqa: E402
from acd.actions import RingAgent  # noqa: E402
from acd.config import AcdAgent, AcdConfig, AcdQueue, AcdSkill  # noqa: E402
from acd.events import (AgentLogin, AgentNotReady, AgentReady, CallAbandoned, CallArrived, CallEnded,  # noqa: E402
                        OfferAnswered)
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
    raw: dict[str, Any] = {
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
    agents: list[dict[str, Any]] = [dict(state=int(m.state[i]), busy=bool(m.phone_busy[i]), level=[int(x) for x in m.level[i]],
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
    p.add_argument("--large", action="store_true", help="1,000 agents x 64 skills, 1,000 waiting calls")
    p.add_argument("--events", type=int, default=20000, help="--large: events measured")
    args = p.parse_args()
    if args.large:
        res = [large(args.events), large(args.events, park_idle=True)]
        if not args.no_write:
            write_large(res)
        return 0
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
    path = ROOT / "bench" / "ACD.md"
    old = path.read_text() if path.exists() else ""
    keep = old[old.index(LARGE_MARK):] if LARGE_MARK in old else ""  # appended sections survive
    path.write_text("\n".join(lines) + ("\n" + keep if keep else ""))


# ------------------------------------------------------------------ --large: 1,000 agents x 64 skills

LARGE_HEADING = "## 1,000 agents × 64 skills, 1,000 waiting calls"
LARGE_MARK = "<!-- bench/routing.py --large -->"
L_SKILLS, L_AGENTS, L_WAITING = 64, 1000, 1000
STRATS = ("longest-idle", "round-robin", "fewest-calls", "least-talk-time", "random")


def large_config(seed: int = 7) -> AcdConfig:
    """64 skills; 1,000 agents holding 3-8 skills each at levels 1-10 (a few popular skills, a long tail);
    80 queues: one per skill (min level 1-5, strategies mixed, skill-level first on half) plus 16 "expert"
    queues on the popular skills (min level 7, weight 10). Wrap-up 0: an agent is free the moment a call ends."""
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, L_SKILLS + 1) ** 0.6        # skill popularity, Zipf-ish
    pop /= pop.sum()
    agents = []
    for i in range(L_AGENTS):
        held = rng.choice(L_SKILLS, int(rng.integers(3, 9)), replace=False, p=pop)
        agents.append(AcdAgent(str(100000 + i), f"A{i}", str(200000 + i),
                               {f"s{k}": int(rng.integers(1, 11)) for k in held}))
    queues = [AcdQueue(f"q{k}", f"s{k}", min_level=1 + k % 5, strategy=STRATS[k % len(STRATS)],
                       skill_level_first=k % 2 == 0, wrapup_time=0) for k in range(L_SKILLS)]
    queues += [AcdQueue(f"x{k}", f"s{k}", min_level=7, strategy="longest-idle", skill_level_first=True, weight=10,
                        wrapup_time=0) for k in range(16)]
    return AcdConfig(skills=[AcdSkill(f"s{k}") for k in range(L_SKILLS)], agents=agents, queues=queues)


def large(events: int, seed: int = 7, park_idle: bool = False) -> dict:
    """``park_idle``: the agents left idle after the fill (their skills have no waiting call) go not-ready,
    so no agent is free between events; otherwise they stay ready, as in a real call centre."""
    cfg = large_config(seed)
    acd = Acd(cfg, seed=seed)
    rng = np.random.default_rng(seed + 1)
    n_q = len(cfg.queues)
    qp = np.array([1.0 / (1 + k % L_SKILLS) ** 0.6 for k in range(n_q)])
    qp /= qp.sum()
    qnames = [q.name for q in cfg.queues]
    member = acd.router.member
    now = [1.0]
    seq = [0]
    connected: dict[str, str] = {}      # call id -> agent id
    agent_call: dict[str, str] = {}

    def tick() -> float:
        now[0] += 0.001
        return now[0]

    def arrive() -> list:
        seq[0] += 1
        q = int(rng.choice(n_q, p=qp))
        while not member[q].any():                        # a queue nobody can serve would only pile up
            q = int(rng.choice(n_q, p=qp))
        return acd.handle(CallArrived(f"c{seq[0]}", qnames[q], f"0{seq[0]}"), tick())

    def answer(out: list) -> int:
        n = 0
        for a in out:
            if isinstance(a, RingAgent):
                for _ in acd.handle(OfferAnswered(a.call_id, a.agent_id), tick()):
                    pass
                connected[a.call_id] = a.agent_id
                agent_call[a.agent_id] = a.call_id
                n += 1
        return n

    for a in cfg.agents:
        acd.handle(AgentLogin(a.id), tick())
    # fill: every agent that can get a call gets one, then 1,000 more wait
    guard = 0
    while len(acd.waiting) < L_WAITING and guard < 50 * L_WAITING:
        guard += 1
        answer(arrive())
    idle_at_start = int(acd.matrix.available().sum())
    if park_idle:
        for i in np.flatnonzero(acd.matrix.available()):
            acd.handle(AgentNotReady(cfg.agents[int(i)].id, "parked"), tick())
    kinds: dict[str, list[float]] = {"call ends": [], "ready pressed": []}
    no_match = {"call ends": 0, "ready pressed": 0}
    arrive_us = []
    t_all = time.perf_counter()
    decisions = 0
    busy_s = 0.0
    for r in range(events):
        if not connected:
            break
        cid = list(connected)[int(rng.integers(len(connected)))] if r % 64 == 0 else next(iter(connected))
        aid = connected.pop(cid)
        agent_call.pop(aid, None)
        ev: AgentReady | CallEnded
        if r % 2:
            kind = "ready pressed"
            acd.handle(AgentNotReady(aid, "break"), tick())      # not ready after this call
            acd.handle(CallEnded(cid), tick())                   # -> not ready, no decision
            ev = AgentReady(aid)
        else:
            kind = "call ends"
            ev = CallEnded(cid)                                  # wrap-up 0 -> ready -> routing pass
        t = tick()
        t0 = time.perf_counter_ns()
        out = acd.handle(ev, t)
        dt = (time.perf_counter_ns() - t0) / 1000.0
        busy_s += dt / 1e6
        rang = [a for a in out if isinstance(a, RingAgent)]
        if rang:
            kinds[kind].append(dt)
            decisions += 1
        else:
            no_match[kind] += 1
        answer(out)
        t0 = time.perf_counter_ns()
        out = arrive()                                           # keep 1,000 waiting
        arrive_us.append((time.perf_counter_ns() - t0) / 1000.0)
        answer(out)
    wall = time.perf_counter() - t_all

    def pct(v: list, p: float) -> float:
        return float(np.percentile(v, p)) if v else float("nan")

    res: dict[str, Any] = {"park_idle": park_idle, "agents": L_AGENTS, "skills": L_SKILLS, "queues": n_q, "waiting": len(acd.waiting),
           "skills_per_agent": float(np.mean([len(a.skills) for a in cfg.agents])),
           "idle_at_start": idle_at_start, "events": events, "decisions": decisions, "wall_s": wall,
           "engine_s": busy_s, "arrive": (pct(arrive_us, 50), pct(arrive_us, 99), max(arrive_us))}
    for k, v in kinds.items():
        res[k] = {"n": len(v), "no_match": no_match[k], "p50": pct(v, 50), "p99": pct(v, 99), "max": max(v),
                  "mean": float(np.mean(v))}
    all_v = kinds["call ends"] + kinds["ready pressed"]
    res["all"] = {"n": len(all_v), "p50": pct(all_v, 50), "p99": pct(all_v, 99), "p999": pct(all_v, 99.9),
                  "max": max(all_v), "mean": float(np.mean(all_v))}
    print(f"{L_AGENTS} agents x {L_SKILLS} skills ({res['skills_per_agent']:.1f} per agent), {n_q} queues, "
          f"{res['waiting']} waiting at the end, {idle_at_start} agents idle (no matching call) at start")
    for k in ("call ends", "ready pressed", "all"):
        v = res[k]
        print(f"  {k:>13}: {v['n']} decisions  p50 {v['p50']:.0f} µs  p99 {v['p99']:.0f} µs  max {v['max']:.0f} µs"
              + (f"  ({v['no_match']} events with no matching call)" if "no_match" in v else ""))
    print(f"  call arrives (no agent free): p50 {res['arrive'][0]:.0f} µs p99 {res['arrive'][1]:.0f} µs")
    print(f"  decisions/s: {decisions / busy_s:,.0f} (engine time only), {decisions / wall:,.0f} (whole loop)")
    return res


def write_large(results: list[dict]) -> None:
    import datetime
    res = results[0]
    lines = [
        LARGE_MARK,
        LARGE_HEADING,
        "",
        f"`bench/routing.py --large --events {res['events']}`, measured {datetime.date.today().isoformat()} "
        f"(Python {platform.python_version()}, numpy {np.__version__}, shared 2-core VM).",
        "",
        f"{res['agents']} agents × {res['skills']} skills ({res['skills_per_agent']:.1f} skills per agent, "
        "Zipf-ish popularity, levels 1–10), "
        f"{res['queues']} queues (one per skill with minimum level 1–5 and strategies longest-idle / "
        "round-robin / fewest-calls / least-talk-time / random, skill-level first on half; 16 expert queues "
        "at level ≥ 7 with weight 10), wrap-up 0. Steady state: every agent who can take a call is on one "
        f"and {res['waiting']} callers wait. Each measured event frees one agent and is timed from "
        "`Acd.handle(event)` to the returned `RingAgent` (routing pass, ring, queue_log lines included); the "
        "agent then answers and a new caller arrives so the queue stays at 1,000. Two set-ups: "
        f"**idle agent ready** — the {res['idle_at_start']} agent(s) whose skills match no waiting call stay "
        "ready (what a real floor looks like); **idle agents parked** — those agents are made not-ready, so "
        "no agent is free between events.",
        "",
        "| set-up | event | decisions | p50 µs | p99 µs | max µs | decisions/s (engine) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        label = "idle agents parked" if r["park_idle"] else f"{r['idle_at_start']} idle agent ready"
        for k in ("call ends", "ready pressed"):
            v = r[k]
            lines.append(f"| {label} | {k} → RingAgent | {v['n']:,} | {v['p50']:.0f} | {v['p99']:.0f} | "
                         f"{v['max']:.0f} | |")
        a = r["all"]
        lines.append(f"| {label} | **all decisions** | {a['n']:,} | {a['p50']:.0f} | **{a['p99']:.0f}** | "
                     f"{a['max']:.0f} | {r['decisions'] / r['engine_s']:,.0f} |")
        lines.append(f"| {label} | call arrives, no agent for it | {r['events']:,} | {r['arrive'][0]:.0f} | "
                     f"{r['arrive'][1]:.0f} | {r['arrive'][2]:.0f} | |")
    worst = max(r["all"]["p99"] for r in results)
    lines += [
        "",
        f"Target p99 < 1 ms per decision: {'met' if worst < 1000 else '**not met**'} "
        f"(worst p99 {worst / 1000:.2f} ms).",
        LARGE_MARK,
    ]
    block = "\n".join(lines)
    path = ROOT / "bench" / "ACD.md"
    text = path.read_text()
    if LARGE_MARK in text:
        text = re.sub(re.escape(LARGE_MARK) + r".*?" + re.escape(LARGE_MARK), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
