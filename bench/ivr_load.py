#!/usr/bin/env python3
"""IVR load: N SIPp callers sit in the shipped hotline's menus at once; per step the switch's CPU (per
concurrent caller) and the quality of the prompt stream the callers receive and of the RTP the switch
receives from them.

    callers: SIPp UAC (bench/sipp_ivr/uac_hotline.xml) dialling 4000, ramping at --rate calls/s, each
             staying --seconds in the call. The flow is config.toml's [ivr] + [acd] (hours made always open,
             holidays none, prompts built with `softswitch prompts build --out DIR`).
    media:   the callers' SDP names this script's RTP sink (--sink, another process). The sink timestamps
             each packet in the kernel (SO_TIMESTAMPNS), answers each with a PCMU silence packet (so the
             switch latches and hears a live phone, 50 packets/s) and presses keys as RFC 4733 events on a
             per-call schedule (--keys, default "1.0:3,6.0:1": English, then self-service; that menu then
             repeats on time-outs for the rest of the call, so callers stay in menus).
    measured: switch CPU over the window with every caller up, minus its idle CPU, per caller;
             sink: packets, sequence gaps (lost), RFC 3550 jitter, the largest arrival gap, and late packets
             (transit more than 20 / 60 ms above the stream's fastest packet); switch: its per-call end lines
             ("caller media PCMU: rx N packets, lost N, jitter J ms, late N, concealed N") and DTMF lines.

The media engine's tick statistics (media.engine.TickStats: late_ticks, max) are not logged or exposed by
the switch, so tick lateness is inferred from the prompt stream's arrival times instead.

Usage: bench/ivr_load.py [--steps 50,100,200] [--seconds 20] [--rate 25] [--prompts DIR] [--write]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from bench.media_load import CPUS, answers_options, cpu_ticks, machine_ticks, pipe, sipp_counts, udp_drops  # noqa: E402

SC = HERE / "sipp_ivr"
DOMAIN = "bench.local"
HZ = os.sysconf("SC_CLK_TCK")
CALLERS = 3000
MARK_CC = "# ------------------------------------------------------------------------------- call centre"
DTMF_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


# ------------------------------------------------------------------------------------------ the sink

def sink_main(port: int, keys: list[tuple[float, str]]) -> None:
    import numpy as np

    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rtp.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)        # SO_RCVBUFFORCE (root)
    except OSError:
        rtp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    rtp.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
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

    # per stream (the switch's address): our reply state
    class St:
        __slots__ = ("idx", "ssrc", "seq", "ts", "t0", "key_i", "ev", "ev_n")
        idx: int
        ssrc: int
        seq: int
        ts: int
        t0: float
        key_i: int
        ev: Any
        ev_n: int

    streams: dict[Any, St] = {}
    k_l: list[int] = []
    seq_l: list[int] = []
    ts_l: list[int] = []
    t_l: list[int] = []
    sent = dtmf_sent = 0
    hdr = struct.Struct("!HII").unpack_from
    tsns = struct.Struct("qq").unpack_from
    ancsz = socket.CMSG_SPACE(16)
    silence = b"\xff" * 160

    def reply(st, addr, now_s: float) -> None:
        nonlocal sent, dtmf_sent
        st.seq = (st.seq + 1) & 0xFFFF
        if st.ev is None and st.key_i < len(keys) and now_s - st.t0 >= keys[st.key_i][0]:
            st.ev, st.ev_n = DTMF_CODES[keys[st.key_i][1]], 0
            st.key_i += 1
            dtmf_sent += 1
        if st.ev is not None:                                 # RFC 4733: 5 updates + 3 end packets, one ts
            st.ev_n += 1
            end = st.ev_n > 5
            dur = 160 * min(st.ev_n, 6)
            pkt = struct.pack("!BBHII", 0x80, 101 | (0x80 if st.ev_n == 1 else 0), st.seq, st.ts, st.ssrc) + \
                struct.pack("!BBH", st.ev, (0x80 if end else 0) | 10, dur)
            if st.ev_n >= 8:
                st.ev = None
                st.ts = (st.ts + dur) & 0xFFFFFFFF
        else:
            st.ts = (st.ts + 160) & 0xFFFFFFFF
            pkt = struct.pack("!BBHII", 0x80, 0, st.seq, st.ts, st.ssrc) + silence
        try:
            rtp.sendto(pkt, addr)
            sent += 1
        except OSError:
            pass

    def report() -> dict:
        n = len(k_l)
        out: dict[str, Any] = {"packets": n, "sent": sent, "dtmf_sent": dtmf_sent, "streams": len(streams)}
        if not n:
            return out
        k = np.array(k_l, np.int64)
        seq = np.array(seq_l, np.int64)
        ts = np.array(ts_l, np.int64)
        t = np.array(t_l, np.int64)
        order = np.argsort(k, kind="stable")
        k, seq, ts, t = k[order], seq[order], ts[order], t[order]
        bounds = np.flatnonzero(np.diff(k)) + 1
        lost = dup = late20 = late60 = 0
        jit, gap_max, late_max = [], [], []
        for s_seq, s_ts, s_t in zip(np.split(seq, bounds), np.split(ts, bounds), np.split(t, bounds)):
            if s_seq.size < 2:
                continue
            useq = np.concatenate(([0], np.cumsum(((np.diff(s_seq) + 32768) % 65536) - 32768))) + s_seq[0]
            uniq = np.unique(useq)
            lost += int(useq.max() - useq.min() + 1 - len(uniq))
            dup += len(useq) - len(uniq)
            uts = np.concatenate(([0], np.cumsum(((np.diff(s_ts) + (1 << 31)) % (1 << 32)) - (1 << 31))))
            transit = s_t / 1e6 - uts / 8.0                      # ms
            rel = transit - transit.min()
            late20 += int(np.count_nonzero(rel > 20))
            late60 += int(np.count_nonzero(rel > 60))
            late_max.append(float(rel.max()))
            d = np.abs(np.diff(transit))
            j = 0.0
            for x in d.tolist():                                 # RFC 3550 A.8, in ms
                j += (x - j) / 16.0
            jit.append(j)
            gap_max.append(float(np.max(np.diff(s_t))) / 1e6)
        out.update(lost=lost, duplicates=dup, late20=late20, late60=late60,
                   late_max_ms=max(late_max) if late_max else 0.0,
                   late_p99_stream_ms=float(np.percentile(late_max, 99)) if late_max else 0.0,
                   jitter_ms=float(np.mean(jit)) if jit else 0.0,
                   jitter_max_ms=float(np.max(jit)) if jit else 0.0,
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
                    if anc:
                        sec, nsec = tsns(anc[0][2])
                        tn = sec * 1_000_000_000 + nsec
                    else:
                        tn = time.time_ns()
                    st = streams.get(addr)
                    if st is None:
                        st = streams[addr] = St()
                        st.idx, st.ssrc, st.seq, st.ts = len(streams), 0x10000 + len(streams), 0, 0
                        st.t0, st.key_i, st.ev, st.ev_n = tn / 1e9, 0, None, 0
                    k_l.append(st.idx)
                    seq_l.append(seq)
                    ts_l.append(ts)
                    t_l.append(tn)
                    reply(st, addr, tn / 1e9)
            elif key.data == "rtcp":
                try:
                    while True:
                        rtcp.recv(2048)
                except (BlockingIOError, InterruptedError):
                    pass
            else:
                line = sys.stdin.readline()
                if not line:
                    return
                if line.strip() == "report":
                    print(json.dumps(report()), flush=True)
                    for column in (k_l, seq_l, ts_l, t_l):
                        column.clear()
                    streams.clear()
                    sent = dtmf_sent = 0


# ------------------------------------------------------------------------------------------ the switch

def write_config(path: Path, port: int, n: int, sounds: Path) -> None:
    shipped = (ROOT / "config.toml").read_text()
    cc = shipped[shipped.index(MARK_CC):]
    cc = re.sub(r'(?m)^hours = \[.*\]$', 'hours = ["daily 00:00-24:00"]', cc)
    cc = re.sub(r'(?m)^holidays = \[.*\]', 'holidays = []', cc)
    cc = cc.replace('sounds_dir = "var/prompts"', f'sounds_dir = "{sounds}"')
    cc = cc.replace('prompts_dir = "prompts"', f'prompts_dir = "{ROOT / "prompts"}"')
    lines = [f'[sip]\nlisten = ["udp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\nauth_algorithms = ["MD5"]\n',
             '[api]\nenabled = false\n',  # signalling and media only (and no port 8080 taken)
             '[log]\nlevel = "INFO"\n',
             '[media]\nrtp_ports = "20000-40000"\nrecord = "none"\n',
             '[store]\npath = "bench.db"\n']
    for u in ("1001", "1002", "1003", "1004"):
        lines.append(f'[[extensions]]\nnumber = "{u}"\npassword = "pw{u}"\n')
    for c in range(CALLERS, CALLERS + n):
        lines.append(f'[[extensions]]\nnumber = "{c}"\npassword = "pw{c}"\nbusy_limit = 0\n')
    path.write_text("".join(lines) + "\n" + cc)


MEDIA_RE = re.compile(r"call (\S+): caller media (\w+): rx (\d+) packets, lost (\d+), jitter ([\d.]+) ms, "
                      r"late (\d+), concealed (\d+), buffer (\d+) ms, tx (\d+)")


def switch_view(text: str) -> dict:
    rows = list(MEDIA_RE.finditer(text))
    col = lambda i: [float(m[i]) for m in rows]  # noqa: E731
    out = {"legs": len(rows), "codecs": sorted({m[2] for m in rows})}
    if rows:
        out.update(rx=int(sum(col(3))), lost=int(sum(col(4))), jitter_ms=sum(col(5)) / len(rows),
                   jitter_max_ms=max(col(5)), late=int(sum(col(6))), concealed=int(sum(col(7))),
                   tx=int(sum(col(9))))
    out["entered"] = len(re.findall(r"entered IVR flow main", text))
    out["dtmf"] = len(re.findall(r": DTMF \S+ from caller", text))
    out["to_queue"] = len(re.findall(r"IVR hands \S+ to queue", text))
    out["ivr_hangup"] = len(re.findall(r"IVR hangs up", text))
    out["ended"] = len(re.findall(r" ended: ", text))
    out["warnings"] = [l for l in text.splitlines() if " WARNING " in l or " ERROR " in l or "Traceback" in l][:10]
    return out


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="bench-ivr-"))
        self.procs: list[subprocess.Popen] = []
        self.port, self.sink_port = 5390, 17400
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
        sounds = Path(a.prompts) if a.prompts else self.work / "prompts"
        if not (sounds / "manifest.json").exists():
            t = time.time()
            r = subprocess.run([str(ROOT / ".venv" / "bin" / "softswitch"), "prompts", "build", "--out", str(sounds)],
                               capture_output=True, text=True, cwd=ROOT, timeout=300)
            if r.returncode:
                raise SystemExit(f"prompts build failed:\n{r.stdout}{r.stderr}")
            print(f"prompts built in {time.time() - t:.1f} s -> {sounds}", flush=True)
        cfg = self.work / "config.toml"
        write_config(cfg, self.port, self.n, sounds)
        self.log = self.work / "switch.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.switch = self.spawn([sys.executable, "-m", "softswitch.cli", "run", "--config", str(cfg)],
                                 stdout=subprocess.DEVNULL, stderr=open(self.log, "w"), env=env)
        for _ in range(300):
            time.sleep(0.1)
            if self.switch.poll() is not None or answers_options(self.port):
                break
        if self.switch.poll() is not None or not answers_options(self.port):
            raise SystemExit(f"switch did not start:\n{self.log.read_text()[-3000:]}")
        self.sink = self.spawn([sys.executable, str(Path(__file__).resolve()), "--sink", str(self.sink_port),
                                "--keys", a.keys], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        json.loads(pipe(self.sink.stdout).readline())
        (self.work / "calls.csv").write_text("SEQUENTIAL\n" + "".join(
            f"{u};[authentication username={u} password=pw{u}];{DOMAIN};4000\n"
            for u in range(CALLERS, CALLERS + self.n)))
        # the switch's idle CPU (timers, the media tick with no legs)
        time.sleep(1.0)
        c0, t0 = cpu_ticks(self.switch.pid), time.time()
        time.sleep(3.0)
        self.idle = 100.0 * (cpu_ticks(self.switch.pid) - c0) / HZ / (time.time() - t0)
        self.log_off = self.log.stat().st_size

    def step(self, conc: int) -> dict:
        a = self.args
        ramp = conc / a.rate
        t0 = time.time()
        uac = self.spawn(["sipp", "-nostdin", "-sf", str(SC / "uac_hotline.xml"), "-inf", str(self.work / "calls.csv"),
                          "-i", "127.0.0.1", "-p", "5398", "-m", str(conc), "-l", str(conc), "-r", str(a.rate),
                          "-d", str(int(a.seconds * 1000)), "-recv_timeout", "10000",
                          "-key", "sink_port", str(self.sink_port),
                          "-timeout", f"{int(ramp + a.seconds + 40)}s", "-trace_err", f"127.0.0.1:{self.port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        w0, w1 = ramp + 1.0, max(ramp + 2.0, a.seconds - 0.5)
        time.sleep(max(0.0, t0 + w0 - time.time()))
        pids = {"switch": self.switch.pid, "sink": self.sink.pid, "sipp": uac.pid}
        c0 = {k: cpu_ticks(p) for k, p in pids.items()}
        m0, tw0 = machine_ticks(), time.time()
        drops0 = udp_drops(20000, 40000)
        samples, last, tl = [], c0["switch"], tw0
        while time.time() < t0 + w1:
            time.sleep(min(1.0, max(0.05, t0 + w1 - time.time())))
            now_t, now_c = time.time(), cpu_ticks(self.switch.pid)
            if now_t - tl > 0.5:
                samples.append(100.0 * (now_c - last) / HZ / (now_t - tl))
                last, tl = now_c, now_t
        c1 = {k: cpu_ticks(p) for k, p in pids.items()}
        m1, tw1 = machine_ticks(), time.time()
        drops1 = udp_drops(20000, 40000)
        sink_drops = udp_drops(self.sink_port, self.sink_port)
        out, _ = uac.communicate(timeout=ramp + a.seconds + 60)
        time.sleep(2.0)
        dt = tw1 - tw0
        cpu = {k: 100.0 * (c1[k] - c0[k]) / HZ / dt for k in pids}
        cpu["machine"] = 100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * CPUS
        cpu["switch_peak"] = max(samples) if samples else cpu["switch"]
        pipe(self.sink.stdin).write("report\n")
        pipe(self.sink.stdin).flush()
        sink = json.loads(pipe(self.sink.stdout).readline())
        with open(self.log, "rb") as f:
            f.seek(self.log_off)
            raw = f.read()
        self.log_off += len(raw)
        view = switch_view(raw.decode(errors="replace"))
        ok, bad = sipp_counts(out)
        res = {"conc": conc, "ok": ok, "failed": bad, "window_s": dt, "cpu": cpu, "idle": self.idle,
               "per_caller_ms": (cpu["switch"] - self.idle) / conc * 10.0,   # ms of CPU per second per caller
               "sink": sink, "switch": view, "switch_sock_drops": drops1 - drops0, "sink_sock_drops": sink_drops}
        if bad:
            errs = sorted(self.work.glob("uac_hotline_*_errors.log"))
            res["sipp_errors"] = errs[-1].read_text(errors="replace")[-800:] if errs else ""
        return res


HEADER = ("| callers | ok / failed | switch CPU mean (peak) | CPU per caller | sink / SIPp CPU | machine of 200 % | "
          "prompt stream at the callers: packets / lost | late > 20 ms / > 60 ms (worst) | jitter mean / max | "
          "max gap | switch rx from callers: packets / lost / late / concealed | DTMF sent / seen | "
          "socket drops |\n|" + "---|" * 13)


def row(r: dict) -> str:
    s, sw, c = r["sink"], r["switch"], r["cpu"]
    return (f"| {r['conc']} | {r['ok']} / {r['failed']} | {c['switch']:.0f} % ({c['switch_peak']:.0f} %) | "
            f"{r['per_caller_ms']:.2f} ms/s ({(c['switch'] - r['idle']) / r['conc']:.2f} %) | "
            f"{c['sink']:.0f} % / {c['sipp']:.0f} % | {c['machine']:.0f} % | "
            f"{s.get('packets', 0):,} / {s.get('lost', 0):,} | {s.get('late20', 0):,} / {s.get('late60', 0):,} "
            f"({s.get('late_max_ms', 0):.0f} ms) | {s.get('jitter_ms', 0):.2f} / {s.get('jitter_max_ms', 0):.2f} ms | "
            f"{s.get('gap_max_ms', 0):.0f} ms | {sw.get('rx', 0):,} / {sw.get('lost', 0):,} / {sw.get('late', 0):,} / "
            f"{sw.get('concealed', 0):,} | {s.get('dtmf_sent', 0)} / {sw['dtmf']} | "
            f"{r['switch_sock_drops']} / {r['sink_sock_drops']} |")


MARK = "<!-- bench/ivr_load.py results -->"


def write_md(results: list[dict], args, b: Bench, cmd: str) -> None:
    path = ROOT / "bench" / "IVR.md"
    text = path.read_text()
    body = (f"{MARK}\n## Concurrent callers in the menus (`bench/ivr_load.py`)\n\n"
            f"Measured {datetime.date.today().isoformat()} with `{cmd}` ({os.cpu_count()} cores, Python "
            f"{sys.version.split()[0]}, shared VM). Callers dial 4000 (config.toml's hotline, open around the "
            f"clock) at {args.rate} calls/s and stay {args.seconds:g} s; keys (RFC 4733) at `{args.keys}` s after "
            "the first prompt packet: English, then self-service, whose menu repeats on time-outs until the "
            "caller hangs up. Each caller sends 50 PCMU packets/s (silence). CPU over the window with every "
            f"caller up; per caller = (switch CPU − idle {b.idle:.1f} %) / callers, as ms of CPU per second "
            "(and % of a core). Late = a packet whose transit is more than 20 / 60 ms above its stream's "
            "fastest (kernel receive timestamps); lost = sequence gaps.\n\n"
            f"{HEADER}\n" + "\n".join(row(r) for r in results) + "\n" + f"{MARK}")
    if MARK in text:
        text = re.sub(re.escape(MARK) + r".*?" + re.escape(MARK), lambda _: body, text, flags=re.S)
    else:
        text = text.rstrip("\n") + f"\n\n{body}\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", default="50,100,200")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=25)
    ap.add_argument("--keys", default="1.0:3,6.0:1", help="per-call key schedule: seconds:key,...")
    ap.add_argument("--prompts", help="built prompts (default: build into the work dir)")
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.sink:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        keys = [(float(t), k) for t, k in (x.split(":") for x in args.keys.split(",") if x)]
        sink_main(args.sink, keys)
        return
    args.steps = [int(x) for x in args.steps.split(",")]
    cmd = "bench/ivr_load.py " + " ".join(sys.argv[1:])
    b = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = []
    try:
        b.start()
        print(f"work dir {b.work}; switch idle CPU {b.idle:.1f} %", flush=True)
        print(HEADER, flush=True)
        for conc in args.steps:
            r = b.step(conc)
            results.append(r)
            print(row(r), flush=True)
            sw = r["switch"]
            print(f"   switch: {sw['entered']} entered the flow, {sw['to_queue']} handed to a queue, "
                  f"{sw['ivr_hangup']} hung up by the IVR, codecs {sw['codecs']}", flush=True)
            if sw["warnings"] or r.get("sipp_errors"):
                print("   switch warnings:", sw["warnings"][:3], "\n   sipp:", (r.get("sipp_errors") or "")[-500:],
                      flush=True)
            if b.switch.poll() is not None:
                print("switch died", flush=True)
                break
    finally:
        b.cleanup()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.write and results:
        write_md(results, args, b, cmd)


if __name__ == "__main__":
    main()
