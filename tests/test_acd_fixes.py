"""The ACD as a call centre uses it (issue 12), through the sans-IO core with phones writing SIP by hand:
a queue never stalls, an agent who isn't there is never offered, busy means busy."""
from __future__ import annotations

from typing import Any

from acd import events as e

from .callcentre_harness import ACD, DOMAIN, ack_caller, answer, in_dialog, login, plain_call, reqs_to, responses, sdp
from .test_call_records import boot

_AGENTS: list[Any] = ACD["agents"]  # type: ignore[assignment]
ALL3 = {**ACD, "agents": [*_AGENTS, {"id": "2003", "name": "C", "extension": "1004", "skills": {"support": 5}}],
        "supervisors": []}


def queue_call(ph, caller="1001"):
    _, out = ph[caller].invite("500", body=sdp(4000, ph[caller].peer.host))
    ok = [m for m in responses(out) if m.status == 200][0]
    ack_caller(ph[caller], ok)
    return out


def test_a_ring_all_miss_pauses_nobody_and_the_queue_keeps_serving():
    core, net, ph = boot(media={"enabled": True}, acd=ALL3)
    for a in ("2001", "2002", "2003"):
        login(core, net, a)
    out = queue_call(ph)
    assert all(reqs_to(out, ph[n].peer, "INVITE") for n in ("1002", "1003", "1004"))   # ring-all
    out = net.advance(15.5)                                                           # nobody answers
    acd = core.router.queue.acd
    assert [acd.agent_state(a)[0] for a in ("2001", "2002", "2003")] == ["ringing"] * 3  # offered again at once
    assert all(reqs_to(out, ph[n].peer, "INVITE") for n in ("1002", "1003", "1004"))


def test_autopause_no_and_after_n_misses_and_in_this_queue_only():
    for mode, after, expect in (("no", 1, ["ready", "ready"]), ("all", 2, ["ready", "not-ready"]),
                                ("yes", 1, ["ready", "ready"])):
        acd_cfg = {**ACD, "agents": ACD["agents"][:1], "supervisors": [],
                   "queues": [{**ACD["queues"][0], "strategy": "longest-idle", "autopause": mode,
                               "autopause_after": after}]}
        core, net, ph = boot(media={"enabled": True}, acd=acd_cfg)
        login(core, net, "2001")
        acd = core.router.queue.acd
        states = []
        for _ in range(2):
            queue_call(ph)
            net.advance(15.5)                          # a missed ring
            states.append(acd.agent_state("2001")[0] if acd.agent_state("2001")[0] != "ringing" else "ready")
        assert states == expect, (mode, states)
        if mode == "yes":  # paused in "support" only: ready, but not offered support calls
            assert acd.queue_paused[0, 0] and not acd.router.member[0, 0]
            net._run(core.run(core.router.queue.feed, e.AgentReady("2001"), net.now, now=net.now))
            assert acd.router.member[0, 0]


def test_an_unregistered_agent_is_skipped_and_comes_back_when_it_registers():
    core, net, ph = boot(media={"enabled": True}, acd={**ACD, "supervisors": []})
    login(core, net, "2001")
    login(core, net, "2002")
    acd = core.router.queue.acd
    assert ph["1002"].register(expires=0).status == 200       # agent 2001's phone goes away
    assert acd.phone_down("2001")
    out = queue_call(ph)
    assert not reqs_to(out, ph["1002"].peer, "INVITE") and reqs_to(out, ph["1003"].peer, "INVITE")
    assert acd.agent_state("2001")[0] == "ready"              # not paused for it
    assert ph["1002"].register().status == 200                # back
    assert not acd.phone_down("2001")
    out = queue_call(ph, "1004")                              # 2002 is ringing: the next call goes to 2001
    assert reqs_to(out, ph["1002"].peer, "INVITE")


def test_an_offer_that_never_reaches_the_phone_is_not_a_missed_ring(tmp_path):
    core, net, ph = boot(media={"enabled": True}, acd={**ACD, "supervisors": [], "queue_log": str(tmp_path / "ql"),
                                                         "queues": [{**ACD["queues"][0], "strategy": "longest-idle"}]})
    login(core, net, "2001")
    out = queue_call(ph)
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv, 480, to_tag="x"))            # temporarily unavailable: not a miss
    acd = core.router.queue.acd
    assert acd.agent_state("2001")[0] == "ready" and acd.phone_down("2001")
    lines = _log(net)
    assert any("|ENTERQUEUE|" in line for line in lines) and not any("RINGNOANSWER" in line for line in lines)


