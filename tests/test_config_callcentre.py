"""Cross-checks between the call-centre tables and the rest of config.toml, refused with file, key, reason."""
from __future__ import annotations

import pytest

from softswitch.config import ConfigError, parse_config

BASE = {"sip": {"listen": ["udp:127.0.0.1:5060"], "domain": "x.local"}, "store": {"path": "a.db"},
        "extensions": [{"number": "1001", "password": "pw-1001"}, {"number": "1002", "password": "pw-1002"}]}
ACD = {"skills": [{"name": "support"}],
       "agents": [{"id": "2001", "name": "A", "extension": "1002", "skills": {"support": 5}}],
       "queues": [{"name": "support", "skill": "support"}],
       "dialplan": [{"number": "500", "queue": "support"}]}


def cfg(**sections):
    return {**BASE, **sections}


def refused(data) -> ConfigError:
    with pytest.raises(ConfigError) as e:
        parse_config(data, "config.toml")
    return e.value


def test_valid_call_centre_loads():
    c = parse_config(cfg(acd=ACD), "config.toml")
    assert c.acd.queue_for_number("500") == "support"


def test_agent_on_an_unknown_extension():
    acd = {**ACD, "agents": [{**ACD["agents"][0], "extension": "1999"}]}
    e = refused(cfg(acd=acd))
    assert e.key == "acd.agents[0].extension" and "not a configured extension" in e.reason


def test_queue_number_that_is_an_extension():
    e = refused(cfg(acd={**ACD, "dialplan": [{"number": "1001", "queue": "support"}]}))
    assert e.key == "acd.dialplan[0].number" and "also an extension" in e.reason


def test_survey_flow_must_exist():
    e = refused(cfg(acd={**ACD, "queues": [{**ACD["queues"][0], "survey": "nope"}]}))
    assert e.key == "acd.queues[0].survey" and "no IVR flow" in e.reason


def test_store_numbering_tables():
    c = parse_config(cfg(store={"path": "a.db", "country_code": "86", "regions": {"+8610": "Beijing"},
                               "service_points": {"Beijing": "BJ-1"}}), "config.toml")
    assert c.store.regions == {"+8610": "Beijing"} and c.store.service_points == {"Beijing": "BJ-1"}
    e = refused(cfg(store={"path": "a.db", "regions": {"abc": "X"}}))
    assert e.key == "store.regions.abc" and "number prefix" in e.reason
    e = refused(cfg(store={"path": "a.db", "service_points": {"Beijing": 3}}))
    assert e.key == "store.service_points.Beijing"
