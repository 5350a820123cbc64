"""Hold time as its own figure (softswitch.holds): the sans-IO core with a fake clock and anchored media, the
records service writing to a real store. The agent's hold from the desk (``Control.hold``), the agent's phone
holding with a re-INVITE (``sendonly``), a call hung up while on hold and a relayed hold (media not anchored)
each give the call record the hold seconds and the number of holds worked out by hand; the live AHT
(wallboard) and the report's talk + hold + wrap-up agree."""
from __future__ import annotations

from typing import Any

from softswitch.control import Control
from softswitch.events import CallEnded
from softswitch.holds import HoldTally, sdp_holds
from softswitch.records import Records
from store.crm import CallCentre
from store.reports import build_report

from .callcentre_harness import plain_call, sdp
from .test_call_records import boot, ended
from .test_report_figures import Rig, with_records

HOLD_SDP = sdp(5000, "10.0.0.2").replace(b"a=sendrecv", b"a=sendonly")
TALK_SDP = sdp(5000, "10.0.0.2")


class Edge:
    """The few parts of the asyncio edge ``Control`` drives (clock, executing the core's actions): the
    fake network's, so the desk's hold runs through the same call control as in the switch."""

    def __init__(self, core: Any, net: Any):
        self.core, self.net = core, net
        self.subscribers: set = set()

    def now(self) -> float:
        return float(self.net.now)

    def _execute(self, actions: list) -> None:
        self.net._run(actions)

    def _rearm(self) -> None:
        pass


def ends(rig: Rig) -> list[CallEnded]:
    return [e for e in rig.net.events if isinstance(e, CallEnded)]


def connected(rig: Rig, caller: str = "1001", tag: str = "ag"):
    a = rig.call(caller)
    leg = rig.ringing_agent(tag)
    rig.agent_answers(leg)
    return a, leg, next(c for c in rig.core.b2bua.calls.values() if c.live and c.caller_number == caller)


def test_desk_hold_twice_counts_two_holds_and_their_seconds(tmp_path):
    async def script(records: Records, centre: CallCentre):
        rig = Rig(records)
        desk = Control(Edge(rig.core, rig.net))
        a, leg, call = connected(rig)                 # t=0: answered at once
        rig.at(10)
        desk.hold(call.id, True)                      # 10..40 on hold
        assert call.caller.media.held
        rig.at(40)
        desk.hold(call.id, False)
        rig.at(50)
        desk.hold(call.id, True)                      # 50..55
        desk.hold(call.id, True)                      # pressed again: still the same hold
        rig.at(55)
        desk.hold(call.id, False)
        rig.at(70)
        leg.req("BYE")                                # talk 70 s, of which 35 s on hold
        rig.at(80)                                    # wrap-up (5 s) over
        await records.flush()
        [rec] = ends(rig)
        assert (rec.hold_seconds, rec.holds) == (35.0, 2)
        assert (rec.as_dict()["hold_seconds"], rec.as_dict()["holds"]) == (35.0, 2)
        [stored] = (await centre.search_calls(queue="support")).items
        assert (stored.talk_s, stored.hold_seconds, stored.holds, stored.wrap_s) == (70.0, 35.0, 2, 5.0)

        # live AHT (wallboard) = talk incl. hold + wrap-up = the report's talk + hold + wrap-up
        live = rig.stats()
        assert live.aht == 75.0
        report = await centre.store.read_sync(lambda conn: build_report(
            conn, period="day", since=0, until=1e11, now=rig.net.now, utc_offset_s=0))
        [q] = report["queues"]   # talk without hold 35 + hold 35 + wrap-up 5, one answered call
        assert (q["talk_s"], q["hold_s"], q["avg_hold_s"], q["holds"], q["wrap_s"], q["aht_s"]) == (
            35.0, 35.0, 35.0, 2, 5.0, 75.0)
        assert q["aht_s"] == round(live.aht, 2)
        [ag] = report["agents"]
        assert (ag["talk_s"], ag["hold_s"], ag["holds"], ag["aht_s"]) == (35.0, 35.0, 2, 75.0)

    with_records(tmp_path, script)


def test_the_agents_phone_holds_with_a_reinvite_and_a_refresh_does_not_count_again(tmp_path):
    async def script(records: Records, centre: CallCentre):
        rig = Rig(records)
        a, leg, call = connected(rig)
        rig.at(20)
        out = leg.req("INVITE", body=HOLD_SDP)        # the agent's hold key: sendonly
        assert [r.status for _, r in out if hasattr(r, "status")] == [200]
        assert call.answered.media.holding
        rig.at(30)
        leg.req("INVITE", body=HOLD_SDP)              # a session refresh while held: the same hold
        rig.at(44)
        leg.req("INVITE", body=TALK_SDP)              # resumed after 24 s
        rig.at(60)
        a.req("BYE")                                  # the customer hangs up
        rig.at(70)
        await records.flush()
        [rec] = ends(rig)
        assert (rec.hold_seconds, rec.holds) == (24.0, 1)
        assert call.hold.per_holder == {"callee:1002": 24.0}
        [stored] = (await centre.search_calls(queue="support")).items
        assert (stored.hold_seconds, stored.holds) == (24.0, 1)

    with_records(tmp_path, script)


