"""BanTracker: sliding-window failure counting, ban expiry, exemptions and bounded memory."""
from __future__ import annotations

import pytest

from softswitch.security import BanPolicy, BanTracker

IP = "203.0.113.5"


def tracker(**kw) -> BanTracker:
    max_addresses = kw.pop("max_addresses", 65536)
    return BanTracker(BanPolicy(**{"max_failures": 5, "window": 60.0, "ban_time": 900.0, **kw}), max_addresses)


def test_ban_after_exactly_max_failures():
    t = tracker()
    for i in range(4):
        assert t.record_failure(IP, 100.0 + i) is False
        assert not t.is_banned(IP, 100.0 + i)
    assert t.record_failure(IP, 104.0) is True
    assert t.is_banned(IP, 104.0)
    assert t.banned(104.0) == {IP: 104.0 + 900.0}
    assert t.record_failure(IP, 105.0) is False  # already banned: not a new ban


def test_failures_spread_beyond_window_do_not_ban():
    t = tracker()
    for i in range(20):
        assert t.record_failure(IP, i * 15.0) is False  # at most 4 within any 60 s
    assert not t.is_banned(IP, 300.0)


def test_window_boundary_is_exclusive():
    t = tracker(max_failures=2, window=60.0)
    t.record_failure(IP, 0.0)
    assert t.record_failure(IP, 60.0) is False  # the first one has just left the window
    assert t.record_failure(IP, 119.9) is True


def test_ban_expires():
    t = tracker(ban_time=100.0)
    for _ in range(5):
        t.record_failure(IP, 10.0)
    assert t.is_banned(IP, 109.9)
    assert not t.is_banned(IP, 110.0)
    assert t.banned(110.0) == {}
    # After expiry the count starts again from zero.
    for _ in range(4):
        assert t.record_failure(IP, 111.0) is False
    assert t.record_failure(IP, 111.0) is True


def test_exempt_cidr_and_ip():
    t = tracker(max_failures=1, exempt=("10.0.0.0/8", "2001:db8::1", "192.168.1.7/24"))
    for ip in ("10.1.2.3", "2001:db8::1", "192.168.1.200", "::ffff:10.9.9.9"):
        assert t.record_failure(ip, 0.0) is False
        assert not t.is_banned(ip, 0.0)
    assert t.record_failure("11.0.0.1", 0.0) is True


def test_loopback_banned_by_default():
    t = tracker(max_failures=1)
    assert t.record_failure("127.0.0.1", 0.0) is True
    assert t.is_banned("127.0.0.1", 1.0)
    assert t.record_failure("::1", 0.0) is True
    t2 = tracker(max_failures=1, exempt=("127.0.0.0/8", "::1"))
    assert t2.record_failure("127.0.0.1", 0.0) is False


def test_address_normalisation():
    t = tracker(max_failures=2)
    t.record_failure("::ffff:198.51.100.1", 0.0)
    assert t.record_failure("198.51.100.1", 1.0) is True
    assert t.is_banned("::ffff:198.51.100.1", 2.0)
    t.record_failure("2001:DB8:0::5", 0.0)
    assert t.record_failure("2001:db8::5", 0.0) is True


def test_success_clears_count_but_not_ban():
    t = tracker()
    for i in range(4):
        t.record_failure(IP, float(i))
    t.record_success(IP, 5.0)
    for i in range(4):
        assert t.record_failure(IP, 6.0 + i) is False
    assert t.record_failure(IP, 10.0) is True
    t.record_success(IP, 11.0)
    assert t.is_banned(IP, 11.0)


