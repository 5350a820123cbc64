"""Issue 12 with real phones (pjsua2) against a real switch: a ring-all miss leaves the queue serving, an
unregistered agent is skipped and comes back when her phone registers, busy means busy for an agent on a
queue call, and a phone waiting in the queue is never offered its own call."""
from __future__ import annotations

import pytest

pytest.importorskip("pjsua2")

from tests.phones.steps import feature_code, register  # noqa: E402

from .conftest import DOMAIN  # noqa: E402
from .e2e_configs import ACD_EXTS as EXTS, acd_config, queue_log  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def config(tmp_path, sounds, strategy: str = "longest-idle", ring_time: int = 3) -> str:
    return acd_config(tmp_path, sounds, ring_time=ring_time, announce_agent=False).replace(
        'strategy = "longest-idle"', f'strategy = "{strategy}"')


def test_a_ring_all_miss_leaves_the_queue_serving(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=config(tmp_path, sounds, "ring-all"))
    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    caller = register(sw, phones, "caller", "1001")
    feature_code(sw, alice, "*11*2001")
    feature_code(sw, bob, "*11*2002")
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    alice.wait_event("incoming", timeout=10)           # both ring; nobody picks up for 3 s
    bob.wait_event("incoming", timeout=10)
    sw.wait_log(r"agent 2001 is ready", timeout=10)      # the ring time is over: ready again, not paused
    alice.clear_events()
    alice.auto_answer(code=200)
    alice.wait_event("incoming", timeout=10)           # offered again at once: nobody was paused
    sw.wait_log(r"connected to agent 2001 at 1002", timeout=10)
    caller.hangup(call)
    sw.wait_log(r"ended: ")
    assert "is not-ready" not in sw.log()
    events = [r[4] for r in queue_log(tmp_path)]
    assert "PAUSEALL" not in events and "PAUSE" not in events and events.count("RINGNOANSWER") == 2, events


def test_an_unregistered_agent_is_skipped_and_back_when_her_phone_registers(switch_factory, phones, tmp_path,
                                                                            sounds):
    sw = switch_factory(EXTS, extra=config(tmp_path, sounds))
    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    caller = register(sw, phones, "caller", "1001")
    feature_code(sw, bob, "*11*2002")                  # Bob (level 9) is offered first when he is there
    feature_code(sw, alice, "*11*2001")
    bob.unregister()
    sw.wait_log(r"unregistered 1003 contact")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2001 at 1002", timeout=10)   # Bob skipped, not rung, not paused
    assert "offers the call to agent 2002" not in sw.log()
    caller.hangup(call)
    sw.wait_log(r"ended: ")
    bob = register(sw, phones, "bob-again", "1003")      # his phone is back (a new registration)
    bob.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    caller.wait_call_state(call, "CONFIRMED", timeout=10)
    sw.wait_log(r"connected to agent 2002 at 1003", timeout=10)   # back by himself
    caller.hangup(call)
    assert "RINGNOANSWER" not in [r[4] for r in queue_log(tmp_path)]


def test_busy_means_busy_for_an_agent_on_a_queue_call(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=config(tmp_path, sounds))
    alice = register(sw, phones, "alice", "1002")
    caller, other = register(sw, phones, "caller", "1001"), register(sw, phones, "other", "1004")
    feature_code(sw, alice, "*11*2001")
    alice.auto_answer(code=200)
    call = caller.call(f"sip:500@{DOMAIN}")
    sw.wait_log(r"connected to agent 2001 at 1002", timeout=10)
    direct = other.call(f"sip:1002@{DOMAIN}")          # a colleague dials Alice directly
    ended = other.wait_call_state(direct, "DISCONNECTED", timeout=10)
    assert ended.get("code") == 486 or "busy" in sw.log().split("1004 to 1002")[-1][:200]
    sw.wait_log(r"call from 1004 to 1002 refused: busy \(486\)")
    caller.hangup(call)


def test_a_phone_waiting_in_the_queue_is_not_offered_its_own_call(switch_factory, phones, tmp_path, sounds):
    sw = switch_factory(EXTS, extra=config(tmp_path, sounds))
    alice, bob = register(sw, phones, "alice", "1002"), register(sw, phones, "bob", "1003")
    feature_code(sw, alice, "*11*2001")
    feature_code(sw, bob, "*11*2002")
    feature_code(sw, bob, "*13")                       # Bob not ready: only Alice could take a call
    call = alice.call(f"sip:500@{DOMAIN}")             # Alice's own phone calls the queue
    alice.wait_call_state(call, "CONFIRMED", timeout=10)
    sw.wait_log(r"1002 entered queue support")
    bob.auto_answer(code=200)
    feature_code(sw, bob, "*14")                       # Bob ready: he gets it, Alice never rang
    sw.wait_log(r"connected to agent 2002 at 1003", timeout=10)
    assert "offers the call to agent 2001" not in sw.log()
    alice.hangup(call)
