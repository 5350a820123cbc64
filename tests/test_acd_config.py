"""The [acd] config section: defaults, and every class of mistake refused with the dotted key."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from acd.config import AcdConfig, Fallback, parse_acd_config
from acd.featurecodes import FeatureCodes
from softswitch.config import ConfigError


def good() -> dict[str, Any]:
    return {
        "skills": [{"name": "sales"}, {"name": "support", "description": "2nd level"}],
        "agents": [
            {"id": "2001", "name": "Alice", "extension": "1001", "skills": {"sales": 7, "support": 3}},
            {"id": "2002", "name": "Bob", "extension": "1002", "skills": {"support": 10}},
        ],
        "queues": [
            {"name": "sales", "skill": "sales", "min_level": 2, "strategy": "round-robin", "max_wait": 300,
             "on_timeout": {"action": "overflow", "queue": "support"},
             "priority_rules": [{"numbers": ["+4930*"], "priority": 20}]},
            {"name": "support", "skill": "support", "on_no_agents": {"action": "voicemail", "mailbox": "800"}},
        ],
        "dialplan": [{"number": "500", "queue": "sales"}, {"number": "501", "queue": "support"}],
        "not_ready_reasons": {"1": "lunch", "2": "training"},
    }


def test_good_config_and_defaults():
    cfg = parse_acd_config(good(), "cc.toml")
    assert isinstance(cfg, AcdConfig)
    assert cfg.agents[0].skills == {"sales": 7, "support": 3}
    sales = cfg.queue("sales")
    assert sales.strategy == "round-robin" and sales.on_timeout == Fallback("overflow", "support")
    support = cfg.queue("support")
    assert (support.ring_time, support.wrapup_time, support.max_wait, support.strategy) == (15, 10, 0, "longest-idle")
    assert support.on_timeout.action == "hangup" and cfg.queue("sales").on_no_agents.action == "wait"
    assert cfg.feature_codes == FeatureCodes()
    assert cfg.queue_for_number("501") == "support" and cfg.queue_for_number("999") is None
    assert parse_acd_config({}) == AcdConfig()


def mutate(path: str, value: Any) -> dict[str, Any]:
    """good() with one value set (value DELETE removes the key); path like 'queues.0.strategy'."""
    raw = copy.deepcopy(good())
    *parents, last = path.split(".")
    node: Any = raw
    for p in parents:
        node = node[int(p)] if p.isdigit() else node.setdefault(p, {})
    if value is DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return raw


DELETE = object()

CASES = [
    ("queues.0.strategy", "fastest", "acd.queues[0].strategy", "must be one of longest-idle"),
    ("queues.0.strategy", "round_robin", "acd.queues[0].strategy", 'did you mean "round-robin"'),
    ("queues.0.min_level", 11, "acd.queues[0].min_level", "between 1 and 10"),
    ("queues.0.ring_time", "15", "acd.queues[0].ring_time", "expected integer, got string"),
    ("queues.0.skill", "sails", "acd.queues[0].skill", "unknown skill"),
    ("queues.0.on_timeout", {"action": "overflow", "queue": "nowhere"}, "acd.queues[0].on_timeout.queue",
     'unknown queue "nowhere"'),
    ("queues.0.on_timeout", {"action": "overflow"}, "acd.queues[0].on_timeout.queue", "required when"),
    ("queues.0.on_timeout", {"action": "overflow", "queue": "sales"}, "acd.queues[0].on_timeout.queue",
     "into itself"),
    ("queues.0.on_timeout", {"action": "wait"}, "acd.queues[0].on_timeout.action", "only for on_no_agents"),
    ("queues.1.on_no_agents", {"action": "voicemail"}, "acd.queues[1].on_no_agents.mailbox", "required when"),
    ("queues.1.on_no_agents", {"action": "dance"}, "acd.queues[1].on_no_agents.action", "must be one of"),
    ("queues.1.musicclass", "x", "acd.queues[1].musicclass", 'unknown key (did you mean "music_class"?)'),
    ("queues.1.name", "sales", "acd.queues[1].name", 'duplicate queue "sales" (also acd.queues[0])'),
    ("queues.1.name", "two words", "acd.queues[1].name", "letters, digits"),
    ("queues.0.priority_rules", [{"numbers": ["abc"]}], "acd.queues[0].priority_rules[0].numbers[0]",
     "must be a number"),
    ("queues.0.priority_rules", [{"numbers": []}], "acd.queues[0].priority_rules[0].numbers", "must not be empty"),
    ("agents.1.skills", {"support": 11}, "acd.agents[1].skills.support", "between 1 and 10"),
    ("agents.1.skills", {"support": "high"}, "acd.agents[1].skills.support", "expected integer level"),
    ("agents.1.skills", {"cooking": 5}, "acd.agents[1].skills.cooking", 'unknown skill "cooking"'),
    ("agents.1.skills", ["support"], "acd.agents[1].skills", "expected table, got array"),
    ("agents.1.id", "2001", "acd.agents[1].id", 'duplicate agent id "2001" (also acd.agents[0])'),
    ("agents.1.extension", "1001", "acd.agents[1].extension", "duplicate agent extension"),
    ("agents.1.id", "x1", "acd.agents[1].id", "2-15 digits"),
    ("agents.1.name", DELETE, "acd.agents[1].name", "required key is missing"),
    ("agents.1.name", "a|b", "acd.agents[1].name", "'|'"),
    ("skills.1.name", "sales", "acd.skills[1].name", "duplicate skill"),
    ("dialplan.1.queue", "sale", "acd.dialplan[1].queue", 'unknown queue "sale"'),
    ("dialplan.1.number", "500", "acd.dialplan[1].number", "duplicate dialplan number"),
    ("feature_codes", {"login": "*1"}, "acd.feature_codes.logout", "prefix"),
    ("feature_codes", {"ready": "*12"}, "acd.feature_codes.ready", "same code as logout"),
    ("feature_codes", {"ready": "**"}, "acd.feature_codes.ready", "at least one digit"),
    ("not_ready_reasons", {"x": "lunch"}, "acd.not_ready_reasons.x", "1-4 digits"),
    ("not_ready_reasons", {"1": ""}, "acd.not_ready_reasons.1", "non-empty"),
    ("agents", {"id": "2001"}, "acd.agents", "write each entry as [[agents]]"),
    ("queue", [], "acd.queue", 'unknown key (did you mean "queues"?)'),
    ("queues.0.caller_id", "hotline", "acd.queues[0].caller_id", "must be a number"),
    ("queues.0.caller_id", 862012345678, "acd.queues[0].caller_id", "expected string, got integer"),
]


@pytest.mark.parametrize("path, value, key, reason", CASES, ids=[c[2] + ":" + c[3][:20] for c in CASES])
def test_refused_with_dotted_key(path, value, key, reason):
    with pytest.raises(ConfigError) as info:
        parse_acd_config(mutate(path, value), "cc.toml")
    e = info.value
    assert (e.file, e.key) == ("cc.toml", key), str(e)
    assert reason in e.reason, str(e)
    assert str(e) == f"cc.toml: {e.key}: {e.reason}"


def test_no_agents_overflow_loop_refused():
    raw = good()
    raw["queues"][0]["on_no_agents"] = {"action": "overflow", "queue": "support"}
    raw["queues"][1]["on_no_agents"] = {"action": "overflow", "queue": "sales"}
    with pytest.raises(ConfigError) as info:
        parse_acd_config(raw, "cc.toml")
    assert info.value.key == "acd.queues[0].on_no_agents.queue"
    assert "sales -> support -> sales" in info.value.reason


def test_prefix_for_embedding_under_another_name():
    with pytest.raises(ConfigError) as info:
        parse_acd_config({"queues": [{"name": "q"}]}, "x.toml", key="callcentre")
    assert info.value.key == "callcentre.queues[0].skill"
