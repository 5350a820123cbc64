"""Recording: stereo channels (caller left, agent right), incremental flushes, index record."""
import numpy as np
import soundfile as sf

from media import MediaConfig, MediaEngine
from media.recording import Recorder, read_index
from media.testing import Clock, Phone, run_ticks


def levels(x, f):
    n = np.arange(len(x))
    m = np.array([np.sin(2 * np.pi * f * n / 8000), np.cos(2 * np.pi * f * n / 8000)]).T
    c, *_ = np.linalg.lstsq(m, x, rcond=None)
    return float(np.hypot(*c))


def test_stereo_recording_incremental_and_indexed(tmp_path):
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock, recorder=Recorder(tmp_path))
    a, b = Phone(("10.0.0.1", 4000)), Phone(("10.0.0.2", 4000), law=1)
    ea, eb = eng.allocate("call-7", "caller 1001"), eng.allocate("call-7", "agent 2001")
    eng.answer(ea, a.sdp())
    eng.answer(eb, b.sdp(codecs=(1,)))
    eng.bridge(ea, eb)
    rec = eng.start_recording("call-7", left=ea, right=eb)
    freq = {a: 400.0, b: 700.0}

    def src(p, i):
        n = np.arange(i * 160, (i + 1) * 160)
        return 5000 * np.sin(2 * np.pi * freq[p] * n / 8000)
    run_ticks(eng, clock, [(a, ea), (b, eb)], 90, src)               # 1.8 s, not stopped yet
    info = sf.info(str(rec.path))                                     # what a crash would leave
    assert info.channels == 2 and info.samplerate == 8000 and 0.8 <= info.duration <= 1.8
    assert read_index(tmp_path)[rec.path.name]["status"] == "recording"
    run_ticks(eng, clock, [(a, ea), (b, eb)], 60, src)
    eng.stop_recording(rec)
    data, rate = sf.read(str(rec.path), dtype="float64")
    assert rate == 8000 and data.shape == (150 * 160, 2)
    left, right = data[800:, 0] * 32768, data[800:, 1] * 32768
    assert abs(levels(left, 400) - 5000) < 150 and levels(left, 700) < 30
    assert abs(levels(right, 700) - 5000) < 150 and levels(right, 400) < 30
    entry = read_index(tmp_path)[rec.path.name]
    assert entry["call"] == "call-7" and entry["parties"] == {"left": "caller 1001", "right": "agent 2001"}
    assert entry["status"] == "complete" and entry["duration"] == 3.0 and entry["start"].endswith("Z")


def test_one_sided_recording_is_mono(tmp_path):
    """A voicemail (the caller alone, ``right=[]``) is a mono WAV, not stereo with an empty channel."""
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock, recorder=Recorder(tmp_path))
    a = Phone(("10.0.0.1", 4000))
    ea = eng.allocate("call-8", "caller 1001")
    eng.answer(ea, a.sdp())
    rec = eng.start_recording("call-8", left=ea, right=[], name="box/vm.wav")

    def src(p, i):
        n = np.arange(i * 160, (i + 1) * 160)
        return 5000 * np.sin(2 * np.pi * 400.0 * n / 8000)
    run_ticks(eng, clock, [(a, ea)], 100, src)
    eng.stop_recording(rec)
    data, rate = sf.read(str(tmp_path / "box" / "vm.wav"), dtype="float64")
    assert rate == 8000 and data.shape == (100 * 160,)
    assert abs(levels(data[800:] * 32768, 400) - 5000) < 150


def test_many_recordings_threaded_writer(tmp_path):
    clock = Clock()
    rec = Recorder(tmp_path, threaded=True, capacity=2)               # ring grows past its capacity
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock, recorder=rec)
    legs, recs = [], []
    for i in range(5):
        p, q = Phone((f"10.0.1.{i}", 4000)), Phone((f"10.0.2.{i}", 4000))
        e, f = eng.allocate(f"c{i}"), eng.allocate(f"c{i}")
        eng.answer(e, p.sdp())
        eng.answer(f, q.sdp())
        eng.bridge(e, f)
        legs += [(p, e), (q, f)]
        recs.append(eng.start_recording(f"c{i}", e, f))
        run_ticks(eng, clock, legs, 7, lambda ph, k: np.full(160, 1000.0))
    for r in recs:
        eng.stop_recording(r)
    rec.wait()
    for i, r in enumerate(recs):
        assert sf.info(str(r.path)).frames == (5 - i) * 7 * 160
    assert all(e["status"] == "complete" for e in read_index(tmp_path).values())
