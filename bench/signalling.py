#!/usr/bin/env python3
"""Signalling load: the switch and Kamailio measured side by side in one run, with the same SIPp driver
(../shared/bench/signalling_load.py): digest REGISTER for 2,000 users at rising rates, then
authenticated calls between them at rising rates. Prints both tables and the ratios.

Usage: bench/signalling.py [--skip-kamailio] [--memory] [--overload [--skip-baseline]]
  REG_RATES / CALL_RATES (comma-separated) are passed through to the driver.
  --memory: also register 10,000 contacts and report the switch's resident memory.
  --overload: goodput at 2x and 4x the clean rates found in the same run, with and without admission
  control, beside Kamailio (bench/overload.py; results in bench/OVERLOAD.md).
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "bench"
DRIVER = SHARED / "signalling_load.py"


# load generators place calls faster than any phone: no per-extension call limits (docs/security.md)
UNLIMITED = "max_calls = 0\ninvite_rate = 0\n"


def bench_config(path: Path, port: int, users: range, extra: str = "") -> None:
    # SIPp answers only MD5 (Kamailio's bench config is MD5 too), so the switch offers MD5 alone here.
    lines = [f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ndomain = "bench.local"\nauth_algorithms = ["MD5"]\n',
             '[api]\nenabled = false\n',  # signalling and media only (and no port 8080 taken)
             "[log]\nlevel = \"WARNING\"\n",
             # signalling only, like Kamailio (a proxy does not touch RTP); media load is bench/media_load.py
             "[media]\nenabled = false\n",
             '[store]\npath = "bench.db"\n', extra]
    for u in users:
        # busy_limit = 0: the driver's users call each other in a ring, so user N is often still the
        # caller of one call when the next call to N arrives; a proxy like Kamailio has no busy state.
        lines.append(f'[[extensions]]\nnumber = "{u}"\npassword = "pw{u}"\nbusy_limit = 0\n' + UNLIMITED)
    path.write_text("".join(lines))


def run_switch(work: Path, port: int, users: range, extra: str = "") -> subprocess.Popen:
    cfg = work / "config.toml"
    bench_config(cfg, port, users, extra)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "run", "--config", str(cfg)],
                            stderr=open(work / "switch.log", "w"), env=env, cwd=work)
    for _ in range(150):  # ready when it answers an OPTIONS (the log is at WARNING: no start line)
        time.sleep(0.1)
        if proc.poll() is not None:
            break
        if _answers_options(port):
            return proc
    raise SystemExit(f"switch did not start:\n{(work / 'switch.log').read_text()}")


def _answers_options(port: int) -> bool:
    msg = (f"OPTIONS sip:bench.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKping{time.time_ns()}\r\n"
           "From: <sip:ping@bench.local>;tag=1\r\nTo: <sip:bench.local>\r\nCall-ID: ping@bench\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect(("127.0.0.1", port))
        try:
            s.send(msg)
            return s.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def drive(addr: str, pid: int) -> list[str]:
    out = subprocess.run([sys.executable, str(DRIVER), addr, str(pid)], capture_output=True, text=True,
                         cwd=SHARED, env=os.environ)
    print(out.stdout, end="", flush=True)
    if out.returncode:
        print(out.stderr, file=sys.stderr)
    return out.stdout.splitlines()


def parse_rows(lines: list[str]) -> dict[str, tuple[int, int, float]]:
    rows = {}
    for line in lines:
        m = re.match(r"(REGISTER|CALLS)\s+(\d+)/s\s+ok\s+(-?\d+) failed\s+(-?\d+).*cpu\s+(\d+)%", line)
        if m:
            rows[f"{m[1]} {m[2]}/s"] = (int(m[3]), int(m[4]), float(m[5]))
    return rows


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def memory_test(work: Path) -> None:
    """Register 10,000 contacts (users 10000..19999) and report resident memory."""
    port = 5091
    users = range(10000, 20000)
    proc = run_switch(work, port, users)
    base = rss_mb(proc.pid)
    csv = work / "mem.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(
        f"{u};[authentication username={u} password=pw{u}];bench.local;5094\n" for u in users))
    subprocess.run(["sipp", "-nostdin", "-sf", str(SHARED / "sipp" / "reg_auth.xml"), "-inf", str(csv),
                    "-m", "10000", "-r", "1000", "-l", "4000", "-timeout", "60s", f"127.0.0.1:{port}"],
                   capture_output=True, cwd=work)
    time.sleep(1)
    print(f"memory: {len(users)} extensions configured, RSS before registrations {base:.0f} MB, "
          f"after 10,000 registered contacts {rss_mb(proc.pid):.0f} MB")
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-kamailio", action="store_true")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--overload", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    args = ap.parse_args()
    if args.overload:
        sys.path.insert(0, str(ROOT))
        from bench.overload import main as overload

        overload(args.skip_kamailio, args.skip_baseline)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-sig-"))
    port = 5090
    print("== softswitch ==", flush=True)
    proc = run_switch(work, port, range(5000, 7000))
    try:
        ours = parse_rows(drive(f"127.0.0.1:{port}", proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    theirs: dict = {}
    if not args.skip_kamailio:
        print("== Kamailio (../shared/bench/kamailio/run.sh) ==", flush=True)
        out = subprocess.run(["bash", str(SHARED / "kamailio" / "run.sh")], capture_output=True, text=True)
        print(out.stdout, end="")
        theirs = parse_rows(out.stdout.splitlines())
    print("\n| step | softswitch ok / failed | CPU | Kamailio ok / failed | CPU | ok ratio |")
    print("|---|---|---|---|---|---|")
    for step, (ok, bad, cpu) in ours.items():
        k = theirs.get(step)
        ks = f"{k[0]} / {k[1]} | {k[2]:.0f} %" if k else "- | -"
        ratio = f"{ok / k[0]:.2f}" if k and k[0] > 0 else "-"
        print(f"| {step} | {ok} / {bad} | {cpu:.0f} % | {ks} | {ratio} |")
    if args.memory:
        memory_test(work)


if __name__ == "__main__":
    main()
