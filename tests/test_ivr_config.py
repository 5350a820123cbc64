"""[ivr] validation: the shipped example, dotted keys for missing nodes/prompts and bad values."""
from __future__ import annotations

import copy
import datetime

import pytest

from base.schema import ConfigError, Context as _Ctx, Key, Table, Walker as _Walker
from ivr.config import IVR, parse_ivr_config
from ivr.testing import PROMPTS, QUEUES, ROOT, config, example_raw


def refused(raw: dict, **kw) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        parse_ivr_config(raw, "config.toml", ROOT, prompts_dir=PROMPTS, **kw)
    return ei.value


def example_with(fn) -> dict:
    raw = example_raw()
    fn(raw)
    return raw


def nodes(raw):
    return raw["flows"]["main"]["nodes"]


def test_shipped_example_is_valid():
    cfg = parse_ivr_config(example_raw(), "config.toml", ROOT, queues=QUEUES)
    assert cfg.prompts_dir == ROOT / "prompts" and cfg.sounds_dir == ROOT / "var/prompts"
    assert cfg.timezone == "Asia/Shanghai" and datetime.date(2026, 10, 1) in cfg.holidays
    assert cfg.flow_for_number("4000").name == "main" and cfg.flow_for_number("1") is None
    main = cfg.flows["main"]
    assert main.nodes["main-menu"].choices == {"1": "selfservice", "2": "voicemail", "0": "agent"}
    assert main.nodes["hours"].hours[0].days == frozenset(range(5))
    assert cfg.asr.model is None


def test_missing_next_node():
    e = refused(example_with(lambda r: nodes(r)["welcome"].update(next="main-menuu")))
    assert e.key == "ivr.flows.main.nodes.welcome.next"
    assert 'unknown node "main-menuu"' in e.reason and 'did you mean "main-menu"' in e.reason
    assert str(e).startswith("config.toml: ivr.flows.main.nodes.welcome.next: ")


@pytest.mark.parametrize("path,value,key", [
    (("main-menu", "choices"), {"1": "nowhere"}, "ivr.flows.main.nodes.main-menu.choices.1"),
    (("main-menu", "fallback"), "nowhere", "ivr.flows.main.nodes.main-menu.fallback"),
    (("main-menu", "no_input"), "nowhere", "ivr.flows.main.nodes.main-menu.no_input"),
    (("hours", "holiday"), "nowhere", "ivr.flows.main.nodes.hours.holiday"),
    (("order-number", "fallback"), "nowhere", "ivr.flows.main.nodes.order-number.fallback"),
])
def test_missing_node_references(path, value, key):
    def change(r):
        nodes(r)[path[0]][path[1]] = value
        if path[1] == "choices":
            nodes(r)[path[0]].pop("keywords", None)
    assert refused(example_with(change)).key == key


def test_missing_start_node_and_flow_of_number():
    assert refused(example_with(lambda r: r["flows"]["main"].update(start="scren"))).key == "ivr.flows.main.start"
    e = refused(example_with(lambda r: r["numbers"].update({"4001": "nope"})))
    assert e.key == "ivr.numbers.4001" and 'unknown flow "nope"' in e.reason


def test_missing_prompt():
    e = refused(example_with(lambda r: nodes(r)["welcome"].update(prompts=["welcome", "welcom3"])))
    assert e.key == "ivr.flows.main.nodes.welcome.prompts[1]"
    assert 'unknown prompt "welcom3"' in e.reason and 'did you mean "welcome"' in e.reason


def test_prompt_missing_in_one_language_only(tmp_path):
    for lang, text in (("en", 'hi = "hi"\nbye = "bye"\n'), ("zh", 'hi = "你好"\n')):
        (tmp_path / lang).mkdir()
        (tmp_path / lang / "prompts.toml").write_text(text, encoding="utf-8")
    raw = {"languages": ["en", "zh"], "flows": {"f": {"start": "a", "nodes": {
        "a": {"type": "hangup", "prompts": ["hi", "bye"]}}}}}
    with pytest.raises(ConfigError) as ei:
        parse_ivr_config(raw, "config.toml", tmp_path, prompts_dir=tmp_path)
    assert ei.value.key == "ivr.flows.f.nodes.a.prompts[1]" and "zh" in ei.value.reason
    (tmp_path / "zh" / "bye.wav").write_bytes(b"RIFF")  # a recorded prompt counts
    parse_ivr_config(raw, "config.toml", tmp_path, prompts_dir=tmp_path)


