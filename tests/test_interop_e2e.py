"""Interop: two softphones the switch was not written against, baresip 1.0 and linphonec 5.1 (Debian
``baresip-core``, ``linphone-cli``), driven headless against the SHIPPED config.toml (only ports and
paths changed, and for the hotline its business hours): they register with the shipped defaults, call
each other with audio checked both ways, hold and resume, and a baresip caller goes through the hotline
with DTMF into the support queue, where an agent logged in from linphone (*11*2001) answers.

The drivers are tests/phones/baresip.py (ctrl_tcp, aufile/sndfile) and tests/phones/linphone.py
(linphonec's command language on stdin, ``soundcard use files``).
"""
from __future__ import annotations

import os
import re
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest

from tests.phones import baresip, linphone
from tests.phones.baresip import Baresip
from tests.phones.linphone import Linphone

from . import audio
from . import test_ivr_e2e
from .conftest import ROOT, free_port, rtp_low

pytestmark = [
    pytest.mark.e2e, pytest.mark.timeout(180),
    pytest.mark.skipif(not (baresip.available() and linphone.available()) and not os.environ.get("CI"),
                       reason="baresip / linphonec not installed (bin/setup --test installs baresip-core, linphone-cli)"),
]

sounds = test_ivr_e2e.sounds            # the fixture: the shipped prompts, built once per module
SHIPPED = ROOT / "config.toml"
DOMAIN = tomllib.loads(SHIPPED.read_text())["sip"]["domain"]
EXTS = {e["number"]: e["password"] for e in tomllib.loads(SHIPPED.read_text())["extensions"]}
# The shipped agents: 2001 (Alice) works at extension 1002, which linphone is here.
AGENT, AGENT_EXT = "2001", "1002"


def _sub(pattern: str, repl: str, text: str) -> str:
    new, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == 1, f"config.toml changed: {pattern!r} matched {n} times"
    return new


def shipped_config(port: int, sounds: Path, open_all_day: bool = False) -> str:
    """config.toml as shipped, on free ports, with the built prompts. ``open_all_day``: the hotline's
    hours node is open around the clock (shipped: Shanghai office hours, closed most of the UTC day)."""
    lo = rtp_low()
    text = SHIPPED.read_text()
    text = _sub(r'^listen = \["udp:127\.0\.0\.1:5060", "tcp:127\.0\.0\.1:5060"\]$',
                f'listen = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]', text)
    text = _sub(r"^#\[media\]$", "[media]", text)
    text = _sub(r'^#rtp_ports = ".*"$', f'rtp_ports = "{lo}-{lo + 99}"', text)
    text = _sub(r'^#listen = "127\.0\.0\.1:8080"', f'listen = "127.0.0.1:{free_port()}"', text)
    text = _sub(r'^prompts_dir = "prompts"', f'prompts_dir = "{ROOT / "prompts"}"', text)
    text = _sub(r'^sounds_dir = "var/prompts"', f'sounds_dir = "{sounds}"', text)
    if open_all_day:
        text = _sub(r"^hours = \[.*\]$", 'hours = ["daily 00:00-24:00"]', text)
        text = _sub(r"^holidays = \[.*\]", "holidays = []", text)
    return text


@pytest.fixture
def shipped_switch(switch_factory, sounds):
    def make(open_all_day: bool = False):
        port = free_port()
        return switch_factory(EXTS, port=port, config_text=shipped_config(port, sounds, open_all_day))
    return make


@pytest.fixture
def phones(tmp_path):
    """Factories for baresip and linphone phones registered to a switch; all closed at the end."""
    made: list[Baresip | Linphone] = []

    def bs(sw, number: str, name: str = "baresip") -> Baresip:
        p = Baresip(name, tmp_path, number, sw.extensions[number], DOMAIN, sw.port)
        made.append(p)
        return p

    def lp(sw, number: str, name: str = "linphone") -> Linphone:
        p = Linphone(name, tmp_path, number, sw.extensions[number], DOMAIN, sw.port)
        made.append(p)
        return p

    yield bs, lp
    for p in reversed(made):
        p.close()


