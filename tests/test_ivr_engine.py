"""IvrSession node by node with a fake clock: menus (time-outs, retries, invalid input, no-input),
collect-digits edge cases, language switching, business hours across time zones and holidays, queue,
transfer, hang-up, voicemail, survey, screening, speech choices, loop guard."""
from __future__ import annotations

import datetime

import pytest

from ivr.actions import (
    CallerFlagged, CollectDigits, Hangup, Log, Play, SetLanguage, StartRecording, StartSpeech, StopPlayback,
    StopRecording, StopSpeech, SurveyResult, ToQueue, ToVoicemail, Transfer, VoicemailLeft,
)
from ivr.events import CallerHungUp, DigitReceived, PlaybackFinished, RecordingStopped, SpeechResult, TimerFired
from ivr.testing import MON_10_SHANGHAI, Call, config, one_flow



def kinds(actions, t):
    return [a for a in actions if isinstance(a, t)]


def menu_flow(**menu):
    return one_flow({
        "m": {"type": "menu", "prompts": ["main-menu"], "choices": {"1": "a", "2": "b"}, "fallback": "fb", **menu},
        "a": {"type": "queue", "queue": "sales"},
        "b": {"type": "transfer", "extension": "1001"},
        "fb": {"type": "hangup", "prompts": ["goodbye"], "reason": "fallback"},
        "quiet": {"type": "queue", "queue": "support"},
    })


# ------------------------------------------------------------------------------------------ play

def test_play_then_next_and_stale_playback_ignored():
    c = Call(one_flow({"p": {"type": "play", "prompts": ["welcome", "thanks"], "next": "h"},
                       "h": {"type": "hangup"}}))
    play = c.out[0]
    assert isinstance(play, Play) and play.prompt_files == ["/s/en/welcome.wav", "/s/en/thanks.wav"]
    assert not play.barge_in and c.s.next_deadline() is None
    assert c.send(PlaybackFinished(play.id + 7)) == []  # not ours
    assert c.send(DigitReceived("1")) == []  # no barge-in
    out = c.finish_play()
    assert out == [Hangup("normal")] and c.s.done and c.s.result.outcome == "hangup"
    assert c.send(DigitReceived("1")) == []  # done: nothing more


def test_play_barge_in_skips():
    c = Call(one_flow({"p": {"type": "play", "prompts": ["welcome"], "next": "q", "barge_in": True},
                       "q": {"type": "queue", "queue": "sales"}}))
    out = c.send(DigitReceived("5"))
    assert isinstance(out[0], StopPlayback) and isinstance(out[-1], ToQueue)


# ------------------------------------------------------------------------------------------ menu

def test_menu_valid_choice_stops_prompt_and_goes():
    c = Call(menu_flow(variable="choice"))
    assert c.out[0].barge_in
    out = c.send(DigitReceived("1"))
    assert isinstance(out[0], StopPlayback)
    q = out[-1]
    assert q == ToQueue("sales", 0, "", {"choice": "1", "language": "en"})
    assert c.s.result.path == ["m", "a"]


def test_menu_timeout_retries_then_fallback():
    c = Call(menu_flow(timeout=5, retries=2))
    assert c.s.next_deadline() is None  # no timer while the prompt plays
    c.finish_play()
    assert c.s.next_deadline() == pytest.approx(c.now + 5)
    assert c.advance(4.9) == []
    out = c.advance(0.2)
    assert c.played_names(out[0]) == ["en/timeout", "en/main-menu"]
    c.finish_play()
    c.advance(5.1)
    assert c.played_names() == ["en/timeout", "en/main-menu"]
    c.finish_play()
    out = c.advance(5.1)  # third failure: fallback
    assert any(isinstance(a, Log) and "3 tries" in a.message for a in out)
    assert c.played_names() == ["en/goodbye"]
    assert c.finish_play() == [Hangup("fallback")]


def test_menu_invalid_then_valid():
    c = Call(menu_flow(retries=1))
    out = c.send(DigitReceived("9"))
    assert isinstance(out[0], StopPlayback) and c.played_names() == ["en/invalid", "en/main-menu"]
    out = c.send(DigitReceived("2"))
    assert out[-1] == Transfer("1001") and c.s.result.outcome == "transfer"


