"""Anchored media end to end: real phones (pjsua2, SIPp) call through the switch process over
127.0.0.1 and the audio that arrives is checked, not just its presence."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

pytest.importorskip("pjsua2")

from tests.phones.steps import connect  # noqa: E402

from . import audio  # noqa: E402
from .conftest import DOMAIN, PCAP_DIR, SIPP_DIR, free_port, requires_sipp, sipp, sipp_ok, wait_for  # noqa: E402
from .e2e_configs import media_extra  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


def test_audio_flows_both_ways_through_the_anchored_switch(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path))
    a, ca, b, cb = connect(sw, phones)
    sdp_port = re.search(r"media anchored on 127\.0\.0\.1", sw.log())
    assert sdp_port, sw.log()[-2000:]
    src_a = audio.write_wav(tmp_path / "a_says.wav", audio.melody(2.0, seed=1))
    src_b = audio.write_wav(tmp_path / "b_says.wav", audio.melody(2.0, seed=2))
    b.record(cb, tmp_path / "b_heard.wav")
    a.record(ca, tmp_path / "a_heard.wav")
    a.play(ca, src_a)
    b.play(cb, src_b)
    time.sleep(3.0)  # pacing: 2 s of audio each way, in real time, and the jitter buffers' delay
    a.stop_record(ca)
    b.stop_record(cb)
    a.hangup(ca)
    b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    heard_b = audio.read_mono(tmp_path / "b_heard.wav")
    heard_a = audio.read_mono(tmp_path / "a_heard.wav")
    corr_ab, _ = audio.windowed_correlation(audio.read_mono(src_a), heard_b), 0
    corr_ba, _ = audio.windowed_correlation(audio.read_mono(src_b), heard_a), 0
    assert corr_ab > 0.8, f"b did not hear a: correlation {corr_ab:.2f}"
    assert corr_ba > 0.8, f"a did not hear b: correlation {corr_ba:.2f}"
    # and not each other's own voice (no echo through the mixer)
    assert audio.windowed_correlation(audio.read_mono(src_a), heard_a) < 0.3


def test_hold_plays_music_to_the_other_party_and_resume_restores_the_call(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path))
    a, ca, b, cb = connect(sw, phones)
    b.record(cb, tmp_path / "before.wav")
    time.sleep(1.5)  # pacing: record 1.5 s of the (silent) call before the hold
    b.stop_record(cb)
    a.hold(ca)
    sw.wait_log(r"caller put the call on hold")
    time.sleep(0.5)  # pacing: skip the switch-over to the music (the level is asserted from then on)
    b.record(cb, tmp_path / "held.wav")
    time.sleep(2.0)  # pacing: record 2 s of hold music
    b.stop_record(cb)
    a.unhold(ca)
    sw.wait_log(r"caller resumed the call")
    src = audio.write_wav(tmp_path / "after.wav", audio.melody(2.0, seed=3))
    b.record(cb, tmp_path / "resumed.wav")
    a.play(ca, src)
    time.sleep(3.0)  # pacing: a's 2 s of audio reach b in real time
    b.stop_record(cb)
    a.hangup(ca)
    silence = audio.rms(audio.read_mono(tmp_path / "before.wav")[2000:])
    music = audio.rms(audio.read_mono(tmp_path / "held.wav")[2000:])
    assert silence < 0.01 and music > 0.02, (silence, music)
    corr = audio.windowed_correlation(audio.read_mono(src), audio.read_mono(tmp_path / "resumed.wav"))
    # pjsua 2.15 time-warps its stream for a few seconds after an unhold (seen as ~5 % drift in its
    # packets); the switch passes what it gets, so the bar is "clearly a's audio", not sample-exact
    assert corr > 0.6, f"after resume b does not hear a: {corr:.2f}"


def test_inband_dtmf_from_a_phone_is_detected_exactly(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path))
    a, ca, b, cb = connect(sw, phones)
    digits = "159#*0"
    a.play(ca, audio.write_wav(tmp_path / "dtmf.wav", audio.dtmf_wav(digits)))
    wait_for(lambda: len(re.findall(r"DTMF \S from caller \(inband", sw.log())) >= len(digits))
    time.sleep(0.5)  # pacing: the tones' trailing half second of silence (no extra digit may appear in it)
    a.hangup(ca)
    sw.wait_log(r"ended: ")
    got = "".join(re.findall(r"DTMF (\S) from caller \(inband", sw.log()))
    assert got == digits, sw.log()[-3000:]


def keep_sending(phone, call, tmp: Path) -> None:
    """pjsua with the null sound device stops sending RTP about a second into a call when nothing plays
    into it, and its RFC 4733 digits stop with it (on a busy machine that second is gone before the
    keys are pressed: its log shows "Sending DTMF digit" for the first one or two only): a quiet hiss."""
    import numpy as np
    hiss = (np.random.default_rng(3).standard_normal(8000) * 0.002).astype(np.float32)
    phone.play(call, audio.write_wav(tmp / "hiss.wav", hiss), loop=True)


def test_rfc4733_dtmf_from_a_phone_is_detected(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path))
    a, ca, b, cb = connect(sw, phones)
    keep_sending(a, ca, tmp_path)
    for n, digit in enumerate("2580", 1):  # one key at a time, each once the switch has the one before
        a.dtmf(ca, digit)
        wait_for(lambda n=n: len(re.findall(r"DTMF \S from caller \(rfc4733", sw.log())) >= n)
    a.hangup(ca)
    sw.wait_log(r"ended: ")
    got = "".join(re.findall(r"DTMF (\S) from caller \(rfc4733", sw.log()))
    assert got == "2580", sw.log()[-3000:]
    assert "inband" not in sw.log()  # the tones RFC 4733 describes are not counted twice


def test_recording_holds_each_party_on_its_own_channel(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path, record="all"))
    a, ca, b, cb = connect(sw, phones)
    src_a = audio.write_wav(tmp_path / "a_says.wav", audio.melody(2.5, seed=11))
    src_b = audio.write_wav(tmp_path / "b_says.wav", audio.melody(2.5, seed=12))
    a.play(ca, src_a)
    time.sleep(0.2)  # pacing: the two parties' audio do not start in the same instant
    b.play(cb, src_b)
    time.sleep(3.5)  # pacing: 2.5 s of audio from each party, in real time
    a.hangup(ca)
    path = Path(sw.wait_log(r"recording to (\S+\.wav)").group(1))
    sw.wait_log(r"ended: ")
    index_path = tmp_path / "recordings" / "index.jsonl"
    wait_for(lambda: index_path.exists() and any(                 # the file is closed (on the media's job
        e.get("file") == path.name and e.get("status") == "complete"  # runner) and its index line written
        for e in map(json.loads, index_path.read_text().splitlines())))
    import soundfile as sf
    info = sf.info(str(path))
    assert info.channels == 2 and info.samplerate == 8000
    left, right = audio.read_mono(path, channel=0), audio.read_mono(path, channel=1)
    assert audio.windowed_correlation(audio.read_mono(src_a), left) > 0.8   # caller on the left
    assert audio.windowed_correlation(audio.read_mono(src_b), right) > 0.8  # callee on the right
    assert audio.windowed_correlation(audio.read_mono(src_a), right) < 0.3
    index = (tmp_path / "recordings" / "index.jsonl").read_text()
    assert path.name in index


@pytest.mark.slow
@requires_sipp
@pytest.mark.skipif(not (PCAP_DIR / "dtmf_2833_1.pcap").exists(), reason="SIPp RTP pcaps not installed")
def test_sipp_rfc4733_pcaps_are_detected_digit_for_digit(switch_factory, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path))
    port = free_port()
    r = sipp("register.xml", sw.addr, "-s", "1002", "-au", "1002", "-ap", sw.extensions["1002"],
             "-key", "domain", DOMAIN, "-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(port),
             "-key", "expires", "300", cwd=tmp_path)
    sipp_ok(r, tmp_path)
    callee = sipp("callee.xml", sw.addr, "-p", str(port), cwd=tmp_path, background=True, timeout=30)
    digits = "1234567890*#"
    names = {"*": "star", "#": "pound"}
    plays = "".join(
        f'  <nop><action><exec play_pcap_audio="{PCAP_DIR}/dtmf_2833_{names.get(d, d)}.pcap"/></action></nop>\n'
        f'  <pause milliseconds="700"/>\n' for d in digits)
    scenario = tmp_path / "caller_dtmf.xml"
    scenario.write_text((SIPP_DIR / "caller.xml").read_text().replace(
        '  <pause milliseconds="300"/>', plays + '  <pause milliseconds="500"/>'))
    r = sipp(scenario, sw.addr, "-s", "1002", "-au", "1001", "-ap", sw.extensions["1001"],
             "-key", "domain", DOMAIN, "-key", "caller", "1001", cwd=tmp_path, timeout=30)
    sipp_ok(r, tmp_path)
    callee.communicate(timeout=20)
    sw.wait_log(r"ended: ")
    got = "".join(re.findall(r"DTMF (\S) from caller \(rfc4733", sw.log()))
    assert got == digits, sw.log()[-3000:]


@pytest.mark.slow
@requires_sipp
def test_rtp_ports_are_all_released_after_many_calls(switch_factory, tmp_path):
    """50 SIPp calls (answered, refused busy, cancelled...) through the anchored switch: at the end
    no endpoint and no RTP port is left allocated."""
    sw = switch_factory(extra=media_extra(tmp_path))
    port = free_port()
    r = sipp("register.xml", sw.addr, "-s", "1002", "-au", "1002", "-ap", sw.extensions["1002"],
             "-key", "domain", DOMAIN, "-key", "contact_host", "127.0.0.1", "-key", "contact_port", str(port),
             "-key", "expires", "300", cwd=tmp_path)
    sipp_ok(r, tmp_path)
    callee = sipp("callee.xml", sw.addr, "-p", str(port), "-m", "50", cwd=tmp_path, background=True, timeout=60)
    # caller.xml, but each call lasts 50 ms instead of 300 ms before its BYE: the calls run one after
    # another (the callee is one extension: a second call would be busy) and the ports are allocated at
    # the answer either way (20 s of pauses were most of the test's 22 s)
    short = tmp_path / "caller_short.xml"
    text = (SIPP_DIR / "caller.xml").read_text()
    assert text.count('<pause milliseconds="300"/>') == 1
    short.write_text(text.replace('<pause milliseconds="300"/>', '<pause milliseconds="50"/>'))
    r = sipp(short, sw.addr, "-s", "1002", "-au", "1001", "-ap", sw.extensions["1001"],
             "-key", "domain", DOMAIN, "-key", "caller", "1001", "-m", "50", "-r", "10", "-l", "1",
             cwd=tmp_path, timeout=60)
    sipp_ok(r, tmp_path)
    callee.communicate(timeout=30)
    assert len(re.findall(r"1001 -> 1002 ended: caller hung up", sw.log())) == 50
    assert sw.stop() == 0
    assert re.search(r"media: 0 endpoint\(s\) open, 0 RTP port\(s\) in use at shutdown", sw.log()), sw.log()[-1500:]
