"""coturn (Debian ``coturn``, installed by ``bin/setup --test``) as the browser phone's TURN server in tests.

Run unprivileged-style on 127.0.0.1 with a free port, ``use-auth-secret`` (the TURN REST credentials the
switch mints), no TLS, a private relay port range and loopback peers allowed (everything here is on
127.0.0.1 or this host's own addresses). Its log is read for the allocations it granted and refused.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

from .conftest import free_port, rtp_range

REALM = "turn.test"


def available() -> bool:
    return shutil.which("turnserver") is not None


class Coturn:
    def __init__(self, tmp: Path, secret: str):
        self.secret = secret
        self.port = free_port()
        self.log_path = tmp / "coturn.log"
        lo, hi = rtp_range(100).split("-")
        self.relay_ports = (int(lo), int(hi))
        self.proc: subprocess.Popen | None = None
        self.args = [
            "turnserver", "-n", "--listening-ip=127.0.0.1", f"--listening-port={self.port}",
            "--relay-ip=127.0.0.1", f"--min-port={lo}", f"--max-port={hi}",
            "--use-auth-secret", f"--static-auth-secret={secret}", f"--realm={REALM}",
            "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--no-multicast-peers",
            f"--db={tmp / 'turndb'}", f"--pidfile={tmp / 'turnserver.pid'}", "--simple-log",
            f"--log-file={self.log_path}", "--no-stdout-log", "--verbose",
        ]

    def __enter__(self) -> "Coturn":
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            if re.search(rf"(IPv4\. UDP listener opened on\s*:?\s*127\.0\.0\.1:{self.port}|"
                         rf"listener opened on\s*:?\s*127\.0\.0\.1:{self.port})", self.log()):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"turnserver did not start:\n{self.log()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        # coturn names its log file after the one given, adding the date unless --simple-log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def allocated(self) -> list[str]:
        """Usernames coturn granted an allocation (``ALLOCATE processed, success``)."""
        return re.findall(r"user <([^>]*)>: incoming packet ALLOCATE processed, success", self.log())

    def refused(self) -> list[str]:
        """Usernames coturn refused (401 to a request that carried them: a wrong credential, or expired)."""
        return re.findall(r"user <([^>]+)>: incoming packet \w+ processed, error 401", self.log())