def test_cancel_reaches_a_phone_that_sent_only_100():
    core, net, ph = boot(media={"enabled": True})
    _, out = ph["1001"].invite("1002", body=sdp(4000, "10.0.0.1"))
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv, 100))
    cancel = in_dialog("CANCEL", ruri=f"sip:1002@{DOMAIN}", from_=f"<sip:1001@{DOMAIN}>;tag={ph['1001'].tag}",
                       to=f"<sip:1002@{DOMAIN}>", call_id=next(iter(core.b2bua.calls.values())).caller.invite.call_id,
                       cseq=ph["1001"].cseq, via_host="10.0.0.1", via_port=5060)
    call = next(iter(core.b2bua.calls.values()))
    via = call.caller.invite.headers.get_all("Via")[0]
    cancel = cancel.replace(cancel.split(b"\r\n")[1], f"Via: {via}".encode())
    out = ph["1001"].send(cancel)
    assert reqs_to(out, ph["1002"].peer, "CANCEL")           # not held until a 180 that may never come


def test_a_phone_waiting_in_a_queue_is_not_offered_queue_calls():
    core, net, ph = boot(media={"enabled": True}, acd={**ACD, "supervisors": []})
    queue_call(ph, "1002")                                   # agent 2001's own phone calls the queue
    out = net._run(core.run(core.router.queue.feed, e.AgentLogin("2001", None), net.now, now=net.now))
    assert not reqs_to(out, ph["1002"].peer, "INVITE")       # not even its own call
    out = net._run(core.run(core.router.queue.feed, e.AgentLogin("2002", None), net.now, now=net.now))
    assert reqs_to(out, ph["1003"].peer, "INVITE")