def registered(sw, number: str, agent: str) -> None:
    sw.wait_log(rf"registered {number} contact \S+ from udp:127\.0\.0\.1:\d+ for \d+s \({agent}", timeout=15)


def heard(reference: Path, recording: Path) -> float:
    return audio.windowed_correlation(audio.read_mono(reference), audio.read_mono(recording))


def hold_music_heard(recording: Path) -> float:
    """How well some second of ``recording`` matches the switch's hold music (an 8 s loop, entered
    anywhere): the best correlation of a loud one-second piece inside two turns of the loop."""
    from media.engine import default_hold_music
    loop = np.tile(default_hold_music() / 32768.0, 2)
    got = audio.read_mono(recording)
    pieces = [got[i:i + audio.RATE] for i in range(0, len(got) - audio.RATE, audio.RATE // 2)]
    return max((audio.best_correlation(p, loop)[0] for p in pieces if audio.rms(p) > 0.01), default=0.0)


# ------------------------------------------------------------------------------------- tests

def test_both_phones_register_with_the_shipped_defaults(shipped_switch, phones):
    sw = shipped_switch()
    bs_, lp_ = phones
    lp = lp_(sw, "1002")
    assert lp.wait_registered() == f'"1002" <sip:1002@{DOMAIN}>'
    registered(sw, "1002", "Linphonec/5")
    bs = bs_(sw, "1001")
    assert bs.wait_registered()["param"] == "200 OK"    # baresip 1.0 answers MD5 challenges only
    registered(sw, "1001", "baresip v1")
    assert " 403 " not in sw.log() and "banned" not in sw.log()


@pytest.mark.slow
def test_baresip_calls_linphone_audio_both_ways_hold_and_resume(shipped_switch, phones, tmp_path):
    """Talk both ways; linphone holds (baresip hears the switch's hold music), resumes, both talk again;
    baresip holds (linphone hears the music), resumes and is heard again."""
    sw = shipped_switch()
    bs_, lp_ = phones
    bs, lp = bs_(sw, "1001"), lp_(sw, "1002")
    bs.wait_registered()
    lp.wait_registered()
    talk = {n: audio.write_wav(tmp_path / f"{n}.wav", audio.melody(2.0, seed=70 + i))
            for i, n in enumerate(("bs1", "lp1", "bs2", "lp2", "bs3"))}
    before, mark = bs.dumps_now(), lp.mark()
    bs.dial("1002")
    call, caller = lp.wait_incoming(since=mark)
    assert "sip:1001@" in caller
    lp.answer(call)
    lp.wait_streams(call, since=mark)
    bs.wait_event("CALL_ESTABLISHED")
    sw.wait_log(r"1001 -> 1002 answered by 1002")
    lp.record(tmp_path / "lp_heard_1.wav")
    bs.play(talk["bs1"])
    lp.play(talk["lp1"])
    time.sleep(2.8)  # pacing: 2 s of audio each way cross the switch in real time (asserted below)

    mark = lp.mark()
    lp.pause(call)                                      # linphone holds: baresip hears the switch's music
    sw.wait_log(r"callee put the call on hold")
    time.sleep(2.5)  # pacing: hold music plays to baresip in real time (asserted below)
    lp.resume(call)
    sw.wait_log(r"callee resumed the call")
    lp.wait_streams(call, since=mark)
    lp.record(tmp_path / "lp_heard_2.wav")
    bs.play(talk["bs2"])
    lp.play(talk["lp2"])
    time.sleep(2.8)  # pacing: after the resume, 2 s of audio each way in real time (asserted below)

    lp.record(tmp_path / "lp_heard_3.wav")
    bs.hold()                                           # baresip holds: linphone hears the music
    sw.wait_log(r"caller put the call on hold")
    time.sleep(2.5)  # pacing: hold music plays to linphone in real time (asserted below)
    bs.resume()
    sw.wait_log(r"caller resumed the call")
    bs.play(talk["bs3"])
    time.sleep(2.8)  # pacing: after the resume, baresip's 2 s of audio reach linphone in real time
    mark = lp.mark()
    bs.hangup()
    lp.wait_ended(call, since=mark)
    bs.wait_event("CALL_CLOSED")
    sw.wait_log(r"1001 -> 1002 ended: caller hung up")

    got_bs = bs.received_audio(before)
    assert heard(talk["bs1"], tmp_path / "lp_heard_1.wav") > 0.8, "linphone did not hear baresip"
    assert heard(talk["lp1"], got_bs) > 0.8, "baresip did not hear linphone"
    assert hold_music_heard(got_bs) > 0.8, "baresip: no music on hold"
    assert heard(talk["bs2"], tmp_path / "lp_heard_2.wav") > 0.8, "linphone did not hear baresip after resume"
    assert heard(talk["lp2"], got_bs) > 0.8, "baresip did not hear linphone after resume"
    assert hold_music_heard(tmp_path / "lp_heard_3.wav") > 0.8, "linphone: no music on hold"
    assert heard(talk["bs3"], tmp_path / "lp_heard_3.wav") > 0.8, "linphone did not hear baresip after its resume"
    # (What baresip hears after its own hold cannot be checked: baresip 1.0 rebuilds its receive pipeline
    # on a hold without the sndfile filter that records it; `audio_debug` shows "aubridge <--- PCMU".)


def test_linphone_calls_baresip_audio_both_ways_and_dtmf(shipped_switch, phones, tmp_path):
    sw = shipped_switch()
    bs_, lp_ = phones
    bs, lp = bs_(sw, "1001"), lp_(sw, "1002")
    bs.wait_registered()
    lp.wait_registered()
    before, mark = bs.dumps_now(), lp.mark()
    call = lp.call("1001")
    incoming = bs.wait_event("CALL_INCOMING")
    assert "sip:1002@" in incoming["peeruri"], incoming
    bs.accept()
    bs.wait_event("CALL_ESTABLISHED")
    lp.wait_streams(call, since=mark)
    sw.wait_log(r"1002 -> 1001 answered by 1001")
    lp.record(tmp_path / "linphone_heard.wav")
    bs_says = audio.write_wav(tmp_path / "bs.wav", audio.melody(2.0, seed=81))
    lp_says = audio.write_wav(tmp_path / "lp.wav", audio.melody(2.0, seed=82))
    bs.play(bs_says)
    lp.play(lp_says)
    time.sleep(2.8)  # pacing: 2 s of audio each way cross the switch in real time (asserted below)
    for digit in "5#":                                  # RFC 4733 from linphone, seen by the switch
        lp.dtmf(digit)
        sw.wait_log(rf"DTMF {re.escape(digit)} from caller \(rfc4733", timeout=10)
    mark = lp.mark()
    lp.terminate(call)
    lp.wait_ended(call, since=mark)
    bs.wait_event("CALL_CLOSED")
    sw.wait_log(r"1002 -> 1001 ended: caller hung up")
    assert heard(bs_says, tmp_path / "linphone_heard.wav") > 0.8, "linphone did not hear baresip"
    assert heard(lp_says, bs.received_audio(before)) > 0.8, "baresip did not hear linphone"


def announcement_seconds(sounds: Path, lang: str, agent: str) -> float:
    from ivr.prompts import agent_announcement
    return sum(audio.seconds(sounds / lang / f"{name}.wav") for name in agent_announcement(lang, agent))


@pytest.mark.slow
def test_hotline_dtmf_into_the_queue_answered_by_a_linphone_agent(shipped_switch, phones, tmp_path, sounds):
    """baresip dials the hotline 4000, picks English (3) and an agent (0) with RFC 4733 digits, waits in
    the support queue; linphone at 1002 logged in as agent 2001 with *11*2001 answers; they talk; the
    agent hangs up and the caller rates the call (4) in the survey."""
    sw = shipped_switch(open_all_day=True)
    bs_, lp_ = phones
    bs, lp = bs_(sw, "1001"), lp_(sw, AGENT_EXT)
    bs.wait_registered()
    lp.wait_registered()

    mark = lp.mark()
    login = lp.call(f"*11*{AGENT}")                     # the switch answers, beeps and hangs up
    lp.wait_ended(login, timeout=15, since=mark)
    sw.wait_log(rf"feature code \*11\*{AGENT} from {AGENT_EXT}: ok")
    sw.wait_log(rf"agent {AGENT} is ready")

    def press(digit: str) -> None:
        """One key, then wait until the switch has it: digits never overtake each other or the IVR."""
        n = len(re.findall(rf"DTMF {re.escape(digit)} from caller", sw.log()))
        bs.send_dtmf(digit)
        deadline = time.monotonic() + 10
        while len(re.findall(rf"DTMF {re.escape(digit)} from caller", sw.log())) <= n:
            assert time.monotonic() < deadline, f"the switch never got DTMF {digit}:\n{sw.log()[-3000:]}"
            time.sleep(0.05)

    before, mark = bs.dumps_now(), lp.mark()
    bs.dial("4000")
    bs.wait_event("CALL_ESTABLISHED")
    sw.wait_log(r"1001 entered IVR flow main")
    press("3")                                          # English
    test_ivr_e2e.english_welcome_played(sw, sounds)
    press("0")                                          # an agent
    sw.wait_log(r"IVR hands 1001 to queue support", timeout=20)
    call, caller = lp.wait_incoming(timeout=20, since=mark)
    assert "1001" in caller
    lp.answer(call)
    lp.wait_streams(call, since=mark)
    sw.wait_log(rf"1001 connected to agent {AGENT} at {AGENT_EXT}", timeout=10)
    lp.record(tmp_path / "agent_heard.wav")
    # Pacing: "agent 2 0 0 1 is serving you" plays to both before they are bridged (no log line marks the
    # bridge); its length in real time plus a margin for the jitter buffers.
    time.sleep(announcement_seconds(sounds, "en", AGENT) + 1.0)
    caller_says = audio.write_wav(tmp_path / "caller.wav", audio.melody(2.0, seed=91))
    agent_says = audio.write_wav(tmp_path / "agent.wav", audio.melody(2.0, seed=92))
    bs.play(caller_says)
    lp.play(agent_says)
    time.sleep(2.8)  # pacing: 2 s of audio each way cross the switch in real time (asserted below)
    mark = lp.mark()
    lp.terminate(call)                                  # the agent hangs up: the caller rates the call
    lp.wait_ended(call, since=mark)
    sw.wait_log(r"1001 enters IVR flow survey", timeout=10)
    press("4")
    sw.wait_log(r"survey score 4", timeout=15)
    bs.wait_event("CALL_CLOSED", timeout=20)           # thanks, goodbye, the switch hangs up
    sw.wait_log(r"1001 -> 4000 ended: ")

    agent_heard = audio.read_mono(tmp_path / "agent_heard.wav")
    serving = audio.read_mono(sounds / "en" / "is-serving-you.wav")
    assert audio.best_correlation(serving, agent_heard)[0] > 0.6, "the agent did not hear the announcement"
    assert heard(caller_says, tmp_path / "agent_heard.wav") > 0.8, "the agent did not hear the caller"
    caller_heard = audio.read_mono(bs.received_audio(before))
    assert audio.best_correlation(serving, caller_heard)[0] > 0.6, "the caller did not hear the announcement"
    assert audio.windowed_correlation(audio.read_mono(agent_says), caller_heard) > 0.8, \
        "the caller did not hear the agent"
