#!/usr/bin/env python3
"""Overload: goodput past capacity, the switch beside Kamailio in the same run (``bench/signalling.py --overload``).

1. The switch's clean rates, found in this run: digest REGISTER (2,000 users, the shared driver's SIPp
   scenario) at rising rates until more than 0.5 % fail; the highest clean step is its clean rate C, and
   its successful REGISTERs per second (ok / seconds the SIPp run took) the clean goodput. Calls likewise.
2. The switch offered 2×C and 4×C REGISTERs/s and 2×C calls/s: goodput against the clean goodput (the
   issue's target: ≥ 90 %). During the calls step, 50 long calls (20 s), set up before the flood, must all
   end normally: shedding never touches calls in progress.
3. The same rates without admission control (``[overload] enabled = false``), and Kamailio 5.6 (the
   shared bench's cfg) at the same rates, in the same run.

CLEAN_REG / CLEAN_CALLS (comma-separated rates) replace the sweeps' rates (a shorter run).
Each step prints the load average when it started: the machine is shared, numbers taken while other work
runs are indicative, the ratios within one run are what to compare.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench"
SCENARIOS = SHARED / "sipp"
KAMAILIO_CFG = SHARED / "kamailio" / "kamailio.cfg"
USERS = range(5000, 7000)
UAS_PORT = 5094
SECS = 5
CLEAN_FAILURES = 0.005          # a step is clean with at most 0.5 % failed
REG_SWEEP = (500, 1000, 1500, 2000, 2500, 3000, 3500, 4000)
CALL_SWEEP = (100, 200, 300, 400, 500, 600, 800, 1000)
LONG_CALLS = 50
LONG_SECONDS = 20
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    what: str        # "REGISTER" | "CALLS"
    rate: int
    ok: int
    failed: int
    seconds: float
    cpu: float       # the server's processes, 100 = one core
    load: float      # 1-minute load average when the step started

    @property
    def goodput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return self.ok > 0 and self.failed <= CLEAN_FAILURES * (self.ok + self.failed)

    def row(self) -> str:
        return (f"{self.what:<8} {self.rate:>5}/s  ok {self.ok:>6} failed {self.failed:>6}  {self.seconds:5.1f}s  "
                f"goodput {self.goodput:7.0f}/s  cpu {self.cpu:4.0f}%  load {self.load:.1f}")


def _pids(root: int) -> set[int]:
    seen, todo = set(), [root]
    while todo:
        p = todo.pop()
        seen.add(p)
        out = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()
        todo += [int(x) for x in out if int(x) not in seen]
    return seen


def _cpu_ticks(pids: set[int]) -> int:
    t = 0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            t += int(f[11]) + int(f[12])
        except OSError:
            pass
    return t


def _counts(out: str) -> tuple[int, int]:
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", out)
    return (int(ok[-1]) if ok else -1, int(bad[-1]) if bad else -1)


def sipp(target: str, args: list[str], seconds: int, work: Path) -> subprocess.Popen[str]:
    # -default_behaviors all,-bye: a call SIPp aborts (an unexpected 503) is not hung up with a BYE, as no phone
    # hangs up a REGISTER or a refused INVITE (by default SIPp sends one, doubling the cost of every refusal)
    return subprocess.Popen(["sipp", "-nostdin", "-buff_size", "4194304", *args, "-recv_timeout", "4000",
                             "-default_behaviors", "all,-bye",
                             "-timeout", f"{seconds + 30}s", "-timeout_error", target],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=work)


class Bench:
    def __init__(self, target: str, pid: int, work: Path):
        self.target, self.pid, self.work = target, pid, work
        n = len(USERS)
        self.reg_csv = work / "reg.csv"
        self.reg_csv.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];bench.local;{UAS_PORT}\n" for u in USERS))
        self.call_csv = work / "calls.csv"
        self.call_csv.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];bench.local;{USERS[(i + 1) % n]}\n"
            for i, u in enumerate(USERS)))
        self.long_csv = work / "long.csv"
        self.long_csv.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];bench.local;{u + LONG_CALLS}\n"
            for u in USERS[:LONG_CALLS]))

    def _measure(self, what: str, rate: int, run: Callable[[], tuple[int, int]]) -> Step:
        load = os.getloadavg()[0]
        pids = _pids(self.pid)
        c0, t0 = _cpu_ticks(pids), time.time()
        ok, failed = run()
        dt = time.time() - t0
        step = Step(what, rate, ok, failed, dt, 100.0 * (_cpu_ticks(pids) - c0) / TICK / dt, load)
        print(step.row(), flush=True)
        return step

    def register(self, rate: int) -> Step:
        def run() -> tuple[int, int]:
            p = sipp(self.target, ["-sf", str(SCENARIOS / "reg_auth.xml"), "-inf", str(self.reg_csv),
                                   "-m", str(rate * SECS), "-r", str(rate), "-l", str(rate * 4)], SECS, self.work)
            out, _ = p.communicate()
            return _counts(out)
        return self._measure("REGISTER", rate, run)

    def calls(self, rate: int, long_calls: bool = False) -> tuple[Step, tuple[int, int] | None]:
        uas = subprocess.Popen(["sipp", "-nostdin", "-buff_size", "4194304", "-sn", "uas", "-i", "127.0.0.1",
                                "-p", str(UAS_PORT), "-timeout", f"{SECS + LONG_SECONDS + 60}s"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.work)
        time.sleep(0.5)
        long: subprocess.Popen[str] | None = None
        if long_calls:   # calls in progress before the flood; they hang up during it
            long = sipp(self.target, ["-sf", str(SCENARIOS / "uac_auth.xml"), "-inf", str(self.long_csv),
                                      "-m", str(LONG_CALLS), "-r", str(LONG_CALLS), "-d", str(LONG_SECONDS * 1000),
                                      "-p", "5096"], LONG_SECONDS + 30, self.work)
            time.sleep(3)

        def run() -> tuple[int, int]:
            p = sipp(self.target, ["-sf", str(SCENARIOS / "uac_auth.xml"), "-inf", str(self.call_csv),
                                   "-m", str(rate * SECS), "-r", str(rate), "-d", "100", "-l", str(rate * 4),
                                   "-p", "5098"], SECS, self.work)
            out, _ = p.communicate()
            return _counts(out)
        try:
            step = self._measure("CALLS", rate, run)
            long_result = None
            if long is not None:
                out, _ = long.communicate()
                long_result = _counts(out)
                print(f"  {LONG_CALLS} long calls set up before the flood: {long_result[0]} ended normally, "
                      f"{long_result[1]} failed", flush=True)
        finally:
            uas.kill()
            uas.wait()
        return step, long_result

    def sweep(self, what: str, rates: tuple[int, ...]) -> Step | None:
        """The highest clean step of a rising sweep (stops at the first step that is not clean)."""
        best = None
        for rate in rates:
            step = self.register(rate) if what == "REGISTER" else self.calls(rate)[0]
            if not step.clean:
                break
            best = step
        return best


def _rates(env: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """The sweep's rates, or the ones given in ``env`` (comma-separated: a shorter sweep)."""
    given = os.environ.get(env, "")
    return tuple(int(x) for x in given.split(",") if x.strip()) or default


