"""DTMF: RFC 4733 from SIPp's pcaps and our own sender, in-band detection of all 16 digits with noise and
twist limits, and no false digits on speech (espeak-ng) or music."""
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from media import DtmfReceived, MediaConfig, MediaEngine
from media import rtp
from media.dtmf import EVENTS, Rfc4733Receiver, ToneDetector, digit_tone, parse_event
from media.playback import load_audio
from media.testing import Clock, Phone, run_ticks

PCAPS = Path("/usr/share/sip-tester")


def pcap_udp(path):
    """(src ip, src port, udp payload, time) of each UDP/IPv4 packet in a classic pcap (Ethernet link)."""
    d = path.read_bytes()
    magic = struct.unpack_from("<I", d)[0]
    e = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    off, out = 24, []
    while off + 16 <= len(d):
        sec, usec, incl, _ = struct.unpack_from(e + "IIII", d, off)
        pkt = d[off + 16:off + 16 + incl]
        off += 16 + incl
        if struct.unpack_from("!H", pkt, 12)[0] != 0x0800:
            continue
        ihl = (pkt[14] & 0x0F) * 4
        if pkt[23] != 17:
            continue
        ip = ".".join(str(b) for b in pkt[26:30])
        sport, _, ulen = struct.unpack_from("!HHH", pkt, 14 + ihl)
        out.append((ip, sport, pkt[14 + ihl + 8:14 + ihl + ulen], sec + usec / 1e6))
    return out


PCAP_DIGITS = {f"dtmf_2833_{d}.pcap": d for d in "0123456789"}
PCAP_DIGITS.update({"dtmf_2833_pound.pcap": "#", "dtmf_2833_star.pcap": "*"})


@pytest.mark.skipif(not PCAPS.is_dir(), reason="sip-tester pcaps not installed (apt-get install sip-tester)")
def test_rfc4733_from_sipp_pcaps_through_engine():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    for name, digit in sorted(PCAP_DIGITS.items()):
        pkts = pcap_udp(PCAPS / name)
        assert len(pkts) == 10
        ip, port = pkts[0][0], pkts[0][1]
        phone = Phone((ip, port))
        ep = eng.allocate("pcap")
        eng.answer(ep, phone.sdp())
        events = []
        t0 = pkts[0][3]
        for _, _, payload, t in pkts:
            assert rtp.parse(payload).pt == 101
            eng.datagram_received(ep.port, payload, (ip, port), clock.t + (t - t0))
            events += eng.tick(clock.t + (t - t0)).events
        for _ in range(50):                                  # nothing more comes later (no timeout duplicate)
            clock.t += 0.02
            events += eng.tick(clock.t).events
        digits = [e for e in events if isinstance(e, DtmfReceived)]
        assert [(d.digit, d.source) for d in digits] == [(digit, "rfc4733")], name
        last = parse_event(rtp.parse(pkts[-1][2]).payload)
        assert digits[0].duration_ms == last[3] // 8
        eng.release(ep)


def test_rfc4733_sender_round_trip_and_lost_end():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    phone = Phone(("10.0.0.9", 4000))
    ep = eng.allocate("x")
    eng.answer(ep, phone.sdp())
    eng.send_dtmf(ep, "159#*D0", duration_ms=100)
    run_ticks(eng, clock, [(phone, ep)], 100)
    rx = Rfc4733Receiver()
    got, starts, ends = [], set(), 0
    for d in phone.inbox:
        p = rtp.parse(d)
        if p.pt == 101:
            ev, end, vol, dur = parse_event(p.payload)
            ends += end
            if p.marker:
                starts.add(p.ts)
            got += rx.on_packet(p.ts, p.payload, 0.0)
    assert "".join(g.digit for g in got) == "159#*D0" and all(g.duration_ms == 100 for g in got)
    assert ends == 3 * 7 and len(starts) == 7                 # end packet three times, marker on each start
    seqs = [rtp.parse(d).seq for d in phone.inbox]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:]))
    # an event whose end packets are all lost still yields its digit once, after a timeout
    rx = Rfc4733Receiver()
    assert rx.on_packet(500, bytes([5, 10, 0, 160]), 0.0) == []
    assert rx.on_packet(500, bytes([5, 10, 1, 64]), 0.02) == []
    assert rx.poll(0.1) is None and rx.poll(0.6).digit == "5" and rx.poll(2.0) is None


