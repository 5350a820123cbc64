"""Prompt texts, number speaking, and ``softswitch prompts build`` (cache, recorded override, tone)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ivr.prompts import (
    LANGUAGES, NUMBER_PROMPTS, agent_announcement, available_prompts, load_prompt_texts, queue_announcement,
    say_digits, say_number,
)
from ivr.prompts_build import build_prompts, main, tone
from ivr.testing import PROMPTS

REQUIRED = ["welcome", "main-menu", "invalid", "timeout", "goodbye", "voicemail-greeting", "beep", "enter-callback",
            "you-are-number", "in-the-queue", "expected-wait", "minutes", "agent", "is-serving-you",
            "survey-question", "thanks", "blacklisted", "queue-unavailable"] + [f"digit_{i}" for i in range(10)]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_shipped_texts_cover_the_example_and_numbers(lang):
    names = available_prompts(PROMPTS, lang)
    assert set(REQUIRED) <= names
    assert set(NUMBER_PROMPTS[lang]) <= names
    assert load_prompt_texts(PROMPTS, lang)["beep"].tone_hz == 1000


def test_say_digits():
    assert say_digits("zh", "1021") == ["digit_1", "digit_0", "digit_2", "digit_1"]
    assert say_digits("en", "+86-10") == ["digit_8", "digit_6", "digit_1", "digit_0"]
    assert say_digits("en", "") == []


@pytest.mark.parametrize("n,en,zh", [
    (0, ["digit_0"], ["digit_0"]),
    (7, ["digit_7"], ["digit_7"]),
    (10, ["num_10"], ["num_10"]),
    (15, ["num_15"], ["num_10", "digit_5"]),
    (20, ["num_20"], ["digit_2", "num_10"]),
    (21, ["num_20", "digit_1"], ["digit_2", "num_10", "digit_1"]),
    (100, ["digit_1", "num_100"], ["digit_1", "num_100"]),
    (105, ["digit_1", "num_100", "digit_5"], ["digit_1", "num_100", "digit_0", "digit_5"]),
    (115, ["digit_1", "num_100", "num_15"], ["digit_1", "num_100", "digit_1", "num_10", "digit_5"]),
    (999, ["digit_9", "num_100", "num_90", "digit_9"], ["digit_9", "num_100", "digit_9", "num_10", "digit_9"]),
    (1234, ["digit_1", "digit_2", "digit_3", "digit_4"], ["digit_1", "digit_2", "digit_3", "digit_4"]),
])
def test_say_number(n, en, zh):
    assert say_number("en", n) == en
    assert say_number("zh", n) == zh
    assert say_number("yue", n) == zh


def test_every_number_prompt_exists_in_every_language():
    for lang in LANGUAGES:
        names = available_prompts(PROMPTS, lang)
        for n in range(0, 1000, 7):
            assert set(say_number(lang, n)) <= names, (lang, n)


def test_announcements():
    assert queue_announcement("en", 3, 5) == ["you-are-number", "digit_3", "in-the-queue", "expected-wait",
                                              "digit_5", "minutes"]
    assert queue_announcement("zh", None, 0) == ["expected-wait", "digit_1", "minutes"]  # never "0 minutes"
    assert agent_announcement("yue", "2001") == ["agent", "digit_2", "digit_0", "digit_0", "digit_1",
                                                  "is-serving-you"]


def test_malformed_prompt_file(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "prompts.toml").write_text('x = 5\n')
    with pytest.raises(ValueError, match="x: expected"):
        load_prompt_texts(tmp_path, "en")


def test_tone_is_clean():
    x = tone(1000, 500)
    assert len(x) == 4000 and abs(x[0]) < 1 and abs(x[-1]) < 50 and np.abs(x).max() <= 32767 * 0.3 + 1


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


@needs_espeak
def test_build_cache_recorded_override_and_removal(tmp_path):
    import soundfile as sf
    src, out = tmp_path / "prompts", tmp_path / "out"
    (src / "en").mkdir(parents=True)
    (src / "en" / "prompts.toml").write_text('hello = "Hello."\nbye = "Goodbye."\nbeep = { tone = 800, ms = 200 }\n')
    r = build_prompts(src, out, ["en"], engine="espeak-ng")
    assert sorted(r.built) == ["en/beep", "en/bye", "en/hello"] and not r.failed and r.engine == "espeak-ng"
    info = sf.info(str(out / "en" / "hello.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16") and info.duration > 0.2
    assert sf.info(str(out / "en" / "beep.wav")).frames == 1600

    r = build_prompts(src, out, ["en"], engine="espeak-ng")
    assert r.built == [] and len(r.cached) == 3 and r.engine == ""

    (src / "en" / "prompts.toml").write_text('hello = "Hello there."\nbeep = { tone = 800, ms = 200 }\n')
    sf.write(str(src / "en" / "beep.wav"), np.zeros(4410, dtype=np.int16), 44100)  # a recorded beep wins
    r = build_prompts(src, out, ["en"], engine="espeak-ng")
    assert sorted(r.built) == ["en/beep", "en/hello"] and r.recorded == ["en/beep"] and r.removed == ["en/bye"]
    assert not (out / "en" / "bye.wav").exists()
    assert sf.info(str(out / "en" / "beep.wav")).samplerate == 8000
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["en/hello"]["text"] == "Hello there." and manifest["en/beep"]["source"] == "recorded"


@needs_espeak
def test_build_all_shipped_prompts_cli(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["build", "--prompts", str(PROMPTS), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert "0 failed" in line
    for lang in LANGUAGES:
        assert (out / lang / "welcome.wav").exists() and (out / lang / "digit_9.wav").exists()
    assert main(["build", "--prompts", str(PROMPTS), "--out", str(out)]) == 0
    assert " 0 built" in capsys.readouterr().out.replace(":", " ")


def test_pyttsx3_engine_when_available(tmp_path):
    pytest.importorskip("pyttsx3")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    src = tmp_path / "p"
    (src / "zh").mkdir(parents=True)
    (src / "zh" / "prompts.toml").write_text('a = "你好"\nb = "再见"\n', encoding="utf-8")
    r = build_prompts(src, tmp_path / "o", ["zh"], engine="pyttsx3")
    assert r.engine == "pyttsx3" and sorted(r.built) == ["zh/a", "zh/b"], r.failed


@needs_espeak
def test_auto_falls_back_to_espeak_ng_when_pyttsx3_fails(tmp_path, monkeypatch):
    import ivr.prompts_build as pb

    def broken(jobs, timeout=300):
        raise RuntimeError("pyttsx3: no audio driver")
    monkeypatch.setattr(pb, "_pyttsx3", broken)
    monkeypatch.setattr(pb, "_pyttsx3_available", lambda: True)
    (tmp_path / "p" / "yue").mkdir(parents=True)
    (tmp_path / "p" / "yue" / "prompts.toml").write_text('a = "多謝"\n', encoding="utf-8")
    r = build_prompts(tmp_path / "p", tmp_path / "o", ["yue"])
    assert r.engine == "espeak-ng" and r.built == ["yue/a"]


def test_nothing_can_speak_reports_failures(tmp_path, monkeypatch):
    import ivr.prompts_build as pb
    monkeypatch.setattr(pb.shutil, "which", lambda name: None)
    monkeypatch.setattr(pb, "_pyttsx3_available", lambda: False)
    (tmp_path / "p" / "en").mkdir(parents=True)
    (tmp_path / "p" / "en" / "prompts.toml").write_text('a = "hi"\nbeep = { tone = 900 }\n')
    r = build_prompts(tmp_path / "p", tmp_path / "o", ["en"])
    assert r.built == ["en/beep"] and r.failed[0][0] == "en/a" and "espeak-ng not found" in r.failed[0][1]
    assert main(["build", "--prompts", str(tmp_path / "p"), "--out", str(tmp_path / "o")]) == 1
