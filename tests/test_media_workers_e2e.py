"""Media in worker processes (``[media] workers``, issue 18) with real phones: two pjsua2 phones hear each
other through a worker; a worker SIGKILLed mid-call ends that call cleanly (both phones get a BYE, the call
is recorded with its disposition), a new worker starts, the next call has audio, and no RTP port leaks."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from .conftest import DOMAIN, wait_for  # noqa: E402
from tests.phones.steps import connect  # noqa: E402

from .e2e_configs import media_extra  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


def _talk(a, ca, b, cb, tmp: Path, tag: str) -> tuple[float, float]:
    src_a = audio.write_wav(tmp / f"{tag}_a_says.wav", audio.melody(2.0, seed=1))
    src_b = audio.write_wav(tmp / f"{tag}_b_says.wav", audio.melody(2.0, seed=2))
    b.record(cb, tmp / f"{tag}_b_heard.wav")
    a.record(ca, tmp / f"{tag}_a_heard.wav")
    a.play(ca, src_a)
    b.play(cb, src_b)
    time.sleep(3.0)  # pacing: 2 s of audio each way, in real time, and the jitter buffers' delay
    a.stop_record(ca)
    b.stop_record(cb)
    return (audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp / f"{tag}_b_heard.wav")),
            audio.windowed_correlation(audio.read_mono(src_b), audio.read_mono(tmp / f"{tag}_a_heard.wav")))


def _worker_pids(log: str) -> list[int]:
    return [int(p) for p in re.findall(r"media worker \d+ started \(pid (\d+)\)", log)]


def test_a_worker_carries_audio_and_its_death_ends_the_call_cleanly(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path) + "workers = 2\n")
    sw.wait_log(r"media: 2 worker process\(es\)")
    wait_for(lambda: len(_worker_pids(sw.log())) == 2, timeout=10)
    a, ca, b, cb = connect(sw, phones)
    corr_ab, corr_ba = _talk(a, ca, b, cb, tmp_path, "first")
    assert corr_ab > 0.8 and corr_ba > 0.8, (corr_ab, corr_ba)

    # the worker that carries the call's legs
    index = sw.wait_log(r"media: leg \d+ \(.*?\) on worker (\d)").group(1)
    victim = int(re.findall(rf"media worker {index} started \(pid (\d+)\)", sw.log())[-1])
    os.kill(victim, signal.SIGKILL)
    sw.wait_log(rf"media worker \d \(pid {victim}\) died .*2 leg\(s\) lost", timeout=10)
    a.wait_call_state(ca, "DISCONNECTED", timeout=10)
    b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    sw.wait_log(r"ended: media lost \(worker died\)", timeout=10)
    wait_for(lambda: len(_worker_pids(sw.log())) == 3, timeout=15)   # restarted
    db = Path(sw.config_path).parent / "var" / "softswitch.db"

    def record() -> list:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute("SELECT disposition FROM call_records WHERE caller = '1001'").fetchall()

    rows = wait_for(record, timeout=10)
    assert rows == [("answered",)], rows      # ended like an RTP time-out: answered, then lost

    # a new call has audio both ways
    ca2 = a.call(f"sip:1002@{DOMAIN}")
    cb2 = b.wait_event("incoming", timeout=10)["call"]
    a.wait_call_state(ca2, "CONFIRMED", timeout=10)
    b.wait_call_state(cb2, "CONFIRMED", timeout=10)
    a2, b2 = a, b
    corr_ab, corr_ba = _talk(a2, ca2, b2, cb2, tmp_path, "second")
    assert corr_ab > 0.8 and corr_ba > 0.8, (corr_ab, corr_ba)
    a2.hangup(ca2)
    b2.wait_call_state(cb2, "DISCONNECTED", timeout=10)
    wait_for(lambda: len(re.findall(r"1001 -> 1002 ended: ", sw.log())) == 2, timeout=10)
    assert sw.stop() == 0
    log = sw.log()
    assert "media: 0 endpoint(s) open, 0 RTP port(s) in use at shutdown" in log, log[-3000:]
    assert len(re.findall(r"media worker \d: 0 endpoint\(s\) open, 0 RTP port\(s\) in use at shutdown", log)) == 2, \
        log[-3000:]


def test_a_hung_worker_is_killed_and_its_call_ended(switch_factory, phones, tmp_path):
    """A worker that stops (SIGSTOP: as a tick stuck in a loop would look) holds its calls' media silently
    unless the switch notices: it kills a worker that has not reported for 5 s, the call ends with a BYE to
    both phones and a record, and a new worker takes the next call."""
    sw = switch_factory(extra=media_extra(tmp_path) + "workers = 1\n")
    wait_for(lambda: len(_worker_pids(sw.log())) == 1, timeout=10)
    victim = _worker_pids(sw.log())[0]
    a, ca, b, cb = connect(sw, phones)
    sw.wait_log(r"media: leg \d+ \(.*?\) on worker 0")
    stopped_at = time.monotonic()
    os.kill(victim, signal.SIGSTOP)
    try:
        sw.wait_log(rf"media worker 0 \(pid {victim}\) has sent nothing for [\d.]+ s: killing it", timeout=15)
        waited = time.monotonic() - stopped_at
        sw.wait_log(rf"media worker 0 \(pid {victim}\) died \(hung, no report for .*2 leg\(s\) lost", timeout=10)
    finally:
        try:
            os.kill(victim, signal.SIGCONT)
        except ProcessLookupError:
            pass
    assert 4.0 < waited < 10.0, waited                  # HUNG_AFTER (5 s) after its last report, within a second
    a.wait_call_state(ca, "DISCONNECTED", timeout=10)
    b.wait_call_state(cb, "DISCONNECTED", timeout=10)
    sw.wait_log(r"1001 -> 1002 ended: media lost \(worker died\)", timeout=10)
    wait_for(lambda: len(_worker_pids(sw.log())) == 2, timeout=15)   # restarted
    ca2 = a.call(f"sip:1002@{DOMAIN}")
    cb2 = b.wait_event("incoming", timeout=10)["call"]
    a.wait_call_state(ca2, "CONFIRMED", timeout=10)
    b.wait_call_state(cb2, "CONFIRMED", timeout=10)
    corr_ab, corr_ba = _talk(a, ca2, b, cb2, tmp_path, "after")
    assert corr_ab > 0.8 and corr_ba > 0.8, (corr_ab, corr_ba)
    a.hangup(ca2)
    b.wait_call_state(cb2, "DISCONNECTED", timeout=10)
    assert sw.stop() == 0
    assert "media: 0 endpoint(s) open, 0 RTP port(s) in use at shutdown" in sw.log()