def test_menu_invalid_exhausts_retries():
    c = Call(menu_flow(retries=0))
    c.send(DigitReceived("#"))
    assert c.played_names() == ["en/goodbye"]


def test_menu_no_input_goes_straight_on():
    c = Call(menu_flow(no_input="quiet", retries=2))
    c.finish_play()
    out = c.advance(5)
    assert out[-1].queue == "support"


def test_timer_early_or_without_deadline_is_ignored():
    c = Call(menu_flow())
    assert c.send(TimerFired()) == []  # while playing: no deadline
    c.finish_play()
    assert c.send(TimerFired()) == []  # before the deadline


def test_menu_empty_invalid_prompt_replays_menu_only():
    c = Call(menu_flow(invalid_prompt=""))
    c.send(DigitReceived("7"))
    assert c.played_names() == ["en/main-menu"]


# ------------------------------------------------------------------------------------------ collect

def collect_flow(**kw):
    return one_flow({
        "c": {"type": "collect", "prompts": ["enter-order-number"], "variable": "order", "next": "q",
              "fallback": "fb", **kw},
        "q": {"type": "queue", "queue": "support", "prompts": ["you-entered", "$order"]},
        "fb": {"type": "hangup", "reason": "fallback"},
    })


def test_collect_with_terminator_and_digits_read_back():
    c = Call(collect_flow(min_length=3, max_length=8))
    assert kinds(c.out, CollectDigits) == [CollectDigits(8, "#", 5.0)]
    for d in "1021#":
        out = c.send(DigitReceived(d))
    assert c.played_names(out[-1]) == ["en/you-entered", "en/digit_1", "en/digit_0", "en/digit_2", "en/digit_1"]
    assert c.finish_play()[-1].variables["order"] == "1021"


def test_collect_max_length_ends_entry():
    c = Call(collect_flow(max_length=4))
    for d in "9876":
        c.send(DigitReceived(d))
    assert c.s.variables["order"] == "9876"


def test_collect_inter_digit_timeout_accepts_when_long_enough():
    c = Call(collect_flow(min_length=2, inter_digit_timeout=3))
    c.finish_play()
    c.send(DigitReceived("4"))
    c.send(DigitReceived("2"))
    assert c.s.next_deadline() == pytest.approx(c.now + 3)
    c.advance(3)
    assert c.s.variables["order"] == "42"


def test_collect_too_short_is_invalid_and_buffer_resets():
    c = Call(collect_flow(min_length=4, retries=1))
    c.send(DigitReceived("1"))
    c.send(DigitReceived("#"))
    assert c.played_names() == ["en/invalid", "en/enter-order-number"]
    for d in "5555#":
        c.send(DigitReceived(d))
    assert c.s.variables["order"] == "5555"  # not "15555"


def test_collect_inter_digit_timeout_too_short_is_invalid():
    c = Call(collect_flow(min_length=3, retries=0))
    c.finish_play()
    c.send(DigitReceived("1"))
    c.advance(3)
    assert c.s.result.path[-1] == "fb" and "order" not in c.s.variables


def test_collect_star_is_invalid_and_empty_terminator_counts_as_invalid():
    c = Call(collect_flow(retries=2))
    c.send(DigitReceived("*"))
    assert c.played_names()[0] == "en/invalid"
    c.send(DigitReceived("#"))
    assert c.played_names()[0] == "en/invalid"
    c.send(DigitReceived("#"))
    assert c.s.result.path[-1] == "fb"


def test_collect_first_timeout_then_fallback():
    c = Call(collect_flow(first_timeout=8, retries=1))
    c.finish_play()
    assert c.advance(7.9) == []
    c.advance(0.2)
    assert c.played_names()[0] == "en/timeout"
    c.finish_play()
    c.advance(8)
    assert c.s.result.reason == "fallback"


