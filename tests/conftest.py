"""Shared fixtures: a real switch process on 127.0.0.1, SIPp runs, raw SIP over UDP.

The switch always runs as its own process (``python -m softswitch.cli run``), the way an operator
runs it, with a config written for the test and ports picked free on 127.0.0.1.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
# a SIPp scenario step for the far end hanging up: wait for its BYE and answer it 200 OK
SIPP_ANSWER_BYE = '''  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
'''
DOMAIN = "callcenter.local"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


def wait_for(fn, timeout: float = 10.0, interval: float = 0.05):
    """Poll ``fn`` until it returns something true, and return that; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
        time.sleep(interval)


def udp_port_bound(port: int) -> bool:
    """Whether some process has a UDP socket bound to ``port`` (read from /proc: binding the port to
    find out could steal it from the process that is about to bind it)."""
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local = line.split()[1]                      # "0100007F:1389": address and port in hex
            if int(local.rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_udp_bound(port: int, timeout: float = 10.0) -> None:
    """Wait until a background process (a SIPp phone) listens on UDP ``port``."""
    wait_for(lambda: udp_port_bound(port), timeout, interval=0.02)


@dataclass
class SwitchProcess:
    config_path: Path
    port: int
    proc: subprocess.Popen
    log_path: Path
    extensions: dict[str, str] = field(default_factory=dict)
    tls_port: int | None = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 5.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.log()[-3000:]}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def write_config(path: Path, port: int, extensions: dict[str, str], extra: str = "", tcp: bool = True,
                 tls_port: int | None = None) -> None:
    listen = [f'"udp:127.0.0.1:{port}"'] + ([f'"tcp:127.0.0.1:{port}"'] if tcp else [])
    listen += [f'"tls:127.0.0.1:{tls_port}"'] if tls_port else []
    text = f'[sip]\nlisten = [{", ".join(listen)}]\ndomain = "{DOMAIN}"\n'
    text += extra + "\n"
    if "[api]" not in extra:  # a switch refuses to start when its API port is taken: any free port
        text += '[api]\nlisten = "127.0.0.1:0"\n'
    text += '[store]\npath = "var/softswitch.db"\n'
    for number, password in extensions.items():
        text += f'[[extensions]]\nnumber = "{number}"\npassword = "{password}"\nname = "Extension {number}"\n'
    path.write_text(text)


def start_switch(tmp: Path, extensions: dict[str, str], extra: str = "", port: int | None = None,
                 config_text: str | None = None, tls_port: int | None = None) -> SwitchProcess:
    port = port or free_port()
    cfg = tmp / "config.toml"
    if config_text is None:
        write_config(cfg, port, extensions, extra, tls_port=tls_port)
    else:
        cfg.write_text(config_text)
    log_path = tmp / f"switch-{port}.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "run", "--config", str(cfg), "--log-level", "DEBUG"],
                            stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), env=env, cwd=tmp)
    sw = SwitchProcess(cfg, port, proc, log_path, dict(extensions), tls_port)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"switch exited with {proc.returncode}:\n{sw.log()}")
        if "softswitch running" in sw.log():
            return sw
        time.sleep(0.05)
    sw.stop()
    raise AssertionError(f"switch did not start:\n{sw.log()}")


@pytest.fixture
def switch_factory(tmp_path):
    started: list[SwitchProcess] = []

    def make(extensions: dict[str, str] | None = None, extra: str = "", **kw) -> SwitchProcess:
        exts = extensions if extensions is not None else {"1001": "secret-1001", "1002": "secret-1002",
                                                          "1003": "secret-1003"}
        sw = start_switch(tmp_path, exts, extra, **kw)
        started.append(sw)
        return sw

    yield make
    for sw in started:
        rc = sw.stop()
        assert rc == 0, f"switch exited with {rc} on SIGTERM:\n{sw.log()[-3000:]}"
        assert "Traceback" not in sw.log(), sw.log()[-5000:]


@pytest.fixture
def switch(switch_factory) -> SwitchProcess:
    return switch_factory()


# --------------------------------------------------------------------------------------- SIPp

def sipp_available() -> bool:
    return shutil.which("sipp") is not None


requires_sipp = pytest.mark.skipif(not sipp_available() and not os.environ.get("CI"),
                                   reason="sipp (Debian sip-tester) not installed; bin/setup --test installs it")


def sipp(scenario: str | Path, target: str, *args: str, timeout: float = 20, cwd: Path | None = None,
         background: bool = False):
    """Run SIPp on 127.0.0.1 with a bounded number of calls and a global timeout."""
    path = scenario if isinstance(scenario, Path) else SIPP_DIR / scenario
    cmd = ["sipp", "-nostdin", "-sf", str(path), "-i", "127.0.0.1", "-m", "1", "-timeout", f"{int(timeout)}s",
           "-timeout_error", "-max_recv_loops", "1000", "-trace_err", "-trace_msg", *args, target]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, text=True,
                                errors="replace")
    # errors="replace": SIPp's screen has been seen with a stray non-UTF-8 byte in an error line (position
    # ~117 of its output); a decode error must not fail a test whose verdict is SIPp's exit code
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout + 15, cwd=cwd)


