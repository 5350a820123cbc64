"""The wallboard end to end in headless Chromium (Debian's chromium, driven by Playwright) with pjsua2 phones: a
supervisor logs in on /wallboard; an agent's state change is on the page within 1 s, a call waiting within 1 s
of its INVITE, and the longest-wait alarm turns on once the wait passes its threshold; the agent answers,
the supervisor barges in from the page (her phone rings, she answers) and both the agent and the caller hear
her; the supervisor logs the agent out from the page; the switch restarts and the page reconnects by itself."""
from __future__ import annotations

import time

import pytest

pytest.importorskip("pjsua2")
pytest.importorskip("aiohttp")
pytest.importorskip("playwright.sync_api")

from tests.phones.steps import register  # noqa: E402

from . import audio  # noqa: E402
from .conftest import DOMAIN, start_switch  # noqa: E402
from .e2e_configs import rtp_extra  # noqa: E402
from .test_api_support import PASSWORDS, start_api_switch  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004"}
WITHIN = 1000   # ms: what the issue asks of the page


def agent_state_is(page, agent: str, state: str, timeout: float = WITHIN) -> float:
    """Seconds until the page shows ``agent`` in ``state`` (fails after ``timeout`` ms)."""
    t0 = time.monotonic()
    page.wait_for_selector(f'tr[data-agent="{agent}"] .state.{state}', timeout=timeout)
    return time.monotonic() - t0


def test_wallboard_live_alarm_barge_and_logout(switch_factory, phones, browser_page, tmp_path):
    page = browser_page
    sw, anon = start_api_switch(
        switch_factory, EXTS,
        extra=rtp_extra(both_digests=True) +
              '[wallboard]\nlongest_wait_warning = 1\nlongest_wait_alarm = 3\n',
        extra_acd='supervisors = ["1004"]')
    boss = anon.login("boss")
    alice, caller = register(sw, phones, "alice", "1002"), register(sw, phones, "caller", "1001")
    sup = register(sw, phones, "sup", "1004")

    page.goto(f"http://127.0.0.1:{sw.api_port}/wallboard")
    page.fill("#login-user", "2001")   # an agent: the shared login (static/login.js) refuses her the page
    page.fill("#login-password", PASSWORDS["2001"])
    page.click("#login-button")
    page.wait_for_selector("#login-error:has-text('the wallboard is for supervisors')")
    assert page.is_hidden("#board") and page.input_value("#login-password") == ""
    page.fill("#login-user", "boss")
    page.fill("#login-password", "boss-pw-333")
    page.click("#login-button")
    page.wait_for_selector("#conn:text('live')")
    page.wait_for_selector('tr[data-agent="2001"] .state.logged-out')

    # an agent's state change: on the page within 1 s
    assert boss.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})[0] == 200
    agent_state_is(page, "2001", "ready")
    assert boss.post("/api/agents/2001/state", {"action": "not_ready", "reason": "lunch"})[0] == 200
    agent_state_is(page, "2001", "not-ready")
    page.wait_for_selector('tr[data-agent="2001"]:has-text("lunch")', timeout=WITHIN)

    # a call waiting: on the page within 1 s of the INVITE; the longest-wait alarm past 3 s
    t0 = time.monotonic()
    call = caller.call(f"sip:500@{DOMAIN}")
    page.wait_for_selector('tr[data-queue="support"] td.waiting:text-is("1")', timeout=WITHIN)
    seen = time.monotonic() - t0
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    assert page.locator('.alarm[data-kind="longest_wait"]').count() == 0
    page.wait_for_selector('tr[data-queue="support"] td.longest-wait.level-warning', timeout=3000)
    page.wait_for_selector('.alarm[data-level="alarm"][data-kind="longest_wait"][data-subject="support"]', timeout=5000)
    alarm_at = time.monotonic() - t0
    assert alarm_at >= 3.0, "the alarm came before the wait passed its threshold"
    assert "support" in page.inner_text("#alarms")
    floor = boss.get("/api/wallboard")[1]
    q = next(x for x in floor["queues"] if x["queue"] == "support")
    assert q["waiting"] == 1 and q["offered"] == 1 and q["longest_wait"] >= 3.0, q
    assert any(a["kind"] == "longest_wait" and a["level"] == "alarm" for a in floor["alarms"]), floor["alarms"]

    # the agent takes the call: the alarm clears, the agent is on-call
    alice.auto_answer(code=200)
    page.click('tr[data-agent="2001"] button[data-action="ready"]')
    a_in = alice.wait_event("incoming", timeout=10)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    agent_state_is(page, "2001", "on-call", timeout=3000)
    page.wait_for_selector('tr[data-queue="support"] td.waiting:text-is("0")', timeout=WITHIN)
    assert page.locator('.alarm[data-kind="longest_wait"]').count() == 0

    # the supervisor barges in from the wallboard: her phone rings, she answers, both parties hear her
    sup.auto_answer(code=200)
    page.fill("#sup-ext", "1004")
    page.click('tr[data-agent="2001"] button[data-action="barge"]')
    s_in = sup.wait_event("incoming", timeout=10)
    sup.wait_call_state(s_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"supervisor 1004 barges in on agent 2001", timeout=10)
    sup.wait_event("media_state", call=s_in["call"], active=True, timeout=5)
    voice = audio.write_wav(tmp_path / "sup_says.wav", audio.melody(2.0, seed=81))
    alice.record(a_in["call"], tmp_path / "alice_heard.wav")
    caller.record(call, tmp_path / "caller_heard.wav")
    time.sleep(0.3)   # pacing: the recorders run before the audio starts
    sup.play(s_in["call"], voice)
    time.sleep(2.8)   # pacing: 2 s of the supervisor's audio in real time
    alice.stop_record(a_in["call"])
    caller.stop_record(call)
    src = audio.read_mono(voice)
    assert audio.windowed_correlation(src, audio.read_mono(tmp_path / "alice_heard.wav")) > 0.5, "agent cannot hear her"
    assert audio.windowed_correlation(src, audio.read_mono(tmp_path / "caller_heard.wav")) > 0.5, "caller cannot hear her"
    caller.hangup(call)
    sup.wait_call_state(s_in["call"], "DISCONNECTED", timeout=10)   # the barge ends with the call

    # the supervisor logs the agent out from the page
    agent_state_is(page, "2001", "ready", timeout=5000)            # after the 1 s wrap-up
    page.click('tr[data-agent="2001"] button[data-action="log out"]')
    agent_state_is(page, "2001", "logged-out")
    floor = boss.get("/api/wallboard")[1]
    q = next(x for x in floor["queues"] if x["queue"] == "support")
    assert (q["offered"], q["answered"], q["abandoned"]) == (1, 1, 0), q
    assert seen < WITHIN / 1000

    # the switch restarts: the page says offline, reconnects by itself and is live again (same session)
    config_text = sw.config_path.read_text()
    assert sw.stop() == 0
    page.wait_for_selector("#conn.offline", timeout=5000)
    sw2 = start_switch(tmp_path, EXTS, config_text=config_text, port=sw.port)
    try:
        page.wait_for_selector("#conn:not(.offline)", timeout=20_000)
        page.wait_for_selector('tr[data-agent="2001"] .state.logged-out', timeout=WITHIN)
        assert boss.post("/api/agents/2001/state", {"action": "login", "extension": "1002"})[0] == 200
        agent_state_is(page, "2001", "ready")
    finally:
        assert sw2.stop() == 0