def test_a_call_hung_up_on_hold_counts_its_hold_to_the_hang_up(tmp_path):
    async def script(records: Records, centre: CallCentre):
        rig = Rig(records)
        desk = Control(Edge(rig.core, rig.net))
        a, leg, call = connected(rig)
        rig.at(5)
        leg.req("INVITE", body=HOLD_SDP)              # the phone holds at 5 s ...
        rig.at(8)
        desk.hold(call.id, True)                      # ... and the desk too at 8 s: one hold, not two
        rig.at(15)
        leg.req("INVITE", body=TALK_SDP)              # the phone resumes; the desk still holds
        rig.at(25)
        a.req("BYE")                                  # the customer gives up while held: 5..25
        rig.at(40)
        await records.flush()
        [rec] = ends(rig)
        assert (rec.hold_seconds, rec.holds) == (20.0, 1)
        assert call.hold.per_holder == {"callee:1002": 10.0, "desk": 17.0}
        [stored] = (await centre.search_calls(queue="support")).items
        assert (stored.talk_s, stored.hold_seconds, stored.holds) == (25.0, 20.0, 1)

    with_records(tmp_path, script)


def test_a_relayed_hold_without_anchored_media_is_counted():
    core, net, ph = boot()                         # media not anchored: re-INVITEs go to the other phone
    a, b = plain_call(net, ph["1001"], ph["1002"])
    net.advance(3)
    a.req("INVITE", body=sdp(4000, "10.0.0.1").replace(b"a=sendrecv", b"a=inactive"))
    net.advance(12)
    call = next(iter(core.b2bua.calls.values()))
    assert call.hold.on_hold
    b.req("BYE")
    [rec] = ended(net)
    assert (rec.hold_seconds, rec.holds) == (12.0, 1)


def test_the_tally_counts_overlapping_holders_once():
    t = HoldTally()
    t.set("desk", True, 10)
    t.set("callee:1002", True, 12)
    t.set("desk", False, 15)
    assert t.on_hold and t.total(16) == 6
    t.set("callee:1002", False, 20)
    t.set("caller:1001", False, 21)               # releasing what was not held: nothing
    t.set("caller:1001", True, 30)
    t.close(31)
    assert (t.holds, t.seconds, t.per_holder) == (2, 11.0, {"desk": 5.0, "callee:1002": 8.0, "caller:1001": 1.0})


def test_sdp_directions():
    base = sdp(4000, "10.0.0.1")
    assert sdp_holds(base) is False
    assert sdp_holds(base.replace(b"a=sendrecv", b"a=sendonly")) is True
    assert sdp_holds(base.replace(b"a=sendrecv", b"a=inactive")) is True
    assert sdp_holds(base.replace(b"a=sendrecv", b"a=recvonly")) is False
    assert sdp_holds(base.replace(b"c=IN IP4 10.0.0.1", b"c=IN IP4 0.0.0.0")) is True
    session_level = base.replace(b"a=sendrecv\r\n", b"").replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    assert sdp_holds(session_level) is True
    assert sdp_holds(b"not sdp") is None


def test_the_browser_phones_hold_counts_and_a_hang_up_on_hold_closes_it():
    """The desk's browser phone is a SIP UA inside the switch: its hold button is a re-INVITE (sendonly) that
    the B2BUA sees like a desk phone's (test_browser_phone_ua's wiring: its UA and the real core, fake clock)."""
    from .test_browser_phone_ua import Wire, incoming_call

    w = Wire()
    cid, _ = incoming_call(w)
    call = next(iter(w.core.b2bua.calls.values()))
    w.ua_did(w.ua.answer(cid, ("127.0.0.1", 30000), w.net.now))
    w.net.advance(4)
    w.ua_did(w.ua.hold(cid, True, w.net.now))                # 4..13
    w.net.advance(9)
    w.ua_did(w.ua.hold(cid, False, w.net.now))
    w.net.advance(2)
    w.ua_did(w.ua.hold(cid, True, w.net.now))                # 15..18, then the agent hangs up while holding
    w.net.advance(3)
    assert call.hold.on_hold and call.hold.total(w.net.now) == 12.0
    seen: list = []
    run = w.net._run

    def keep_events(actions: list) -> list:              # the call's end event (the fake network drops events)
        seen.extend(a for a in actions if isinstance(a, CallEnded))
        return run(actions)
    w.net._run = keep_events  # type: ignore[method-assign]
    w.ua_did(w.ua.hangup(cid, w.net.now))
    assert not call.live
    [rec] = seen
    assert (rec.hold_seconds, rec.holds, call.hold.on_hold) == (12.0, 2, False)


def test_a_transfer_ends_the_desks_hold_and_the_next_party_gets_the_caller_unheld(tmp_path):
    async def script(records: Records, centre: CallCentre):
        rig = Rig(records)
        desk = Control(Edge(rig.core, rig.net))
        a, leg, call = connected(rig)
        rig.at(10)
        desk.hold(call.id, True)                      # 10..20, then the agent transfers the held caller
        rig.at(20)
        desk.transfer(call.id, "1003")
        assert not call.caller.media.held and not call.hold.on_hold
        assert (call.hold.seconds, call.hold.holds) == (10.0, 1)

    with_records(tmp_path, script)