def sipp_ok(result, cwd: Path | None = None) -> None:
    """Assert a SIPp run succeeded, showing its message trace if not."""
    rc = result.returncode
    if rc != 0:
        traces = ""
        if cwd is not None:
            for f in sorted(Path(cwd).glob("*_messages.log")) + sorted(Path(cwd).glob("*_errors.log")):
                traces += f"\n--- {f.name}\n" + f.read_text(errors="replace")[-4000:]
        out = getattr(result, "stdout", "") or ""
        raise AssertionError(f"sipp exited {rc}\n{out[-2000:]}{traces}")


# ---------------------------------------------------------------------------------- raw UDP

class UdpClient:
    """A bare UDP socket for hand-written SIP messages (malformed input, scanners)."""

    def __init__(self, target_port: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.target = ("127.0.0.1", target_port)

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        self.sock.sendto(data, self.target)

    def recv(self, timeout: float = 2.0) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65535)
        except socket.timeout:
            return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def udp_client_factory():
    clients: list[UdpClient] = []

    def make(port: int) -> UdpClient:
        c = UdpClient(port)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


_RTP_LOCKS: list = []                 # lock files held for the whole test session (see rtp_range)


def rtp_range(size: int = 100) -> str:
    """A private ``[media] rtp_ports`` range for one test switch: ``"lo-hi"``.

    Several test runs share this machine (parallel workers, other checkouts): a range is claimed with an
    exclusive lock file in the temp directory, held until this process exits, and only when none of its
    UDP ports is bound. Ranges lie in 20000-32699, below Linux's ephemeral ports (32768-60999: free_port()
    and outgoing sockets), so no test's own sockets land in a switch's range by chance."""
    import fcntl
    import random
    import tempfile

    assert 4 <= size <= 100, "ranges are claimed in blocks of 100 ports"
    blocks = list(range(20000, 32700, 100))
    random.shuffle(blocks)
    for lo in blocks:
        path = Path(tempfile.gettempdir()) / f"softswitch-test-rtp-{lo}.lock"
        f = open(path, "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        if any(udp_port_bound(p) for p in range(lo, lo + 100, 9)):   # a sample: someone else's sockets
            f.close()
            continue
        _RTP_LOCKS.append(f)
        return f"{lo}-{lo + size - 1}"
    raise RuntimeError("no free RTP port range for a test switch")


def rtp_low() -> int:
    """The first port of a claimed 100-port RTP range (``rtp_range``): ``rtp_ports = f"{lo}-{lo + 99}"``."""
    return int(rtp_range(100).split("-")[0])


# ------------------------------------------------------------------------ e2e peers and prompts
# The fixtures several end-to-end files share (they were copied into each). The switch config snippets
# they use are in tests/e2e_configs.py; what a phone does at the switch is in tests/phones/steps.py.

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PCAP_DIR = Path("/usr/share/sip-tester")   # SIPp's RTP pcaps (Debian sip-tester)


@pytest.fixture
def phones(tmp_path):
    """A pool of pjsua2 phones, one process each (tests/phones); all closed after the test."""
    from tests.phones import Phones

    pool = Phones(log_dir=tmp_path)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def built_prompts(tmp_path_factory):
    """``build(lang)``: the shipped prompts built once per test session (espeak-ng through pyttsx3, as
    `softswitch prompts build`), ``lang`` "en" or None for every language. A build takes 1.7 s (English) to
    3.2 s (all): it was paid again in each of a dozen modules. Switches only read the directory."""
    built: dict[str | None, Path] = {}

    def build(lang: str | None = None) -> Path:
        if lang in built:
            return built[lang]
        if shutil.which("espeak-ng") is None:
            pytest.skip("espeak-ng not installed (bin/setup installs it)")
        out = tmp_path_factory.mktemp("prompts")
        r = subprocess.run([sys.executable, "-m", "softswitch.cli", "prompts", "build", "--prompts",
                            str(ROOT / "prompts"), "--out", str(out), *(["--lang", lang] if lang else [])],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        built[lang] = out
        return out
    return build


@pytest.fixture(scope="module")
def sounds(built_prompts) -> Path:
    """The English prompts (``built_prompts``). test_ivr_e2e has its own ``sounds``: every language."""
    return built_prompts("en")


@pytest.fixture
def browser_page(tmp_path):
    """A page of Debian's headless Chromium driven by Playwright (a fresh profile per test)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (bin/setup --test installs Debian's chromium)")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "chromium-profile"), executable_path=CHROMIUM,
                                                    headless=True, args=CHROMIUM_ARGS)
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            ctx.close()
