"""Issue 11, the media half: attacks on a real switch process (real pjsua2 phones; raw sockets from another
loopback address as the attacker), each of which succeeded before the fix.

* RTP hijack: a stranger spraying RTP at every port of the range, from before the call and through a pause in
  the phone's audio, is never heard and never hears anything.
* A port of the range held by another program does not fail a call (another port is used).
* Running out of file descriptors refuses calls while it lasts and retires no port: media works again after.
"""
from __future__ import annotations

import os
import re
import resource
import socket
import struct
import threading
import time

import numpy as np
import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from .conftest import DOMAIN, rtp_range, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]

ATTACK_HZ = 2900.0            # the attacker's tone: far from anything the phones play


def media_extra(rtp_ports: str, more: str = "") -> str:
    return f'auth_algorithms = ["MD5", "SHA-256"]\n[media]\nrtp_ports = "{rtp_ports}"\nrecord = "none"\n' + more


def register(sw, phones, *numbers):
    out = []
    for n in numbers:
        p = phones(n)
        reg = p.register(n, sw.extensions[n], DOMAIN, f"sip:{sw.addr}")
        assert reg["code"] == 200, reg
        out.append(p)
    return out


def connect(a, b, b_num="1002"):
    b.clear_events()
    b.auto_answer(code=200)
    call = a.call(f"sip:{b_num}@{DOMAIN}")
    incoming = b.wait_event("incoming", timeout=15)
    a.wait_call_state(call, "CONFIRMED", timeout=15)
    b.wait_call_state(incoming["call"], "CONFIRMED", timeout=15)
    a.wait_event("media_state", call=call, active=True, timeout=10)
    b.wait_event("media_state", call=incoming["call"], active=True, timeout=10)
    return call, incoming["call"]


def band_level(x: np.ndarray, hz: float, rate: int = audio.RATE, width: float = 30.0) -> float:
    """RMS of ``x`` within ``hz`` ± ``width`` (full scale 1.0)."""
    if len(x) == 0:
        return 0.0
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    band = np.abs(spec[(freqs > hz - width) & (freqs < hz + width)]) ** 2
    return float(np.sqrt(2.0 * band.sum()) / len(x))


def with_children(pid: int) -> list[int]:
    """``pid`` and its child processes (the switch's media workers, ``[media] workers``)."""
    kids: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            continue
    return [pid, *kids]


def udp_ports_of(pid: int) -> set[int]:
    """The UDP ports process ``pid`` and its children (media workers) have bound (their sockets' inodes looked
    up in /proc/net/udp)."""
    inodes = set()
    for p in with_children(pid):
        try:
            fds = os.listdir(f"/proc/{p}/fd")
        except OSError:                           # a worker that just ended
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{p}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    ports = set()
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class Attacker(threading.Thread):
    """Sprays 20 ms RTP packets (a loud tone, one SSRC, in sequence) at every RTP and RTCP port the switch has
    bound in its range, from 127.0.0.2, as fast as a phone would, and counts every datagram the switch sends
    back to it. Only the switch's own ports are sprayed and counted: another test run's switch may have
    sockets in the same range (tests/conftest.rtp_range claims ranges only among runs that use it)."""

    def __init__(self, rtp_ports: str, pid: int):
        super().__init__(daemon=True)
        lo, hi = map(int, rtp_ports.split("-"))
        self.range = range(lo + (lo & 1), hi, 2)
        self.pid = pid
        self.ports: list[int] = []
        self.switch_ports: set[int] = set()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.setblocking(False)
        self.received = 0
        self.rounds = 0
        self.other = 0
        self.sent = 0
        self.stop_flag = threading.Event()
        from media.g711 import ULAW, encode_float
        t = np.arange(160 * 50) / 8000
        tone = (0.5 * np.sin(2 * np.pi * ATTACK_HZ * t)).astype(np.float32).reshape(50, 160) * 32767
        self.frames = [encode_float(row[None, :], np.array([ULAW], np.int8))[0].tobytes() for row in tone]

    def refresh(self) -> None:
        self.switch_ports |= udp_ports_of(self.pid)
        self.ports = [p for p in self.range if p in self.switch_ports]

    def run(self) -> None:
        seq, ts, n = 1000, 5000, 0
        t0 = time.monotonic()
        while not self.stop_flag.is_set():
            if n % 5 == 0:                        # the switch (or its media worker) binds ports as calls take them
                try:
                    self.refresh()
                except OSError:                   # the switch is gone
                    break
            hdr = struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, ts & 0xFFFFFFFF, 0x0BADF00D)
            pkt = hdr + self.frames[n % 50]
            for p in self.ports:
                for port, data in ((p, pkt), (p + 1, b"\x80\xc8\x00\x06" + bytes(24))):   # RTP, and a fake RTCP SR
                    try:
                        self.sock.sendto(data, ("127.0.0.1", port))
                        self.sent += 1
                    except OSError:
                        pass
            while True:
                try:
                    _, src = self.sock.recvfrom(2048)
                    if src[1] in self.switch_ports:
                        self.received += 1
                    else:
                        self.other += 1           # another process's socket in the range
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:               # ICMP port unreachable for ports nobody holds: not audio
                    continue
            seq, ts, n = seq + 1, ts + 160, n + 1
            self.rounds = n
            time.sleep(max(0.0, t0 + n * 0.02 - time.monotonic()))   # pacing: one packet per port every 20 ms

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(5)
        self.sock.close()


