"""Agent feature code parsing (*11 login, *12 logout, *13 not ready, *14 ready)."""
from __future__ import annotations

import pytest

from acd.featurecodes import FeatureCodes, FeatureCommand, parse_feature_code

CASES = [
    ("*11", FeatureCommand("login")),
    ("*112001", FeatureCommand("login", agent_id="2001")),
    ("*11*2001", FeatureCommand("login", agent_id="2001")),
    ("*11*2001*4711", FeatureCommand("login", agent_id="2001", pin="4711")),
    ("*112001#4711#", FeatureCommand("login", agent_id="2001", pin="4711")),
    ("*11#2001#", FeatureCommand("login", agent_id="2001")),
    ("*12", FeatureCommand("logout")),
    ("*12#", FeatureCommand("logout")),
    ("*13", FeatureCommand("not_ready")),
    ("*132", FeatureCommand("not_ready", reason="2")),
    ("*13*15", FeatureCommand("not_ready", reason="15")),
    ("*14", FeatureCommand("ready")),
    (" *14 ", FeatureCommand("ready")),
    ("*1", None),
    ("*15", None),
    ("*125", None),  # logout takes no argument
    ("*14*1", None),
    ("*11*", None),
    ("*11ab", None),
    ("1001", None),
    ("", None),
    ("#", None),
]


@pytest.mark.parametrize("digits, expected", CASES)
def test_default_codes(digits, expected):
    assert parse_feature_code(digits) == expected


def test_configured_codes_longest_match():
    codes = FeatureCodes(login="*7", logout="*70", not_ready="#8", ready="#9")
    assert parse_feature_code("*70", codes) == FeatureCommand("logout")
    assert parse_feature_code("*7123", codes) == FeatureCommand("login", agent_id="123")
    assert parse_feature_code("#83", codes) == FeatureCommand("not_ready", reason="3")
    assert parse_feature_code("*11", codes) is None


def test_mask_pin():
    from acd.featurecodes import mask_pin
    assert mask_pin("*11*2001*4711") == "*11*2001*****"
    assert mask_pin("*11*2001") == "*11*2001"
    assert mask_pin("1002") == "1002"