def detect(sig, det=None):
    det = det or ToneDetector(1)
    sig = np.concatenate([sig, np.zeros(160 * 4)])
    out = []
    for i in range(len(sig) // 160):
        out += [d for _, d in det.process(sig[None, i * 160:(i + 1) * 160].astype(np.float32))]
    return out


def sequence(digits, on_ms=60, off_ms=60, level=5000.0, twist_db=0.0, rng=None):
    parts = []
    for d in digits:
        parts += [digit_tone(d, on_ms, level, twist_db), np.zeros(8 * off_ms)]
    lead = np.zeros(int(rng.integers(0, 160))) if rng is not None else np.zeros(0)
    return np.concatenate([lead] + parts)


def test_inband_all_16_digits_with_noise():
    rng = np.random.default_rng(7)
    for level, noise in ((8000, 0), (3000, 300), (1500, 150)):     # down to ~ -24 dBm0 per tone, 17 dB SNR
        sig = sequence(EVENTS, rng=rng, level=level)
        sig = sig + rng.normal(0, noise, len(sig)) if noise else sig
        got = detect(sig)
        assert "".join(d.digit for d in got) == EVENTS, (level, noise)
        assert all(40 <= d.duration_ms <= 100 for d in got)


def test_inband_repeated_digit_needs_the_gap():
    got = detect(sequence("5555", 70, 50, rng=np.random.default_rng(1)))
    assert "".join(d.digit for d in got) == "5555"


@pytest.mark.parametrize("twist,ok", [(0, True), (6, True), (-3, True), (10, False), (-6, False)])
def test_inband_twist_limits(twist, ok):
    got = detect(sequence("1593", 80, 80, level=6000, twist_db=twist))
    assert ("".join(d.digit for d in got) == "1593") if ok else not got


def test_inband_rejects_too_quiet_and_too_short():
    assert detect(sequence("123", level=300)) == []          # ≈ -37 dBm0 per tone
    assert detect(sequence("123", on_ms=15, off_ms=60)) == []


def music(seconds=30.0, seed=3):
    """Music-like audio: chords of harmonic-rich notes with a bass line and a melody."""
    rng = np.random.default_rng(seed)
    rate, out = 8000, []
    for _ in range(int(seconds * 4)):
        t = np.arange(2000) / rate
        root = 196.0 * 2 ** (int(rng.integers(0, 24)) / 12)
        shape = [0, 4, 7] if rng.random() < 0.5 else [0, 3, 7, 10]
        notes = [root * 2 ** (s / 12) for s in shape] + [root / 2, root * 2 ** (int(rng.integers(12, 28)) / 12)]
        env = np.minimum(1, t / 0.01) * np.exp(-t * 2)
        y = sum(np.sin(2 * np.pi * f * h * t + rng.random() * 6) / h ** 1.5 for f in notes for h in (1, 2, 3, 4))
        out.append(2500 * env * y)
    return np.concatenate(out)


def test_no_false_digits_on_music():
    m = music()
    for gain in (0.3, 1.0, 3.0):
        assert detect(m * gain) == []


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng not installed (apt-get install -y espeak-ng)")
    d = tmp_path_factory.mktemp("speech")
    texts = [("en", "Thank you for calling. For billing press one, for technical support press two, to speak to "
                    "an operator press zero. Your call is important to us, please stay on the line."),
             ("en-us+f3", "Hello, is anybody there? I would like to check my order number three five nine two "
                          "eight. Yes, that's right. Mmm, okay, wonderful, thank you so much, goodbye."),
             ("de", "Guten Tag, Sie sind mit dem Kundendienst verbunden. Bitte haben Sie einen Moment Geduld.")]
    out = []
    for i, (voice, text) in enumerate(texts):
        f = d / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(f), text], check=True, capture_output=True)
        out.append(load_audio(f))
    return out


def test_no_false_digits_on_speech(speech):
    for s in speech:
        for gain in (0.3, 1.0, 3.0):
            assert detect(s * gain) == []


def test_inband_through_engine_with_speech_around(speech):
    """A phone without telephone-event: digits in its audio reach the controller as events, once each."""
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    phone = Phone(("10.0.0.3", 4000), te_pt=None)
    ep = eng.allocate("ivr")
    eng.answer(ep, phone.sdp())
    sig = np.concatenate([speech[0][:8000 * 3], sequence("42#", 80, 80), speech[1][:8000 * 2]])
    sig = np.concatenate([sig, np.zeros(160 * 10)])
    events = []
    run_ticks(eng, clock, [(phone, ep)], len(sig) // 160,
              source=lambda p, i: sig[i * 160:(i + 1) * 160], events=events)
    got = [e for e in events if isinstance(e, DtmfReceived)]
    assert "".join(e.digit for e in got) == "42#" and {e.source for e in got} == {"inband"}
