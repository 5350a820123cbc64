"""The ``[acd]`` section of config.toml: skills, agents, queues, dialplan entries, feature codes.

Validated with the same declarative walker as the rest of the switch (``base.schema``), so a
mistake is refused at start with the dotted key (``acd.queues[1].on_timeout.queue``) and the reason.
Cross-references (an agent's skill, a queue's overflow target, a dialplan entry's queue) are checked
here too: a queue that overflows into a typo would otherwise lose calls at 3 a.m.

``ACD`` is the ``Table`` that ``softswitch.config.ROOT`` composes as ``"acd": Key(ACD, {})``; checks that
need other sections (agents on configured extensions, surveys naming IVR flows) are done there, so this
module needs neither the switch nor the IVR. ``parse_acd_config`` validates the ``[acd]`` table on its
own (tests, tools).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from base.checks import between, ext_number, nonempty, number_pattern, one_of, printable, unique
from base.schema import (
    BOOLEAN, INTEGER, PATH, STRING, Array, Context, Invalid, Key, Scalar, Table, Tables, Walker, quote,
)

from .featurecodes import FeatureCodes

__all__ = [
    "ACD", "AcdAgent", "AcdConfig", "AcdQueue", "AcdSkill", "DialplanEntry", "Fallback", "PriorityRule",
    "STRATEGIES", "parse_acd_config",
]

STRATEGIES = ("longest-idle", "round-robin", "fewest-calls", "least-talk-time", "ring-all", "random")
FALLBACK_ACTIONS = ("wait", "overflow", "voicemail", "hangup")
MAX_LEVEL = 10


# ============================================================================ the settings

@dataclass(frozen=True)
class AcdSkill:
    name: str
    description: str = ""


@dataclass(frozen=True)
class AcdAgent:
    """``id`` is the agent's work number: dialled with the login code and announced to callers."""

    id: str
    name: str
    extension: str  # the agent's usual phone; a login from another phone moves the agent there
    skills: dict[str, int] = field(default_factory=dict)  # skill name -> level 1..10
    pin: str = ""  # digits: needed to log in (*11*<id>*<pin>); with it any phone unless extensions lists some
    extensions: list[str] = field(default_factory=list)  # other phones it may log in at (acd.identity)


@dataclass(frozen=True)
class PriorityRule:
    """Callers matching ``numbers`` (a number or a prefix ending in ``*``) get ``priority``."""

    numbers: list[str]
    priority: int = 10


@dataclass(frozen=True)
class Fallback:
    """What happens to a call on time-out or when no agent is logged in."""

    action: str = "hangup"  # wait | overflow | voicemail | hangup
    queue: str = ""  # overflow target
    mailbox: str = ""  # voicemail box
    prompt: str = "queue-unavailable"  # played before hanging up


@dataclass(frozen=True)
class AcdQueue:
    name: str
    skill: str
    min_level: int = 1
    strategy: str = "longest-idle"
    skill_level_first: bool = False  # higher skill level wins; the strategy only breaks ties
    weight: int = 0  # an agent serving several queues takes calls from the higher weight first
    priority_rules: list[PriorityRule] = field(default_factory=list)
    ring_time: int = 15  # seconds an agent's phone rings before ring-no-answer
    # after a missed ring (Asterisk's autopause, FreeSWITCH's max-no-answer): "no" never pauses; "yes"
    # pauses the agent in this queue only; "all" makes the agent not ready; after ``autopause_after``
    # consecutive misses. A ring-all miss never pauses the agents who were merely rung.
    autopause: str = "all"
    autopause_after: int = 1
    # the caller's language (chosen in the IVR) -> the skill of agents who speak it, and whether an agent
    # who speaks it is "prefer"red (anyone else when none is free) or "require"d
    languages: dict[str, str] = field(default_factory=dict)
    language_routing: str = "prefer"
    wrapup_time: int = 10
    max_wait: int = 0  # seconds; 0 = wait forever
    on_timeout: Fallback = field(default_factory=Fallback)
    on_no_agents: Fallback = field(default_factory=lambda: Fallback(action="wait"))
    music_class: str = "default"
    announce_interval: int = 0  # seconds between position/expected-wait announcements; 0 = never
    announce_position: bool = True
    announce_wait: bool = True
    announce_agent: bool = True  # tell the caller the agent's work number on answer
    whisper: bool = False  # play the queue name to the agent before bridging
    service_level_threshold: int = 20  # seconds; the "20" of 80/20
    sticky_window: int = 0  # seconds a caller stays attached to the last agent; 0 = off
    sticky_wait: int = 10  # seconds to wait for that agent before any agent may take the call
    survey: str = ""  # IVR flow the caller goes to when the agent hangs up ("" = the call ends)
    # the number customers see on calls made for this queue (its callbacks, its campaigns' calls), e.g. its
    # own hotline; "" = [outbound] caller_id (then the dial rule's, the trunk's): docs/outbound.md
    caller_id: str = ""


