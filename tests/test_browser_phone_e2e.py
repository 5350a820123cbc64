"""The desk's browser phone end to end: headless Chromium (Debian's, driven by Playwright) with a fake
microphone playing a WAV, the switch's aiortc side, and pjsua2 phones.

The agent logs in on the page with "Browser phone"; a pjsua2 caller dials the queue; the call rings in the
page and the agent answers there. Audio both ways is checked by correlation: the caller records what it
hears and finds the page's WAV in it; the page captures the remote track with WebAudio and sends the
samples back, in which the caller's melody is found; a supervisor listening (*21*) hears both, and the
call's recording has the caller on the left and the browser agent on the right. Then the agent transfers the caller from the page to
a SIP extension (blind, REFER), and the call record carries the browser leg's WebRTC figures. Then the
other buttons: dial, DTMF, hold, consult, a three-way conference (everyone hears the others, nobody
their own echo) and the attended transfer that leaves the two parties talking, with the page's media only
through a TURN server (coturn, [browser_phone] ice_transport_policy = "relay", ephemeral credentials)."""
from __future__ import annotations

import time
from re import escape as re_escape
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("aiortc")
sync_api = pytest.importorskip("playwright.sync_api")

from tests import audio  # noqa: E402
from tests.phones.steps import register  # noqa: E402

from .conftest import CHROMIUM, CHROMIUM_ARGS, DOMAIN  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import PASSWORDS, db_rows, start_api_switch, wait_for  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(150)]
# (about 14 s and 11 s on an idle machine; Chromium is the heavy part)

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004"}
ARGS = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                        "--autoplay-policy=no-user-gesture-required"]

# WebAudio capture of what the page plays (the remote track of the browser phone), for the test to read back
CAPTURE_JS = """async () => {
  const el = document.getElementById('phone-audio');
  const ctx = new AudioContext({sampleRate: 8000});
  const src = ctx.createMediaStreamSource(el.srcObject);
  const node = ctx.createScriptProcessor(2048, 1, 1);
  window.__heard = [];
  node.onaudioprocess = (e) => { window.__heard.push(Array.from(e.inputBuffer.getChannelData(0))); };
  src.connect(node); node.connect(ctx.destination);
  await ctx.resume();
  window.__capture = ctx;
  return ctx.sampleRate;
}"""


@pytest.fixture
def mic_wav(tmp_path) -> Path:
    """What the agent says into the browser: a melody, looped by Chromium's fake microphone."""
    return audio.write_wav(tmp_path / "agent_says.wav", audio.melody(6.0, rate=48000, seed=171), rate=48000)


