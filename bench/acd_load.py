#!/usr/bin/env python3
"""End-to-end call-centre load: SIPp callers dial queue numbers at rising call rates, SIPp agents answer
automatically; per step: calls offered / answered / abandoned / failed, the switch's CPU, wait to
connect, and misrouted calls.

    agents:  N extensions, each registered with its own Contact sip:<ext>@127.0.0.1:<UAS port> to ONE
             SIPp UAS (bench/sipp_acd/uas_agents.xml: answers every INVITE with 200 + SDP at once, then
             waits for the switch's BYE); logged in with *11*<agent id> (bench/sipp_acd/login.xml).
    callers: SIPp UAC (bench/sipp_acd/uac_queue.xml) dialling queue numbers 600..603 round robin; the
             switch answers, plays music, rings an agent, bridges; the caller hangs up after -d ms.
    media:   the switch anchors every leg; the SDP of callers and agents names a "black hole" UDP socket
             of this script (small receive buffer, never read), so the switch's RTP costs it its real
             encode + send work but nobody has to read 50 packets/s per leg.

Misrouted = a call offered to an agent without the queue's skill (at the queue's minimum level), to an
extension that is not the agent's, or to an agent whose phone already has another queue call offered or
connected. Checked from the switch's INFO lines ("queue Q offers the call to agent A at EXT", "agent A
at EXT did not take the call", "... ended: ...") in log order (one thread, so log order = decision order)
and from queue_log (CONNECT agent/queue against the config; every ENTERQUEUE must end in CONNECT or
ABANDON/EXIT*: otherwise the call was lost).

Usage: bench/acd_load.py [--rates 10,25,50,100] [--seconds 10] [--talk 3] [--agents 600] [--write]
  --write: append/replace the results section in bench/ACD.md.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench.media_load import CPUS, answers_options, cpu_ticks, machine_ticks, sipp_counts  # noqa: E402

SC = HERE / "sipp_acd"
DOMAIN = "bench.local"
HZ = os.sysconf("SC_CLK_TCK")
CALLERS, AGENT_EXT, AGENT_ID = 3000, 5000, 7000
N_CALLERS = 300
SKILLS = ["billing", "tech", "sales", "orders"]
QUEUE_NUMBER = 600                     # queue q<k> on number 600 + k, skill SKILLS[k]
MIN_LEVEL = [1, 3, 1, 5]


def agent_skills(i: int, rng: np.random.Generator) -> dict[str, int]:
    """Two of the four skills per agent (every pair equally often), random levels 1-10."""
    a = i % 4
    b = (a + 1 + (i // 4) % 3) % 4
    return {SKILLS[a]: int(rng.integers(1, 11)), SKILLS[b]: int(rng.integers(1, 11))}


# load generators place calls faster than any phone: no per-extension call limits (docs/security.md)
UNLIMITED = "max_calls = 0\ninvite_rate = 0\n"


def write_config(path: Path, port: int, n_agents: int, ring_time: int) -> dict:
    rng = np.random.default_rng(5)
    agents = {}
    lines = [f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\nauth_algorithms = ["MD5"]\n',
             '[api]\nenabled = false\n',  # signalling and media only (and no port 8080 taken)
             '[log]\nlevel = "INFO"\n',
             '[media]\nrtp_ports = "20000-40000"\ncodecs = ["PCMA", "PCMU"]\nrecord = "none"\n',
             '[store]\npath = "bench.db"\n']
    for u in range(CALLERS, CALLERS + N_CALLERS):
        lines.append(f'[[extensions]]\nnumber = "{u}"\npassword = "pw{u}"\nbusy_limit = 0\n' + UNLIMITED)
    for i in range(n_agents):
        u = AGENT_EXT + i
        lines.append(f'[[extensions]]\nnumber = "{u}"\npassword = "pw{u}"\nbusy_limit = 0\n' + UNLIMITED)
    lines.append(f'[acd]\nqueue_log = "{path.parent / "queue_log"}"\n')
    lines += [f'[[acd.skills]]\nname = "{s}"\n' for s in SKILLS]
    for i in range(n_agents):
        sk = agent_skills(i, rng)
        aid = str(AGENT_ID + i)
        agents[aid] = {"ext": str(AGENT_EXT + i), "skills": sk}
        inline = ", ".join(f"{k} = {v}" for k, v in sk.items())
        lines.append(f'[[acd.agents]]\nid = "{aid}"\nname = "Agent {i}"\nextension = "{AGENT_EXT + i}"\n'
                     f'skills = {{ {inline} }}\n')
    queues = {}
    for k, s in enumerate(SKILLS):
        queues[f"q{k}"] = (s, MIN_LEVEL[k])
        lines.append(f'[[acd.queues]]\nname = "q{k}"\nskill = "{s}"\nmin_level = {MIN_LEVEL[k]}\n'
                     f'strategy = "{"longest-idle" if k % 2 == 0 else "round-robin"}"\n'
                     f'skill_level_first = {"true" if k < 2 else "false"}\nring_time = {ring_time}\n'
                     'wrapup_time = 0\nannounce_agent = false\n')
    for k in range(len(SKILLS)):
        lines.append(f'[[acd.dialplan]]\nnumber = "{QUEUE_NUMBER + k}"\nqueue = "q{k}"\n')
    path.write_text("".join(lines))
    return {"agents": agents, "queues": queues}


# ------------------------------------------------------------------------------------ log analysis

TS = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ [\w.]+: "
RE_ENTER = re.compile(TS + r"call (\S+): (\S+) entered queue (\S+)$", re.M)
RE_OFFER = re.compile(TS + r"call (\S+): queue (\S+) offers the call to agent (\S+) at (\S+)$", re.M)
RE_CONN = re.compile(TS + r"call (\S+): (\S+) connected to agent (\S+) at (\S+)$", re.M)
RE_NOTAKE = re.compile(TS + r"call (\S+): agent (\S+) at (\S+) did not take the call", re.M)
RE_END = re.compile(TS + r"call (\S+): (\S+) -> (\S+) ended: (.*)$", re.M)
EVENTS = re.compile(TS + r"call (\S+): (?:queue (\S+) offers the call to agent (\S+) at (\S+)|"
                    r"agent (\S+) at \S+ did not take the call|\S+ -> \S+ ended: .*)$", re.M)


def ts(s: str) -> float:
    return datetime.datetime.strptime(s, "%Y-%m-%d %H:%M:%S,%f").timestamp()


class Routing:
    """Replays the switch's offers in log order and flags misroutes."""

    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.active: dict[str, set[str]] = defaultdict(set)   # agent -> calls offered/connected, not ended
        self.call_agents: dict[str, set[str]] = defaultdict(set)
        self.bad: list[str] = []

    def feed(self, text: str) -> Counter:
        c: Counter = Counter()
        for m in EVENTS.finditer(text):
            call = m[2]
            if m[3]:                                           # an offer
                queue, agent, ext = m[3], m[4], m[5]
                c["offers"] += 1
                a = self.cfg["agents"].get(agent)
                skill, min_level = self.cfg["queues"][queue]
                if a is None or a["skills"].get(skill, 0) < min_level:
                    c["misroute_skill"] += 1
                    self.bad.append(f"skill: {m.group(0)} (agent skills {a and a['skills']})")
                if a is not None and a["ext"] != ext:
                    c["misroute_ext"] += 1
                    self.bad.append(f"extension: {m.group(0)}")
                if self.active[agent]:
                    c["misroute_busy"] += 1
                    self.bad.append(f"busy with {sorted(self.active[agent])}: {m.group(0)}")
                self.active[agent].add(call)
                self.call_agents[call].add(agent)
            elif m[6]:                                         # the agent's phone refused / failed
                self.active[m[6]].discard(call)
                self.call_agents[call].discard(m[6])
                c["not_taken"] += 1
            else:                                              # the call ended: every agent leg is gone
                for agent in self.call_agents.pop(call, ()):
                    self.active[agent].discard(call)
        return c


