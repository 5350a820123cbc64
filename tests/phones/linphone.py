"""Drive linphonec (Debian ``linphone-cli``, liblinphone 5.1) headless from pytest.

    lp = Linphone("agent", tmp_path, "1002", "pw", "callcenter.local", switch_port)
    lp.wait_registered()
    call = lp.call("1001")                      # linphonec's call id
    lp.wait_connected(call)
    lp.play(wav); lp.record(wav)                # file I/O instead of a sound card
    lp.dtmf("3"); lp.pause(call); lp.resume(call); lp.terminate(call)

linphonec reads the same command language on stdin that ``linphonecsh`` sends through its pipe (``call``,
``answer``, ``pause``, ``soundcard use files``, ``play``, ``record``…) and prints one line per call
event ("Call 1 with <sip:…> connected."). It is driven here over stdin/stdout rather than with
``linphonecsh init -c RC``: linphonecsh talks to one daemon per user through a fixed socket
(/tmp/linphonec-<uid>), so two tests (or two engineers) on one machine would share a phone.

No sound card: ``soundcard use files`` makes liblinphone read the call's outgoing audio from the file
given to ``play`` (a faint hiss here until a test plays something) and write what it receives to the
file given to ``record``.
Its registration goes to the switch through ``[proxy_0] reg_route``; the identity keeps the SIP domain.
HOME points into the phone's own directory (liblinphone's databases and caches land there).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

LINPHONEC = "linphonec"
RATE = 8000
QUIET_SECONDS = 240           # longer than any test call: liblinphone loops its play file


def _quiet(seconds: float) -> np.ndarray:
    """A faint hiss (-54 dBFS): the phone keeps sending RTP (and RFC 4733 digits) but says nothing."""
    return (np.random.default_rng(12).standard_normal(int(seconds * RATE)) * 0.002).astype(np.float32)


def available() -> bool:
    return shutil.which(LINPHONEC) is not None


class LinphoneError(RuntimeError):
    """linphonec exited, or an expected line never came."""


def _rtp_base() -> int:
    """The first of 40 RTP ports, above 40000: the switches under test take theirs in 20000-39999."""
    import random
    return random.randrange(40000, 60000, 40)


def _free_port() -> int:
    from tests.conftest import free_port
    return free_port()


class Linphone:
    """One linphonec process with one account registered to the switch over UDP."""

    def __init__(self, name: str, workdir: Path, user: str, password: str, domain: str, switch_port: int,
                 display: str = "", expires: int = 300):
        self.name = name
        self.user = user
        self.domain = domain
        self.dir = Path(workdir) / f"linphone-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.sip_port = _free_port()
        lo = _rtp_base()
        hi = lo + 39
        self.rc = self.dir / "linphonerc"
        self.rc.write_text(f"""[sip]
