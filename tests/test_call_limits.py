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