def start_switch(work: Path, port: int, enabled: bool) -> subprocess.Popen[bytes]:
    sys.path.insert(0, str(ROOT))
    from bench.signalling import run_switch  # the same config and start-up as the signalling bench

    sub = work / ("on" if enabled else "off")
    sub.mkdir(exist_ok=True)
    return run_switch(sub, port, USERS, extra="" if enabled else "[overload]\nenabled = false\n")


def start_kamailio(work: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-m", "256", "-M", "16", "-n", "2",
                             "-Y", str(work / "kamailio.fifo")], stdout=subprocess.DEVNULL,
                            stderr=open(work / "kamailio.log", "w"))
    time.sleep(2)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(skip_kamailio: bool = False, skip_baseline: bool = False) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    port = 5090
    rows: list[tuple[str, Step]] = []
    print(f"== softswitch, [overload] as shipped == (load average {os.getloadavg()[0]:.1f})", flush=True)
    proc = start_switch(work, port, True)
    try:
        b = Bench(f"127.0.0.1:{port}", proc.pid, work)
        print("-- clean REGISTER rate: rising until more than 0.5 % fail", flush=True)
        reg_clean = b.sweep("REGISTER", _rates("CLEAN_REG", REG_SWEEP))
        if reg_clean is None:
            raise SystemExit("no clean REGISTER step: the machine is too busy to measure")
        print(f"-- REGISTER at 2x and 4x the clean rate ({reg_clean.rate}/s)", flush=True)
        reg2, reg4 = b.register(2 * reg_clean.rate), b.register(4 * reg_clean.rate)
        print("-- clean call rate", flush=True)
        call_clean = b.sweep("CALLS", _rates("CLEAN_CALLS", CALL_SWEEP))
        if call_clean is None:
            raise SystemExit("no clean call step: the machine is too busy to measure")
        print(f"-- calls at 2x the clean rate ({call_clean.rate}/s), {LONG_CALLS} long calls up during it", flush=True)
        call2, long = b.calls(2 * call_clean.rate, long_calls=True)
    finally:
        stop(proc)
    rows += [("switch", reg_clean), ("switch", reg2), ("switch", reg4), ("switch", call_clean), ("switch", call2)]
    log = (work / "on" / "switch.log").read_text()
    shed = re.findall(r"overload over after .*", log)
    if not skip_baseline:
        print("== softswitch, [overload] enabled = false ==", flush=True)
        proc = start_switch(work, port, False)
        try:
            b = Bench(f"127.0.0.1:{port}", proc.pid, work)
            for rate in (reg_clean.rate, 2 * reg_clean.rate, 4 * reg_clean.rate):
                rows.append(("switch, no overload control", b.register(rate)))
            for rate in (call_clean.rate, 2 * call_clean.rate):
                rows.append(("switch, no overload control", b.calls(rate)[0]))
        finally:
            stop(proc)
    if not skip_kamailio:
        print("== Kamailio 5.6 (../shared/bench/kamailio/kamailio.cfg) ==", flush=True)
        kam = start_kamailio(work)
        try:
            b = Bench("127.0.0.1:5070", kam.pid, work)
            for rate in (reg_clean.rate, 2 * reg_clean.rate, 4 * reg_clean.rate):
                rows.append(("Kamailio", b.register(rate)))
            for rate in (call_clean.rate, 2 * call_clean.rate):
                rows.append(("Kamailio", b.calls(rate)[0]))
        finally:
            stop(kam)

    print("\n| server | step | ok / failed | goodput /s | of the switch's clean goodput | ok per CPU-second | CPU | "
          "load avg |")
    print("|---|---|---|---|---|---|---|---|")
    for who, s in rows:
        clean = reg_clean if s.what == "REGISTER" else call_clean
        if who == "Kamailio":   # Kamailio against its own goodput at the switch's clean rate
            ref = next((r for w, r in rows if w == who and r.what == s.what and r.rate == clean.rate), None)
        else:                   # the switch, with or without overload control, against its clean goodput
            ref = clean
        share = f"{s.goodput / ref.goodput:.0%}" if ref is not None and ref.goodput else "-"
        per_cpu = f"{s.ok / (s.cpu / 100 * s.seconds):.0f}" if s.cpu > 0 else "-"
        print(f"| {who} | {s.what} {s.rate}/s | {s.ok} / {s.failed} | {s.goodput:.0f} | {share} | {per_cpu} | "
              f"{s.cpu:.0f} % | {s.load:.1f} |")
    if long is not None:
        print(f"\nLong calls in progress during the {call2.rate}/s calls step: {long[0]} of {LONG_CALLS} ended "
              f"normally, {long[1]} failed.")
    for line in shed:
        print(f"switch log: {line}")
    reg_ok = min(reg2.goodput, reg4.goodput) >= 0.9 * reg_clean.goodput
    call_ok = call2.goodput >= 0.9 * call_clean.goodput
    print(f"\ntargets: REGISTER goodput at 2x/4x >= 90 % of clean: {'met' if reg_ok else 'NOT met'} "
          f"({reg2.goodput / reg_clean.goodput:.0%}, {reg4.goodput / reg_clean.goodput:.0%}); calls at 2x >= 90 %: "
          f"{'met' if call_ok else 'NOT met'} ({call2.goodput / call_clean.goodput:.0%}); long calls all ended: "
          f"{'yes' if long is not None and long == (LONG_CALLS, 0) else 'NO'}")


if __name__ == "__main__":
    main("--skip-kamailio" in sys.argv, "--skip-baseline" in sys.argv)