def test_collect_min_length_zero_and_no_terminator():
    c = Call(collect_flow(min_length=0, terminator="", retries=0))
    c.finish_play()
    c.advance(5)  # nothing typed: a time-out, not an empty value
    assert c.s.result.path[-1] == "fb"
    c = Call(collect_flow(terminator="", max_length=3))
    c.send(DigitReceived("#"))  # "#" is not a terminator here: invalid
    assert c.played_names()[0] == "en/invalid"


# ------------------------------------------------------------------------------------------ language

def test_language_switch_changes_prompt_paths():
    c = Call(one_flow({
        "m": {"type": "menu", "prompts": ["zh:lang-zh", "yue:lang-yue", "en:lang-en"],
              "choices": {"1": "zh", "2": "yue"}, "fallback": "w"},
        "zh": {"type": "language", "language": "zh", "next": "w"},
        "yue": {"type": "language", "language": "yue", "next": "w"},
        "w": {"type": "play", "prompts": ["welcome"], "next": "q"},
        "q": {"type": "queue", "queue": "sales"},
    }))
    assert c.out[0].prompt_files == ["/s/zh/lang-zh.wav", "/s/yue/lang-yue.wav", "/s/en/lang-en.wav"]
    out = c.send(DigitReceived("2"))
    assert SetLanguage("yue") in out and c.last_play().prompt_files == ["/s/yue/welcome.wav"]
    assert c.finish_play()[-1].variables["language"] == "yue"


def test_flow_language_and_default_language():
    cfg = one_flow({"w": {"type": "play", "prompts": ["welcome"], "next": "h"}, "h": {"type": "hangup"}},
                   default_language="zh")
    assert Call(cfg).out[0].prompt_files == ["/s/zh/welcome.wav"]


def test_setting_the_same_language_emits_nothing():
    c = Call(one_flow({"l": {"type": "language", "language": "en", "next": "h"}, "h": {"type": "hangup"}}))
    assert c.out == [Hangup("normal")]


# ------------------------------------------------------------------------------------------ hours

def hours_cfg(tz="Asia/Shanghai", holidays=(), rules=("mon-fri 09:00-18:00",), node_tz=""):
    return one_flow({
        "h": {"type": "hours", "hours": list(rules), "open": "o", "closed": "c", "holiday": "hol",
              **({"timezone": node_tz} if node_tz else {})},
        "o": {"type": "queue", "queue": "open"},
        "c": {"type": "queue", "queue": "closed"},
        "hol": {"type": "queue", "queue": "holiday"},
    }, timezone=tz, holidays=list(holidays))


def route(cfg, t):
    return Call(cfg, now=t).out[-1].queue


def utc(*a):
    return datetime.datetime(*a, tzinfo=datetime.timezone.utc).timestamp()


def test_hours_open_and_closed_in_shanghai():
    cfg = hours_cfg()
    assert route(cfg, MON_10_SHANGHAI) == "open"
    assert route(cfg, utc(2026, 11, 23, 0, 59)) == "closed"  # 08:59 local
    assert route(cfg, utc(2026, 11, 23, 1, 0)) == "open"  # 09:00 local
    assert route(cfg, utc(2026, 11, 23, 10, 0)) == "closed"  # 18:00 local: end is exclusive
    assert route(cfg, utc(2026, 11, 22, 2, 0)) == "closed"  # Sunday


def test_hours_same_instant_different_time_zones():
    t = utc(2026, 11, 23, 14, 0)  # Monday 22:00 Shanghai, 09:00 New York, 14:00 London
    assert route(hours_cfg("Asia/Shanghai"), t) == "closed"
    assert route(hours_cfg("America/New_York"), t) == "open"
    assert route(hours_cfg("Asia/Shanghai", node_tz="Europe/London"), t) == "open"  # node overrides [ivr]


def test_hours_follow_daylight_saving():
    cfg = hours_cfg("Europe/Berlin")
    assert route(cfg, utc(2026, 7, 6, 7, 30)) == "open"  # Monday 09:30 CEST (UTC+2)
    assert route(cfg, utc(2026, 11, 23, 7, 30)) == "closed"  # Monday 08:30 CET (UTC+1)