@dataclass(frozen=True)
class DialplanEntry:
    number: str
    queue: str


@dataclass(frozen=True)
class AcdConfig:
    skills: list[AcdSkill] = field(default_factory=list)
    agents: list[AcdAgent] = field(default_factory=list)
    queues: list[AcdQueue] = field(default_factory=list)
    dialplan: list[DialplanEntry] = field(default_factory=list)
    feature_codes: FeatureCodes = field(default_factory=FeatureCodes)
    not_ready_reasons: dict[str, str] = field(default_factory=dict)  # code dialled after *13 -> label
    queue_log: Path | None = None
    supervisors: list[str] = field(default_factory=list)  # extensions that may listen/whisper/barge (*21-*23)

    def queue(self, name: str) -> AcdQueue | None:
        return next((q for q in self.queues if q.name == name), None)

    def queue_for_number(self, number: str) -> str | None:
        """The queue a dialled number goes to (the dialplan entry), or None."""
        return next((d.queue for d in self.dialplan if d.number == number), None)


# ============================================================================ checks

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CODE = re.compile(r"[*#]?[0-9*#]{1,7}")


def name(v: str) -> str:
    """Queue and skill names end up in queue_log lines (``|``-separated) and in prompts."""
    if not _NAME.fullmatch(v):
        raise Invalid("must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit), "
                      f"got {quote(v)}")
    return v


def no_pipe(v: str) -> str:
    if "|" in v:
        raise Invalid("must not contain '|' (it separates queue_log fields)")
    return v


def caller_id(v: str) -> str:
    """A number presented to customers (and carriers): digits with an optional '+', or "anonymous"."""
    if v and v != "anonymous" and not re.fullmatch(r"\+?[0-9]{1,32}", v):
        raise Invalid(f"must be a number (digits, optional leading '+') or \"anonymous\", got {quote(v)}")
    return v


def feature_code(v: str) -> str:
    if not _CODE.fullmatch(v) or v.strip("*#") == "":
        raise Invalid(f'must be 1-8 of the keys 0-9, * and # with at least one digit (e.g. "*11"), got {quote(v)}')
    return v


def _skill_levels(raw: dict[str, Any], ctx: Context) -> dict[str, int]:
    out: dict[str, int] = {}
    for skill, level in raw.items():
        if isinstance(level, bool) or not isinstance(level, int):
            raise Invalid(f"expected integer level 1-{MAX_LEVEL}, got {level!r}", at=f".{skill}")
        if not 1 <= level <= MAX_LEVEL:
            raise Invalid(f"level must be between 1 and {MAX_LEVEL}, got {level}", at=f".{skill}")
        out[skill] = level
    return out


def _reasons(raw: dict[str, Any], ctx: Context) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, label in raw.items():
        if not code.isdigit() or len(code) > 4:
            raise Invalid(f"reason codes are 1-4 digits (dialled after the not-ready code), got {quote(code)}",
                          at=f".{code}")
        if not isinstance(label, str) or not label.strip():
            raise Invalid("expected a non-empty string label", at=f".{code}")
        out[code] = no_pipe(printable(label))
    return out


def _languages(raw: dict[str, Any], ctx: Context) -> dict[str, str]:
    out: dict[str, str] = {}
    for lang, skill in raw.items():
        if not isinstance(skill, str) or not skill.strip():
            raise Invalid("expected the name of a skill", at=f".{lang}")
        out[lang] = skill
    return out


SKILL_LEVELS = Scalar("table", (dict,), _skill_levels)
LANGUAGE_SKILLS = Scalar("table", (dict,), _languages)
REASONS = Scalar("table", (dict,), _reasons)


def _fallback_post(v: dict[str, Any]) -> None:
    if v["action"] == "overflow" and not v["queue"]:
        raise Invalid('required when action = "overflow"', at="queue")
    if v["action"] == "voicemail" and not v["mailbox"]:
        raise Invalid('required when action = "voicemail"', at="mailbox")


