"""The mix, checked numerically: bridge with transcoding, conference (direct and bus), hold music on
re-INVITE hold, switch-side hold, supervisor listen/whisper/barge, prompts, shared music, ptime, NAT latching."""
import numpy as np
import pytest
import soundfile as sf

from media import MediaConfig, MediaEngine, PlaybackFinished, SourceLatched, g711, rtp
from media.mixer import Bridge, Member, Route, compile_plan
from media.playback import SoundBank, load_audio
from media.testing import Clock, Phone, run_ticks

FREQ = {"a": 400.0, "b": 700.0, "c": 1100.0, "s": 1500.0}
AMP = 6000.0


def tone(f, i, amp=AMP):
    n = np.arange(i * 160, (i + 1) * 160)
    return amp * np.sin(2 * np.pi * f * n / 8000)


def levels(x, freqs):
    """Amplitude of each frequency in x (least squares on sin/cos pairs)."""
    n = np.arange(len(x))
    cols = []
    for f in freqs:
        cols += [np.sin(2 * np.pi * f * n / 8000), np.cos(2 * np.pi * f * n / 8000)]
    coef, *_ = np.linalg.lstsq(np.array(cols).T, x, rcond=None)
    return [float(np.hypot(coef[2 * k], coef[2 * k + 1])) for k in range(len(freqs))]


class World:
    def __init__(self, **laws):
        self.clock = Clock()
        self.eng = MediaEngine(MediaConfig(rtp_ports="30000-30200"), now=self.clock)
        self.phones, self.eps = {}, {}
        for i, (name, law) in enumerate(laws.items()):
            p = Phone((f"10.0.0.{i + 1}", 4000), law=law)
            ep = self.eng.allocate("call", name)
            self.eng.answer(ep, p.sdp(codecs=(law,)))
            self.phones[name], self.eps[name] = p, ep
        self.events = []

    def run(self, ticks, talking=None):
        talking = set(self.phones) if talking is None else talking
        by_phone = {p: n for n, p in self.phones.items()}
        for p in self.phones.values():
            p.inbox.clear()
        start = self.eng.tick_no

        def src(phone, i):
            n = by_phone[phone]
            return tone(FREQ[n], start + i) if n in talking else None
        run_ticks(self.eng, self.clock, [(self.phones[n], self.eps[n]) for n in self.phones], ticks, src, self.events)

    def hears(self, name, skip=5):
        audio = self.phones[name].received_audio()[skip * 160:]
        assert len(audio) > 1000, f"{name} received no audio"
        lv = levels(audio, list(FREQ.values()))
        return {k: round(v / AMP, 1) for k, v in zip(FREQ, lv)}, audio   # G.711 quantisation: ±1 %


def test_bridge_with_transcoding():
    w = World(a=g711.ULAW, b=g711.ALAW)
    w.eng.bridge(w.eps["a"], w.eps["b"])
    w.run(30)
    ha, _ = w.hears("a")
    hb, _ = w.hears("b")
    assert ha == {"a": 0.0, "b": 1.0, "c": 0.0, "s": 0.0}
    assert hb == {"a": 1.0, "b": 0.0, "c": 0.0, "s": 0.0}
    pa = rtp.parse(w.phones["a"].inbox[0])
    pb = rtp.parse(w.phones["b"].inbox[0])
    assert (pa.pt, pb.pt, pa.marker) == (0, 8, True) and not rtp.parse(w.phones["a"].inbox[1]).marker


def test_three_way_conference():
    w = World(a=0, b=0, c=1)
    w.eng.bridge(w.eps["a"], w.eps["b"], w.eps["c"])
    w.run(30)
    assert w.hears("a")[0] == {"a": 0.0, "b": 1.0, "c": 1.0, "s": 0.0}
    assert w.hears("b")[0] == {"a": 1.0, "b": 0.0, "c": 1.0, "s": 0.0}
    assert w.hears("c")[0] == {"a": 1.0, "b": 1.0, "c": 0.0, "s": 0.0}


def test_large_conference_bus_is_exact_n_minus_1():
    rng = np.random.default_rng(0)
    n, p = 9, 2
    b = Bridge(1, {r: Member() for r in range(8)})
    routes = [Route(r, b) for r in range(8)] + [Route(8)]
    plan = compile_plan(routes, n, p)
    assert plan.n_bus == 1 and plan.edges == 8 + 16           # 8 into the bus, bus and -self for each
    x = rng.normal(0, 1000, (n, 160)).astype(np.float32)
    out = plan.mix(x, np.zeros((p, 160), np.float32))
    total = x[:8].sum(axis=0)
    for r in range(8):
        np.testing.assert_allclose(out[r], total - x[r], atol=0.05)
    assert not out[8].any()


