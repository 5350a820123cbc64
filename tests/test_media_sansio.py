"""The media engine does no I/O of its own: recording files go through a job runner (a thread under the
edge), prompts are preloaded and played without touching the disk."""
import asyncio
import builtins
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import media.recording
from media import MediaConfig, MediaEngine, RecordingFailed
from media.edge import MediaEdge
from media.jobs import SyncRunner, ThreadRunner
from media.recording import Recorder, read_index
from media.testing import Clock, Phone, run_ticks


class FakeRunner:
    """Keeps the jobs instead of running them: whatever the engine does meanwhile touched no file."""
    threaded = True

    def __init__(self):
        self.jobs = []

    def __call__(self, job):
        self.jobs.append(job)

    def run(self):
        jobs, self.jobs = self.jobs, []
        for job in jobs:
            job()

    def wait(self):
        self.run()

    def close(self):
        self.run()


def _call(eng):
    a, b = Phone(("10.0.0.1", 4000)), Phone(("10.0.0.2", 4000))
    ea, eb = eng.allocate("call-1", "caller 1001"), eng.allocate("call-1", "agent 2001")
    eng.answer(ea, a.sdp())
    eng.answer(eb, b.sdp())
    eng.bridge(ea, eb)
    return [(a, ea), (b, eb)]


def _tone(p, i):
    return np.full(160, 1000.0)


def test_recording_with_a_runner_does_no_file_io_in_the_calling_thread(tmp_path):
    clock = Clock()
    jobs = FakeRunner()
    recdir = tmp_path / "recordings"
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", recordings_dir=str(recdir)), now=clock, jobs=jobs)
    legs = _call(eng)
    rec = eng.start_recording("call-1", left=legs[0][1], right=legs[1][1])
    assert eng.recorder.runner is jobs and rec.file is None
    run_ticks(eng, clock, legs, 120, _tone)                         # 2.4 s: two flushes were due
    eng.stop_recording(rec)
    assert not recdir.exists()                                      # not even the folder: all of it is queued
    assert len(jobs.jobs) == 6                  # open, flushes at ticks 1, 51, 101, the last one at stop, close
    jobs.run()                                                      # what the writer thread does
    assert sf.info(str(rec.path)).frames == 120 * 160
    entry = read_index(recdir)[rec.path.name]
    assert entry["status"] == "complete" and entry["duration"] == 2.4


def test_recording_file_operations_run_on_the_writer_thread(tmp_path, monkeypatch):
    seen = []                                                       # (operation, thread id)

    def spy(name, fn):
        def wrapped(*a, **kw):
            seen.append((name, threading.get_ident()))
            return fn(*a, **kw)
        return wrapped

    class SpyFile:
        def __init__(self, *a, **kw):
            seen.append(("SoundFile", threading.get_ident()))
            self._real = real_soundfile(*a, **kw)
            self._file = self._real._file                           # the header update uses it

        def __getattr__(self, name):
            return spy(name, getattr(self._real, name))

    real_soundfile = sf.SoundFile
    monkeypatch.setattr(sf, "SoundFile", SpyFile)
    monkeypatch.setattr(media.recording, "open", spy("open", builtins.open), raising=False)
    monkeypatch.setattr(Path, "mkdir", spy("mkdir", Path.mkdir))

    clock = Clock()
    runner = ThreadRunner()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", recordings_dir=str(tmp_path / "r")), now=clock, jobs=runner)
    legs = _call(eng)
    rec = eng.start_recording("call-1", left=legs[0][1], right=legs[1][1])
    voicemail = eng.start_recording("call-1", left=legs[0][1], right=[], name=str(tmp_path / "vm" / "1001" / "m.wav"))
    run_ticks(eng, clock, legs, 60, _tone)
    eng.stop_recording(rec)
    eng.stop_recording(voicemail)
    runner.wait()
    me = threading.get_ident()
    ops = {name for name, _ in seen}
    assert {"SoundFile", "write", "close", "open", "mkdir"} <= ops
    assert all(tid != me for _, tid in seen), [n for n, t in seen if t == me]
    assert {tid for _, tid in seen} == {runner.thread.ident}
    monkeypatch.undo()
    assert sf.info(str(rec.path)).frames == sf.info(str(voicemail.path)).frames == 60 * 160
    runner.close()


def test_a_file_that_cannot_be_opened_is_reported_as_an_event(tmp_path):
    clock = Clock()
    (tmp_path / "blocker").write_text("a file where a folder should be")
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", recordings_dir=str(tmp_path / "r")), now=clock,
                      jobs=SyncRunner())
    legs = _call(eng)
    rec = eng.start_recording("call-1", left=legs[0][1], right=[], name=str(tmp_path / "blocker" / "x.wav"))
    events = []
    run_ticks(eng, clock, legs, 60, _tone, events)
    failed = [e for e in events if isinstance(e, RecordingFailed)]
    assert len(failed) == 1 and failed[0].recording is rec and rec.error and failed[0].error == rec.error
    eng.stop_recording(rec)                                          # still stops cleanly
    assert not eng.recorder.active