class RawCaller:
    """Extension 1001's phone made of two UDP sockets: SIP (INVITE with digest auth, ACK, BYE) and RTP that
    the test sends itself, so that it decides when the phone is silent (pjsua keeps sending during silence)."""

    def __init__(self, sw_port: int, user: str, password: str):
        self.sw = ("127.0.0.1", sw_port)
        self.user, self.password = user, password
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sip.bind(("127.0.0.1", 0))
        self.sip.settimeout(0.5)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.rtp.setblocking(False)
        self.call_id = f"raw-{os.getpid()}-{time.monotonic_ns()}@127.0.0.1"
        self.tag = f"raw{time.monotonic_ns() % 10**9}"
        self.to_tag = ""
        self.cseq = 0
        self.ruri = ""
        self.remote_rtp: tuple[str, int] | None = None
        self.rtp_in: list[float] = []             # arrival times of the switch's RTP (the phone was not shut out)
        self.seq, self.ts, self.ssrc = 4000, 80000, 0x1234ABCD

    def _msg(self, method: str, cseq: int, extra: str = "", body: str = "", branch: str = "") -> bytes:
        sport = self.sip.getsockname()[1]
        to = f"<{self.ruri}>" + (f";tag={self.to_tag}" if self.to_tag else "")
        head = (f"{method} {self.ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{sport};branch={branch or 'z9hG4bK' + str(time.monotonic_ns())};rport\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{self.user}@{DOMAIN}>;tag={self.tag}\r\nTo: {to}\r\n"
                f"Call-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
                f"Contact: <sip:{self.user}@127.0.0.1:{sport}>\r\n{extra}")
        if body:
            head += "Content-Type: application/sdp\r\n"
        return (head + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()

    def _final(self, timeout: float = 15.0):
        from softswitch.sip.message import Response, parse_message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = self.sip.recvfrom(65535)
            except socket.timeout:
                continue
            m = parse_message(data)
            if isinstance(m, Response) and m.status >= 200:
                return m
        raise AssertionError("no final response from the switch")

    def call(self, number: str) -> None:
        from softswitch.sip.digest import authorization_header
        self.ruri = f"sip:{number}@{DOMAIN}"
        rport = self.rtp.getsockname()[1]
        sdp = (f"v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
               f"m=audio {rport} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
        branch = f"z9hG4bKraw{time.monotonic_ns()}"
        self.sip.sendto(self._msg("INVITE", 1, body=sdp, branch=branch), self.sw)
        r = self._final()
        assert r.status == 407, r.status
        self.to_tag = r.to.tag or ""
        self.sip.sendto(self._msg("ACK", 1, branch=branch), self.sw)
        self.to_tag = ""
        challenge = next(v for v in r.headers.get_lines("Proxy-Authenticate") if "MD5" in v)
        auth = authorization_header(challenge, "INVITE", self.ruri, self.user, self.password)
        self.sip.sendto(self._msg("INVITE", 2, extra=f"Proxy-Authorization: {auth}\r\n", body=sdp), self.sw)
        r = self._final()
        assert r.status == 200, r.status
        self.to_tag = r.to.tag or ""
        self.sip.sendto(self._msg("ACK", 2), self.sw)
        body = r.body.decode()
        port = int(re.search(r"m=audio (\d+)", body).group(1))     # type: ignore[union-attr]
        self.remote_rtp = ("127.0.0.1", port)

    def talk(self, samples: np.ndarray) -> None:
        """Send ``samples`` (8 kHz, full scale 1.0) as 20 ms PCMU packets in real time, reading what comes back."""
        from media.g711 import ULAW, encode_float
        assert self.remote_rtp is not None
        t0 = time.monotonic()
        for k in range(len(samples) // 160):
            frame = encode_float((samples[k * 160:(k + 1) * 160] * 32767)[None, :], np.array([ULAW], np.int8))[0]
            self.rtp.sendto(struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, self.ssrc)
                            + frame.tobytes(), self.remote_rtp)
            self.seq += 1
            self.ts += 160
            self.drain()
            time.sleep(max(0.0, t0 + (k + 1) * 0.02 - time.monotonic()))   # pacing: a packet every 20 ms

    def silent(self, seconds: float) -> None:
        """Send nothing (a phone on mute, or with silence suppression), reading what comes back."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.drain()
            time.sleep(0.02)                      # pacing: the phone's 20 ms
        self.ts += int(seconds * 8000)

    def drain(self) -> None:
        while True:
            try:
                self.rtp.recvfrom(2048)
                self.rtp_in.append(time.monotonic())
            except (BlockingIOError, InterruptedError):
                return

    def bye(self) -> None:
        self.sip.sendto(self._msg("BYE", 3), self.sw)
        r = self._final()
        assert r.status == 200, r.status
        self.sip.close()
        self.rtp.close()


def test_rtp_from_another_address_is_never_heard_nor_answered(switch_factory, phones, tmp_path):
    """Before the fix the first source to send to a leg's port was latched, and any source again after 1 s of
    the phone's silence: the attacker's tone reached the other party and the call's audio reached the
    attacker. Now it is dropped before the phone's first packet and during a pause in the phone's audio.
    The caller is a raw-socket phone (it really pauses: 3 s without a packet); the callee is pjsua2."""
    ports = rtp_range(100)
    sw = switch_factory(extra=media_extra(ports))
    (b,) = register(sw, phones, "1002")
    b.auto_answer(code=200)
    attacker = Attacker(ports, sw.proc.pid)
    attacker.start()                              # spraying before the call exists: before any phone's packet
    a = RawCaller(sw.port, "1001", sw.extensions["1001"])
    first, second = audio.melody(2.0, seed=21), audio.melody(2.0, seed=22)
    try:
        wait_for(lambda: attacker.rounds > 30, timeout=10)
        a.call("1002")
        cb = b.wait_event("incoming", timeout=15)["call"]
        b.wait_call_state(cb, "CONFIRMED", timeout=15)
        b.wait_event("media_state", call=cb, active=True, timeout=10)
        b.record(cb, tmp_path / "b_heard.wav")
        a.silent(0.5)                             # under attack before a's first packet
        sprayed_before_talk = list(attacker.ports)  # the call's ports (and any spares) found and sprayed by now
        a.talk(first)
        a.silent(3.0)                             # the pause: the attacker has the port to itself for 3 s
        after_pause = time.monotonic()
        a.talk(second)
        a.silent(0.5)                             # the jitter buffer's delay
        b.stop_record(cb)
        a.bye()
        b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    finally:
        attacker.stop()
    heard_b = audio.read_mono(tmp_path / "b_heard.wav")
    assert attacker.received == 0, (f"the switch sent {attacker.received} datagrams to the attacker "
                                    f"({attacker.other} came from other processes' ports)")
    level = band_level(heard_b, ATTACK_HZ)
    assert level < 0.005, f"b heard the attacker's tone (level {level:.3f}; the tone is 0.35)"
    # the phone was never shut out: b heard both of a's passages, and a still got b's stream after the pause
    assert audio.windowed_correlation(first, heard_b) > 0.7
    assert audio.windowed_correlation(second, heard_b) > 0.7
    assert sum(t > after_pause for t in a.rtp_in) > 50
    assert not re.search(r"127\.0\.0\.2", sw.log())  # never latched (SourceLatched is not even logged for it)
    # the caller leg's port was under attack before the phone's first packet (with the tick in-process the
    # spares were already sprayed before the call; a media worker binds the port when the call takes it)
    assert a.remote_rtp is not None and a.remote_rtp[1] in sprayed_before_talk, (a.remote_rtp, sprayed_before_talk)


def test_a_port_held_by_another_program_does_not_fail_the_call(switch_factory, phones, tmp_path):
    """The known bug: the switch named a port in its SDP that another program held, the bind failed and the
    call was hung up ("media port N unusable" -> PortFailed). Seven of the range's ten pairs are held before
    the switch starts; calls use the three others, audio both ways."""
    ports = rtp_range(20)
    lo = int(ports.split("-")[0])
    held = []
    for k in range(7):                            # the lowest seven pairs: the RTP port of some, RTCP of others
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", lo + 2 * k + (k & 1)))
        held.append(s)
    try:
        sw = switch_factory(extra=media_extra(ports))
        a, b = register(sw, phones, "1001", "1002")
        for round_ in range(2):                   # twice: released ports are usable again, held ones never
            ca, cb = connect(a, b)
            src_a = audio.write_wav(tmp_path / f"a{round_}.wav", audio.melody(2.0, seed=31 + round_))
            src_b = audio.write_wav(tmp_path / f"b{round_}.wav", audio.melody(2.0, seed=41 + round_))
            b.record(cb, tmp_path / f"b_heard{round_}.wav")
            a.record(ca, tmp_path / f"a_heard{round_}.wav")
            a.play(ca, src_a)
            b.play(cb, src_b)
            time.sleep(3.0)                       # pacing: 2 s of audio each way in real time, and the jitter buffer
            a.stop_record(ca)
            b.stop_record(cb)
            a.hangup(ca)
            b.wait_call_state(cb, "DISCONNECTED", timeout=10)
            assert audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp_path / f"b_heard{round_}.wav")) > 0.7
            assert audio.windowed_correlation(audio.read_mono(src_b), audio.read_mono(tmp_path / f"a_heard{round_}.wav")) > 0.7
        assert "RTP port failed" not in sw.log() and "could not be opened" not in sw.log()
        assert sw.stop() == 0
        assert re.search(r"media: 0 endpoint\(s\) open, 0 RTP port\(s\) in use at shutdown", sw.log()), sw.log()[-1500:]
    finally:
        for s in held:
            s.close()


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("workers", [0, 1])
def test_media_works_again_after_file_descriptors_ran_out(switch_factory, phones, tmp_path, workers):
    """Before the fix "Too many open files" was taken for "address in use": every port tried while the process
    was out of descriptors was retired for good, and once all were, every call got 503 until a restart.
    The switch's descriptor limit is lowered to what it has open plus a few, a flood of TCP connections takes
    the rest, calls are tried meanwhile; after the flood leaves, a call has audio both ways. With the tick in
    the switch's process (workers = 0) its edge cannot open the legs' sockets; with a media worker the
    switch's own test-bind of the port (before it names it in an SDP) cannot, and the worker is never asked."""
    ports = rtp_range(12)                         # six pairs: three calls' worth of retired ports before the fix
    # no spares: every leg's port is bound when the call needs it, so the calls meet the exhaustion (with
    # spares, calls go on while they last: tests/test_media_ports.py)
    sw = switch_factory(extra=media_extra(ports, f"spare_ports = 0\nworkers = {workers}\n"))
    a, b = register(sw, phones, "1001", "1002")
    pid = sw.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (_open_fds(pid) + 4, hard))
    flood: list[socket.socket] = []
    try:
        for _ in range(40):                       # more connections than the switch has descriptors left
            c = socket.create_connection(("127.0.0.1", sw.port), timeout=5)
            flood.append(c)
        wait_for(lambda: _open_fds(pid) >= resource.prlimit(pid, resource.RLIMIT_NOFILE)[0] - 1, timeout=10)
        codes = []
        for _ in range(4):                        # calls while no descriptor is left: refused with 503
            b.clear_events()
            b.auto_answer(code=200)
            call = a.call(f"sip:1002@{DOMAIN}")
            ev = a.wait_call_state(call, "DISCONNECTED", timeout=20)
            codes.append(ev.get("code"))
        assert codes == [503] * 4, codes
    finally:
        for c in flood:
            c.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))   # the flood has left
    sw.wait_log(r"(media port \d+ not opened|no RTP socket can be opened now): .*Too many open files", timeout=5)
    assert "unusable" not in sw.log()             # no port was retired for it
    time.sleep(1.1)                               # pacing: sockets are tried again 1 s after the last failure
    ca, cb = connect(a, b)
    src_a = audio.write_wav(tmp_path / "a.wav", audio.melody(2.0, seed=51))
    b.record(cb, tmp_path / "b_heard.wav")
    a.play(ca, src_a)
    time.sleep(3.0)                               # pacing: 2 s of audio in real time, and the jitter buffer
    b.stop_record(cb)
    a.hangup(ca)
    b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    assert audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp_path / "b_heard.wav")) > 0.7
