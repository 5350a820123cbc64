"""A config reload with real phones (pjsua2) and a real switch process: while a caller talks to agent 2001,
config.toml gains agent 2003 and the queue's strategy becomes ring-all; SIGHUP applies it. The call goes on
(audio both ways after the reload), a broken config sent by the admin API is refused with file/key/reason
and changes nothing, and the next call follows the new rule (both agents' phones ring at once). A number put on
the block list through the API is refused by the hotline's screen node on the very next call."""
from __future__ import annotations

import signal
import time

import pytest

pytest.importorskip("pjsua2")

from tests.phones.steps import register  # noqa: E402

from . import audio  # noqa: E402
from .conftest import DOMAIN, ROOT, free_port, rtp_low, write_config  # noqa: E402
from .test_api_support import Http  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003"}


def config(api_port: int, rtp: int, strategy: str, agents: list[tuple[str, str]]) -> str:
    """Queue "support" on 500 with ``agents``; a hotline 4000 whose flow screens callers (the store's block list)."""
    text = f'''auth_algorithms = ["MD5", "SHA-256"]
[media]
rtp_ports = "{rtp}-{rtp + 99}"
[api]
listen = "127.0.0.1:{api_port}"
[[api.users]]
id = "root"
role = "admin"
password = "root-pw-4444"
[[api.users]]
id = "boss"
role = "supervisor"
password = "boss-pw-333"
[acd]
[[acd.skills]]
name = "support"
[[acd.queues]]
name = "support"
skill = "support"
strategy = "{strategy}"
ring_time = 15
wrapup_time = 1
announce_agent = false
[[acd.dialplan]]
number = "500"
queue = "support"
[ivr]
default_language = "en"
languages = ["en"]
prompts_dir = "{ROOT / 'prompts'}"
[ivr.numbers]
"4000" = "main"
[ivr.flows.main]
start = "screen"
[ivr.flows.main.nodes.screen]
type = "screen"
next = "bye"
[ivr.flows.main.nodes.bye]
type = "hangup"
'''
    if len(agents) > 1:   # the reload also adds the new agent's desk login
        text += '[[api.users]]\nid = "2003"\npassword = "carol-pw-55"\n'
    for agent_id, ext in agents:
        text += f'[[acd.agents]]\nid = "{agent_id}"\nname = "Agent {agent_id}"\nextension = "{ext}"\n' \
                f'skills = {{ support = 5 }}\n'
    return text


def login(phone, code: str) -> None:
    call = phone.call(f"sip:{code}@{DOMAIN}")
    phone.wait_call_state(call, "DISCONNECTED", timeout=10)


def wait_count(sw, text: str, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while sw.log().count(text) < n:
        assert time.monotonic() < deadline, f"{text!r} not {n} times in the log:\n{sw.log()[-3000:]}"
        time.sleep(0.05)


def talk_both_ways(a, a_call, b, b_call, tmp, seed: int) -> None:
    """Each side plays 2 s of its own melody; each hears the other's."""
    src_a = audio.write_wav(tmp / f"a{seed}.wav", audio.melody(2.0, seed=seed))
    src_b = audio.write_wav(tmp / f"b{seed}.wav", audio.melody(2.0, seed=seed + 1))
    a.record(a_call, tmp / f"a{seed}_heard.wav")
    b.record(b_call, tmp / f"b{seed}_heard.wav")
    time.sleep(0.3)   # pacing: the recorders run before the audio starts
    a.play(a_call, src_a)
    b.play(b_call, src_b)
    time.sleep(2.8)   # pacing: 2 s of audio each way in real time
    a.stop_record(a_call)
    b.stop_record(b_call)
    assert audio.windowed_correlation(audio.read_mono(src_b), audio.read_mono(tmp / f"a{seed}_heard.wav")) > 0.5
    assert audio.windowed_correlation(audio.read_mono(src_a), audio.read_mono(tmp / f"b{seed}_heard.wav")) > 0.5


def test_reload_adds_an_agent_and_changes_the_strategy_while_a_call_is_up(switch_factory, phones, tmp_path):
    api_port, rtp = free_port(), rtp_low()
    sw = switch_factory(EXTS, extra=config(api_port, rtp, "longest-idle", [("2001", "1002")]))
    sw.wait_log(r"api listening")
    alice, carol = register(sw, phones, "alice", "1002"), register(sw, phones, "carol", "1003")
    caller = register(sw, phones, "caller", "1001")
    login(alice, "*11*2001")
    sw.wait_log(r"agent 2001 is ready")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    a_in = alice.wait_event("incoming", timeout=10)
    alice.wait_call_state(a_in["call"], "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001")

    # the reload: agent 2003 at 1003, ring-all; SIGHUP as an administrator would send it
    write_config(sw.config_path, sw.port, EXTS, config(api_port, rtp, "ring-all", [("2001", "1002"), ("2003", "1003")]))
    sw.proc.send_signal(signal.SIGHUP)
    sw.wait_log(r"configuration reloaded; changed: api, acd; agents added: 2003; queues changed: support", timeout=10)
    assert Http(api_port).login("2003", "carol-pw-55").token                   # the new user logs in
    talk_both_ways(caller, call, alice, a_in["call"], tmp_path, seed=71)     # the call goes on

    # a broken config through the admin API: refused, the running one stays
    write_config(sw.config_path, sw.port, EXTS, config(api_port, rtp, "longest-idle", [("2001", "1099")]))
    anon = Http(api_port)
    root, boss = anon.login("root", "root-pw-4444"), anon.login("boss", "boss-pw-333")
    assert boss.post("/api/admin/reload", {})[0] == 403                     # supervisors may not
    status, body = root.post("/api/admin/reload", {})
    assert status == 422 and not body["ok"], body
    assert "config.toml" in body["error"] and "acd.agents[0].extension" in body["error"], body
    assert "is not a configured extension" in body["error"], body
    sw.wait_log(r"configuration refused, the running one is kept: .*acd\.agents\[0\]\.extension")

    # the next call follows the new rule: agent 2003 exists, and ring-all rings both phones
    login(carol, "*11*2003")
    sw.wait_log(r"agent 2003 is ready")
    caller.hangup(call)
    wait_count(sw, "agent 2001 is ready", 2)                  # after the 1 s wrap-up
    call2 = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call2, "CONFIRMED", timeout=10)
    c_in = carol.wait_event("incoming", timeout=10)
    sw.wait_log(r"queue support offers the call to agent 2001", timeout=10)
    log = sw.log()
    second = log[log.index("agent 2003 is ready"):]
    assert "offers the call to agent 2001" in second and "offers the call to agent 2003" in second
    assert c_in["call"] is not None
    wait_count(sw, "connected to agent 2001", 2)   # alice answers first (auto-answer); carol stops ringing
    caller.hangup(call2)

    # an agent puts the caller on the block list from the desk's API: the very next call is refused by the flow
    agent = anon.login("boss", "boss-pw-333")
    status, entry = agent.post("/api/lists/block", {"pattern": "1001", "reason": "nuisance"})
    assert status == 201 and entry["pattern"] == "1001" and entry["added_by"] == "boss", entry
    assert [e["pattern"] for e in agent.get("/api/lists/block")[1]] == ["1001"]
    call3 = caller.call(f"sip:4000@{DOMAIN}")
    caller.wait_call_state(call3, "DISCONNECTED", timeout=10)
    sw.wait_log(r"caller 1001 is blacklisted; refused")
    assert agent.delete(f"/api/lists/entries/{entry['id']}")[0] == 200
    assert agent.get("/api/lists/block")[1] == []
