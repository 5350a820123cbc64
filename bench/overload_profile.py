#!/usr/bin/env python3
"""Where the switch's CPU goes under a REGISTER flood: py-spy samples the switch while SIPp offers ``RATE``
REGISTERs/s (the overload bench's scenario, users registered once first, so most floods are refreshes).

    .venv/bin/pip install py-spy   # not a project dependency: a tool for this measurement only
    .venv/bin/python bench/overload_profile.py RATE [SECONDS] [--calls]

Prints SIPp's ok/failed, the switch's CPU, and the share of samples by activity (receiving, the cheap look,
absorbing copies, 503s, serving: parse, digest, registrar; the store's thread; the event loop's own work),
from the collapsed stacks py-spy writes (kept in the work folder for a flame graph).
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.overload import SCENARIOS, Bench, _cpu_ticks, _pids, start_switch, stop  # noqa: E402

# (label, frames that must all be in a stack), first match wins: what the switch was doing in a sample
BUCKETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("store thread (SQLite, commits)", ("sqlite_thread",)),
    ("store thread (SQLite, commits)", ("GroupWriter",)),
    ("intake: peek", ("UdpIntake._drain", "peek (")),
    ("intake: transaction lookups", ("UdpIntake._drain", "answer_to_retransmission")),
    ("intake: ranks, copies, queues", ("UdpIntake._drain", "Admission.offer")),
    ("intake: recvmsg loop", ("UdpIntake._drain",)),
    ("503s built", ("Admission.next", "reject (")),
    ("admission: choosing, shedding", ("Admission.next",)),
    ("sendto", ("UdpIntake.sendto",)),
    ("serving: parse, digest, registrar, calls", ("Server.process",)),
    ("store write (loop side)", ("Server._persist",)),
)


def classify(stack: str) -> str:
    for label, needles in BUCKETS:
        if all(n in stack for n in needles):
            return label
    return "event loop, timers, other"


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--calls"]
    calls = "--calls" in sys.argv          # the calls flood (SIPp's UAS answers, 100 ms talk) instead
    rate = int(args[0]) if args else 8000
    secs = int(args[1]) if len(args) > 1 else 5
    work = Path(tempfile.mkdtemp(prefix="overload-profile-"))
    proc = start_switch(work, 5090, True)
    try:
        b = Bench("127.0.0.1:5090", proc.pid, work)
        print(b.register(500).row(), "(the phones' first registration)", flush=True)
        out = work / "profile.txt"
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(proc.pid), "-r", "200",
                                "-d", str(secs + 3), "-f", "raw", "-o", str(out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        if calls:
            step = b.calls(rate)[0]
            spy.wait()
            print(step.row(), f"ok per CPU-second {step.ok / (step.cpu / 100 * step.seconds):.0f}")
            return _report(out, work)
        pids = _pids(proc.pid)
        c0, t0 = _cpu_ticks(pids), time.time()
        p = subprocess.Popen(["sipp", "-nostdin", "-buff_size", "4194304", "-sf", str(SCENARIOS / "reg_auth.xml"),
                              "-inf", str(b.reg_csv), "-m", str(rate * secs), "-r", str(rate), "-l", str(rate * 4),
                              "-recv_timeout", "4000", "-default_behaviors", "all,-bye", "-timeout", f"{secs + 30}s",
                              "-timeout_error", "127.0.0.1:5090"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, cwd=work)
        sipp_out, _ = p.communicate()
        dt = time.time() - t0
        cpu = 100.0 * (_cpu_ticks(pids) - c0) / os.sysconf("SC_CLK_TCK") / dt
        spy.wait()
    finally:
        stop(proc)
    from bench.overload import _counts
    ok, failed = _counts(sipp_out)
    print(f"REGISTER {rate}/s: ok {ok} failed {failed} in {dt:.1f}s, goodput {ok / dt:.0f}/s, switch cpu {cpu:.0f}%, "
          f"ok per CPU-second {ok / (cpu / 100 * dt):.0f}, load {os.getloadavg()[0]:.1f}")
    _report(out, work)


def _report(out: Path, work: Path) -> None:
    shares: collections.Counter[str] = collections.Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        shares[classify(stack)] += int(n)
        total += int(n)
    for label, count in shares.most_common():
        print(f"  {label:<42} {100 * count / max(total, 1):5.1f} %")
    log = (work / "on" / "switch.log").read_text().splitlines()
    for line in log[-3:]:
        print("  switch log:", line[:300])
    print(f"collapsed stacks: {out}")


if __name__ == "__main__":
    main()