def test_hours_holiday_local_date_and_overnight():
    cfg = hours_cfg(holidays=["2026-10-01"])
    assert route(cfg, utc(2026, 10, 1, 2, 0)) == "holiday"  # Thursday 10:00 in Shanghai
    assert route(cfg, utc(2026, 9, 30, 17, 0)) == "holiday"  # still Sept 30 in UTC, Oct 1 01:00 local
    assert route(cfg, utc(2026, 10, 2, 2, 0)) == "open"
    night = hours_cfg(tz="UTC", rules=("fri 22:00-06:00",))
    assert route(night, utc(2026, 11, 27, 23, 0)) == "open"  # Friday 23:00
    assert route(night, utc(2026, 11, 28, 5, 59)) == "open"  # Saturday 05:59
    assert route(night, utc(2026, 11, 28, 6, 0)) == "closed"
    assert route(night, utc(2026, 11, 26, 23, 0)) == "closed"  # Thursday


def test_hours_holiday_without_holiday_node_is_closed_and_node_holidays_add():
    cfg = one_flow({"h": {"type": "hours", "hours": ["daily 00:00-24:00"], "open": "o", "closed": "c",
                          "holidays": [datetime.date(2026, 12, 25)]},
                    "o": {"type": "queue", "queue": "open"}, "c": {"type": "queue", "queue": "closed"}})
    assert route(cfg, utc(2026, 12, 25, 12)) == "closed"
    assert route(cfg, utc(2026, 12, 26, 12)) == "open"


# ------------------------------------------------------------------------------------------ terminal nodes

def test_queue_with_prompts_waits_for_them_and_passes_variables():
    c = Call(one_flow({"q": {"type": "queue", "queue": "vip", "priority": 10, "skill": "orders",
                             "prompts": ["please-hold"]}}))
    assert isinstance(c.out[0], Play) and not c.s.done
    assert c.finish_play() == [ToQueue("vip", 10, "orders", {"language": "en"})]
    assert c.s.result.outcome == "queue"


def test_hangup_during_menu_ends_quietly():
    c = Call(menu_flow())
    assert c.send(CallerHungUp()) == [] and c.s.done and c.s.result.outcome == "caller-hung-up"
    assert c.s.next_deadline() is None


# ------------------------------------------------------------------------------------------ voicemail

def vm_flow(**kw):
    return one_flow({"v": {"type": "voicemail", "mailbox": "hotline", "next": "bye", **kw},
                     "bye": {"type": "hangup", "prompts": ["goodbye"]}})


def test_voicemail_full_flow():
    c = Call(vm_flow(max_length=60))
    assert c.out[0] == ToVoicemail("hotline") and c.played_names() == ["en/voicemail-greeting"]
    c.finish_play()
    assert c.played_names() == ["en/beep"]
    out = c.finish_play()
    rec = out[0]
    assert isinstance(rec, StartRecording) and rec.path.startswith("hotline/20261123T020000Z-+8613800000000-c1")
    assert (rec.max_length, rec.silence) == (60, 5.0)
    c.now += 12
    assert c.send(DigitReceived("5")) == []  # only # ends the message
    assert c.send(DigitReceived("#")) == [StopRecording(rec.path)]
    out = c.send(RecordingStopped("stopped", 11.5))
    assert CollectDigits(15, "#", 8.0) in out and c.played_names() == ["en/enter-callback"]
    for d in "13800138000#":
        out = c.send(DigitReceived(d))
    vm = kinds(out, VoicemailLeft)[0]
    assert (vm.file, vm.mailbox, vm.callback_number, vm.caller, vm.duration) == (
        rec.path, "hotline", "13800138000", "+8613800000000", 11.5)
    assert c.played_names() == ["en/thanks"]
    c.finish_play()
    assert c.played_names() == ["en/goodbye"]
    assert c.finish_play() == [Hangup("normal")] and c.s.result.voicemail == vm