@pytest.fixture
def browser_page(tmp_path, mic_wav):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium not installed (bin/setup --test installs Debian's chromium)")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=ARGS + [f"--use-file-for-fake-audio-capture={mic_wav}"])
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            ctx.close()


def heard_in(recorded: np.ndarray, looped: np.ndarray) -> float:
    """How well 3 s of ``recorded`` (from its second second on) match the looped signal ``looped``: the
    pieces are found in it wherever the loop stood when the recording began."""
    piece = recorded[audio.RATE: 4 * audio.RATE]
    return audio.windowed_correlation(piece, np.concatenate([looped, looped, looped]))


def login_with_browser_phone(page, sw) -> None:
    page.goto(f"http://127.0.0.1:{sw.api_port}/desk")
    page.fill("#login-user", "2001")
    page.fill("#login-password", PASSWORDS["2001"])
    page.click("#login-button")
    page.wait_for_selector("#conn:has-text('online')")
    page.check("#browser-phone")
    page.click("#btn-login")
    page.wait_for_selector("#phone-status:has-text('ready (1002)')", timeout=20_000)
    page.wait_for_selector("#state:has-text('ready')")
    sw.wait_log(r"browser phone of agent 2001 started: extension 1002 rings the page")


def test_browser_phone_answers_a_queue_call_with_audio_both_ways_and_transfers(
        switch_factory, phones, browser_page, mic_wav, tmp_path):
    page = browser_page
    sw, anon = start_api_switch(switch_factory, EXTS, extra=rtp_extra(both_digests=True) + 'record = "all"\n',
                                extra_acd='supervisors = ["1003"]')
    boss = anon.login("boss")
    login_with_browser_phone(page, sw)
    agents = {a["id"]: a for a in boss.get("/api/agents")[1]}
    assert agents["2001"]["registered"] and agents["2001"]["extension"] == "1002", agents["2001"]

    carol = register(sw, phones, "carol", "1004")
    carol.auto_answer(code=200, delay_ms=300)
    caller = register(sw, phones, "caller", "1001")
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)          # the queue answers (music)

    # it rings in the page, with the screen pop; the agent answers there
    page.wait_for_selector("#phone-calls li[data-state='ringing']", timeout=15_000)
    page.wait_for_selector("#call-status:has-text('ringing')")
    page.click("#ph-answer")
    page.wait_for_selector("#phone-calls li[data-state='talking']")
    sw.wait_log(r"connected to agent 2001|answered by 1002", timeout=10)

    # a supervisor listens to the browser agent's call like any other (*21*<agent>)
    sup = register(sw, phones, "sup", "1003")
    s_call = sup.call(f"sip:*21*2001@{DOMAIN}")
    sup.wait_call_state(s_call, "CONFIRMED", timeout=10)
    sw.wait_log(r"supervisor 1003 listens agent 2001")

    # audio both ways
    caller_says = audio.write_wav(tmp_path / "caller_says.wav", audio.melody(3.0, seed=172))
    caller.record(call, tmp_path / "caller_heard.wav")
    sup.record(s_call, tmp_path / "sup_heard.wav")
    assert page.evaluate(CAPTURE_JS) == 8000
    time.sleep(0.5)  # pacing: the announcement to the caller is over and both recorders run
    caller.play(call, caller_says, loop=True)
    time.sleep(5.0)  # pacing: 5 s of audio each way, in real time
    caller.stop_record(call)
    sup.stop_record(s_call)
    heard = np.concatenate([np.asarray(x, dtype=np.float32) for x in page.evaluate("window.__heard")])
    caller.stop_play(call)
    audio.write_wav(tmp_path / "page_heard.wav", heard)
    by_page = heard_in(heard, audio.read_mono(caller_says))
    by_caller = heard_in(audio.read_mono(tmp_path / "caller_heard.wav"), audio.read_mono(mic_wav))
    assert by_page > 0.6, f"the page did not hear the caller (correlation {by_page:.2f})"
    assert by_caller > 0.6, f"the caller did not hear the page's microphone (correlation {by_caller:.2f})"
    sup_heard = audio.read_mono(tmp_path / "sup_heard.wav")
    sup_agent, sup_caller = heard_in(sup_heard, audio.read_mono(mic_wav)), heard_in(sup_heard, audio.read_mono(caller_says))
    assert sup_agent > 0.4 and sup_caller > 0.4, f"the supervisor hears agent {sup_agent:.2f}, caller {sup_caller:.2f}"

    # blind transfer from the page to extension 1004 (a SIP phone)
    page.fill("#ph-number", "1004")
    page.click("#ph-xfer")
    carol_in = carol.wait_event("incoming", timeout=10)
    carol.wait_call_state(carol_in["call"], "CONFIRMED", timeout=10)
    page.wait_for_selector("#phone-calls li", state="detached", timeout=10_000)   # the page's call ended
    assert page.text_content("#phone-error") == ""
    caller.hangup(call)
    carol.wait_call_state(carol_in["call"], "DISCONNECTED", timeout=10)

    rows = wait_for(lambda: db_rows(sw, "SELECT agent, disposition, agent_jitter_ms, agent_loss_pct FROM call_records "
                                        "WHERE caller = '1001' AND agent = '2001'"), timeout=15)
    agent, disposition, jitter, loss = rows[0]
    assert disposition in ("answered", "transferred"), rows
    assert jitter is not None and 0 <= jitter < 100 and loss is not None, rows   # the WebRTC leg's figures
    # the browser agent's part of the call was recorded like a phone's: caller left, agent right
    first = wait_for(lambda: db_rows(sw, "SELECT file FROM recordings ORDER BY id"))[0][0]
    rec_agent = heard_in(audio.read_mono(Path(first), channel=1), audio.read_mono(mic_wav))
    rec_caller = heard_in(audio.read_mono(Path(first), channel=0), audio.read_mono(caller_says))
    assert rec_agent > 0.6 and rec_caller > 0.6, (first, rec_agent, rec_caller)


# every RTCPeerConnection the page makes, for the test to read its configuration back
RECORD_PCS_JS = """(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function (config) { const pc = new Orig(config); window.__pcs.push(pc); return pc; };
  window.RTCPeerConnection.prototype = Orig.prototype;
})();"""


TURN_SECRET = "e2e-static-auth-secret"
SELECTED_CANDIDATE_JS = """async () => {
  const st = await window.__pcs.at(-1).getStats();
  let pair = null;
  st.forEach((r) => { if (r.type === "transport" && r.selectedCandidatePairId) pair = st.get(r.selectedCandidatePairId); });
  return pair && pair.state === "succeeded" ? st.get(pair.localCandidateId).candidateType : null;
}"""