sip_port={self.sip_port}
sip_tcp_port=-1
sip_tls_port=-1
use_ipv6=0
guess_hostname=0
register_only_when_network_is_up=0
default_proxy=0
use_info=0
use_rfc2833=1
inc_timeout=120
[rtp]
audio_rtp_port={lo}-{hi}
audio_jitt_comp=60
[net]
firewall_policy=0
mtu=1300
[sound]
echocancellation=0
remote_ring=
local_ring=
hold_music=
[video]
enabled=0
capture=0
display=0
automatically_initiate=0
automatically_accept=0
[auth_info_0]
username={user}
userid={user}
passwd={password}
realm={domain}
domain={domain}
[proxy_0]
reg_proxy=<sip:127.0.0.1:{switch_port}>
reg_route=<sip:127.0.0.1:{switch_port};lr>
reg_identity="{display or user}" <sip:{user}@{domain}>
reg_expires={expires}
reg_sendregister=1
publish=0
dial_escape_plus=0
[storage]
uri={self.dir / "linphone.db"}
call_logs_db_uri={self.dir / "call-history.db"}
[misc]
zrtp_secrets_file={self.dir / "zidcache"}
""")
        self.log_path = self.dir / "liblinphone.log"
        self.out_path = self.dir / "stdout.log"
        env = dict(os.environ, HOME=str(self.dir))
        self._cond = threading.Condition()
        self.lines: list[str] = []          # every line linphonec printed (prompts stripped)
        self._eof = False
        self._n_play = 0
        self._out = open(self.out_path, "w")
        self.proc = subprocess.Popen([LINPHONEC, "-c", str(self.rc), "-d", "5", "-l", str(self.log_path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.dir, env=env, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, name=f"linphonec-{name}", daemon=True)
        self._reader.start()
        try:
            self.send("soundcard use files")
            self.wait_line(r"Using wav files instead of soundcard", timeout=20)
            self.quiet()
        except BaseException:
            self.close()
            raise

    # -- plumbing -------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                line = re.sub(r"^(linphonec> )+", "", raw.rstrip("\n"))
                self._out.write(raw)
                self._out.flush()
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def send(self, command: str) -> None:
        """One linphonec command line (its effect shows in later lines)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise LinphoneError(f"{self.name}: cannot send {command!r}: {exc}; {self._diag()}") from None

    def mark(self) -> int:
        """A position in the output: wait_line(since=mark) looks only at lines printed after it."""
        with self._cond:
            return len(self.lines)

    def wait_line(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match:
        """The first line at or after ``since`` that matches ``pattern`` (a regular expression)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    m = rx.search(line)
                    if m:
                        return m
                if self._eof:
                    raise LinphoneError(f"{self.name}: linphonec exited waiting for {pattern!r}; {self._diag()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise LinphoneError(f"{self.name}: no line matching {pattern!r} within {timeout}s; "
                                        f"{self._diag()}")
                self._cond.wait(left)

    def _diag(self) -> str:
        with self._cond:
            tail = "\n".join(self.lines[-25:])
        return f"rc={self.proc.poll()}; log {self.log_path}; last lines:\n{tail}"

    # -- the phone ------------------------------------------------------------------------
    def wait_registered(self, timeout: float = 20.0) -> str:
        """Poll ``status register`` until the account is registered; the identity it shows."""
        deadline = time.monotonic() + timeout
        while True:
            since = self.mark()
            self.send("status register")
            m = self.wait_line(r"^(registered, identity=(.*) duration=|registered=-?\d+|unregistered)", timeout=10,
                               since=since)
            if m.group(2):
                return m.group(2)
            if time.monotonic() > deadline:
                raise LinphoneError(f"{self.name}: not registered within {timeout}s: {m.group(0)}; {self._diag()}")
            time.sleep(0.2)  # polling interval of the status command

    def call(self, target: str) -> int:
        """Dial a number (the default proxy's domain is added) or a SIP URI; linphonec's call id."""
        since = self.mark()
        self.send(f"call {target}")
        return int(self.wait_line(r"Establishing call id to .*, assigned id (\d+)", since=since).group(1))

    def wait_incoming(self, timeout: float = 10.0, since: int = 0) -> tuple[int, str]:
        m = self.wait_line(r"Receiving new incoming call from (.*), assigned id (\d+)", timeout, since)
        return int(m.group(2)), m.group(1)

    def answer(self, call: int) -> None:
        self.send(f"answer {call}")

    def wait_connected(self, call: int, timeout: float = 10.0, since: int = 0) -> None:
        self.wait_line(rf"^Call {call} (with|to) .* connected\.", timeout, since)

    def wait_streams(self, call: int, timeout: float = 10.0, since: int = 0) -> None:
        """Media established (RTP flowing both ways as far as the phone knows)."""
        self.wait_line(rf"^Media streams established with .* for call {call} ", timeout, since)

    def wait_ended(self, call: int, timeout: float = 10.0, since: int = 0) -> str:
        return self.wait_line(rf"^Call {call} with .* ended \((.*)\)\.", timeout, since).group(1)

    def terminate(self, call: int) -> None:
        self.send(f"terminate {call}")

    def pause(self, call: int) -> None:
        """Hold (re-INVITE a=sendonly); returns once linphonec says the call is paused. The phone goes
        quiet first: on resume liblinphone would start the current play file again, mixed with the next."""
        self.quiet()
        since = self.mark()
        self.send(f"pause {call}")
        self.wait_line(rf"^Call {call} with .* is now paused\.", since=since)

    def resume(self, call: int) -> None:
        since = self.mark()
        self.send(f"resume {call}")
        self.wait_line(rf"^Resuming call {call} with ", since=since)

    def dtmf(self, digit: str) -> None:
        """One RFC 4733 digit into the current call (linphonec sends a line of digits as DTMF)."""
        assert len(digit) == 1 and digit in "0123456789*#ABCD", digit
        self.send(digit)

    def play(self, samples_or_wav: np.ndarray | Path) -> None:
        """From now on the current call sends this audio (8 kHz mono), then a quiet tail: liblinphone
        loops its play file, and starts it again when a call's streams restart (hold, resume)."""
        if isinstance(samples_or_wav, Path):
            samples, rate = sf.read(str(samples_or_wav), dtype="float32")
            assert rate == RATE and samples.ndim == 1, f"{samples_or_wav}: 8 kHz mono expected"
        else:
            samples = samples_or_wav
        self._n_play += 1
        wav = self.dir / f"play-{self._n_play}.wav"
        sf.write(str(wav), np.concatenate([samples, _quiet(QUIET_SECONDS)]), RATE, subtype="PCM_16")
        self.send(f"play {wav}")

    def quiet(self) -> None:
        """The call sends a faint hiss (what it sends from the start)."""
        self.play(np.zeros(0, np.float32))

    def record(self, wav: Path | str) -> None:
        """What the current call receives, into ``wav`` (complete once the call or recording ends)."""
        self.send(f"record {wav}")

    def close(self, timeout: float = 10.0) -> int | None:
        """Quit linphonec (it unregisters first), kill it if it hangs. Idempotent."""
        if self.proc.poll() is None:
            try:
                self.send("quit")
            except LinphoneError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass
        self._out.close()
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"<Linphone {self.name} {self.user}@127.0.0.1:{self.sip_port}>"
