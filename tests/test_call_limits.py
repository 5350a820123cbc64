"""Per-extension limits on calls placed (softswitch.call_limits), sans-IO with a fake clock."""
from dataclasses import dataclass

from softswitch.call_limits import CallLimits


@dataclass
class Ext:
    number: str = "1001"
    max_calls: int = 2
    invite_rate: int = 3


def test_concurrent_limit():
    lim = CallLimits()
    assert lim.check(Ext(), 0, 0.0) is None and lim.check(Ext(), 1, 0.1) is None
    r = lim.check(Ext(), 2, 0.2)
    assert r is not None and r.status == 503 and "max_calls = 2" in r.warning
    assert lim.check(Ext(max_calls=0, invite_rate=0), 500, 0.3) is None      # 0: no limit


def test_rate_over_a_sliding_minute_and_idle_entries_forgotten():
    lim, e = CallLimits(), Ext(max_calls=0)
    for t in (0.0, 10.0, 20.0):
        assert lim.check(e, 0, t) is None
    r = lim.check(e, 0, 30.0)
    assert r is not None and "invite_rate = 3" in r.warning and r.retry_after == 30
    assert lim.check(e, 0, 59.0) is not None                                  # refusals do not count...
    assert lim.check(e, 0, 60.5) is None                                      # ...the 0.0 call left the window
    assert lim.check(Ext(number="1002", max_calls=0), 0, 61.0) is None        # per extension
    lim.forget_idle(200.0)
    assert not lim._placed


def test_srtp_policy_per_leg():
    """The extension on the leg decides; trunks and the desk's browser phone (its loopback hop) get none."""
    from types import SimpleNamespace

    from softswitch.b2bua import B2BUA
    from softswitch.call import Call, Leg

    exts = {"1001": SimpleNamespace(srtp="required"), "1002": SimpleNamespace(srtp="optional")}
    core = SimpleNamespace(media=None, config=SimpleNamespace(extension=exts.get))
    b2b = B2BUA(core, [])  # type: ignore[arg-type]
    call = Call(id="c", caller_number="1001", callee_number="1002", created=0.0)
    peer = SimpleNamespace(host="10.0.0.1")
    caller = Leg(call, "caller", peer, None)  # type: ignore[arg-type]
    call.caller = caller
    callee = Leg(call, "callee", peer, None, outgoing=True, extension="1002")  # type: ignore[arg-type]
    trunk_call = Call(id="t", caller_number="+8613800000000", callee_number="1002", created=0.0)
    from_trunk = Leg(trunk_call, "caller", peer, None)  # type: ignore[arg-type]
    desk = Leg(call, "callee", peer, None, outgoing=True, extension="1001", inside=True)  # type: ignore[arg-type]
    assert [b2b.srtp_policy(x) for x in (caller, callee, from_trunk, desk)] == ["required", "optional", "off", "off"]