def queue_log_check(lines: list[str], cfg: dict) -> Counter:
    c: Counter = Counter()
    entered, done = set(), set()
    for line in lines:
        f = line.split("|")
        if len(f) < 5:
            continue
        ev = f[4]
        c[ev] += 1
        if ev == "ENTERQUEUE":
            entered.add(f[1])
        elif ev in ("CONNECT", "ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"):
            done.add(f[1])
        if ev == "CONNECT":
            agent = f[3].removeprefix("Agent/")
            skill, min_level = cfg["queues"][f[2]]
            if cfg["agents"].get(agent, {}).get("skills", {}).get(skill, 0) < min_level:
                c["connect_misroute"] += 1
    c["lost"] = len(entered - done)
    return c


# ------------------------------------------------------------------------------------------ the run

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-acd-"))
        self.procs: list[subprocess.Popen] = []
        self.port, self.uas_port = 5290, 5294

    def spawn(self, cmd, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=self.work, **kw)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def sipp(self, scenario: str, csv: Path | None, port: int, extra: list[str], timeout: float,
             background: bool = False):
        cmd = ["sipp", "-nostdin", "-sf", str(SC / scenario), "-i", "127.0.0.1", "-p", str(port),
               "-key", "sink_port", str(self.hole_port), "-trace_err"]
        if csv is not None:
            cmd += ["-inf", str(csv)]
        cmd += extra + [f"127.0.0.1:{self.port}"]
        if background:
            return self.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.work, timeout=timeout)

    def start(self) -> None:
        a = self.args
        # the black hole for RTP: a socket with a tiny buffer that nobody reads (no ICMP, no reader CPU)
        self.hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.hole.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.hole.bind(("127.0.0.1", 0))
        self.hole_port = self.hole.getsockname()[1]
        self.hole_rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.hole_rtcp.bind(("127.0.0.1", self.hole_port + 1))
            self.hole_rtcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        except OSError:
            pass
        self.cfg_path = self.work / "config.toml"
        self.cfg = write_config(self.cfg_path, self.port, a.agents, a.ring_time)
        self.log = self.work / "switch.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.switch = self.spawn([sys.executable, "-m", "softswitch.cli", "run", "--config", str(self.cfg_path)],
                                 stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        for _ in range(300):
            time.sleep(0.1)
            if self.switch.poll() is not None or answers_options(self.port):
                break
        if self.switch.poll() is not None or not answers_options(self.port):
            raise SystemExit(f"switch did not start:\n{self.log.read_text()[-3000:]}")
        self.uas = self.spawn(["sipp", "-nostdin", "-sf", str(SC / "uas_agents.xml"), "-i", "127.0.0.1",
                               "-p", str(self.uas_port), "-key", "sink_port", str(self.hole_port), "-trace_err",
                               "-max_socket", "4000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        exts = [AGENT_EXT + i for i in range(a.agents)]
        reg = self.work / "reg.csv"
        reg.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];{DOMAIN};{self.uas_port}\n" for u in exts))
        r = self.sipp("register.xml", reg, 5296, ["-m", str(a.agents), "-r", "200", "-l", "100", "-timeout", "60s"],
                      90)
        ok, bad = sipp_counts(r.stdout)
        print(f"registered {ok} agent phones to the SIPp UAS ({bad} failed)", flush=True)
        login = self.work / "login.csv"
        login.write_text("SEQUENTIAL\n" + "".join(
            f"{AGENT_EXT + i};[authentication username={AGENT_EXT + i} password=pw{AGENT_EXT + i}];{DOMAIN};"
            f"{AGENT_ID + i}\n" for i in range(a.agents)))
        r = self.sipp("login.xml", login, 5298, ["-m", str(a.agents), "-r", "50", "-l", "200", "-timeout", "90s",
                                                 "-mp", "44000"], 120)
        ok, bad = sipp_counts(r.stdout)
        time.sleep(1.0)
        text = self.log.read_text(errors="replace")
        logged = len(re.findall(r"feature code \*11\*\d+ from \d+: ok", text))
        ready = len(set(re.findall(r"agent (\d+) is ready", text)))
        print(f"login calls: {ok} ok / {bad} failed; switch: {logged} logins ok, {ready} agents ready", flush=True)
        self.logins = {"sipp_ok": ok, "sipp_failed": bad, "ok": logged, "ready": ready}
        self.routing = Routing(self.cfg)
        self.routing.feed(text)
        self.log_off = len(text.encode())
        self.qlog_off = 0
        calls = self.work / "calls.csv"
        calls.write_text("SEQUENTIAL\n" + "".join(
            f"{CALLERS + i};[authentication username={CALLERS + i} password=pw{CALLERS + i}];{DOMAIN};"
            f"{QUEUE_NUMBER + i % len(SKILLS)}\n" for i in range(N_CALLERS)))

    def step(self, rate: int) -> dict:
        a = self.args
        n = int(rate * a.seconds)
        t0 = time.time()
        uac = self.sipp("uac_queue.xml", self.work / "calls.csv", 5300,
                        ["-m", str(n), "-r", str(rate), "-l", str(int(rate * (a.talk + 10)) + 50),
                         "-d", str(int(a.talk * 1000)), "-recv_timeout", "10000",
                         "-timeout", f"{int(a.seconds + a.talk + 60)}s", "-max_socket", "4000"],
                        0, background=True)
        pids = {"switch": self.switch.pid, "sipp_uac": uac.pid, "sipp_uas": self.uas.pid}
        # CPU over the arrival window, sampled each second for the peak
        time.sleep(1.0)
        c0 = {k: cpu_ticks(p) for k, p in pids.items()}
        m0, tw0 = machine_ticks(), time.time()
        samples, last, tl = [], cpu_ticks(self.switch.pid), time.time()
        while time.time() < t0 + a.seconds + a.talk * 0.5 and uac.poll() is None:
            time.sleep(1.0)
            now_t, now_c = time.time(), cpu_ticks(self.switch.pid)
            samples.append(100.0 * (now_c - last) / HZ / (now_t - tl))
            last, tl = now_c, now_t
        c1 = {k: cpu_ticks(p) for k, p in pids.items()}
        m1, tw1 = machine_ticks(), time.time()
        out, _ = uac.communicate(timeout=a.seconds + a.talk + 90)
        time.sleep(2.0)                              # the last BYEs, end-of-call lines
        dt = tw1 - tw0
        cpu = {k: 100.0 * (c1[k] - c0[k]) / HZ / dt for k in pids}
        cpu["machine"] = 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * CPUS
        cpu["switch_peak"] = max(samples) if samples else cpu["switch"]
        with open(self.log, "rb") as f:
            f.seek(self.log_off)
            raw = f.read()
        self.log_off += len(raw)
        text = raw.decode(errors="replace")
        qlog_path = self.work / "queue_log"
        qraw = qlog_path.read_bytes()[self.qlog_off:] if qlog_path.exists() else b""
        self.qlog_off += len(qraw)
        qc = queue_log_check(qraw.decode(errors="replace").splitlines(), self.cfg)
        rc = self.routing.feed(text)
        entered = {m[2]: ts(m[1]) for m in RE_ENTER.finditer(text)}
        waits = [ts(m[1]) - entered[m[2]] for m in RE_CONN.finditer(text) if m[2] in entered]
        ok, bad = sipp_counts(out)
        res = {"rate": rate, "calls": n, "sipp_ok": ok, "sipp_failed": bad, "offered": len(entered),
               "offers": rc["offers"], "answered": len(waits), "abandoned": qc["ABANDON"],
               "exited": qc["EXITWITHTIMEOUT"] + qc["EXITEMPTY"], "lost": qc["lost"],
               "rna": qc["RINGNOANSWER"], "not_taken": rc["not_taken"],
               "misroute_skill": rc["misroute_skill"], "misroute_ext": rc["misroute_ext"],
               "misroute_busy": rc["misroute_busy"], "connect_misroute": qc["connect_misroute"],
               "wait_p50": float(np.percentile(waits, 50)) * 1000 if waits else float("nan"),
               "wait_p99": float(np.percentile(waits, 99)) * 1000 if waits else float("nan"),
               "wait_max": max(waits) * 1000 if waits else float("nan"),
               "cpu": cpu, "window_s": dt, "seconds": round(time.time() - t0, 1),
               "warnings": [l for l in text.splitlines() if " WARNING " in l or " ERROR " in l or "Traceback" in l][:5]}
        if bad:
            errs = sorted(self.work.glob("uac_queue_*_errors.log"))
            res["sipp_errors"] = errs[-1].read_text(errors="replace")[-800:] if errs else ""
        return res


HEADER = ("| calls/s | calls | offered (entered queue) | answered (connected) | abandoned | failed (SIPp) | lost | "
          "ring-no-answer | misrouted: skill / busy / ext | wait to agent p50 / p99 / max | switch CPU mean (peak) | "
          "SIPp UAC / UAS CPU | machine of 200 % |\n|" + "---|" * 13)


def row(r: dict) -> str:
    c = r["cpu"]
    return (f"| {r['rate']} | {r['calls']} | {r['offered']} | {r['answered']} | {r['abandoned']} | "
            f"{r['sipp_failed']} | {r['lost']} | {r['rna']} | {r['misroute_skill']} / {r['misroute_busy']} / "
            f"{r['misroute_ext']} | {r['wait_p50']:.0f} / {r['wait_p99']:.0f} / {r['wait_max']:.0f} ms | "
            f"{c['switch']:.0f} % ({c['switch_peak']:.0f} %) | {c['sipp_uac']:.0f} % / {c['sipp_uas']:.0f} % | "
            f"{c['machine']:.0f} % |")


MARK = "<!-- bench/acd_load.py results -->"


def write_md(results: list[dict], args, b: Bench, cmd: str) -> None:
    path = ROOT / "bench" / "ACD.md"
    text = path.read_text()
    body = (f"{MARK}\n## End-to-end: SIPp callers into queues, SIPp agents answering (`bench/acd_load.py`)\n\n"
            f"Measured {datetime.date.today().isoformat()} with `{cmd}` ({os.cpu_count()} cores, Python "
            f"{sys.version.split()[0]}, shared VM). {args.agents} agents (extensions registered to one SIPp UAS, "
            f"each its own Contact; logged in with *11*<id>: {b.logins['ok']} ok, {b.logins['ready']} ready), "
            f"2 of 4 skills each at levels 1–10; 4 queues on 600–603 (min level 1/3/1/5, longest-idle or "
            f"round-robin), wrap-up 0, ring_time {args.ring_time} s, no announcement. Each step: "
            f"{args.seconds:g} s of arrivals at the rate, callers hang up {args.talk:g} s after the switch "
            "answers them (queue wait + talk). Media anchored (music while queued, bridged RTP), RTP sent to a "
            "black-hole socket. CPU over the arrival window, 100 % = one core; peak = highest 1-s sample.\n\n"
            f"{HEADER}\n" + "\n".join(row(r) for r in results) + "\n\n"
            "Misrouted: skill = offered to an agent without the queue's skill at its minimum level; busy = "
            "offered to an agent whose phone already had another queue call offered or connected; ext = "
            "rung at an extension that is not the agent's (from the switch's log in decision order); CONNECT "
            "lines in queue_log are checked against the config too. Lost = ENTERQUEUE without CONNECT, ABANDON "
            "or EXIT* in queue_log.\n" + f"{MARK}")
    if MARK in text:
        text = re.sub(re.escape(MARK) + r".*?" + re.escape(MARK), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{body}\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="10,25,50,100")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of arrivals per step")
    ap.add_argument("--talk", type=float, default=3.0, help="seconds a caller stays after the switch answers")
    ap.add_argument("--agents", type=int, default=600)
    ap.add_argument("--ring-time", type=int, default=8)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rates = [int(x) for x in args.rates.split(",")]
    cmd = "bench/acd_load.py " + " ".join(sys.argv[1:])
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        b.start()
        print(f"work dir {b.work}", flush=True)
        print(HEADER, flush=True)
        for rate in rates:
            r = b.step(rate)
            results.append(r)
            print(row(r), flush=True)
            if r["warnings"] or r.get("sipp_errors"):
                print("   switch warnings:", r["warnings"][:3], "\n   sipp:", (r.get("sipp_errors") or "")[-500:],
                      flush=True)
            if b.switch.poll() is not None:
                print("switch died", flush=True)
                break
        if b.routing.bad:
            print("misroutes (first 10):", *b.routing.bad[:10], sep="\n  ")
    finally:
        b.cleanup()
    if args.write and results:
        write_md(results, args, b, cmd)


if __name__ == "__main__":
    main()
