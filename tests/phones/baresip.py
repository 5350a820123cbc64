"""Drive baresip 1.0 (Debian ``baresip-core``) headless from pytest.

    bs = Baresip("caller", tmp_path, "1001", "pw", "callcenter.local", switch_port)
    bs.wait_registered()
    bs.dial("1002"); bs.wait_event("CALL_ESTABLISHED")
    bs.play(wav); bs.send_dtmf("3"); bs.hold(); bs.resume(); bs.hangup()
    bs.received_audio()                         # what the phone heard in its last call (a WAV)

The phone is controlled through its ``ctrl_tcp`` module: netstring-framed JSON commands (the same
commands as its keyboard menu: ``dial``, ``accept``, ``hangup``, ``hold``, ``resume``, ``sndcode``,
``ausrc``…) and JSON events (``REGISTER_OK``, ``CALL_ESTABLISHED``, ``CALL_CLOSED``…) on one TCP socket.

No sound card: the ``aufile`` module is the microphone (a WAV file, 8 kHz mono 16-bit; baresip ends
the call when that file ends, so every source here is followed by a long quiet tail) and the speaker
is an ``aubridge`` device nothing reads from; the ``sndfile`` filter writes every call's audio both
ways to ``dump-<time>-enc.wav`` (sent) and ``dump-<time>-dec.wav`` (received), complete when the
call ends.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

BARESIP = "baresip"
MODULES = Path("/usr/lib/baresip/modules")
RATE = 8000
QUIET_SECONDS = 240           # the longest call a test makes: baresip hangs up when its source file ends


def available() -> bool:
    return shutil.which(BARESIP) is not None and (MODULES / "ctrl_tcp.so").exists()


class BaresipError(RuntimeError):
    """A command answered ok=false, an expected event never came, or baresip exited."""


def _free_port() -> int:
    from tests.conftest import free_port
    return free_port()


def _rtp_base() -> int:
    """The first of 40 RTP ports, above 40000: the switches under test take theirs in 20000-39999."""
    import random
    return random.randrange(40000, 60000, 40)


def _write_wav(path: Path, samples: np.ndarray) -> Path:
    import soundfile as sf
    sf.write(str(path), samples, RATE, subtype="PCM_16")
    return path


def _quiet(seconds: float) -> np.ndarray:
    """A faint hiss (-54 dBFS): the line is "open" (RTP flows, RFC 4733 digits go out) but silent."""
    return (np.random.default_rng(11).standard_normal(int(seconds * RATE)) * 0.002).astype(np.float32)


class Baresip:
    """One baresip process with one account registered to the switch over UDP."""

    def __init__(self, name: str, workdir: Path, user: str, password: str, domain: str, switch_port: int,
                 display: str = "", regint: int = 300, answer: str = "manual"):
        self.name = name
        self.user = user
        self.domain = domain
        self.dir = Path(workdir) / f"baresip-{name}"
        self.dumps = self.dir / "dumps"
        self.dumps.mkdir(parents=True, exist_ok=True)
        self.sip_port = _free_port()
        self.ctrl_port = _free_port()
        lo = _rtp_base()
        self.quiet_wav = _write_wav(self.dir / "quiet.wav", _quiet(QUIET_SECONDS))
        (self.dir / "config").write_text(f"""poll_method\t\tepoll