def _queue_post(v: dict[str, Any]) -> None:
    if v["on_timeout"].action == "wait":
        raise Invalid('"wait" is only for on_no_agents; on time-out use overflow, voicemail or hangup',
                      at="on_timeout.action")


def _feature_codes_post(v: dict[str, Any]) -> None:
    items = list(v.items())
    for i, (k1, c1) in enumerate(items):
        for k2, c2 in items[:i]:
            if c1 == c2:
                raise Invalid(f"same code as {k2} ({quote(c2)})", at=k1)
            if c1.startswith(c2) or c2.startswith(c1):
                raise Invalid(f"{quote(c1)} and {k2} = {quote(c2)}: one is a prefix of the other, the digits after "
                              "it could not be told apart", at=k1)


def _dups(items: list[Any], attr: str, what: str, where: str) -> None:
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            raise Invalid(f"duplicate {what} {quote(value)} (also acd.{where}[{seen[value]}])",
                          at=f"{where}[{i}].{attr}")
        seen[value] = i


def _acd_post(v: dict[str, Any]) -> None:
    skills: list[AcdSkill] = v["skills"]
    agents: list[AcdAgent] = v["agents"]
    queues: list[AcdQueue] = v["queues"]
    _dups(skills, "name", "skill", "skills")
    _dups(agents, "id", "agent id", "agents")
    _dups(agents, "extension", "agent extension", "agents")
    _dups(queues, "name", "queue", "queues")
    _dups(v["dialplan"], "number", "dialplan number", "dialplan")
    known = {s.name for s in skills}
    hint = f"known skills: {', '.join(sorted(known))}" if known else "no [[acd.skills]] are defined"
    for i, a in enumerate(agents):
        for s in a.skills:
            if s not in known:
                raise Invalid(f"unknown skill {quote(s)} ({hint})", at=f"agents[{i}].skills.{s}")
    names = {q.name: i for i, q in enumerate(queues)}
    for i, q in enumerate(queues):
        if q.skill not in known:
            raise Invalid(f"unknown skill {quote(q.skill)} ({hint})", at=f"queues[{i}].skill")
        for lang, skill in q.languages.items():
            if skill not in known:
                raise Invalid(f"unknown skill {quote(skill)} ({hint})", at=f"queues[{i}].languages.{lang}")
        for which in ("on_timeout", "on_no_agents"):
            fb: Fallback = getattr(q, which)
            if fb.action != "overflow":
                continue
            if fb.queue not in names:
                raise Invalid(f"unknown queue {quote(fb.queue)}", at=f"queues[{i}].{which}.queue")
            if fb.queue == q.name:
                raise Invalid("a queue cannot overflow into itself", at=f"queues[{i}].{which}.queue")
    # a loop of "no agents -> overflow" would bounce a call forever between empty queues
    for i, q in enumerate(queues):
        seen, cur = [q.name], q
        while cur.on_no_agents.action == "overflow":
            cur = queues[names[cur.on_no_agents.queue]]
            if cur.name in seen:
                raise Invalid(f"overflow loop when no agent is logged in: {' -> '.join(seen + [cur.name])}",
                              at=f"queues[{i}].on_no_agents.queue")
            seen.append(cur.name)
    for i, d in enumerate(v["dialplan"]):
        if d.queue not in names:
            raise Invalid(f"unknown queue {quote(d.queue)}", at=f"dialplan[{i}].queue")


# ============================================================================ the schema

SKILL = Table(AcdSkill, {
    "name": Key(STRING, checks=(name,)),
    "description": Key(STRING, "", (printable,)),
})

def _pin(v: str) -> str:
    if v and not re.fullmatch(r"[0-9]{4,12}", v):
        raise Invalid("must be 4 to 12 digits (dialled as *11*<id>*<pin>)")
    return v


AGENT = Table(AcdAgent, {
    "id": Key(STRING, checks=(ext_number,)),
    "name": Key(STRING, checks=(nonempty, printable, no_pipe)),
    "extension": Key(STRING, checks=(ext_number,)),
    "skills": Key(SKILL_LEVELS, {}),
    "pin": Key(STRING, "", (_pin,)),
    "extensions": Key(Array(STRING, each=(ext_number,)), [], (unique,)),
})