def test_voicemail_key_skips_greeting_and_silence_stop_from_edge():
    c = Call(vm_flow(ask_callback=False, next=""))
    out = c.send(DigitReceived("#"))
    assert isinstance(out[0], StopPlayback) and c.played_names() == ["en/beep"]
    c.finish_play()
    c.now += 20
    out = c.send(RecordingStopped("silence", None))  # the edge measured nothing: our clock says 20 s
    assert kinds(out, VoicemailLeft)[0].duration == 20.0 and c.played_names() == ["en/thanks"]
    assert c.finish_play() == [Hangup("normal")]


def test_voicemail_max_length_and_lost_confirmation():
    c = Call(vm_flow(max_length=30, ask_callback=False))
    c.finish_play()
    rec = c.finish_play()[0]
    out = c.advance(30)
    assert out == [StopRecording(rec.path)]
    out = c.advance(5)  # no RecordingStopped from the edge: go on with our own measure
    assert kinds(out, VoicemailLeft)[0].duration == 30.0


def test_voicemail_callback_timeout_keeps_partial_number():
    c = Call(vm_flow())
    c.finish_play(), c.finish_play()
    c.now += 5
    c.send(DigitReceived("#"))
    c.send(RecordingStopped("stopped", 5.0))
    c.finish_play()
    c.send(DigitReceived("1"))
    c.send(DigitReceived("2"))
    out = c.advance(8)
    assert kinds(out, VoicemailLeft)[0].callback_number == "12"


def test_voicemail_hangup_while_recording_keeps_message():
    c = Call(vm_flow())
    c.finish_play(), c.finish_play()
    path = kinds(c.log, StartRecording)[0].path
    c.now += 7
    out = c.send(CallerHungUp())
    assert out[0] == StopRecording(path)
    assert out[1].duration == 7.0 and out[1].callback_number == ""
    assert c.s.result.outcome == "caller-hung-up" and c.s.result.voicemail == out[1]


def test_voicemail_too_short_is_dropped():
    c = Call(vm_flow(min_length=2))
    c.finish_play(), c.finish_play()
    c.now += 0.5
    out = c.send(CallerHungUp())
    assert out == [StopRecording(kinds(c.log, StartRecording)[0].path)] and c.s.result.voicemail is None
    c = Call(vm_flow(min_length=2))
    c.finish_play(), c.finish_play()
    out = c.send(RecordingStopped("stopped", 1.0))
    assert not kinds(out, VoicemailLeft) and c.played_names() == ["en/goodbye"]


def test_voicemail_hangup_during_callback_entry():
    c = Call(vm_flow())
    c.finish_play(), c.finish_play()
    c.send(RecordingStopped("silence", 9.0))
    c.send(DigitReceived("8"))
    out = c.send(CallerHungUp())
    assert out == [kinds(out, VoicemailLeft)[0]] and out[0].callback_number == "8" and out[0].duration == 9.0


# ------------------------------------------------------------------------------------------ survey

def survey_flow(**kw):
    return one_flow({"s": {"type": "survey", "prompts": ["survey-question"], **kw}})


def test_survey_records_score():
    c = Call(survey_flow())
    out = c.send(DigitReceived("4"))
    assert SurveyResult(4, "f", "s") in out and c.s.result.survey_score == 4
    assert c.played_names() == ["en/thanks"]
    assert c.finish_play() == [Hangup("normal")]


@pytest.mark.parametrize("digit", ["0", "6", "9", "*", "#"])
def test_survey_out_of_range_is_invalid(digit):
    c = Call(survey_flow(retries=1))
    c.send(DigitReceived(digit))
    assert c.played_names() == ["en/invalid", "en/survey-question"]
    out = c.send(DigitReceived("1"))
    assert kinds(out, SurveyResult)[0].score == 1


def test_survey_no_answer_hangs_up_without_score():
    c = Call(survey_flow(retries=0))
    c.finish_play()
    out = c.advance(6)
    assert out[-1] == Hangup("normal") and c.s.result.survey_score is None
    assert not kinds(c.log, SurveyResult)


# ------------------------------------------------------------------------------------------ screen

def screen_cfg():
    return one_flow({"s": {"type": "screen", "next": "q", "warning_list": ["+86139*"]},
                     "q": {"type": "queue", "queue": "support"}},
                    blacklist=["+8617000000*", "666"])


