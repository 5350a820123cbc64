"""Every branch the IVR takes says why, at INFO: closed, holiday, blacklisted, warned, a key, an invalid key,
no input, too few digits, retries used up (the switch's log adds the call id: softswitch.apps.ivr)."""
from __future__ import annotations

import datetime

from ivr.actions import Log
from ivr.events import DigitReceived
from ivr.testing import MON_10_SHANGHAI, Call, config, one_flow


def why(c: Call) -> list[str]:
    return [a.message for a in c.log if isinstance(a, Log) and a.level == "info"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.timezone.utc).timestamp()


def test_hours_say_closed_or_holiday_with_the_local_time_and_the_opening_hours():
    cfg = config()
    night = Call(cfg, flow="main", now=utc(2026, 11, 23, 14, 0))  # Monday 22:00 in Shanghai
    assert any(m.startswith("ivr main.hours: closed at Mon 2026-11-23 22:00 Asia/Shanghai (open Mon-Fri ")
               and m.endswith("-> closed") for m in why(night)), why(night)
    holiday = Call(cfg, flow="main", now=utc(2026, 10, 1, 2, 0))
    assert any(m.startswith("ivr main.hours: holiday at Thu 2026-10-01 10:00") for m in why(holiday)), why(holiday)
    day = Call(cfg, flow="main", now=MON_10_SHANGHAI)
    assert any(m.startswith("ivr main.hours: open at Mon 2026-11-23 10:00") for m in why(day)), why(day)


def test_blacklisted_and_warned_callers():
    cfg = config()
    warned = Call(cfg, flow="main", caller="+8613900000001")
    assert "ivr main.screen: caller +8613900000001 is on the warning list; flagged -> hours" in why(warned)
    flow = one_flow({"s": {"type": "screen", "blacklist": ["+86139*"], "next": "q"},
                     "q": {"type": "queue", "queue": "sales"}})
    blocked = Call(flow, caller="+8613912345678")
    assert why(blocked) == ["ivr f.s: caller +8613912345678 is blacklisted; refused"]


def test_menu_keys_invalid_keys_time_outs_and_the_fallback():
    c = Call(one_flow({
        "m": {"type": "menu", "prompts": ["main-menu"], "choices": {"1": "a", "2": "b"}, "fallback": "fb",
              "timeout": 5, "retries": 2},
        "a": {"type": "queue", "queue": "sales"}, "b": {"type": "transfer", "extension": "1001"},
        "fb": {"type": "hangup", "reason": "fallback"}}))
    c.send(DigitReceived("7"))
    c.finish_play()
    c.advance(5.1)
    c.finish_play()
    c.advance(5.1)
    assert why(c) == ["ivr f.m: invalid key 7 (keys: 12); asking again (try 2 of 3)",
                      "ivr f.m: no input within 5 s; asking again (try 3 of 3)",
                      "ivr f.m: no valid input after 3 tries (timeout: no input within 5 s) -> fb"]
    ok = Call(one_flow({"m": {"type": "menu", "prompts": ["main-menu"], "choices": {"1": "a"}, "fallback": "a"},
                        "a": {"type": "queue", "queue": "sales"}}))
    ok.send(DigitReceived("1"))
    assert why(ok) == ["ivr f.m: key 1 -> a"]


def test_collected_digits_are_counted_not_logged():
    c = Call(one_flow({"c": {"type": "collect", "prompts": ["enter-order-number"], "variable": "account", "min_length": 4,
                             "max_length": 8, "terminator": "#", "next": "q", "fallback": "q"},
                       "q": {"type": "queue", "queue": "sales"}}))
    for d in "12#":
        c.send(DigitReceived(d))
    for d in "123456#":
        c.send(DigitReceived(d))
    assert why(c)[0].startswith("ivr f.c: 2 digit(s), 4-8 wanted; asking again")
    assert why(c)[-1] == "ivr f.c: 6 digit(s) into account -> q"
    assert not any("123456" in m for m in why(c))


def test_check_config_warns_when_the_prompts_are_not_built(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from softswitch.config import load_config
    from ivr.config import missing_prompt_files
    from ivr.testing import ROOT

    (tmp_path / "prompts").symlink_to(ROOT / "prompts", target_is_directory=True)
    cfg = tmp_path / "config.toml"
    cfg.write_text((ROOT / "config.toml").read_text())

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "softswitch.cli", "check-config", str(cfg)], capture_output=True,
                              text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)

    r = check()
    assert r.returncode == 0 and "OK" in r.stdout
    assert f"prompt file(s) the IVR plays are not built (e.g. {tmp_path}/var/prompts/" in r.stderr, r.stderr
    assert f"run: softswitch prompts build --config {cfg}" in r.stderr
    missing = missing_prompt_files(load_config(cfg).ivr)
    assert {Path(f).parent.name for f in missing} == {"en", "zh", "yue"}
    assert f"{tmp_path}/var/prompts/zh/digit_7.wav" in missing  # "$variable" prompts are spoken digit by digit
    for f in missing:
        Path(f).parent.mkdir(parents=True, exist_ok=True)
        Path(f).touch()
    r = check()
    assert r.returncode == 0 and r.stderr == "", r.stderr