def test_edge_gives_the_engine_a_writer_thread_and_waits_for_it_off_the_loop(tmp_path):
    async def main():
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="41200-41300",
                                      recordings_dir=str(tmp_path)))
        edge = MediaEdge(eng)
        assert isinstance(eng.jobs, ThreadRunner)                   # the engine started no thread itself
        legs = _call(eng)
        rec = eng.start_recording("call-1", left=legs[0][1], right=legs[1][1])
        assert eng.recorder.runner is eng.jobs
        for _ in range(60):
            edge.step(asyncio.get_running_loop().time())
        await edge.stop()                                            # stops the recording, waits for its file
        return rec, edge
    rec, edge = asyncio.run(main())
    assert read_index(tmp_path)[rec.path.name]["status"] == "complete"
    assert not edge._own_jobs.thread.is_alive()


def test_an_engine_alone_starts_no_thread(tmp_path):
    before = threading.active_count()
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", recordings_dir=str(tmp_path)), now=clock)
    legs = _call(eng)
    rec = eng.start_recording("call-1", left=legs[0][1], right=legs[1][1])
    run_ticks(eng, clock, legs, 10, _tone)
    eng.stop_recording(rec)
    assert threading.active_count() == before and isinstance(eng.recorder.runner, SyncRunner)
    assert sf.info(str(rec.path)).frames == 10 * 160                # the sans-IO default: jobs ran at once


def test_recorder_threaded_flag_still_makes_its_own_writer(tmp_path):
    rec = Recorder(tmp_path, threaded=True)
    assert rec.threaded and isinstance(rec.runner, ThreadRunner)
    rec.use_runner(SyncRunner())                                     # its own thread is closed on replacement
    assert not rec.threaded


# ------------------------------------------------------------------------------------------ prompts

def _wav(path, freq, seconds=0.5, rate=16000):
    t = np.arange(int(rate * seconds)) / rate
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t), rate)
    return str(path)


def _no_disk(monkeypatch):
    def boom(*a, **kw):
        raise AssertionError("the disk was touched at play time")
    for mod, name in ((os, "stat"), (os, "lstat"), (os, "open"), (os, "listdir"), (os, "scandir"),
                      (builtins, "open"), (sf, "read"), (sf, "SoundFile"), (sf, "info")):
        monkeypatch.setattr(mod, name, boom)
    monkeypatch.setattr(Path, "resolve", boom)
    monkeypatch.setattr(Path, "exists", boom)


def test_preload_then_play_without_disk_access(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    welcome = _wav(tmp_path / "welcome.wav", 440)
    _wav(tmp_path / "music.wav", 660, seconds=1.0)
    later = _wav(tmp_path / "later.wav", 880)
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", hold_music=str(tmp_path / "music.wav")), now=clock)
    sounds = eng.preload([welcome, "music.wav"])                    # what call control does at start
    assert [s.duration for s in sounds] == [0.5, 1.0]
    legs = _call(eng)
    (pa, ea), (pb, eb) = legs
    events = []
    with monkeypatch.context() as m:
        _no_disk(m)
        pid = eng.play(ea, welcome)                                  # by the path as preloaded
        eng.play_music(eb, str(tmp_path / "music.wav"))              # by its absolute path
        assert eng.bank.lookup("music.wav") is eng.bank.lookup(str(tmp_path / "music.wav"))
        with pytest.raises(KeyError):
            eng.play(ea, later)                                      # never preloaded: no disk read either
        assert eng.bank.find(later) is None
        eng.stop_music(eb)
        eng.hold(eb)                                                 # the configured hold music, preloaded
        run_ticks(eng, clock, legs, 30, None, events)
    assert any(getattr(e, "playback", None) == pid for e in events)
    assert len(pa.inbox) == 30 and len(pb.inbox) == 30
    music = eng.bank.lookup("music.wav")
    assert eng._channels == {music.name: eng._channels[music.name]}  # hold played the configured file


def test_hold_music_not_preloaded_falls_back_without_disk_access(tmp_path, monkeypatch):
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100", hold_music=_wav(tmp_path / "m.wav", 500)), now=clock)
    legs = _call(eng)
    with monkeypatch.context() as m:
        _no_disk(m)
        eng.hold(legs[1][1])
        run_ticks(eng, clock, legs, 3)                               # the tick compiles the plan: no file read
    assert "<hold>" in eng._channels


def test_edge_preloads_the_configured_hold_music(tmp_path):
    async def main():
        eng = MediaEngine(MediaConfig(address="127.0.0.1", bind_address="127.0.0.1", rtp_ports="41400-41500",
                                      hold_music=_wav(tmp_path / "m.wav", 500)))
        edge = MediaEdge(eng)
        found = eng.bank.find(str(tmp_path / "m.wav"))
        await edge.stop()
        return found
    assert asyncio.run(main()) is not None