def test_default_prompt_names_are_checked_too():
    e = refused(example_with(lambda r: nodes(r)["main-menu"].update(invalid_prompt="wrong")))
    assert e.key == "ivr.flows.main.nodes.main-menu.invalid_prompt"
    e = refused(example_with(lambda r: nodes(r)["voicemail"].update(beep="boop")))
    assert e.key == "ivr.flows.main.nodes.voicemail.beep"


def test_language_prefixed_prompts():
    e = refused(example_with(lambda r: nodes(r)["language"].update(prompts=["zh:lang-yue"])))
    assert e.key == "ivr.flows.main.nodes.language.prompts[0]" and "lang-yue" in e.reason
    e = refused(example_with(lambda r: nodes(r)["language"].update(prompts=["fr:lang-en"])))
    assert e.key == "ivr.flows.main.nodes.language.prompts[0]" and '"fr"' in e.reason


def test_unknown_queue_when_queues_given():
    e = refused(example_with(lambda r: nodes(r)["vip"].update(queue="vipp")), queues=QUEUES)
    assert e.key == "ivr.flows.main.nodes.vip.queue" and 'did you mean "vip"' in e.reason


@pytest.mark.parametrize("node,change,key,words", [
    ("welcome", {"type": "plya"}, "welcome.type", 'did you mean "play"'),
    ("welcome", {"nxt": "x"}, "welcome.nxt", "unknown key"),
    ("welcome", {"prompts": "welcome"}, "welcome.prompts", "put it in brackets"),
    ("hours", {"hours": ["mon-fry 09:00-18:00"]}, "hours.hours[0]", "unknown day"),
    ("hours", {"hours": ["mon 9-18"]}, "hours.hours[0]", "days HH:MM-HH:MM"),
    ("hours", {"hours": ["mon 09:00-09:00"]}, "hours.hours[0]", "empty range"),
    ("hours", {"timezone": "Asia/Shanghia"}, "hours.timezone", "unknown time zone"),
    ("order-number", {"min_length": 13}, "order-number.min_length", "max_length"),
    ("order-number", {"terminator": "0"}, "order-number.terminator", '"#"'),
    ("order-number", {"variable": "order number"}, "order-number.variable", "letters, digits"),
    ("main-menu", {"choices": {"12": "agent"}}, "main-menu.choices.12", "single DTMF"),
    ("main-menu", {"keywords": {"7": ["x"]}}, "main-menu.keywords.7", "not one of the choices"),
    ("main-menu", {"timeout": 0}, "main-menu.timeout", "between"),
    ("set-zh", {"language": "fr"}, "set-zh.language", "must be one of"),
    ("screen", {"blacklist": ["abc"]}, "screen.blacklist[0]", "prefix"),
    ("voicemail", {"max_length": 1}, "voicemail.max_length", "between"),
])
def test_bad_node_values(node, change, key, words):
    e = refused(example_with(lambda r: nodes(r)[node].update(change)))
    assert e.key == f"ivr.flows.main.nodes.{key}" and words in e.reason


def test_bad_top_level_values():
    assert refused(example_with(lambda r: r.update(timezone="Mars/Base"))).key == "ivr.timezone"
    assert refused(example_with(lambda r: r.update(holidays=["2026-13-01"]))).key == "ivr.holidays[0]"
    assert refused(example_with(lambda r: r.update(default_language="en", languages=["zh"]))).key == \
        "ivr.default_language"
    assert refused(example_with(lambda r: r.update(numbers={"x": "main"}))).key == "ivr.numbers.x"
    assert refused(example_with(lambda r: r.update(flows={}))) is not None
    e = refused(example_with(lambda r: r.pop("flows")))
    assert e.key == "ivr.flows" and "required" in e.reason
    e = refused(example_with(lambda r: nodes(r).update({"bad name": {"type": "hangup"}})))
    assert e.key == "ivr.flows.main.nodes.bad name"
    e = refused(example_with(lambda r: nodes(r).update({"x": {"prompts": []}})))
    assert e.key == "ivr.flows.main.nodes.x.type"


def test_asr_model_path_resolves_against_config_dir():
    cfg = config(asr={"model": "models/vosk"})
    assert cfg.asr.model == ROOT / "models/vosk"


def test_ivr_kind_plugs_into_a_root_table():
    root = Table(None, {"ivr": Key(IVR, None)})
    w = _Walker(_Ctx("config.toml", ROOT))
    assert w.table(root, {}, "") == {"ivr": None}
    raw = copy.deepcopy(example_raw())
    nodes(raw)["welcome"]["next"] = "gone"
    with pytest.raises(ConfigError) as ei:
        w.table(root, {"ivr": raw}, "")
    assert ei.value.key == "ivr.flows.main.nodes.welcome.next"
