"""Call-control edge cases of queues and transfers through the sans-IO core (found in review)."""
from __future__ import annotations

import gc

from media import rtp as R
from softswitch.call import Call
from softswitch.legs import Hangup

from .callcentre_harness import (ACD, DOMAIN, Net, Peer, Phone, ack_caller, answer, login, make_core, plain_call,
                                 reqs_to, responses, sdp, setup)


def test_a_bye_crossing_ours_after_a_blind_transfer_does_not_end_the_call():
    core, net, ph = setup(acd=False)
    a, b = plain_call(net, ph["1001"], ph["1002"])
    call = next(iter(core.b2bua.calls.values()))
    out = b.req("REFER", extra=[f"Refer-To: <sip:1003@{DOMAIN}>", f"Referred-By: <sip:1002@{DOMAIN}>"])
    assert [m.status for p, m in out if hasattr(m, "status")] == [202]
    assert reqs_to(out, ph["1003"].peer, "INVITE")   # the target rings
    out = b.req("BYE")                               # the transferor hangs up as phones do after NOTIFY 200
    assert [m.status for p, m in out if hasattr(m, "status")] == [200]
    assert not reqs_to(out, ph["1001"].peer, "BYE")  # the caller stays
    assert call.state == "queued"


def test_late_200_from_a_ring_all_loser_releases_its_media_and_keeps_the_call():
    core = make_core({"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x"},
                     media={"enabled": True, "rtp_timeout": 5}, acd=ACD)
    net = Net(core)
    ph = {}
    for i, n in enumerate(["1001", "1002", "1003"]):
        ph[n] = Phone(net, n, f"pw-{n}-x", Peer("udp", f"10.0.0.{i + 1}", 5060))
        ph[n].register()
    login(core, net, "2001")
    login(core, net, "2002")
    c = ph["1001"]
    _, out = c.invite("500", body=sdp(4000, "10.0.0.1"))
    ok = [m for m in responses(out) if m.status == 200][0]
    ack_caller(c, ok)
    inv_a, inv_b = reqs_to(out, ph["1002"].peer, "INVITE")[0], reqs_to(out, ph["1003"].peer, "INVITE")[0]
    ph["1002"].send(answer(inv_a, 180, to_tag="at"))
    ph["1003"].send(answer(inv_b, 180, to_tag="bt"))
    ph["1002"].send(answer(inv_a, 200, to_tag="at", contact="<sip:1002@10.0.0.2>", body=sdp(5000, "10.0.0.2")))
    out = ph["1003"].send(answer(inv_b, 200, to_tag="bt", contact="<sip:1003@10.0.0.3>", body=sdp(6000, "10.0.0.3")))
    assert [m.method for m in reqs_to(out, ph["1003"].peer)] == ["ACK", "BYE"]
    call = next(iter(core.b2bua.calls.values()))
    qc = core.router.queue.by_call[call.id]
    leg_b = [l for l, agent in qc.agents.items() if agent == "2002"][0]
    assert leg_b.media is None                       # its RTP port is back in the pool
    m = core.media
    t = m._clock()
    for i in range(400):                             # 8 s of RTP from the caller and the agent who answered
        t += 0.02
        for k, (ep, addr) in enumerate([(call.caller.media, ("10.0.0.1", 4000)),
                                        (call.answered.media, ("10.0.0.2", 5000))]):
            m.datagram_received(ep.port, R.build(0, i, i * 160, 1000 + k, b"\xff" * 160), addr, t)
        assert not core.on_media_events(m.tick(t).events, t)
    assert call.state == "answered"


def test_hanging_up_a_ringing_call_answers_the_caller():
    core, net, ph = setup(acd=False)
    _, out = ph["1001"].invite("1002", body=sdp(4000, "10.0.0.1"))
    ph["1002"].send(answer(reqs_to(out, ph["1002"].peer, "INVITE")[0], 180, to_tag="bt"))  # ringing
    call = next(iter(core.b2bua.calls.values()))
    out = net._run(core.run(core.b2bua.do, Hangup(call, "desk"), net.now, now=net.now))
    assert [m.status for m in responses(out) if m.cseq.method == "INVITE"] == [480]
    assert reqs_to(out, ph["1002"].peer, "CANCEL")


def test_finished_calls_leave_nothing_behind():
    core, net, ph = setup(acd=False)
    b2 = core.b2bua
    for i in range(20):
        a, b = plain_call(net, ph["1001"], ph["1002"], tag=f"bt{i}")
        for _, m in a.req("BYE"):
            if getattr(m, "method", "") == "BYE":
                ph["1002"].send(answer(m, 200))
    net.advance(120)
    assert (len(b2.calls), len(b2._by_dialog), len(b2._by_client_tx), len(core.media.endpoints)) == (0, 0, 0, 0)
    gc.collect()
    assert sum(1 for o in gc.get_objects() if isinstance(o, Call)) == 0
