"""Answering-machine detection (dialler.amd): Asterisk app_amd's energy algorithm on synthetic audio and on
real speech from espeak-ng (a short "Hello?" against a voicemail greeting), fed as the switch feeds it:
200 ms chunks with their arrival time."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialler.amd import AmdDetector, AmdParams, Cause, Decision, GreetingEnd, Verdict

from .audio import read_mono

RATE = 8000
CHUNK = 1600   # 200 ms, the media engine's AudioChunk
DEFAULTS = AmdParams()

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def noise(seconds: float, level: float = 3000.0, seed: int = 1) -> np.ndarray:
    """Voice-like energy: band-limited noise (mean |x| ~ 0.8 * level, far above the 256 threshold)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * level).astype(np.float32)


def silence(seconds: float, level: float = 20.0) -> np.ndarray:
    return noise(seconds, level, seed=2)   # line noise, well below the threshold


def tone(seconds: float, hz: float = 1000.0, level: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def run(audio: np.ndarray, params: AmdParams = DEFAULTS, start: float = 100.0) -> tuple[Decision | None, float]:
    """Feed ``audio`` in 200 ms chunks at the pace it would arrive; the decision and the time it came."""
    det = AmdDetector(params, start)
    for i in range(0, len(audio), CHUNK):
        now = start + (i + CHUNK) / RATE
        d = det.feed(audio[i:i + CHUNK], now)
        if d is not None:
            return d, now
    return det.decision, start + len(audio) / RATE


def test_short_hello_then_silence_is_human() -> None:
    d, at = run(np.concatenate((silence(0.3), noise(0.4), silence(2.0))))
    assert d is not None and d.verdict is Verdict.HUMAN and d.cause is Cause.HUMAN
    assert d.detail == "HUMAN-800-800"
    assert d.words == 1 and d.voice_ms == 400
    assert at - 100.0 == pytest.approx(1.6, abs=0.2)   # 0.3 + 0.4 + 0.8 s of silence (the next 200 ms chunk)


def test_long_continuous_greeting_is_machine() -> None:
    d, at = run(np.concatenate((silence(0.2), noise(3.0), silence(1.0))))
    assert d is not None and (d.verdict, d.cause) == (Verdict.MACHINE, Cause.LONGGREETING)
    assert d.detail == "LONGGREETING-1500-1500" and d.words == 1
    assert at - 100.0 == pytest.approx(1.8, abs=0.2)   # decided while the greeting still plays


def test_many_words_is_machine() -> None:
    words = [np.concatenate((noise(0.15, seed=i), silence(0.2))) for i in range(6)]
    d, _ = run(np.concatenate((silence(0.2), *words, silence(1.0))))
    assert d is not None and (d.verdict, d.cause) == (Verdict.MACHINE, Cause.MAXWORDS)
    assert d.detail == "MAXWORDS-3-2" and d.words == 3   # more than 2: the third word decides


def test_two_words_then_silence_is_still_human() -> None:
    """"Yes, hello?": two words are within maximum_number_of_words."""
    d, _ = run(np.concatenate((silence(0.2), noise(0.2), silence(0.2), noise(0.3), silence(1.5))))
    assert d is not None and d.verdict is Verdict.HUMAN and d.words == 2


def test_initial_silence_is_machine() -> None:
    """Asterisk: initial_silence (2500 ms) of silence before any word is a MACHINE (cause INITIALSILENCE),
    decided before total_analysis_time's NOTSURE."""
    d, at = run(silence(3.0))
    assert d is not None and (d.verdict, d.cause) == (Verdict.MACHINE, Cause.INITIALSILENCE)
    assert d.detail == "INITIALSILENCE-2500-2500"
    assert at - 100.0 == pytest.approx(2.6, abs=0.11)


def test_short_blips_do_not_end_the_initial_silence() -> None:
    """A click shorter than min_word_length is not a word: it restarts the silence run, but no greeting."""
    audio = np.concatenate((silence(1.0), noise(0.06), silence(3.0)))
    d, _ = run(audio)
    assert d is not None and d.cause is Cause.INITIALSILENCE and d.words == 0


def test_one_long_word_is_machine_by_max_word_length() -> None:
    d, _ = run(noise(2.0), AmdParams(greeting=3000, maximum_word_length=1000))
    assert d is not None and (d.verdict, d.cause) == (Verdict.MACHINE, Cause.MAXWORDLENGTH)


def test_total_analysis_time_is_notsure() -> None:
    """Neither silence long enough nor voice long enough: NOTSURE TOOLONG at total_analysis_time."""
    p = AmdParams(greeting=10000, maximum_number_of_words=100)
    d, at = run(np.concatenate([np.concatenate((noise(0.12, seed=i), silence(0.3))) for i in range(20)]), p)
    assert d is not None and (d.verdict, d.cause) == (Verdict.NOTSURE, Cause.TOOLONG)
    assert d.analysed_ms == 5000


def test_the_clock_ends_the_analysis_without_audio() -> None:
    """No RTP at all (or stalled): the clock's deadline answers NOTSURE, NOAUDIODATA or TOOLONG."""
    det = AmdDetector(AmdParams(), 10.0)
    assert det.deadline == 15.0
    assert det.expired(14.9) is None
    d = det.expired(15.0)
    assert d is not None and (d.verdict, d.cause) == (Verdict.NOTSURE, Cause.NOAUDIODATA)
    assert det.feed(noise(0.2), 15.2) is None   # decided once
    det2 = AmdDetector(AmdParams(), 10.0)
    assert det2.feed(silence(0.2), 10.2) is None
    d2 = det2.expired(20.0)
    assert d2 is not None and d2.cause is Cause.TOOLONG


def test_chunks_of_any_size_give_the_same_decision() -> None:
    audio = np.concatenate((silence(0.3), noise(0.4), silence(2.0)))
    det = AmdDetector(AmdParams(), 0.0)
    got = None
    for i in range(0, len(audio), 333):   # not a multiple of the 160-sample frame
        got = got or det.feed(audio[i:i + 333], i / RATE)
    assert got is not None and got.detail == "HUMAN-800-800"


def test_parameters_change_the_decision() -> None:
    audio = np.concatenate((silence(0.2), noise(1.2), silence(1.5)))
    d, _ = run(audio)
    assert d is not None and d.verdict is Verdict.HUMAN
    d, _ = run(audio, AmdParams(greeting=1000))
    assert d is not None and d.cause is Cause.LONGGREETING
    quiet = noise(1.0, level=200.0)   # mean |x| ~160: silence at 256, voice at 100
    d, _ = run(quiet, AmdParams(initial_silence=800))
    assert d is not None and d.cause is Cause.INITIALSILENCE
    d, _ = run(quiet, AmdParams(silence_threshold=100, initial_silence=800))
    assert d is None


# ------------------------------------------------------------------- the end of the greeting (message)

def test_greeting_end_waits_for_silence_after_voice() -> None:
    g = GreetingEnd(256, 800)
    assert not g.feed(noise(1.0))
    assert not g.feed(silence(0.6))
    assert g.feed(silence(0.4)) and not g.beeped


def test_greeting_end_at_the_end_of_the_beep() -> None:
    """A machine's beep follows a short pause: the end of the tone is the moment to speak."""
    g = GreetingEnd(256, 800)
    assert not g.feed(np.concatenate((noise(1.0), silence(0.4), tone(0.5, 1000.0))))
    assert g.feed(silence(0.1)) and g.beeped


def test_voice_is_not_a_beep() -> None:
    g = GreetingEnd(256, 800)
    assert not g.feed(np.concatenate((noise(1.5), silence(0.1), noise(0.5))))
    assert not g.beeped


# ------------------------------------------------------------------------ real speech (espeak-ng)

@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    from ivr.tts import SpeechCache

    cache = SpeechCache(tmp_path_factory.mktemp("amd-tts"))
    texts = {
        "hello": "Hello?",
        "greeting": ("Hi, you have reached the voicemail of John Smith. I am not available to take your call "
                     "right now. Please leave your name, number and a short message after the tone."),
    }
    out: dict[str, np.ndarray] = {}
    for k, text in texts.items():
        x = read_mono(Path(cache.render(text, "en")))
        out[k] = (x * 32767.0).astype(np.float32) if np.abs(x).max() <= 1.0 else x.astype(np.float32)
    return out


@needs_espeak
def test_espeak_hello_is_human(speech: dict[str, np.ndarray]) -> None:
    d, _ = run(np.concatenate((silence(0.5), speech["hello"], silence(2.0))))
    assert d is not None and d.verdict is Verdict.HUMAN, d


@needs_espeak
def test_espeak_voicemail_greeting_is_machine(speech: dict[str, np.ndarray]) -> None:
    d, at = run(np.concatenate((silence(0.5), speech["greeting"], silence(1.0))))
    assert d is not None and d.verdict is Verdict.MACHINE, d
    assert d.cause in (Cause.LONGGREETING, Cause.MAXWORDS)
    assert at - 100.0 < 3.0   # decided well inside total_analysis_time, while the greeting plays
    g = GreetingEnd()
    tail = np.concatenate((speech["greeting"], silence(0.3), tone(0.6), silence(1.0)))
    ended = next((i for i in range(0, len(tail), CHUNK) if g.feed(tail[i:i + CHUNK])), None)
    assert ended is not None and g.beeped
    assert ended / RATE >= len(speech["greeting"]) / RATE   # never before the greeting ends


# ----------------------------------------------------------------------------------- configuration

def _outbound(raw: dict[str, Any]) -> Any:
    from base.schema import Context, Walker
    from dialler.config import OUTBOUND

    return Walker(Context("config.toml", Path("."))).table(OUTBOUND, raw, "outbound")


def test_settings_default_to_asterisk_and_a_campaign_overrides_them() -> None:
    ob = _outbound({"amd": {"greeting": 2000}, "campaigns": [
        {"name": "p", "mode": "predictive", "queue": "q", "amd": True,
         "amd_machine": "message", "amd_message": "reminder", "amd_settings": {"maximum_number_of_words": 3}},
        {"name": "n", "mode": "predictive", "queue": "q"}]})
    assert ob.amd.params() == AmdParams(greeting=2000)
    s = ob.amd_for(ob.campaign("p"))
    assert s is not None and (s.machine, s.message, s.greeting) == ("message", "reminder", 2000)
    assert s.params().maximum_number_of_words == 3
    assert ob.amd_for(ob.campaign("n")) is None and ob.amd_for(None) is None
    ob = _outbound({"amd": {"machine": "message", "message": "generic"}, "campaigns": [
        {"name": "p", "mode": "predictive", "queue": "q", "amd": True, "amd_message_text": "Dear {name}"}]})
    s = ob.amd_for(ob.campaign("p"))
    assert s is not None and (s.message, s.message_text) == ("", "Dear {name}")   # the campaign's own replaces


@pytest.mark.parametrize("raw, key", [
    ({"amd": {"greeting": 0}}, "outbound.amd.greeting"),
    ({"amd": {"grreeting": 1000}}, "outbound.amd.grreeting"),
    ({"amd": {"machine": "voicemail"}}, "outbound.amd.machine"),
    ({"amd": {"machine": "message"}}, "outbound.amd.message"),
    ({"amd": {"message": "m", "message_text": "t"}}, "outbound.amd.message_text"),
    ({"amd": {"message_text": "Dear {name"}}, "outbound.amd.message_text"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_message_text": "Dear {0"}]}, "outbound.campaigns[0].amd_message_text"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_settings": {"silence_threshold": 40000}}]}, "outbound.campaigns[0].amd_settings.silence_threshold"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_settings": {"words": 3}}]}, "outbound.campaigns[0].amd_settings.words"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q",
                     "amd_settings": {"greeting": 3000}}]}, "outbound.campaigns[0].amd_settings"),
    ({"campaigns": [{"name": "p", "mode": "preview", "queue": "q", "amd": True}]}, "outbound.campaigns[0].amd"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_machine": "message"}]}, "outbound.campaigns[0].amd_message"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_machine": "voicemail"}]}, "outbound.campaigns[0].amd_machine"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q", "amd": True,
                     "amd_settings": {"machine": "hangup"}}]}, "outbound.campaigns[0].amd_settings.machine"),
    ({"campaigns": [{"name": "p", "mode": "predictive", "queue": "q",
                     "amd_machine": "message"}]}, "outbound.campaigns[0].amd_machine"),
])
def test_bad_settings_name_the_key(raw: dict[str, Any], key: str) -> None:
    from base.schema import ConfigError

    with pytest.raises(ConfigError) as e:
        _outbound(raw)
    assert e.value.key == key and e.value.file == "config.toml", str(e.value)