def test_bounded_memory_evicts_least_recently_seen():
    t = tracker(max_failures=3, max_addresses=100)
    t.record_failure("198.51.100.1", 0.0)
    t.record_failure("198.51.100.1", 0.0)
    for i in range(10_000):
        t.record_failure(f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", 1.0)
        assert len(t) <= 100
    assert len(t) == 100
    # The old partial count was evicted: two more failures are not enough.
    t.record_failure("198.51.100.1", 2.0)
    assert t.record_failure("198.51.100.1", 2.0) is False


def test_banned_address_kept_while_active():
    t = tracker(max_failures=1, max_addresses=10)
    assert t.record_failure(IP, 0.0)
    for i in range(100):
        assert t.is_banned(IP, 1.0)  # the scanner keeps knocking: recently seen
        t.record_failure(f"10.0.0.{i}", 1.0)
    assert t.is_banned(IP, 2.0)


def test_invalid_policy():
    with pytest.raises(ValueError):
        BanTracker(BanPolicy(max_failures=0))
    with pytest.raises(ValueError):
        BanTracker(BanPolicy(exempt=("not-a-network",)))


# ------------------------------------------------------------------------- unanswered challenges

def test_challenge_watch_reports_unanswered_once_and_forgets_answered():
    from softswitch.security import ChallengeWatch
    w = ChallengeWatch(timeout=32.0, max_entries=4, mute=600.0)
    w.challenged("10.0.0.1", "1001", "REGISTER", 0.0)
    w.challenged("10.0.0.1", "1001", "REGISTER", 1.0)
    w.challenged("10.0.0.2", "1002", "INVITE", 2.0)
    w.answered("10.0.0.2", "1002")
    assert w.expire(31.0) == []
    [u] = w.expire(32.0)
    assert (u.ip, u.user, u.method, u.challenges, u.since) == ("10.0.0.1", "1001", "REGISTER", 2, 0.0)
    w.challenged("::ffff:10.0.0.1", "1001", "REGISTER", 40.0)  # the same source, muted for ten minutes
    assert len(w) == 0 and w.expire(100.0) == []
    w.challenged("10.0.0.1", "1001", "REGISTER", 700.0)
    assert [u.since for u in w.expire(800.0)] == [700.0]


def test_challenge_watch_is_bounded():
    from softswitch.security import ChallengeWatch
    w = ChallengeWatch(max_entries=100)
    for i in range(10_000):  # a scanner spraying users
        w.challenged("203.0.113.9", str(i), "REGISTER", float(i) / 1000)
    assert len(w) == 100
    assert len(w.expire(1000.0)) == 100 and len(w._muted) == 100


# ------------------------------------------------------------------------- issue 11

def test_a_success_forgets_only_that_users_failures():
    t = tracker(max_failures=5)
    for i in range(4):
        assert t.record_failure(IP, float(i), user="1002") is False
    t.record_success(IP, 4.5, user="1001")  # the attacker's own valid extension: clears nothing of 1002's
    assert t.record_failure(IP, 5.0, user="1002") is True
    t2 = tracker(max_failures=3)
    t2.record_failure(IP, 0.0, user="1001")
    t2.record_failure(IP, 1.0, user="1001")
    t2.record_success(IP, 2.0, user="1001")  # a phone whose password was just fixed
    assert t2.record_failure(IP, 3.0, user="1002") is False
    assert len(t2) == 1


def test_ipv6_bans_cover_the_slash_64():
    t = tracker(max_failures=2)
    t.record_failure("2001:db8:1:2::1", 0.0)
    assert t.record_failure("2001:db8:1:2:ffff::9", 1.0) is True
    assert t.is_banned("2001:db8:1:2:abcd::1", 2.0)
    assert not t.is_banned("2001:db8:1:3::1", 2.0)
    assert t.banned(2.0) == {"2001:db8:1:2::/64": 901.0}


def test_restored_ban_and_exemption():
    t = tracker(exempt=("10.0.0.0/8",))
    t.ban("198.51.100.9", 50.0)
    t.ban("10.1.1.1", 50.0)
    assert t.is_banned("198.51.100.9", 49.0) and not t.is_banned("198.51.100.9", 50.0)
    assert not t.is_banned("10.1.1.1", 1.0) and t.exempt("10.1.1.1")


def test_login_throttle_backs_off_per_address_and_user():
    from softswitch.api.throttle import BackoffPolicy, LoginThrottle
    th = LoginThrottle(BackoffPolicy(free=3, base=1.0, cap=8.0), BackoffPolicy(free=10), max_entries=4)
    for _ in range(3):
        assert th.failed("192.0.2.1", "boss", 0.0) == 0.0
    assert th.failed("192.0.2.1", "boss", 0.0) == 1.0
    assert th.failed("192.0.2.1", "boss", 0.5) == 2.0
    assert th.wait("192.0.2.1", "boss", 1.0) == 1.5
    assert th.wait("192.0.2.2", "boss", 1.0) == 0.0          # another address: never refused
    assert th.wait("192.0.2.1", "2001", 1.0) == 0.0          # another user from the same address
    for i in range(6):
        th.failed("192.0.2.1", "boss", 10.0 + i)
    assert th.wait("192.0.2.1", "boss", 16.0) <= 8.0         # capped
    assert th.wait("192.0.2.1", "boss", 30.0) == 0.0         # and it passes
    # bounded: entries go one at a time, the least recently seen first
    for i in range(10):
        th.failed(f"198.51.100.{i}", "x", 40.0)
        assert len(th.per_user) <= 4 and len(th.per_address) <= 4


def test_session_tokens_revoke_and_refresh():
    from softswitch.api.auth import TokenSigner
    signer = TokenSigner(b"k" * 32, ttl=100)
    token, s = signer.issue("2001", "agent", now=1000.0)
    assert signer.verify(token, now=1050.0) == s
    fresh, s2 = signer.issue("2001", "agent", now=1060.0, sid=s.sid)  # a refresh keeps the session id
    assert s2.sid == s.sid and s2.expires == 1160
    signer.revoke(s, now=1070.0)
    assert signer.verify(token, now=1071.0) is None and signer.verify(fresh, now=1071.0) is None
    other, _ = signer.issue("2001", "agent", now=1072.0)
    assert signer.verify(other, now=1073.0) is not None           # a new login is another session
    signer.revoke(signer.verify(other, now=1073.0), now=1200.0)   # type: ignore[arg-type]
    assert s.sid not in signer.revoked                             # forgotten once its tokens expired anyway
    assert signer.verify("abc\u00e9.def") is None and signer.verify("\u00ff") is None
