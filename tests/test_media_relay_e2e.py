"""The fast path with real phones: two pjsua2 phones on a plain call are relayed packet for packet (the
switch says so in its log), hear each other, and a hold moves the call to the full path (music) and back."""
from __future__ import annotations

import re
import time

import pytest

pytest.importorskip("pjsua2")

from . import audio  # noqa: E402
from tests.phones.steps import connect  # noqa: E402

from .e2e_configs import media_extra  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def test_a_plain_call_is_relayed_and_hold_falls_back_to_the_full_path(switch_factory, phones, tmp_path):
    sw = switch_factory(extra=media_extra(tmp_path) + "inband_dtmf = false\n")
    a, ca, b, cb = connect(sw, phones)
    sw.wait_log(r"1001 <-> .* on the fast path \(relayed, PCM[AU]\)|<-> .*1001 on the fast path")
    src_a = audio.write_wav(tmp_path / "a_says.wav", audio.melody(2.0, seed=1))
    src_b = audio.write_wav(tmp_path / "b_says.wav", audio.melody(2.0, seed=2))
    b.record(cb, tmp_path / "b_heard.wav")
    a.record(ca, tmp_path / "a_heard.wav")
    a.play(ca, src_a)
    b.play(cb, src_b)
    time.sleep(3.0)  # pacing: 2 s of audio each way, in real time, and the jitter buffers' delay
    a.stop_record(ca)
    b.stop_record(cb)
    corr_ab = audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp_path / "b_heard.wav"))
    corr_ba = audio.windowed_correlation(audio.read_mono(src_b), audio.read_mono(tmp_path / "a_heard.wav"))
    assert corr_ab > 0.8 and corr_ba > 0.8, (corr_ab, corr_ba)

    a.hold(ca)
    sw.wait_log(r"on the full path \(hold\)")
    time.sleep(0.5)  # pacing: skip the switch-over to the music
    b.record(cb, tmp_path / "held.wav")
    time.sleep(1.5)  # pacing: record 1.5 s of hold music
    b.stop_record(cb)
    assert audio.rms(audio.read_mono(tmp_path / "held.wav")[2000:]) > 0.02
    a.unhold(ca)
    sw.wait_log(r"caller resumed the call")
    wait = time.monotonic() + 10
    while len(re.findall(r"on the fast path", sw.log())) < 2 and time.monotonic() < wait:
        time.sleep(0.1)
    assert len(re.findall(r"on the fast path", sw.log())) >= 2, sw.log()[-3000:]
    src = audio.write_wav(tmp_path / "after.wav", audio.melody(2.0, seed=3))
    b.record(cb, tmp_path / "resumed.wav")
    a.play(ca, src)
    time.sleep(3.0)  # pacing: a's 2 s of audio reach b in real time
    b.stop_record(cb)
    a.hangup(ca)
    sw.wait_log(r"ended: ")
    corr = audio.windowed_correlation(audio.read_mono(src), audio.read_mono(tmp_path / "resumed.wav"))
    assert corr > 0.6, f"after resume b does not hear a: {corr:.2f}"   # pjsua time-warps after unhold
    # the end-of-call lines count what the fast path forwarded
    relayed = [int(n) for n in re.findall(r"media PCM[AU].*?relayed (\d+)", sw.log())]
    assert relayed and min(relayed) > 100, sw.log()[-3000:]