def test_hold_by_reinvite_plays_music_to_the_other_party():
    w = World(a=0, b=0)
    eng, a, b = w.eng, w.eps["a"], w.eps["b"]
    eng.bridge(a, b)
    w.run(10)
    ans = eng.answer(a, w.phones["a"].sdp("sendonly", version=2))            # A puts B on hold
    assert "a=recvonly" in ans
    w.run(30)
    assert w.phones["a"].inbox == []                                           # we do not send to a holder
    hb, audio = w.hears("b")
    assert hb["a"] == 0.0 and np.sqrt(np.mean(audio ** 2)) > 300              # B hears music, not A
    music = eng.bank.sounds["<hold>"]
    codes = b"".join(rtp.parse(d).payload for d in w.phones["b"].inbox)
    bank = eng.bank.encoded[0, music.offset:music.offset + music.length].tobytes()
    assert codes[1600:3200] in bank                                            # the shared pre-encoded stream
    ans = eng.answer(a, w.phones["a"].sdp("sendrecv", version=3))             # resume
    assert "a=sendrecv" in ans
    w.run(20)
    assert w.hears("b")[0]["a"] == 1.0 and w.hears("a")[0]["b"] == 1.0


def test_switch_hold_music_to_held_party_and_silence_to_other():
    w = World(a=0, b=1)
    w.eng.bridge(w.eps["a"], w.eps["b"])
    w.eng.hold(w.eps["a"])                                                     # agent b holds caller a
    w.run(25)
    ha, audio_a = w.hears("a")
    assert ha["b"] == 0.0 and np.sqrt(np.mean(audio_a ** 2)) > 300
    _, audio_b = w.hears("b")
    assert np.abs(audio_b).max() <= 8                                          # silence (G.711 zero)
    w.eng.hold(w.eps["a"], False)
    w.run(20)
    assert w.hears("a")[0]["b"] == 1.0 and w.hears("b")[0]["a"] == 1.0


def test_supervisor_listen_whisper_barge():
    w = World(a=0, b=0, s=1)                                                   # caller, agent, supervisor
    eng, a, b, s = w.eng, w.eps["a"], w.eps["b"], w.eps["s"]
    br = eng.bridge(a, b)
    eng.join(br, s, "listen")
    w.run(25)
    assert w.hears("s")[0] == {"a": 1.0, "b": 1.0, "c": 0.0, "s": 0.0}
    assert w.hears("a")[0]["s"] == 0.0 and w.hears("b")[0]["s"] == 0.0
    eng.set_mode(br, s, "whisper", whisper_to=b)
    w.run(25)
    assert w.hears("b")[0] == {"a": 1.0, "b": 0.0, "c": 0.0, "s": 1.0}
    assert w.hears("a")[0] == {"a": 0.0, "b": 1.0, "c": 0.0, "s": 0.0}
    assert w.hears("s")[0] == {"a": 1.0, "b": 1.0, "c": 0.0, "s": 0.0}
    eng.set_mode(br, s, "barge")
    w.run(25)
    assert w.hears("a")[0] == {"a": 0.0, "b": 1.0, "c": 0.0, "s": 1.0}
    assert w.hears("b")[0] == {"a": 1.0, "b": 0.0, "c": 0.0, "s": 1.0}
    with pytest.raises(ValueError):
        eng.set_mode(br, s, "whisper")


def test_prompt_replaces_then_finishes_and_mix_mode():
    w = World(a=0, b=0)
    eng, a, b = w.eng, w.eps["a"], w.eps["b"]
    eng.bridge(a, b)
    prompt = eng.bank.add("beep", 5000 * np.sin(2 * np.pi * FREQ["c"] * np.arange(8000) / 8000))   # 1 s
    pid = eng.play(a, prompt)
    w.run(30)
    assert w.hears("a")[0] == {"a": 0.0, "b": 0.0, "c": 0.8, "s": 0.0}      # 5000/6000: only the prompt
    w.run(40)
    assert any(isinstance(e, PlaybackFinished) and e.playback == pid and e.endpoint is a for e in w.events)
    assert w.hears("a", skip=30)[0]["b"] == 1.0 and a.prompt is None
    eng.play(a, prompt, mix=True)
    w.run(30)
    assert w.hears("a")[0] == {"a": 0.0, "b": 1.0, "c": 0.8, "s": 0.0}
    assert w.hears("b")[0] == {"a": 1.0, "b": 0.0, "c": 0.0, "s": 0.0}       # only a hears the prompt


