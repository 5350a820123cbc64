"""Drive a pjsua2 phone process (tests/phones/pjphone.py) from pytest.

    with Phone("alice") as a, Phone("bob") as b:
        a.register("1001", "pw", "callcenter.local", "sip:127.0.0.1:5060")
        ...
        idx = b.call("sip:1001@callcenter.local")
        b.wait_call_state(idx, "CONFIRMED")

Every phone is its own process; see pjphone.py for the JSON-lines protocol.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PJPHONE = Path(__file__).resolve().parent / "pjphone.py"


class PhoneError(RuntimeError):
    """A command answered ok=false, or the phone process died."""


class PhoneTimeout(PhoneError, TimeoutError):
    """No reply / matching event within the timeout."""


def _matches(msg: dict, match: dict[str, Any]) -> bool:
    for key, want in match.items():
        if key not in msg:
            return False
        have = msg[key]
        if callable(want):
            try:
                if not want(have):
                    return False
            except Exception:  # noqa: BLE001
                return False
        elif have != want:
            return False
    return True


class Phone:
    """One SIP phone process.  Thread-safe enough for one test thread plus the reader thread."""

    def __init__(self, name: str, transport: str = "udp", log_dir: Path | None = None,
                 start_timeout: float = 10.0):
        self.name = name
        self.transport = transport
        if log_dir is None:
            log_dir = Path(tempfile.gettempdir()) / "pjphone-logs"
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{name}-{os.getpid()}-{id(self):x}"
        self.stderr_path = self.log_dir / f"{stamp}.stderr.log"
        self.pjsip_log_path = self.log_dir / f"{stamp}.pjsip.log"

        self._cond = threading.Condition()
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []       # not yet consumed by wait_event
        self.history: list[dict] = []       # every event ever received, for debugging
        self.noise: list[str] = []          # non-JSON stdout lines (should stay empty)
        self._next_id = 0
        self._eof = False
        self._closed = False
        self._quit_id: int | None = None   # a quit sent by request_quit, not yet waited for

        self._stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(PJPHONE), "--name", name, "--transport", transport,
             "--log", str(self.pjsip_log_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            cwd=str(PJPHONE.parent), close_fds=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"pjphone-{name}", daemon=True)
        self._reader.start()
        try:
            ready = self.wait_event("ready", timeout=start_timeout)
        except BaseException:
            self.close()
            raise
        self.port: int = int(ready["port"])
        self.address: str = ready["address"]
        self.pid: int = int(ready["pid"])

    # -- plumbing -------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").strip()
                if not line:
                    continue
                try:
                    msg = json.loads(line)
                except ValueError:
                    msg = None
                with self._cond:
                    if not isinstance(msg, dict):
                        self.noise.append(line)
                    elif "event" in msg:
                        self._events.append(msg)
                        self.history.append(msg)
                    elif "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self.noise.append(line)
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()

    def _diag(self) -> str:
        tail = ""
        try:
            tail = self.stderr_path.read_text(errors="replace")[-1500:]
        except OSError:
            pass
        recent = self.history[-8:]
        return (f"phone {self.name!r} (rc={self.proc.poll()}); recent events: {recent}; "
                f"logs: {self.stderr_path}, {self.pjsip_log_path}; stderr tail:\n{tail}")

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self._eof

    def send(self, cmd: str, **kw) -> int:
        """Send a command without waiting; returns its id (see reply())."""
        with self._cond:
            self._next_id += 1
            msg_id = self._next_id
        line = json.dumps({"cmd": cmd, "id": msg_id, **kw}) + "\n"
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(line.encode())
            self.proc.stdin.flush()
        except (OSError, ValueError) as exc:
            raise PhoneError(f"cannot send {cmd!r}: {exc}; {self._diag()}") from None
        return msg_id

    def reply(self, msg_id: int, timeout: float = 10, what: str = "") -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self._replies:
                if self._eof:
                    raise PhoneError(f"phone exited while waiting for {what or msg_id}; "
                                     f"{self._diag()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PhoneTimeout(f"no reply to {what or msg_id} within {timeout}s; "
                                       f"{self._diag()}")
                self._cond.wait(left)
            return self._replies.pop(msg_id)

    def cmd(self, cmd: str, timeout: float = 10, **kw) -> dict:
        """Send a command and wait for its reply; raise PhoneError on ok=false."""
        msg_id = self.send(cmd, **kw)
        rep = self.reply(msg_id, timeout, what=f"{cmd} {kw}")
        if not rep.get("ok"):
            raise PhoneError(f"{self.name}: {cmd} {kw} failed: {rep.get('error')}")
        return rep

    def wait_event(self, event: str, timeout: float = 10, **match) -> dict:
        """Consume and return the oldest queued event named `event` whose fields match.

        Match values are compared with ==, or called as predicates if callable.  Events that
        do not match stay queued for later waits.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, ev in enumerate(self._events):
                    if ev.get("event") == event and _matches(ev, match):
                        del self._events[i]
                        return ev
                if self._eof:
                    raise PhoneError(f"phone exited while waiting for {event} {match}; "
                                     f"{self._diag()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PhoneTimeout(f"{self.name}: no {event} event matching {match} within "
                                       f"{timeout}s; {self._diag()}")
                self._cond.wait(left)

    def events(self, event: str | None = None) -> list[dict]:
        """Queued (not yet consumed) events, optionally only those with this name."""
        with self._cond:
            return [e for e in self._events if event is None or e.get("event") == event]

    def clear_events(self) -> None:
        with self._cond:
            self._events.clear()

    # -- convenience wrappers -------------------------------------------------------------
    def info(self) -> dict:
        return self.cmd("info")

    def account(self, user: str, domain: str | None = None, password: str | None = None,
                proxy: str | None = None) -> dict:
        """An account without registration (direct calls, or calls via `proxy`)."""
        kw: dict[str, Any] = {"user": user}
        if domain is not None:
            kw["domain"] = domain
        if password is not None:
            kw["password"] = password
        if proxy is not None:
            kw["proxy"] = proxy
        return self.cmd("account", **kw)

    def register(self, user, password, domain, registrar, expires=300, timeout: float = 10,
                 **kw) -> dict:
        """Register and wait for the resulting reg_state event (returned, whatever its code)."""
        self.cmd("register", user=str(user), password=password, domain=domain,
                 registrar=registrar, expires=expires, **kw)
        return self.wait_event("reg_state", timeout=timeout)

    def unregister(self, timeout: float = 10) -> dict:
        self.cmd("unregister")
        return self.wait_event("reg_state", timeout=timeout)

    def call(self, to: str, headers: dict[str, str] | None = None) -> int:
        kw: dict[str, Any] = {"to": to}
        if headers:
            kw["headers"] = headers
        return int(self.cmd("call", **kw)["call"])

    def answer(self, call: int, code: int = 200) -> dict:
        return self.cmd("answer", call=call, code=code)

    def hangup(self, call: int, code: int | None = None) -> dict:
        return self.cmd("hangup", call=call, **({"code": code} if code else {}))

    def hold(self, call: int) -> dict:
        return self.cmd("hold", call=call)

    def unhold(self, call: int) -> dict:
        return self.cmd("unhold", call=call)

    def dtmf_info(self, call: int, digits: str) -> dict:
        return self.cmd("dtmf_info", call=call, digits=digits)

    def dtmf(self, call: int, digits: str, method: str = "rfc2833") -> dict:
        return self.cmd("dtmf", call=call, digits=digits, method=method)

    def transfer(self, call: int, to: str) -> dict:
        return self.cmd("transfer", call=call, to=to)

    def transfer_replaces(self, call: int, other: int) -> dict:
        return self.cmd("transfer_replaces", call=call, other=other)

    def auto_answer(self, code: int = 200, delay_ms: int = 0, ring: bool = True) -> dict:
        return self.cmd("auto_answer", code=code, delay_ms=delay_ms, ring=ring)

    def play(self, call: int, wav: str | Path, loop: bool = False) -> dict:
        return self.cmd("play", call=call, wav=str(wav), loop=loop)

    def stop_play(self, call: int) -> dict:
        return self.cmd("stop_play", call=call)

    def record(self, call: int, wav: str | Path) -> dict:
        return self.cmd("record", call=call, wav=str(wav))

    def stop_record(self, call: int) -> dict:
        return self.cmd("stop_record", call=call)

    def wait_incoming(self, timeout: float = 10, **match) -> dict:
        return self.wait_event("incoming", timeout=timeout, **match)

    def wait_call_state(self, call: int, state: str, timeout: float = 10, **match) -> dict:
        return self.wait_event("call_state", timeout=timeout, call=call, state=state, **match)

    # -- lifetime -------------------------------------------------------------------------
    def request_quit(self) -> None:
        """Ask the phone to quit without waiting: its shutdown (hang up, unregister: up to ~2 s when the
        switch is already gone) then runs alongside other phones' (``Phones.close``). ``close`` waits."""
        if self._closed or self._quit_id is not None or self.proc.poll() is not None:
            return
        try:
            self._quit_id = self.send("quit")
        except PhoneError:
            pass

    def close(self, timeout: float = 5.0) -> int | None:
        """Quit (hang up, libDestroy), wait up to `timeout` s, then kill.  Idempotent."""
        if self._closed:
            return self.proc.returncode
        self._closed = True
        deadline = time.monotonic() + timeout
        if self.proc.poll() is None:
            try:
                msg_id = self._quit_id if self._quit_id is not None else self.send("quit")
                self.reply(msg_id, timeout=max(0.1, deadline - time.monotonic()), what="quit")
            except PhoneError:
                pass
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()  # EOF also makes the phone quit
            except (OSError, ValueError):
                pass
            try:
                self.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)  # the process is gone, so its stdout is at EOF
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except (OSError, ValueError):
                pass
        self._stderr.close()
        return self.proc.returncode

    def __enter__(self) -> "Phone":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Phone {self.name} {self.transport} {getattr(self, 'address', '?')}>"


class Phones:
    """Create several phones and close all of them at the end (handy as a fixture body)."""

    def __init__(self, log_dir: Path | None = None, transport: str = "udp"):
        self.log_dir = log_dir
        self.transport = transport
        self.phones: list[Phone] = []

    def __call__(self, name: str, transport: str | None = None) -> Phone:
        phone = Phone(name, transport or self.transport, self.log_dir)
        self.phones.append(phone)
        return phone

    def close(self) -> None:
        """Close every phone: all are asked to quit first, so that their shutdowns overlap (each may wait
        ~2 s for an unregistration that a stopped switch never answers), then each is waited for."""
        for phone in reversed(self.phones):
            try:
                phone.request_quit()
            except Exception:  # noqa: BLE001
                pass
        for phone in reversed(self.phones):
            try:
                phone.close()
            except Exception:  # noqa: BLE001
                pass

    def __enter__(self) -> "Phones":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["Phone", "Phones", "PhoneError", "PhoneTimeout", "PJPHONE"]
