#!/usr/bin/env python3
"""End-to-end media load: SIPp places calls with RTP through the switch (which anchors the media) at
rising concurrency; per step it reports calls ok/failed, the CPU of every process, packets, lost
packets and jitter as the receiving side sees them and as the switch sees them.

    caller: SIPp UAC (bench/sipp_media/uac_pcap.xml) --RTP PCMA 30 ms--> switch (caller leg)
    switch (callee leg) --RTP PCMA 20 ms--> sink (this file, --sink) --echo--> switch --> SIPp UAC
    callee signalling: one SIPp UAS (bench/sipp_media/uas_sink.xml) for all registered callees;
    its SDP points the switch's callee-leg media at the sink's socket.

The sink timestamps every packet in the kernel (SO_TIMESTAMPNS), so its own scheduling delays do not
count as jitter, and echoes each packet back (with another SSRC) so both directions carry RTP, as in a
real call. RFC 3550 interarrival jitter and sequence gaps are computed per stream after each step.
The switch's own view comes from its end-of-call INFO lines ("caller media PCMA: rx N packets, lost N,
jitter J ms, late N, concealed N, ...").

Usage: bench/media_load.py [--steps 50,100,200,300,400] [--seconds 14] [--rate 100] [--write]
                           [--features mixed|plain|full] [--workers N]
  --write: replace the results block in bench/MEDIA.md.
  --features: plain = the fast path (no in-band DTMF search), full = recording + in-band DTMF, no relay,
  mixed (default) = the mixing path without recording. Per step it also reports the switch's RSS (and its
  child processes') and the round trips of an OPTIONS sent every 200 ms during the window.
  --workers N: [media] workers = N (media worker processes, media/workers; 0 = the tick in the switch;
  -1, the default, = "auto" as shipped: one per spare core); the "workers" CPU column is then theirs, and
  OPTIONS tells whether signalling keeps its core.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
SC = Path(__file__).resolve().parent / "sipp_media"
PCAP = Path("/usr/share/sip-tester/g711a.pcap")
DOMAIN = "bench.local"
HZ = os.sysconf("SC_CLK_TCK")
CPUS = os.cpu_count() or 1
CALLERS, CALLEES = 2000, 3000          # extension numbers CALLERS.., CALLEES..


def pipe(stream: IO[Any] | None) -> IO[Any]:
    """A pipe of a process started with stdin/stdout=subprocess.PIPE (so not None)."""
    assert stream is not None
    return stream


# ------------------------------------------------------------------------------------------ the sink

def sink_main(port: int) -> None:
    """RTP sink on 127.0.0.1:port (RTCP on port+1): timestamp, record, echo. Commands on stdin:
    'report' prints one JSON line with the statistics since the previous report and starts over."""
    import numpy as np

    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rtp.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)        # SO_RCVBUFFORCE (root)
    except OSError:
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rtp.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)  # Linux: 35
    rtp.bind(("127.0.0.1", port))
    rtp.setblocking(False)
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind(("127.0.0.1", port + 1))
    rtcp.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(rtp, selectors.EVENT_READ, "rtp")
    sel.register(rtcp, selectors.EVENT_READ, "rtcp")
    sel.register(sys.stdin, selectors.EVENT_READ, "cmd")
    print(json.dumps({"ready": port}), flush=True)

    keys: dict = {}
    k_l: list[int] = []
    seq_l: list[int] = []
    ts_l: list[int] = []
    t_l: list[int] = []
    echoed = echo_fail = rtcp_n = 0
    hdr = struct.Struct("!HII").unpack_from
    tsns = struct.Struct("qq").unpack_from
    ancsz = socket.CMSG_SPACE(16)

    def report() -> dict:
        n = len(k_l)
        out: dict[str, Any] = {"packets": n, "echoed": echoed, "echo_fail": echo_fail, "rtcp": rtcp_n, "streams": len(keys)}
        if not n:
            return out
        k = np.array(k_l, np.int64)
        seq = np.array(seq_l, np.int64)
        ts = np.array(ts_l, np.int64)
        t = np.array(t_l, np.int64)
        order = np.argsort(k, kind="stable")                  # per stream, in arrival order
        k, seq, ts, t = k[order], seq[order], ts[order], t[order]
        bounds = np.flatnonzero(np.diff(k)) + 1
        lost = dup = 0
        jit_mean, jit_max, gap_max = [], [], []
        for s_seq, s_ts, s_t in zip(np.split(seq, bounds), np.split(ts, bounds), np.split(t, bounds)):
            useq = np.concatenate(([0], np.cumsum(((np.diff(s_seq) + 32768) % 65536) - 32768))) + s_seq[0]
            uniq = np.unique(useq)
            lost += int(useq.max() - useq.min() + 1 - len(uniq))
            dup += len(useq) - len(uniq)
            uts = np.concatenate(([0], np.cumsum(((np.diff(s_ts) + (1 << 31)) % (1 << 32)) - (1 << 31))))
            transit = s_t * 8000 / 1e9 - uts                    # in timestamp units (8 kHz)
            d = np.abs(np.diff(transit))
            j = 0.0
            js = []
            for x in d.tolist():                                # RFC 3550 A.8
                j += (x - j) / 16.0
                js.append(j)
            if js:
                jit_mean.append(float(np.mean(js)) / 8.0)
                jit_max.append(max(js) / 8.0)
                gap_max.append(float(np.max(np.diff(s_t))) / 1e6)
        out.update(lost=lost, duplicates=dup,
                   jitter_ms=float(np.mean(jit_mean)) if jit_mean else 0.0,
                   jitter_p95_ms=float(np.percentile(jit_mean, 95)) if jit_mean else 0.0,
                   jitter_max_ms=float(np.max(jit_max)) if jit_max else 0.0,
                   gap_max_ms=float(np.max(gap_max)) if gap_max else 0.0)
        return out

    while True:
        for key, _ in sel.select():
            if key.data == "rtp":
                while True:
                    try:
                        data, anc, _f, addr = rtp.recvmsg(2048, ancsz)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue
                    if len(data) < 12:
                        continue
                    seq, ts, ssrc = hdr(data, 2)
                    sk = (addr, ssrc)
                    idx = keys.get(sk)
                    if idx is None:
                        idx = keys[sk] = len(keys)
                    if anc:
                        sec, nsec = tsns(anc[0][2])
                        t_l.append(sec * 1_000_000_000 + nsec)
                    else:
                        t_l.append(time.time_ns())
                    k_l.append(idx)
                    seq_l.append(seq)
                    ts_l.append(ts)
                    try:                                        # echo, as the callee's phone, other SSRC
                        rtp.sendto(data[:8] + struct.pack("!I", ssrc ^ 0x5A5A5A5A) + data[12:], addr)
                        echoed += 1
                    except OSError:
                        echo_fail += 1
            elif key.data == "rtcp":
                while True:
                    try:
                        rtcp.recv(2048)
                        rtcp_n += 1
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        continue
            else:
                line = sys.stdin.readline()
                if not line or line.strip() == "quit":
                    return
                print(json.dumps(report()), flush=True)
                keys.clear()
                for l in (k_l, seq_l, ts_l, t_l):
                    l.clear()
                echoed = echo_fail = rtcp_n = 0


# ------------------------------------------------------------------------------------------ helpers

def looped_pcap(dst: Path, seconds: float) -> tuple[int, float]:
    """g711a.pcap (PCMA, 30 ms packets, 7.05 s) repeated to cover ``seconds``, as one continuous stream:
    sequence numbers and timestamps continue, packets exactly 30 ms apart, marker only on the first."""
    raw = PCAP.read_bytes()
    recs = []
    off = 24
    while off < len(raw):
        incl = struct.unpack_from("<I", raw, off + 8)[0]
        recs.append(raw[off + 16:off + 16 + incl])
        off += 16 + incl
    loops = max(1, math.ceil(seconds / (len(recs) * 0.030)))
    out = bytearray(raw[:24])
    seq0, ts0, n = 1000, 0, 0
    for _ in range(loops):
        for r in recs:
            pkt = bytearray(r)
            pkt[40:42] = b"\0\0"                                 # UDP checksum: none
            pkt[43] = 8 | (0x80 if n == 0 else 0)
            struct.pack_into("!HI", pkt, 44, (seq0 + n) & 0xFFFF, (ts0 + 240 * n) & 0xFFFFFFFF)
            t = 1_700_000_000 + n * 0.030
            out += struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1_000_000, len(pkt), len(pkt)) + pkt
            n += 1
    dst.write_bytes(bytes(out))
    return n, n * 0.030


# load generators place calls faster than any phone: no per-extension call limits (docs/security.md)
UNLIMITED = "max_calls = 0\ninvite_rate = 0\n"


FEATURES = {
    # plain two-party calls as a relay sees them: no recording, no in-band DTMF search (the fast path)
    "plain": 'inband_dtmf = false\n',
    # every call through the full path: recorded, searched for in-band DTMF, no relay
    "full": 'record = "all"\ninband_dtmf = true\nfast_path = false\n',
    # the engine as before the fast path (mixing path, in-band DTMF search, no recording)
    "mixed": 'fast_path = false\n',
}


def write_config(path: Path, port: int, n: int, features: str = "mixed", workers: int = -1) -> None:
    lines = [f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\nauth_algorithms = ["MD5"]\n',
             '[api]\nenabled = false\n',  # signalling and media only (and no port 8080 taken)
             # INFO: the switch's end-of-call media statistics (a handful of lines per call)
             '[log]\nlevel = "INFO"\n',
             '[media]\nrtp_ports = "20000-40000"\ncodecs = ["PCMA", "PCMU"]\n'
             + ('record = "none"\n' if features != "full" else "") + FEATURES[features]
             + (f"workers = {workers}\n" if workers >= 0 else 'workers = "auto"\n'),
             '[store]\npath = "bench.db"\n']
    for base in (CALLERS, CALLEES):
        for u in range(base, base + n):
            lines.append(f'[[extensions]]\nnumber = "{u}"\npassword = "pw{u}"\nbusy_limit = 0\n' + UNLIMITED)
    path.write_text("".join(lines))


def answers_options(port: int) -> bool:
    msg = (f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKping{time.time_ns()}\r\n"
           f"From: <sip:ping@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: ping@bench\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect(("127.0.0.1", port))
        try:
            s.send(msg)
            return s.recv(4096).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def options_rtt(port: int, timeout: float = 2.0) -> float | None:
    """Seconds until the switch answers an OPTIONS (None: no answer within ``timeout``)."""
    msg = (f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKrtt{time.time_ns()}\r\n"
           f"From: <sip:ping@{DOMAIN}>;tag=1\r\nTo: <sip:{DOMAIN}>\r\nCall-ID: rtt{time.time_ns()}@bench\r\n"
           "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        t0 = time.perf_counter()
        try:
            s.send(msg)
            if s.recv(4096).startswith(b"SIP/2.0 200"):
                return time.perf_counter() - t0
        except OSError:
            pass
    return None


def rss_kib(pids: list[int]) -> int:
    """Resident memory of the processes (the switch and its media workers), KiB."""
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def family(pid: int) -> list[int]:
    """``pid`` and its child processes (media workers)."""
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in open(f"/proc/{pid}/task/{tid}/children").read().split()]
    except OSError:
        pass
    return out


def cpu_ticks(pid: int) -> int:
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return int(f[11]) + int(f[12])
    except OSError:
        return 0


def thread_ticks(pid: int) -> dict[str, int]:
    """CPU ticks per thread of ``pid``, summed by thread name (main, OpenBLAS workers, ...)."""
    out: dict[str, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = open(f"/proc/{pid}/task/{tid}/stat").read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        name = "main" if tid == str(pid) else re.sub(r"[-_]?\d+$", "", name)
        f = raw.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0) + int(f[11]) + int(f[12])
    return out


def machine_ticks() -> tuple[int, int]:
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)          # busy, total


def udp_drops(lo: int, hi: int) -> int:
    """Kernel receive-buffer drops of the open UDP sockets bound to ports lo..hi."""
    n = 0
    for line in open("/proc/net/udp").readlines()[1:]:
        f = line.split()
        if lo <= int(f[1].split(":")[1], 16) <= hi:
            n += int(f[-1])
    return n


def udp_rcvbuf_errors() -> int:
    lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
    return int(lines[1][lines[0].index("RcvbufErrors")])


MEDIA_RE = re.compile(r"call (\S+): (caller|callee) media (\w+): rx (\d+) packets, lost (\d+), jitter ([\d.]+) ms, "
                      r"late (\d+), concealed (\d+), buffer (\d+) ms, tx (\d+)")


def switch_view(text: str) -> dict:
    out: dict = {}
    for role in ("caller", "callee"):
        rows = [m for m in MEDIA_RE.finditer(text) if m[2] == role]
        if not rows:
            out[role] = None
            continue
        col = lambda i, rows=rows: [float(m[i]) for m in rows]  # noqa: E731
        out[role] = {"legs": len(rows), "rx": int(sum(col(4))), "lost": int(sum(col(5))),
                     "jitter_ms": sum(col(6)) / len(rows), "jitter_max_ms": max(col(6)),
                     "late": int(sum(col(7))), "concealed": int(sum(col(8))), "buffer_ms": sum(col(9)) / len(rows),
                     "tx": int(sum(col(10)))}
    out["answered"] = len(re.findall(r" answered$", text, re.M))
    out["ended"] = re.findall(r" ended: (.*?)(?:, talked|$)", text, re.M)
    out["warnings"] = [l for l in text.splitlines() if " WARNING " in l or "ERROR" in l or "Traceback" in l][:10]
    return out


def sipp_counts(stdout: str) -> tuple[int, int]:
    ok = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", stdout)
    bad = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", stdout)
    return (int(ok[-1]) if ok else -1, int(bad[-1]) if bad else -1)


# ------------------------------------------------------------------------------------------ the run

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-media-"))
        self.procs: list[subprocess.Popen] = []
        self.port, self.uas_port, self.sink_port = 5190, 5194, 17000
        self.n = max(args.steps)

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

    def start(self) -> None:
        a = self.args
        self.packets, self.pcap_s = looped_pcap(self.work / "media.pcap", a.seconds)
        cfg = self.work / "config.toml"
        write_config(cfg, self.port, self.n, a.features, a.workers)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        if a.blas_threads:      # numpy's BLAS (OpenBLAS) thread pool in the switch process
            env.update(OPENBLAS_NUM_THREADS=str(a.blas_threads), OMP_NUM_THREADS=str(a.blas_threads))
        self.log = self.work / "switch.log"
        self.switch = self.spawn([sys.executable, "-m", "softswitch.cli", "run", "--config", str(cfg)],
                                 stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        for _ in range(150):
            time.sleep(0.1)
            if self.switch.poll() is not None:
                break
            if answers_options(self.port):
                break
        else:
            raise SystemExit(f"switch did not start:\n{self.log.read_text()[-3000:]}")
        if self.switch.poll() is not None:
            raise SystemExit(f"switch exited:\n{self.log.read_text()[-3000:]}")
        self.rss_idle = rss_kib(family(self.switch.pid))
        self.sink = self.spawn([sys.executable, str(Path(__file__).resolve()), "--sink", str(self.sink_port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(pipe(self.sink.stdout).readline())
        self.uas = self.spawn(["sipp", "-nostdin", "-sf", str(SC / "uas_sink.xml"), "-i", "127.0.0.1",
                               "-p", str(self.uas_port), "-key", "sink_port", str(self.sink_port),
                               "-trace_err"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reg = self.work / "reg.csv"
        reg.write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];{DOMAIN};{self.uas_port}\n"
            for u in range(CALLEES, CALLEES + self.n)))
        r = subprocess.run(["sipp", "-nostdin", "-sf", str(SC / "register.xml"), "-inf", str(reg), "-i", "127.0.0.1",
                            "-p", "5196", "-m", str(self.n), "-r", "500", "-l", "200", "-timeout", "30s",
                            f"127.0.0.1:{self.port}"], capture_output=True, text=True, cwd=self.work)
        ok, bad = sipp_counts(r.stdout)
        print(f"registered {ok} callees to the SIPp UAS ({bad} failed)", flush=True)
        calls = self.work / "calls.csv"
        calls.write_text("SEQUENTIAL\n" + "".join(
            f"{CALLERS + i};[authentication username={CALLERS + i} password=pw{CALLERS + i}];{DOMAIN};{CALLEES + i}\n"
            for i in range(self.n)))

    def step(self, conc: int) -> dict:
        a = self.args
        hold_ms = int(a.seconds * 1000)
        ramp = conc / a.rate
        log_off = self.log.stat().st_size
        t0 = time.time()
        uac = self.spawn(["sipp", "-nostdin", "-sf", str(SC / "uac_pcap.xml"), "-inf", str(self.work / "calls.csv"),
                          "-i", "127.0.0.1", "-p", "5198", "-mp", "42000", "-m", str(conc), "-l", str(conc),
                          "-r", str(a.rate), "-d", str(hold_ms), "-recv_timeout", "8000",
                          "-timeout", f"{int(ramp + a.seconds + 40)}s", "-trace_err", f"127.0.0.1:{self.port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # the steady window: every call up, from 1 s after the ramp to 1 s before the first BYE
        w0, w1 = ramp + 1.0, max(ramp + 2.0, a.seconds - 0.5)
        time.sleep(max(0.0, t0 + w0 - time.time()))
        pids = {"switch": self.switch.pid, "sink": self.sink.pid, "sipp_uac": uac.pid, "sipp_uas": self.uas.pid}
        workers = family(self.switch.pid)[1:]
        c0 = {k: cpu_ticks(p) for k, p in pids.items()}
        cw0 = sum(cpu_ticks(p) for p in workers)
        rss = rss_kib([self.switch.pid, *workers])
        rtts: list[float | None] = []
        prober = threading.Thread(target=self._probe, args=(rtts, t0 + w1), daemon=True)
        prober.start()
        th0 = thread_ticks(self.switch.pid)
        m0, tw0 = machine_ticks(), time.time()
        drops0 = udp_drops(20000, 40000)
        time.sleep(max(0.0, t0 + w1 - time.time()))
        c1 = {k: cpu_ticks(p) for k, p in pids.items()}
        cw1 = sum(cpu_ticks(p) for p in workers)
        th1 = thread_ticks(self.switch.pid)
        prober.join()
        m1, tw1 = machine_ticks(), time.time()
        drops1 = udp_drops(20000, 40000)        # switch sockets are per call: read while the calls are up
        sink_drops = udp_drops(self.sink_port, self.sink_port)
        out, _ = uac.communicate(timeout=ramp + a.seconds + 60)
        time.sleep(1.5)                          # last packets, end-of-call lines
        dt = tw1 - tw0
        cpu = {k: 100.0 * (c1[k] - c0[k]) / HZ / dt for k in pids}
        cpu["workers"] = 100.0 * (cw1 - cw0) / HZ / dt       # media worker processes (0 without them)
        answered = sorted(x for x in rtts if x is not None)
        options = {"sent": len(rtts), "answered": len(answered),
                   "p50_ms": 1000 * answered[len(answered) // 2] if answered else None,
                   "max_ms": 1000 * answered[-1] if answered else None,
                   "over_50ms": sum(1 for x in rtts if x is None or x > 0.05)}
        threads = {k: round(100.0 * (v - th0.get(k, 0)) / HZ / dt) for k, v in th1.items()}
        cpu["machine"] = 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * CPUS
        pipe(self.sink.stdin).write("report\n")
        pipe(self.sink.stdin).flush()
        sink = json.loads(pipe(self.sink.stdout).readline())
        with open(self.log, "rb") as f:
            f.seek(log_off)
            view = switch_view(f.read().decode(errors="replace"))
        ok, bad = sipp_counts(out)
        if bad:
            errs = sorted(self.work.glob("uac_pcap_*_errors.log"))
            view["sipp_errors"] = errs[-1].read_text(errors="replace")[-1500:] if errs else ""
        return {"conc": conc, "ok": ok, "failed": bad, "seconds": round(time.time() - t0, 1), "window_s": dt,
                "cpu": cpu, "switch_threads": threads, "sink": sink, "switch": view, "switch_sock_drops": drops1 - drops0,
                "sink_sock_drops": sink_drops, "exit": uac.returncode, "options": options,
                "rss_kib": rss, "rss_idle_kib": self.rss_idle, "workers": len(workers)}

    def _probe(self, out: list[float | None], until: float) -> None:
        """OPTIONS to the switch every 200 ms until ``until``: how fast signalling answers under media load."""
        while time.time() < until:
            out.append(options_rtt(self.port))
            time.sleep(0.2)


def row(r: dict) -> str:
    s, sw = r["sink"], r["switch"]
    cl, ce = sw.get("caller") or {}, sw.get("callee") or {}
    cpu = r["cpu"]
    others = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
    loss = 100.0 * s.get("lost", 0) / max(1, s.get("packets", 0) + s.get("lost", 0))
    return (f"| {r['conc']} | {r['ok']} / {r['failed']} | {cpu['switch']:.0f} % | {cpu['sink']:.0f} % / "
            f"{cpu['sipp_uac']:.0f} % / {cpu['sipp_uas']:.0f} % | {cpu['machine']:.0f} % ({others:.0f} %) | "
            f"{cl.get('rx', 0):,} / {cl.get('lost', 0):,} / {cl.get('jitter_ms', 0):.1f} ms | "
            f"{s.get('packets', 0):,} / {s.get('lost', 0):,} ({loss:.2f} %) | "
            f"{s.get('jitter_ms', 0):.2f} / {s.get('jitter_p95_ms', 0):.2f} / {s.get('jitter_max_ms', 0):.1f} ms | "
            f"{s.get('gap_max_ms', 0):.0f} ms | {ce.get('rx', 0):,} / {ce.get('lost', 0):,} / "
            f"{ce.get('jitter_ms', 0):.1f} ms | {cl.get('late', 0) + ce.get('late', 0):,} / "
            f"{cl.get('concealed', 0) + ce.get('concealed', 0):,} | {r['switch_sock_drops']} |")


HEADER = ("| calls | ok / failed | switch CPU | sink / SIPp UAC / SIPp UAS CPU | machine of 200 % (others) | "
          "switch rx from caller: packets / lost / jitter | sink rx from switch: packets / lost | "
          "sink jitter mean / p95 / max | sink max gap | switch rx from callee (echo): packets / lost / jitter | "
          "switch late / concealed | switch socket drops |\n|" + "---|" * 13)

MARK = "<!-- bench/media_load.py results -->"


def write_md(results: list[dict], args, pcap: tuple[int, float], cmd: str) -> None:
    mark = MARK if not args.blas_threads else MARK[:-4] + f" blas-threads={args.blas_threads} -->"
    path = ROOT / "bench" / "MEDIA.md"
    text = path.read_text()
    heading = "## End-to-end load (SIPp RTP through the switch)"
    today = datetime.date.today().isoformat()
    body = (f"{mark}\nMeasured {today} with `{cmd}` ({os.cpu_count()} cores, Python "
            f"{sys.version.split()[0]}): {args.seconds:g} s calls, {args.rate} calls/s ramp, the pcap "
            f"looped to {pcap[0]} packets / {pcap[1]:.1f} s. CPU is over the steady window (all calls up), "
            f"100 % = one core.\n\n{HEADER}\n" + "\n".join(row(r) for r in results) + f"\n{mark}")
    if mark in text:
        text = re.sub(re.escape(mark) + r".*?" + re.escape(mark), lambda _: body, text, flags=re.S)
    elif heading in text:                        # the section is the last one in the file
        text = text.rstrip("\n") + f"\n\n{body}\n"
    else:
        text = text.rstrip("\n") + f"\n\n{heading}\n\n{body}\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", default="50,100,200,300,400")
    ap.add_argument("--seconds", type=float, default=14.0, help="call duration after the ACK")
    ap.add_argument("--rate", type=int, default=100, help="calls/s while a step ramps up")
    ap.add_argument("--blas-threads", type=int, default=0,
                    help="set OPENBLAS_NUM_THREADS/OMP_NUM_THREADS for the switch (default: numpy's default)")
    ap.add_argument("--write", action="store_true", help="write the table into bench/MEDIA.md")
    ap.add_argument("--json", help="also dump the raw per-step results here")
    ap.add_argument("--features", choices=sorted(FEATURES), default="mixed",
                    help="plain: fast path (no in-band DTMF search); full: recording + in-band DTMF, no fast path; "
                         "mixed: the mixing path without recording (as before the fast path)")

    ap.add_argument("--workers", type=int, default=-1,
                    help="[media] workers: media worker processes (0: the media tick in the switch's process; "
                         "-1: \"auto\", the shipped default)")
    args = ap.parse_args()
    if args.sink:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        sink_main(args.sink)
        return
    args.steps = [int(x) for x in args.steps.split(",")]
    cmd = "bench/media_load.py " + " ".join(sys.argv[1:])
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        b.start()
        print(f"work dir {b.work}; pcap {b.packets} packets / {b.pcap_s:.1f} s; call {args.seconds:g} s", flush=True)
        print(HEADER, flush=True)
        for conc in args.steps:
            r = b.step(conc)
            results.append(r)
            print(row(r), flush=True)
            print(f"   switch threads (CPU %): {r['switch_threads']}; workers {r['workers']} "
                  f"({r['cpu']['workers']:.0f} %); RSS {r['rss_kib'] / 1024:.0f} MiB "
                  f"(idle {r['rss_idle_kib'] / 1024:.0f}); OPTIONS {r['options']}", flush=True)
            if r["switch"]["warnings"] or r.get("sipp_errors"):
                print("   switch warnings:", r["switch"]["warnings"][:3], "\n   sipp:",
                      (r.get("sipp_errors") or "")[-600:], flush=True)
            if b.switch.poll() is not None:
                print("switch died", flush=True)
                break
    finally:
        b.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write and results:
        write_md(results, args, (b.packets, b.pcap_s), cmd)


if __name__ == "__main__":
    main()