@pytest.fixture
def turn_server(tmp_path):
    from . import coturn
    if not coturn.available():
        pytest.skip("coturn not installed (bin/setup --test installs Debian's coturn)")
    with coturn.Coturn(tmp_path, TURN_SECRET) as srv:
        yield srv


def test_browser_phone_dials_sends_digits_holds_consults_conferences_and_completes_the_transfer(
        turn_server, switch_factory, phones, browser_page, mic_wav, tmp_path):   # (coturn: stops last)
    """... with the page's media only through TURN (coturn, use-auth-secret, ice_transport_policy "relay"):
    the page behaves as an agent at home behind a firewall would have to."""
    page = browser_page
    page.add_init_script(RECORD_PCS_JS)
    turn = turn_server
    sw, anon = start_api_switch(
        switch_factory, EXTS, extra=rtp_extra(both_digests=True) +
        f'[browser_phone]\nturn_secret = "{TURN_SECRET}"\nturn_ttl = 600\nice_transport_policy = "relay"\n'
        f'ice_servers = [{{ urls = "stun:127.0.0.1:{turn.port}" }}, {{ urls = "turn:127.0.0.1:{turn.port}?transport=udp" }}]\n')
    boss = anon.login("boss")
    bob = register(sw, phones, "bob", "1003")
    carol = register(sw, phones, "carol", "1004")
    bob.auto_answer(code=200, delay_ms=200)
    carol.auto_answer(code=200, delay_ms=200)
    login_with_browser_phone(page, sw)
    # the page's peer connection has the configured servers and an ephemeral login for agent 2001; coturn
    # granted allocations to the browser and to the switch, each with its own login; the page's media goes
    # through the relay (the audio checks below run over it)
    servers = page.evaluate("window.__pcs.at(-1).getConfiguration()")
    assert servers["iceTransportPolicy"] == "relay"
    assert [s["urls"] for s in servers["iceServers"]] == [[f"stun:127.0.0.1:{turn.port}"],
                                                         [f"turn:127.0.0.1:{turn.port}?transport=udp"]]
    expiry, user = servers["iceServers"][1]["username"].split(":")
    assert user == "2001" and 0 < int(expiry) - time.time() <= 600
    assert wait_for(lambda: {u.split(":")[1] for u in turn.allocated()} == {"2001", "switch.2001"}), turn.log()[-2000:]
    assert turn.refused() == []
    assert wait_for(lambda: page.evaluate(SELECTED_CANDIDATE_JS) == "relay")

    # the agent dials bob from the page (an INVITE authenticated with extension 1002's credentials)
    page.fill("#ph-number", "1003")
    page.click("#ph-dial")
    bob_in = bob.wait_event("incoming", timeout=10)
    assert "1002" in bob_in["from"], bob_in
    bob.wait_call_state(bob_in["call"], "CONFIRMED", timeout=10)
    page.wait_for_selector("#phone-calls li[data-state='talking']")

    # DTMF from the page reaches the switch as RFC 4733 events on the agent's engine leg
    page.fill("#ph-digits", "19#")
    page.click("#ph-dtmf")
    for d in "19#":
        sw.wait_log(rf"DTMF {re_escape(d)} from caller \(rfc4733", timeout=10)

    # hold and resume (re-INVITEs: bob hears the switch's music meanwhile)
    page.click("#ph-hold")
    page.wait_for_selector("#phone-calls li[data-state='held']")
    sw.wait_log(r"caller put the call on hold")
    page.click("#ph-hold")
    page.wait_for_selector("#phone-calls li[data-state='talking']")
    sw.wait_log(r"caller resumed the call")

    # consult carol (bob is held), then a three-way conference mixed by the browser phone
    page.fill("#ph-number", "1004")
    page.click("#ph-consult")
    carol_in = carol.wait_event("incoming", timeout=10)
    carol.wait_call_state(carol_in["call"], "CONFIRMED", timeout=10)
    page.wait_for_selector("#phone-calls li[data-state='held']")
    page.wait_for_selector("#ph-conference:not([disabled])")
    page.click("#ph-conference")
    page.wait_for_selector("#phone-calls li[data-conference='yes'][data-state='talking'] >> nth=1")
    bob_says = audio.write_wav(tmp_path / "bob_says.wav", audio.melody(3.0, seed=173))
    carol.record(carol_in["call"], tmp_path / "carol_heard.wav")
    bob.record(bob_in["call"], tmp_path / "bob_heard.wav")
    time.sleep(0.5)  # pacing: the recorders run and the resume re-INVITE is through
    bob.play(bob_in["call"], bob_says, loop=True)
    time.sleep(4.5)  # pacing: 4.5 s of conference in real time
    carol.stop_record(carol_in["call"])
    bob.stop_record(bob_in["call"])
    bob.stop_play(bob_in["call"])
    carol_heard = audio.read_mono(tmp_path / "carol_heard.wav")
    carol_hears_bob = heard_in(carol_heard, audio.read_mono(bob_says))
    carol_hears_agent = heard_in(carol_heard, audio.read_mono(mic_wav))
    bob_hears_agent = heard_in(audio.read_mono(tmp_path / "bob_heard.wav"), audio.read_mono(mic_wav))
    assert carol_hears_bob > 0.4, f"carol does not hear bob in the conference ({carol_hears_bob:.2f})"
    assert carol_hears_agent > 0.4 and bob_hears_agent > 0.4, (carol_hears_agent, bob_hears_agent)
    bob_echo = heard_in(audio.read_mono(tmp_path / "bob_heard.wav"), audio.read_mono(bob_says))
    assert bob_echo < 0.3, f"the conference sends bob his own voice back ({bob_echo:.2f})"

    # the agent leaves bob and carol talking: attended transfer (REFER with Replaces)
    page.click("#ph-complete")
    page.wait_for_selector("#phone-calls li", state="detached", timeout=10_000)
    sw.wait_log(r"attended transfer: 1002 connects", timeout=10)
    live = wait_for(lambda: [c for c in boss.get("/api/calls")[1] if c["state"] == "answered"])
    assert len(live) == 1 and {live[0]["caller"], live[0]["callee"]} == {"1003", "1004"}, live
    assert page.text_content("#phone-error") == ""
    bob.hangup(bob_in["call"])
    carol.wait_call_state(carol_in["call"], "DISCONNECTED", timeout=10)


