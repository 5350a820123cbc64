"""The shipped systemd unit (deploy/softswitch.service) passes ``systemd-analyze verify`` without a warning, and
the switch speaks systemd's notify protocol: READY=1 once it listens, WATCHDOG=1 pings, STOPPING=1 on SIGTERM."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from softswitch.sdnotify import Notifier

from .conftest import ROOT

UNIT = ROOT / "deploy" / "softswitch.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def _verify(unit_text: str, tmp: Path) -> subprocess.CompletedProcess:
    """``systemd-analyze verify`` on the unit installed in a scratch root: the host's own system units
    (sysinit.target...) copied in, and an executable where ExecStart expects the switch (the unit is checked
    as shipped, with its real paths)."""
    root = tmp / "root"
    if root.exists():
        shutil.rmtree(root)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copytree(SYSTEM_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    for line in unit_text.splitlines():   # the switch for ExecStart, kill for ExecReload
        if line.startswith(("ExecStart=", "ExecReload=")):
            binary = root / line.split("=", 1)[1].split()[0].lstrip("/")
            binary.parent.mkdir(parents=True, exist_ok=True)
            binary.write_text("#!/bin/sh\nexit 0\n")
            binary.chmod(0o755)
    (root / "etc/systemd/system/softswitch.service").write_text(unit_text)
    return subprocess.run(["systemd-analyze", "verify", f"--root={root}", "softswitch.service"],
                          capture_output=True, text=True, timeout=60)


def test_unit_passes_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd; bin/setup --test installs it)")
    if not (SYSTEM_UNITS / "sysinit.target").exists():
        pytest.skip(f"no system units in {SYSTEM_UNITS} to verify against")
    text = UNIT.read_text()
    r = _verify(text, tmp_path)
    if r.returncode != 0 and "Failed to" in r.stderr and "softswitch.service:" not in r.stderr:
        pytest.skip(f"systemd-analyze verify cannot run in this container: {r.stderr.strip()[:300]}")
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr
    # the check can fail: a misspelt value and an unknown key are reported
    bad = _verify(text.replace("Type=notify", "Type=notifyy\nBogusKey=1"), tmp_path)
    assert "notifyy" in bad.stderr and "BogusKey" in bad.stderr, bad.stderr


def test_unit_settings():
    text = UNIT.read_text()
    lines = {line.split("=", 1)[0]: line.split("=", 1)[1] for line in text.splitlines()
             if "=" in line and not line.startswith("#")}
    assert lines["Type"] == "notify" and lines["WatchdogSec"].endswith("s")
    assert lines["ExecStart"].endswith("run --config /etc/softswitch/config.toml")
    assert lines["StateDirectory"] == "softswitch" and lines["WorkingDirectory"] == "/var/lib/softswitch"
    assert lines["DynamicUser"] == "yes" and lines["ProtectSystem"] == "strict" and lines["NoNewPrivileges"] == "yes"
    assert lines["ExecReload"] == "/bin/kill -HUP $MAINPID"   # the config reload (softswitch.reload)


def _listen(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(15)
    return s


def _recv_until(s: socket.socket, field: str) -> list[str]:
    """Datagrams until one holding ``field`` (the socket's timeout bounds the wait)."""
    seen: list[str] = []
    while True:
        msg = s.recv(4096).decode()
        seen.append(msg)
        if field in msg.split("\n"):
            return seen


def test_notifier_protocol(tmp_path):
    sock = _listen(tmp_path / "notify")
    n = Notifier(str(tmp_path / "notify"), watchdog_usec=100_000)

    async def run() -> None:
        n.ready(asyncio.get_running_loop(), "up", alive=lambda: True)
        await asyncio.get_running_loop().run_in_executor(None, _recv_until, sock, "WATCHDOG=1")
        n.stopping()

    asyncio.run(asyncio.wait_for(run(), 10))
    got = []
    sock.settimeout(0.5)
    try:
        while True:
            got.append(sock.recv(4096).decode())
    except socket.timeout:
        pass
    assert got[-1].split("\n")[0] == "STOPPING=1"
    n.close()
    assert not Notifier(None).notify("READY=1")           # not under systemd: nothing sent
    assert Notifier.from_env().enabled == bool(os.environ.get("NOTIFY_SOCKET"))


def test_notifier_abstract_socket():
    name = f"softswitch-test-{os.getpid()}-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(5)
    n = Notifier("@" + name)
    assert n.notify("STATUS=hello")
    assert s.recv(100) == b"STATUS=hello"
    n.close()
    s.close()


@pytest.mark.e2e
def test_switch_notifies_systemd(switch_factory, tmp_path, monkeypatch):
    path = tmp_path / "notify"
    sock = _listen(path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")     # pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    sw = switch_factory(extra="[api]\nenabled = false\n[metrics]\nenabled = false\n")
    first = _recv_until(sock, "READY=1")
    ready = next(m for m in first if "READY=1" in m.split("\n"))
    assert f"MAINPID={sw.proc.pid}" in ready and "STATUS=" in ready, ready
    _recv_until(sock, "WATCHDOG=1")
    _recv_until(sock, "WATCHDOG=1")
    assert sw.stop() == 0
    _recv_until(sock, "STOPPING=1")
    sock.close()