def test_music_channel_shared_by_many_listeners(tmp_path):
    t = np.arange(44100 * 2) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], axis=1)
    path = tmp_path / "moh.wav"
    sf.write(path, stereo, 44100)
    w = World(a=0, b=0, c=1)
    with pytest.raises(KeyError):
        w.eng.play_music(w.eps["a"], str(path))                                # not preloaded: no disk read
    w.eng.preload([str(path)])
    for n in "abc":
        w.eng.play_music(w.eps[n], str(path))
    assert w.eng.players.used.sum() == 1                                       # one stream for all
    w.run(20, talking=set())
    pa = [rtp.parse(d).payload for d in w.phones["a"].inbox]
    pb = [rtp.parse(d).payload for d in w.phones["b"].inbox]
    assert pa == pb                                                            # same bytes, encoded once
    lv = levels(w.phones["c"].received_audio(), [440.0, 880.0])
    assert abs(lv[0] - 0.3 * 32767) < 150 and lv[1] < 50


def test_load_any_rate_and_channels(tmp_path):
    for rate, ch in ((44100, 2), (16000, 1), (11025, 1), (8000, 2), (48000, 6)):
        t = np.arange(rate) / rate
        data = np.repeat((0.5 * np.sin(2 * np.pi * 1000 * t))[:, None], ch, axis=1)
        p = tmp_path / f"t{rate}_{ch}.wav"
        sf.write(p, data, rate)
        y = load_audio(p)
        assert len(y) == 8000
        lv = levels(y[400:-400], [1000.0])
        assert abs(lv[0] - 0.5 * 32767) < 50, (rate, ch)
    bank = SoundBank()
    s1 = bank.load(p)
    assert bank.load(p) is s1                                                  # cached


def test_ptime_30_phone_and_nat_latching():
    clock = Clock()
    eng = MediaEngine(MediaConfig(rtp_ports="30000-30100"), now=clock)
    a = Phone(("192.168.1.20", 4000), ptime=30)                               # SDP names a private address
    b = Phone(("10.0.0.2", 4000))
    nat = ("203.0.113.7", 31000)
    ea, eb = eng.allocate("c", "a", source=nat[0]), eng.allocate("c", "b")   # a's signalling came from the NAT
    eng.answer(ea, a.sdp())
    eng.answer(eb, b.sdp())
    eng.bridge(ea, eb)
    events = []
    for i in range(60):
        if i % 3 != 2:                                                         # 30 ms packets: 2 per 3 ticks
            k = (i // 3) * 2 + i % 3
            samples = 4000 * np.sin(2 * np.pi * 400 * np.arange(k * 240, (k + 1) * 240) / 8000)
            eng.datagram_received(ea.port, a.audio(samples), nat, clock.t)
        eng.datagram_received(eb.port, b.audio(tone(700, i)), b.addr, clock.t)
        out = eng.tick(clock.t)
        events += out.events
        for d in out.datagrams:
            if d.addr == nat:
                a.inbox.append(d.data)
            elif d.addr == b.addr:
                b.inbox.append(d.data)
        clock.t += 0.02
    assert any(isinstance(e, SourceLatched) and e.addr == nat for e in events)
    sizes = {len(rtp.parse(d).payload) for d in a.inbox}
    assert sizes == {240}                                                      # a asked for 30 ms packets
    ts = [rtp.parse(d).ts for d in a.inbox]
    assert all((y - x) & 0xFFFFFFFF == 240 for x, y in zip(ts, ts[1:]))
    assert round(levels(a.received_audio()[800:], [700.0])[0] / 6000, 1) == 1.0
    assert round(levels(b.received_audio()[1600:], [400.0])[0] / 4000, 1) == 1.0
    # after latching, a stranger's packets are dropped, even after the phone was silent for long
    before = ea.rx_foreign
    clock.t += 5.0
    for _ in range(10):
        eng.datagram_received(ea.port, a.audio(np.zeros(240)), ("198.51.100.1", 5), clock.t)
        eng.datagram_received(ea.port, a.audio(np.zeros(240)), (nat[0], 31002), clock.t)   # the NAT's IP, another port
    assert ea.rx_foreign == before + 20 and ea.remote == nat