def test_browser_phone_starts_again_with_fresh_turn_credentials_before_they_expire(
        turn_server, switch_factory, phones, browser_page):
    """turn_ttl = 600: the page restarts its phone after half of its credentials' time (the page's clock is
    moved on), with a new ephemeral login, without a call up; a call ringing holds the renewal back."""
    page = browser_page
    page.add_init_script(RECORD_PCS_JS)
    page.clock.install()                    # (time flows as usual until the test moves it on)
    turn = turn_server
    sw, anon = start_api_switch(
        switch_factory, EXTS, extra=f'[browser_phone]\nturn_secret = "{TURN_SECRET}"\nturn_ttl = 600\n'
        f'ice_transport_policy = "relay"\nice_servers = [{{ urls = "turn:127.0.0.1:{turn.port}?transport=udp" }}]\n')
    login_with_browser_phone(page, sw)
    first = page.evaluate("window.__pcs.at(-1).getConfiguration().iceServers[0].username")
    assert wait_for(lambda: page.evaluate(SELECTED_CANDIDATE_JS) == "relay")

    # a call rings in the page when the renewal is due: it waits (30 s steps) while the call is there
    caller = register(sw, phones, "caller", "1001")
    call = caller.call(f"sip:1002@{DOMAIN}")
    page.wait_for_selector("#phone-calls li[data-state='ringing']", timeout=15_000)
    page.clock.fast_forward("05:01")
    time.sleep(1.0)  # pacing: give a (wrong) restart the time to show in the log
    assert sw.log().count("browser phone of agent 2001 started") == 1
    caller.hangup(call)
    page.wait_for_selector("#phone-calls li", state="detached", timeout=10_000)

    # no call: the next step restarts the phone with a fresh login; the page is ready again, relayed
    time.sleep(1.0)  # (so that the new login's expiry second differs from the first's)
    page.clock.fast_forward("00:31")
    assert wait_for(lambda: sw.log().count("browser phone of agent 2001 started") == 2, timeout=20)
    page.wait_for_selector("#phone-status:has-text('ready (1002)')", timeout=20_000)
    second = page.evaluate("window.__pcs.at(-1).getConfiguration().iceServers[0].username")
    assert second != first and second.endswith(":2001") and int(second.split(":")[0]) > int(first.split(":")[0])
    assert "another window" not in (page.text_content("#phone-error") or "")
    assert wait_for(lambda: page.evaluate(SELECTED_CANDIDATE_JS) == "relay")
    assert wait_for(lambda: sum(u.endswith(":2001") for u in turn.allocated()) == 2)