PRIORITY_RULE = Table(PriorityRule, {
    "numbers": Key(Array(STRING, each=(number_pattern,), min_len=1), checks=(unique,)),
    "priority": Key(INTEGER, 10, (between(1, 100),)),
})

FALLBACK_KEYS = {
    "action": Key(STRING, "hangup", (one_of(*FALLBACK_ACTIONS, fold=str.lower),)),
    "queue": Key(STRING, ""),
    "mailbox": Key(STRING, "", (printable,)),
    "prompt": Key(STRING, "queue-unavailable", (nonempty, printable)),
}
ON_TIMEOUT = Table(Fallback, FALLBACK_KEYS, post=_fallback_post)
ON_NO_AGENTS = Table(Fallback, {**FALLBACK_KEYS, "action": Key(STRING, "wait", FALLBACK_KEYS["action"].checks)},
                     post=_fallback_post)

QUEUE = Table(AcdQueue, {
    "name": Key(STRING, checks=(name,)),
    "skill": Key(STRING, checks=(nonempty,)),
    "min_level": Key(INTEGER, 1, (between(1, MAX_LEVEL),)),
    "strategy": Key(STRING, "longest-idle", (one_of(*STRATEGIES, fold=str.lower),)),
    "skill_level_first": Key(BOOLEAN, False),
    "weight": Key(INTEGER, 0, (between(0, 100),)),
    "priority_rules": Key(Tables(PRIORITY_RULE), []),
    "ring_time": Key(INTEGER, 15, (between(1, 300),)),
    "autopause": Key(STRING, "all", (one_of("no", "yes", "all", fold=str.lower),)),
    "autopause_after": Key(INTEGER, 1, (between(1, 100),)),
    "languages": Key(LANGUAGE_SKILLS, {}),
    "language_routing": Key(STRING, "prefer", (one_of("prefer", "require", fold=str.lower),)),
    "wrapup_time": Key(INTEGER, 10, (between(0, 3600),)),
    "max_wait": Key(INTEGER, 0, (between(0, 86400),)),
    "on_timeout": Key(ON_TIMEOUT, {}),
    "on_no_agents": Key(ON_NO_AGENTS, {}),
    "music_class": Key(STRING, "default", (nonempty, printable)),
    "announce_interval": Key(INTEGER, 0, (between(0, 3600),)),
    "announce_position": Key(BOOLEAN, True),
    "announce_wait": Key(BOOLEAN, True),
    "announce_agent": Key(BOOLEAN, True),
    "whisper": Key(BOOLEAN, False),
    "service_level_threshold": Key(INTEGER, 20, (between(1, 3600),)),
    "sticky_window": Key(INTEGER, 0, (between(0, 30 * 86400),)),
    "sticky_wait": Key(INTEGER, 10, (between(0, 3600),)),
    "survey": Key(STRING, "", (printable,)),
    "caller_id": Key(STRING, "", (caller_id,)),
}, post=_queue_post)

DIALPLAN = Table(DialplanEntry, {
    "number": Key(STRING, checks=(ext_number,)),
    "queue": Key(STRING, checks=(nonempty,)),
})

FEATURE_CODES = Table(FeatureCodes, {
    "login": Key(STRING, "*11", (feature_code,)),
    "logout": Key(STRING, "*12", (feature_code,)),
    "not_ready": Key(STRING, "*13", (feature_code,)),
    "ready": Key(STRING, "*14", (feature_code,)),
}, post=_feature_codes_post)

ACD = Table(AcdConfig, {
    "skills": Key(Tables(SKILL), []),
    "agents": Key(Tables(AGENT), []),
    "queues": Key(Tables(QUEUE), []),
    "dialplan": Key(Tables(DIALPLAN), []),
    "feature_codes": Key(FEATURE_CODES, {}),
    "not_ready_reasons": Key(REASONS, {}),
    "queue_log": Key(PATH, None),
    "supervisors": Key(Array(STRING, each=(ext_number,)), []),
}, post=_acd_post)


def parse_acd_config(raw: dict[str, Any], source: str = "<config>", base_dir: Path = Path("."), key: str = "acd") -> AcdConfig:
    """Validate the contents of the ``[acd]`` table. Errors are ``ConfigError(source, "acd.<dotted key>",
    reason)``; ``key`` is the prefix (the table's own name in the file)."""
    walker = Walker(Context(str(source), Path(base_dir)))
    config: AcdConfig = walker.value(ACD, raw, key)
    return config