def test_a_direct_call_to_an_agent_talking_on_a_queue_call_is_busy():
    core, net, ph = boot(media={"enabled": True}, acd={**ACD, "supervisors": [],
                                                         "queues": [{**ACD["queues"][0], "strategy": "longest-idle"}]})
    login(core, net, "2001")
    out = queue_call(ph)
    inv = reqs_to(out, ph["1002"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv, 200, to_tag="ag", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    _, out = ph["1004"].invite("1002", body=sdp(4000, "10.0.0.4"))
    assert [r.status for r in responses(out) if r.status >= 300 and r.status != 407] == [486]
    assert not reqs_to(out, ph["1002"].peer, "INVITE")


def test_plain_calls_still_fork_and_answer():
    core, net, ph = boot(media={"enabled": True})
    a, b = plain_call(net, ph["1001"], ph["1002"])
    assert next(iter(core.b2bua.calls.values())).state == "answered"


def _log(net) -> list[str]:
    from softswitch.events import WriteQueueLog
    return [a.line for a in net.events if isinstance(a, WriteQueueLog)]


LANG_ACD = {
    "skills": [{"name": "support"}, {"name": "orders"}, {"name": "cantonese"}],
    "agents": [{"id": "2001", "name": "A", "extension": "1002", "skills": {"support": 5, "orders": 5}},
               {"id": "2002", "name": "B", "extension": "1003", "skills": {"support": 5, "cantonese": 5}}],
    "queues": [{"name": "support", "skill": "support", "wrapup_time": 0, "languages": {"yue": "cantonese"},
                "language_routing": "require"}],
    "dialplan": [{"number": "500", "queue": "support"}],
}


def lang_ivr(tmp_path):
    import numpy as np
    import soundfile as sf
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    for lang in ("en", "yue"):      # just the prompts the queue plays when an agent answers, as tones
        d = tmp_path / lang
        d.mkdir()
        for name in ["agent", "is-serving-you", *[f"digit_{i}" for i in range(10)]]:
            sf.write(str(d / f"{name}.wav"), np.full(800, 0.1 if lang == "yue" else 0.2, np.float32), 8000)
    return {"default_language": "en", "languages": ["en", "yue"], "prompts_dir": str(root / "prompts"),
            "sounds_dir": str(tmp_path), "numbers": {"4000": "main"},
            "flows": {"main": {"start": "menu", "nodes": {
                "menu": {"type": "menu", "prompts": [], "choices": {"2": "set-yue", "9": "orders"}, "timeout": 10.0,
                         "fallback": "q"},
                "set-yue": {"type": "language", "language": "yue", "next": "q"},
                "q": {"type": "queue", "queue": "support"},
                "orders": {"type": "queue", "queue": "support", "skill": "orders"}}}}}


def hotline(core, net, ph, caller, digit):
    from media.engine import DtmfReceived
    _, out = ph[caller].invite("4000", body=sdp(4000, ph[caller].peer.host))
    ack_caller(ph[caller], [m for m in responses(out) if m.status == 200][0])
    call = [c for c in core.b2bua.calls.values() if c.caller_number == caller][-1]
    return call, net._run(core.on_media_events([DtmfReceived(call.caller.media, digit, "rfc4733", 100)], net.now))


def test_a_caller_who_chose_cantonese_reaches_the_cantonese_agent_and_hears_cantonese(tmp_path):
    core, net, ph = boot(media={"enabled": True}, acd=LANG_ACD, ivr=lang_ivr(tmp_path))
    login(core, net, "2001")
    login(core, net, "2002")
    call, out = hotline(core, net, ph, "1001", "2")                 # 2: Cantonese
    assert call.variables["language"] == "yue"
    assert not reqs_to(out, ph["1002"].peer, "INVITE")              # 2001 speaks no Cantonese
    inv = reqs_to(out, ph["1003"].peer, "INVITE")[0]
    ph["1003"].send(answer(inv, 200, to_tag="b", contact="<sip:1003@10.0.0.3>", body=sdp(5000, "10.0.0.3")))
    played = [name for name in core.media.bank.sounds if name.startswith("seq:") and "is-serving-you" in name]
    assert played and all("/yue/" in name and "/en/" not in name for name in played)


def test_an_ivr_queue_nodes_skill_decides_the_agent(tmp_path):
    core, net, ph = boot(media={"enabled": True}, acd=LANG_ACD, ivr=lang_ivr(tmp_path))
    login(core, net, "2002")                                        # only B (no "orders") is ready...
    call, out = hotline(core, net, ph, "1001", "9")                 # 9: the order-number branch
    assert not reqs_to(out, ph["1003"].peer, "INVITE")              # ...so the call waits for A
    out = net._run(core.run(core.router.queue.feed, e.AgentLogin("2001", None), net.now, now=net.now))
    assert reqs_to(out, ph["1002"].peer, "INVITE")


def test_queue_log_fields_as_asterisk_documents_them():
    """Field by field against Asterisk's queue_log events (time|callid|queue|agent|event|data...):
    ENTERQUEUE|url|callerid, RINGNOANSWER|ringtime(ms), RINGCANCELED|ringtime only when the caller gives
    up, ABANDON|position|origposition|waittime, EXITWITHTIMEOUT|position|origposition|waittime,
    PAUSE|reason with the queue's name (one queue) and PAUSEALL|reason with NONE (every queue)."""
    from acd.events import AgentNotReady, CallAbandoned, CallArrived
    from .test_acd_engine import T0, Rig, config
    t = int(T0)
    rig = Rig(config({"2001": {"sales": 5}, "2002": {"sales": 5}},
                     [{"name": "sales", "strategy": "ring-all", "ring_time": 5}]))
    rig.login("2001", "2002")                              # T0+1, +2
    rig.do(CallArrived("c1", "sales", "0301"), 1)          # T0+3: both ring
    rig.advance(5)                                         # T0+8: nobody answered: both rung again, none paused
    rig.do(CallAbandoned("c1"), 1)                         # T0+9: the caller gives up while they ring
    rows = [line.split("|") for line in rig.log]
    assert rows[2] == [str(t + 3), "c1", "sales", "NONE", "ENTERQUEUE", "", "0301"]
    assert sorted(r[3] for r in rows if r[4] == "RINGNOANSWER") == ["Agent/2001", "Agent/2002"]
    assert all(r[5] == "5000" and len(r) == 6 for r in rows if r[4] == "RINGNOANSWER")
    assert sorted((r[3], r[5]) for r in rows if r[4] == "RINGCANCELED") == [("Agent/2001", "1000"),
                                                                           ("Agent/2002", "1000")]
    assert rows[-1] == [str(t + 9), "c1", "sales", "NONE", "ABANDON", "1", "1", "6"]
    assert not any(r[4].startswith("PAUSE") for r in rows)

    rig = Rig(config({"2001": {"sales": 5}}, [{"name": "sales", "max_wait": 60, "autopause": "yes",
                                               "priority_rules": [{"numbers": ["9*"], "priority": 5}]}]))
    rig.do(CallArrived("c3", "sales", "0301"), 1)          # nobody logged in: waits
    rig.do(CallArrived("c4", "sales", "9555"), 1)          # a VIP: enters at position 1
    rig.do(CallAbandoned("c4"), 4)
    rig.login("2001")                                      # alone: rung for c3, misses it
    rig.advance(16)
    rig.do(AgentNotReady("2001", "lunch"), 1)
    rig.advance(60)
    rows = [line.split("|") for line in rig.log]
    assert next(r for r in rows if r[4] == "ABANDON")[1:] == ["c4", "sales", "NONE", "ABANDON", "1", "1", "4"]
    assert next(r for r in rows if r[4] == "PAUSE")[1:] == ["NONE", "sales", "Agent/2001", "PAUSE", "ring-no-answer"]
    assert next(r for r in rows if r[4] == "PAUSEALL")[1:] == ["NONE", "NONE", "Agent/2001", "PAUSEALL", "lunch"]
    timeout = next(r for r in rows if r[4] == "EXITWITHTIMEOUT")
    assert timeout[1:3] == ["c3", "sales"] and timeout[5:7] == ["1", "1"] and timeout[7] == "60"
