"""Sans-IO call-centre scenarios: a core with anchored media and an ACD, phones writing SIP by hand."""
from __future__ import annotations

from .core_harness import *  # noqa: F401,F403
from .core_harness import DOMAIN, Net, Phone, answer, in_dialog, make_core, responses  # noqa: F401 (re-exported)
from softswitch.sip.transaction import Peer  # noqa: E402
from softswitch.sip.message import Request, Response

ACD = {
  "skills": [{"name": "support"}],
  "agents": [{"id": "2001", "name": "A", "extension": "1002", "skills": {"support": 5}},
             {"id": "2002", "name": "B", "extension": "1003", "skills": {"support": 5}}],
  "queues": [{"name": "support", "skill": "support", "strategy": "ring-all", "ring_time": 15, "wrapup_time": 0}],
  "dialplan": [{"number": "500", "queue": "support"}],
  "supervisors": ["1004"],
}

def setup(acd=None, media=True, exts=None, **kw):
    exts = exts or {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x"}
    sections = dict(kw)
    if media: sections["media"] = {"enabled": True}
    if acd is not False: sections["acd"] = acd or ACD
    core = make_core(exts, **sections)
    net = Net(core)
    phones = {}
    for i, (n, p) in enumerate(exts.items()):
        ph = Phone(net, n, p, Peer("udp", f"10.0.0.{i+1}", 5060))
        r = ph.register(); assert r.status == 200, r
        phones[n] = ph
    return core, net, phones

def sdp(port=4000, host="10.0.0.9"):
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n").encode()

def reqs_to(out, peer, method=None):
    return [m for p, m in out if isinstance(m, Request) and p.host == peer.host and (method is None or m.method == method)]

def resps_to(out, peer):
    return [m for p, m in out if isinstance(m, Response) and p.host == peer.host]

def summary(out):
    s = []
    for p, m in out:
        if isinstance(m, Request): s.append(f"->{p.host} {m.method} cseq={m.cseq.number}")
        else: s.append(f"->{p.host} {m.status} {m.cseq.method}")
    return s

def ack_for(ph, inv, resp, ruri=None):
    """ACK a 2xx from the switch to the phone's INVITE inv"""
    return in_dialog("ACK", ruri=ruri or f"sip:x@{DOMAIN}", from_=inv.headers.get("From") if isinstance(inv, Request) else None,
                     to=resp.headers.get("To"), call_id=resp.call_id, cseq=resp.cseq.number, via_host=ph.peer.host, via_port=ph.peer.port)

def login(core, net, agent):
    from acd import events as e
    net._run(core.run(core.router.queue.feed, e.AgentLogin(agent, None), net.now, now=net.now))


def ack_caller(c, ok, ruri="sip:x@x"):
    return c.send(in_dialog("ACK", ruri=ruri, from_=f"<sip:{c.user}@{DOMAIN}>;tag={c.tag}", to=ok.headers.get("To"),
                 call_id=ok.call_id, cseq=ok.cseq.number, via_host=c.peer.host, via_port=c.peer.port))

class Callee:
    """callee-side dialog of a phone that got an INVITE from the switch"""
    def __init__(self, phone, inv, tag):
        self.p, self.inv, self.tag, self.cseq = phone, inv, tag, 100
    def req(self, method, extra=(), body=b""):
        self.cseq += 1
        return self.p.send(in_dialog(method, ruri="sip:127.0.0.1:5060", from_=self.inv.headers.get("To") + f";tag={self.tag}",
                                     to=self.inv.headers.get("From"), call_id=self.inv.call_id, cseq=self.cseq,
                                     via_host=self.p.peer.host, via_port=self.p.peer.port, extra=extra, body=body))

class Caller:
    def __init__(self, phone, ok, cseq):
        self.p, self.ok, self.cseq = phone, ok, cseq
    def req(self, method, extra=(), body=b""):
        self.cseq += 1
        return self.p.send(in_dialog(method, ruri="sip:127.0.0.1:5060", from_=f"<sip:{self.p.user}@{DOMAIN}>;tag={self.p.tag}",
                                     to=self.ok.headers.get("To"), call_id=self.ok.call_id, cseq=self.cseq,
                                     via_host=self.p.peer.host, via_port=self.p.peer.port, extra=extra, body=body))

def plain_call(net, caller, callee, tag="bt", port=5000):
    data, out = caller.invite(callee.user, body=sdp(4000, caller.peer.host))
    inv = reqs_to(out, callee.peer, "INVITE")[0]
    callee.send(answer(inv, 180, to_tag=tag))
    out = callee.send(answer(inv, 200, to_tag=tag, contact=f"<sip:{callee.user}@{callee.peer.host}>", body=sdp(port, callee.peer.host)))
    ok = [m for m in resps_to(out, caller.peer) if m.status == 200][0]
    ack_caller(caller, ok)
    return Caller(caller, ok, caller.cseq), Callee(callee, inv, tag)
