"""What a hostile peer costs the switch (issue 11): the time to refuse a maximal SIP message, and the memory and
descriptors 500 slowloris connections hold in a real switch process.

    python -m bench.hostile [--connections 500]

1. In process (``SwitchCore.receive``, no sockets): a 61 kB message with 2,000 header lines, one with 1,300 Via
   entries, one over max_message_size, against an ordinary 3 kB message that is parsed and answered.
2. A switch process on 127.0.0.1 (defaults: tcp_max_per_address 64, tcp_message_timeout 5 s): N connections
   from 127.0.0.2 each send half of a 60 kB header and stop. Reported: connections the switch kept, its open
   descriptors and RSS during the attack, and how long until it had closed them all.

Figures are printed, not asserted (tests/test_hardening_e2e.py asserts the behaviour); see bench/HOSTILE.md.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from softswitch.config import parse_config  # noqa: E402
from softswitch.core import SwitchCore  # noqa: E402
from softswitch.sip.transaction import Peer  # noqa: E402

DOMAIN = "callcenter.local"


def in_process(n: int = 200) -> None:
    core = SwitchCore(parse_config({"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": DOMAIN},
                                    "store": {"path": "var/x.db"}, "media": {"enabled": False},
                                    "extensions": [{"number": "1001", "password": "pw-1001"}]}), secret=b"k" * 32)
    core.set_local("udp", "127.0.0.1", 5060)
    peer = Peer("udp", "10.0.0.1", 5060)
    base = ("OPTIONS sip:callcenter.local SIP/2.0\r\n{via}From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: {cid}\r\n"
            "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n{hdr}Content-Length: 0\r\n\r\n")
    via1 = "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n"
    cases = {
        "2,000 header lines": base.format(via=via1, cid="a", hdr="".join(f"X-H{i}: {'a' * 20}\r\n" for i in range(2000))),
        "1,300 Via entries": base.format(via="Via: " + ", ".join(f"SIP/2.0/UDP 10.0.0.{i % 250}:5060;branch=z9hG4bK{i}"
                                                                 for i in range(1300)) + "\r\n", cid="b", hdr=""),
        "over max_message_size": base.format(via=via1, cid="c", hdr="X-Big: " + "a" * 70000 + "\r\n"),
        "100 headers (parsed, 200 OK)": base.format(via=via1, cid="d",
                                                    hdr="".join(f"X-H{i}: {'a' * 20}\r\n" for i in range(100))),
    }
    print(f"{'message':32} {'bytes':>7} {'ms each':>8}  answer")
    for label, text in cases.items():
        data = text.encode()
        t = time.perf_counter()
        for i in range(n):
            out = core.receive(data, peer, 1000.0 + i)
        ms = (time.perf_counter() - t) * 1000 / n
        first = out[0].data.split(b"\r\n", 1)[0].decode() if out else "-"
        print(f"{label:32} {len(data):7d} {ms:8.3f}  {first}")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slowloris(connections: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hostile-"))
    port = _free_port()
    (tmp / "config.toml").write_text(
        f'[sip]\nlisten = ["tcp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\n[api]\nenabled = false\n'
        f'[media]\nenabled = false\n[store]\npath = "var/s.db"\n[[extensions]]\nnumber = "1001"\npassword = "pw-1001"\n')
    log = open(tmp / "switch.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "run", "--config", str(tmp / "config.toml")],
                            cwd=tmp, stderr=log, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        deadline = time.monotonic() + 20
        while "softswitch running" not in (tmp / "switch.log").read_text():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("switch did not start:\n" + (tmp / "switch.log").read_text())
            time.sleep(0.1)
        fds0, rss0 = len(os.listdir(f"/proc/{proc.pid}/fd")), _rss_kb(proc.pid)
        half = b"INVITE sip:1001@" + DOMAIN.encode() + b" SIP/2.0\r\nX-Pad: " + b"a" * 30000
        socks = []
        t0 = time.monotonic()
        for _ in range(connections):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            try:
                s.connect(("127.0.0.1", port))
                s.sendall(half)
            except OSError:
                pass
            socks.append(s)
        time.sleep(1.0)
        fds1, rss1 = len(os.listdir(f"/proc/{proc.pid}/fd")), _rss_kb(proc.pid)
        while len(os.listdir(f"/proc/{proc.pid}/fd")) > fds0 and time.monotonic() - t0 < 120:
            time.sleep(0.1)
        cleared = time.monotonic() - t0
        print(f"{connections} half-sent 60 kB headers from one address: switch held {fds1 - fds0} descriptors "
              f"(+{(rss1 - rss0) / 1024:.1f} MB RSS) one second in; all closed {cleared:.1f} s after the first")
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=500)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    in_process()
    print()
    slowloris(args.connections)


if __name__ == "__main__":
    main()