sip_listen\t\t127.0.0.1:{self.sip_port}
sip_trans_def\t\tudp
net_interface\t\t127.0.0.1
call_local_timeout\t120
call_max_calls\t\t4
audio_player\t\taubridge,speaker-{name}
audio_alert\t\taubridge,alert-{name}
audio_source\t\taufile,{self.quiet_wav}
audio_srate\t\t{RATE}
audio_channels\t\t1
audio_level\t\tno
rtp_ports\t\t{lo}-{lo + 39}
rtp_timeout\t\t0
module_path\t\t{MODULES}
module\t\t\tg711.so
module\t\t\taufile.so
module\t\t\taubridge.so
module\t\t\tsndfile.so
module_app\t\taccount.so
module_app\t\tmenu.so
module_app\t\tctrl_tcp.so
ctrl_tcp_listen\t\t127.0.0.1:{self.ctrl_port}
snd_path\t\t{self.dumps}
""")
        # The account is created once the control socket is connected (uanew), so that its first
        # REGISTER's outcome arrives as an event.
        self.account = (f'"{display or user}" <sip:{user}@{domain}>;auth_pass={password};'
                        f'outbound="sip:127.0.0.1:{switch_port}";regint={regint};answermode={answer}')
        (self.dir / "accounts").write_text("")
        (self.dir / "contacts").write_text("")
        self.log_path = self.dir / "baresip.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([BARESIP, "-f", str(self.dir)], stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=self.dir)
        self._cond = threading.Condition()
        self._replies: dict[str, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []   # not yet consumed by wait_event
        self.history: list[dict[str, Any]] = []   # every event, for diagnostics
        self._eof = False
        self._next = 0
        self._n_play = 0
        self.sock: socket.socket | None = None
        self._reader = threading.Thread(target=self._read, name=f"baresip-{name}", daemon=True)
        try:
            self.sock = self._connect(timeout=15)
            self._reader.start()
            self.command("uanew", self.account)
        except BaseException:
            self.close()
            raise

    # -- plumbing -------------------------------------------------------------------------
    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BaresipError(f"{self.name}: baresip exited with {self.proc.returncode}; {self._diag()}")
            try:
                return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=2)
            except OSError:
                if time.monotonic() > deadline:
                    raise BaresipError(f"{self.name}: ctrl_tcp never listened; {self._diag()}") from None
                time.sleep(0.05)  # polling interval: baresip is starting (no other readiness signal)

    def _read(self) -> None:
        buf = b""
        assert self.sock is not None
        self.sock.settimeout(None)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b":" in buf:                 # netstrings: <length>:<json>,
                    head, rest = buf.split(b":", 1)
                    n = int(head)
                    if len(rest) < n + 1:
                        break
                    msg = json.loads(rest[:n])
                    buf = rest[n + 1:]
                    with self._cond:
                        if msg.get("event"):
                            self._events.append(msg)
                            self.history.append(msg)
                        elif msg.get("response"):
                            self._replies[str(msg.get("token"))] = msg
                        self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _diag(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-2500:]
        except OSError:
            tail = ""
        return f"rc={self.proc.poll()}; recent events: {self.history[-6:]}; log {self.log_path}:\n{tail}"

    def command(self, command: str, params: str = "", timeout: float = 10.0) -> str:
        """Run a menu command (``dial``, ``hold``…) and return its output; BaresipError if it failed."""
        with self._cond:
            self._next += 1
            token = str(self._next)
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        assert self.sock is not None
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        deadline = time.monotonic() + timeout
        with self._cond:
            while token not in self._replies:
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise BaresipError(f"{self.name}: no answer to {command} {params}; {self._diag()}")
                self._cond.wait(left)
            reply = self._replies.pop(token)
        if not reply.get("ok"):
            raise BaresipError(f"{self.name}: {command} {params} failed: {reply.get('data')}")
        return str(reply.get("data", ""))

    def wait_event(self, type_: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Consume and return the oldest queued event of this type whose fields match."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._events):
                    if ev.get("type") == type_ and all(ev.get(k) == v for k, v in match.items()):
                        del self._events[i]
                        return ev
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise BaresipError(f"{self.name}: no {type_} event {match} within {timeout}s; {self._diag()}")
                self._cond.wait(left)

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if type_ is None or e.get("type") == type_]

    # -- the phone ------------------------------------------------------------------------
    def wait_registered(self, timeout: float = 15.0) -> dict[str, Any]:
        """The registration's outcome: REGISTER_OK, or BaresipError with REGISTER_FAIL's reason."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events:
                    if ev.get("type") == "REGISTER_FAIL":
                        raise BaresipError(f"{self.name}: registration failed: {ev.get('param')}; {self._diag()}")
                    if ev.get("type") == "REGISTER_OK":
                        self._events.remove(ev)
                        return ev
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    raise BaresipError(f"{self.name}: no registration outcome within {timeout}s; {self._diag()}")
                self._cond.wait(left)

    def dial(self, target: str) -> None:
        """Call a number at the account's domain, or a full SIP URI."""
        uri = target if target.startswith("sip:") else f"sip:{target}@{self.domain}"
        self.command("dial", uri)

    def accept(self) -> None:
        self.command("accept")

    def hangup(self) -> None:
        self.command("hangup")

    def hold(self) -> None:
        self.command("hold")

    def resume(self) -> None:
        self.command("resume")

    def send_dtmf(self, digit: str) -> None:
        """One RFC 4733 digit (key press and release) into the current call."""
        assert len(digit) == 1 and digit in "0123456789*#ABCD", digit
        self.command("sndcode", digit)

    def play(self, samples_or_wav: np.ndarray | Path) -> None:
        """From now on the current call sends this audio (then the quiet tail)."""
        if isinstance(samples_or_wav, Path):
            import soundfile as sf
            samples, rate = sf.read(str(samples_or_wav), dtype="float32")
            assert rate == RATE and samples.ndim == 1, f"{samples_or_wav}: 8 kHz mono expected"
        else:
            samples = samples_or_wav
        self._n_play += 1
        wav = _write_wav(self.dir / f"play-{self._n_play}.wav", np.concatenate([samples, _quiet(QUIET_SECONDS)]))
        self.command("ausrc", f"aufile,{wav}")

    def dumps_now(self) -> set[Path]:
        """The audio dumps written so far (take before a call; received_audio(before=...) after it)."""
        return set(self.dumps.glob("dump-*.wav"))

    def received_audio(self, before: set[Path] | None = None) -> Path:
        """The WAV of what the phone received in its latest call (or the one call since ``before``).
        Complete once that call has ended (CALL_CLOSED)."""
        dec = sorted(p for p in self.dumps.glob("dump-*-dec.wav") if before is None or p not in before)
        if not dec:
            raise BaresipError(f"{self.name}: no received-audio dump in {self.dumps}")
        return dec[-1]

    def close(self, timeout: float = 10.0) -> int | None:
        """Stop baresip (SIGTERM: it unregisters and quits), kill it if it hangs. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()               # baresip quits on SIGTERM, unregistering first
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.sock is not None:
            self.sock.close()
        if self._reader.is_alive():
            self._reader.join(2)
        self._log.close()
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<Baresip {self.name} {self.user}@127.0.0.1:{self.sip_port}>"