def test_blacklisted_caller_hears_refusal_and_is_hung_up():
    c = Call(screen_cfg(), caller="+8617000000123")
    assert c.played_names() == ["en/blacklisted"]
    assert c.finish_play() == [Hangup("blacklisted")] and "blacklisted" in c.s.result.flags
    assert Call(screen_cfg(), caller="666").s.result.path == ["s"]


def test_warning_list_caller_is_flagged_and_queued():
    c = Call(screen_cfg(), caller="+8613912345678")
    assert c.out[0] == CallerFlagged("warning", "+8613912345678")
    assert c.out[-1].variables == {"language": "en", "warning": "1"}
    plain = Call(screen_cfg(), caller="+8613812345678")
    assert plain.out[-1].variables == {"language": "en"}


# ------------------------------------------------------------------------------------------ speech

def test_speech_choice_in_menu():
    cfg = menu_flow(keywords={"1": ["sales", "销售"], "2": ["operator", "人工"]})
    c = Call(cfg, speech=True)
    assert isinstance(c.out[0], StartSpeech) and set(c.out[0].keywords) == {"sales", "销售", "operator", "人工"}
    out = c.send(SpeechResult("我 要 找 人工"))
    assert isinstance(out[-1], Transfer)
    assert StopSpeech() in out


def test_speech_unmatched_counts_as_invalid_and_empty_is_ignored():
    c = Call(menu_flow(keywords={"1": ["sales"]}), speech=True)
    assert c.send(SpeechResult("")) == []
    c.send(SpeechResult("weather today"))
    assert c.played_names() == ["en/invalid", "en/main-menu"]


def test_no_speech_without_recogniser():
    c = Call(menu_flow(keywords={"1": ["sales"]}), speech=False)
    assert not kinds(c.out, StartSpeech)


# ------------------------------------------------------------------------------------------ guards and example

def test_loop_guard():
    c = Call(one_flow({"a": {"type": "language", "language": "zh", "next": "b"},
                       "b": {"type": "language", "language": "en", "next": "a"}}))
    assert c.out[-1] == Hangup("loop") and c.s.done


def test_shipped_example_main_flow():
    cfg = config()
    c = Call(cfg, flow="main", caller="+8613900000001")  # on the warning list
    assert c.out[0] == CallerFlagged("warning", "+8613900000001")
    assert c.played_names() == ["zh/lang-zh", "yue/lang-yue", "en/lang-en"]
    c.send(DigitReceived("3"))  # English
    assert c.played_names() == ["en/welcome"]
    c.send(DigitReceived("1"))  # barge into the menu
    assert c.played_names() == ["en/main-menu"]
    c.send(DigitReceived("1"))
    assert c.played_names() == ["en/selfservice-menu"]
    c.send(DigitReceived("1"))
    for d in "2026112#":
        c.send(DigitReceived(d))
    assert c.played_names()[:2] == ["en/you-entered", "en/digit_2"]
    q = c.finish_play()[-1]
    assert q == ToQueue("support", 0, "orders", {"menu": "1", "selfservice": "1", "order_number": "2026112",
                                                 "language": "en", "warning": "1"})


def test_shipped_example_stay_on_the_line_and_closed():
    cfg = config()
    c = Call(cfg, flow="main")
    c.finish_play()
    c.advance(3)  # no language key: default (Mandarin)
    assert c.played_names() == ["zh/welcome"]
    c.finish_play()
    c.finish_play()
    c.advance(5)
    assert c.played_names() == ["zh/please-hold"]
    assert c.finish_play()[-1].queue == "support"
    night = Call(cfg, flow="main", now=utc(2026, 11, 23, 14, 0))  # 22:00 in Shanghai
    assert night.played_names() == ["zh/closed"]
    night.finish_play()
    assert kinds(night.log, ToVoicemail)
    holiday = Call(cfg, flow="main", now=utc(2026, 10, 1, 2, 0))
    assert holiday.played_names() == ["zh/holiday"]
