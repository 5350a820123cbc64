"""The ``[ivr]`` section of config.toml: languages, prompt folders, business calendar, caller lists and
the call flows (named nodes of eleven types).

Validated with the switch's declarative walker (``base.schema``). Every cross-reference is checked
before the switch starts: a node's ``next``/``choices``/``fallback`` must name a node of the same flow,
and every prompt a node plays must exist (text or recorded WAV) in every configured language — a caller
must never meet silence because of a typo. Errors read
``config.toml: ivr.flows.main.nodes.welcome.next: unknown node "menu1" (did you mean "menu"?)``.

``IVR`` is the scalar kind that ``softswitch.config.ROOT`` composes as ``"ivr": Key(IVR, None)`` (None =
no IVR); checks that need other sections (queue nodes naming ACD queues, numbers shadowing extensions)
are done there, or by ``check_queues`` given the queue names, so this module needs neither the switch
nor the ACD. ``parse_ivr_config`` validates the ``[ivr]`` table on its own (tests, tools).
"""
from __future__ import annotations

import datetime
import re
import zoneinfo
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from base.checks import between, ext_number, nonempty, number_pattern, one_of, printable, unique
from base.schema import (
    BOOLEAN, FLOAT, INTEGER, STRING, Array, ConfigError, Context, Invalid, Key, Scalar, Table, Walker, hint, quote,
)

from .prompts import LANGUAGES, available_prompts, prompt_file, say_digits

__all__ = [
    "IVR", "AsrConfig", "CollectNode", "Flow", "HangupNode", "HoursNode", "HoursRule", "IvrConfig", "LanguageNode",
    "MenuNode", "Node", "PlayNode", "QueueNode", "SayNode", "ScreenNode", "SurveyNode", "TransferNode", "VoicemailNode",
    "check_queues", "missing_prompt_files", "parse_ivr_config",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DTMF_KEYS = "0123456789*#"


# ============================================================================ nodes

@dataclass(frozen=True, kw_only=True)
class Node:
    """Common to all nodes. ``NODE_REFS``/``PROMPT_REFS`` name the fields checked against the flow's nodes
    and the prompt folders."""

    type: str
    name: str = ""  # filled in from the table key
    NODE_REFS: ClassVar[tuple[str, ...]] = ()
    PROMPT_REFS: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, kw_only=True)
class PlayNode(Node):
    prompts: list[str]
    next: str
    barge_in: bool = False
    NODE_REFS = ("next",)
    PROMPT_REFS = ("prompts",)


@dataclass(frozen=True, kw_only=True)
class MenuNode(Node):
    """Digit → node. ``no_input``: where silence goes at once ("stay on the line for an agent"); without it
    silence counts as a failed try like invalid input. After ``retries`` more tries: ``fallback``."""

    prompts: list[str]
    choices: dict[str, str]
    fallback: str
    keywords: dict[str, list[str]] = field(default_factory=dict)  # digit -> spoken words (with [ivr.asr])
    timeout: float = 5.0
    retries: int = 2
    invalid_prompt: str = "invalid"
    timeout_prompt: str = "timeout"
    no_input: str = ""
    variable: str = ""  # store the chosen digit (shown on the agent's screen)
    NODE_REFS = ("choices", "fallback", "no_input")
    PROMPT_REFS = ("prompts", "invalid_prompt", "timeout_prompt")


@dataclass(frozen=True, kw_only=True)
class CollectNode(Node):
    """Several digits into ``variable`` (customer number, order number)."""

    prompts: list[str]
    variable: str
    next: str
    fallback: str
    min_length: int = 1
    max_length: int = 20
    terminator: str = "#"
    first_timeout: float = 5.0
    inter_digit_timeout: float = 3.0
    retries: int = 2
    invalid_prompt: str = "invalid"
    timeout_prompt: str = "timeout"
    NODE_REFS = ("next", "fallback")
    PROMPT_REFS = ("prompts", "invalid_prompt", "timeout_prompt")


@dataclass(frozen=True, kw_only=True)
class LanguageNode(Node):
    language: str
    next: str
    NODE_REFS = ("next",)


@dataclass(frozen=True)
class HoursRule:
    """Open on ``days`` (0 = Monday) from ``start`` to ``end`` minutes after midnight; end <= start runs
    past midnight into the next day."""

    days: frozenset[int]
    start: int
    end: int


@dataclass(frozen=True, kw_only=True)
class HoursNode(Node):
    hours: list[HoursRule]
    open: str
    closed: str
    holiday: str = ""  # "" = closed
    timezone: str = ""  # "" = [ivr] timezone
    holidays: list[datetime.date] = field(default_factory=list)  # added to [ivr] holidays
    NODE_REFS = ("open", "closed", "holiday")


@dataclass(frozen=True, kw_only=True)
class QueueNode(Node):
    queue: str
    priority: int = 0
    skill: str = ""
    prompts: list[str] = field(default_factory=list)
    PROMPT_REFS = ("prompts",)


@dataclass(frozen=True, kw_only=True)
class VoicemailNode(Node):
    mailbox: str
    greeting: str = "voicemail-greeting"
    beep: str = "beep"
    max_length: float = 120.0
    silence: float = 5.0
    min_length: float = 1.0  # shorter recordings are dropped (hang-up at the beep)
    ask_callback: bool = True
    callback_prompt: str = "enter-callback"
    callback_max_length: int = 15
    callback_timeout: float = 8.0
    thanks_prompt: str = "thanks"
    next: str = ""  # "" = hang up
    NODE_REFS = ("next",)
    PROMPT_REFS = ("greeting", "beep", "callback_prompt", "thanks_prompt")


@dataclass(frozen=True, kw_only=True)
class TransferNode(Node):
    extension: str
    prompts: list[str] = field(default_factory=list)
    PROMPT_REFS = ("prompts",)


@dataclass(frozen=True, kw_only=True)
class HangupNode(Node):
    prompts: list[str] = field(default_factory=list)
    reason: str = "normal"
    PROMPT_REFS = ("prompts",)


@dataclass(frozen=True, kw_only=True)
class SurveyNode(Node):
    """"Rate us from 1 to 5": emits ``SurveyResult``."""

    prompts: list[str]
    timeout: float = 6.0
    retries: int = 1
    invalid_prompt: str = "invalid"
    timeout_prompt: str = "timeout"
    thanks_prompt: str = "thanks"
    next: str = ""  # "" = hang up
    NODE_REFS = ("next",)
    PROMPT_REFS = ("prompts", "invalid_prompt", "timeout_prompt", "thanks_prompt")


@dataclass(frozen=True, kw_only=True)
class ScreenNode(Node):
    """Caller lists: blacklisted callers hear ``refusal`` and are hung up; warning-list callers are flagged."""

    next: str
    refusal: str = "blacklisted"
    blacklist: list[str] = field(default_factory=list)  # added to [ivr] blacklist
    warning_list: list[str] = field(default_factory=list)
    NODE_REFS = ("next",)
    PROMPT_REFS = ("refusal",)


@dataclass(frozen=True, kw_only=True)
class SayNode(Node):
    """Runtime speech (``ivr.tts``): ``text`` with ``{variable}`` placeholders filled in from the call (digits the
    caller typed, a campaign contact's data), or with ``lookup = "order_status"`` the status of the work
    order whose number is in ``variable``, spoken in the caller's language, rendered in a worker and
    cached; then ``next``."""

    next: str
    text: str = ""
    lookup: str = ""
    variable: str = ""
    NODE_REFS = ("next",)


@dataclass(frozen=True)
class Flow:
    name: str
    start: str
    nodes: dict[str, Node]
    language: str = ""  # "" = [ivr] default_language


@dataclass(frozen=True)
class AsrConfig:
    model: Path | None = None  # a vosk model directory; None = speech input off


@dataclass(frozen=True)
class IvrConfig:
    flows: dict[str, Flow]
    prompts_dir: Path
    sounds_dir: Path
    voicemail_dir: Path
    default_language: str = "en"
    languages: list[str] = field(default_factory=lambda: list(LANGUAGES))
    timezone: str = "UTC"
    holidays: list[datetime.date] = field(default_factory=list)
    blacklist: list[str] = field(default_factory=list)
    warning_list: list[str] = field(default_factory=list)
    numbers: dict[str, str] = field(default_factory=dict)  # dialled number -> flow
    asr: AsrConfig = field(default_factory=AsrConfig)
    max_steps: int = 50  # nodes visited without waiting for the caller before the call is dropped (loop guard)

    def flow_for_number(self, number: str) -> Flow | None:
        name = self.numbers.get(number)
        return self.flows.get(name) if name else None


# ============================================================================ checks

_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_HOURS = re.compile(r"\s*([a-z,\-]+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


def node_name(v: str) -> str:
    if not _NODE_NAME.fullmatch(v):
        raise Invalid(f"names are 1-64 letters, digits, '_' or '-', got {quote(v)}")
    return v


def variable(v: str) -> str:
    if v and not _VAR.fullmatch(v):
        raise Invalid(f"must be a name of letters, digits and '_', got {quote(v)}")
    return v


def say_text(v: str) -> str:
    """``{name}`` placeholders only (variables of the call); a stray brace is refused here, not at call time."""
    import string
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
    except ValueError as e:
        raise Invalid(f"{e} (write {{{{ and }}}} for a brace)") from None
    bad = [f for f in fields if not _VAR.fullmatch(f)]
    if bad:
        raise Invalid(f"placeholders are {{variable}} names, got {{{bad[0]}}}")
    if len(v) > 1000:
        raise Invalid("at most 1000 characters")
    return v


def _say_post(v: dict[str, Any]) -> None:
    if v["lookup"] and not v["variable"]:
        raise Invalid('required with lookup: the variable holding the number the caller typed', at="variable")
    if not v["lookup"] and not v["text"]:
        raise Invalid("a say node needs text (or a lookup)", at="text")


def language(v: str) -> str:
    lang: str = one_of(*LANGUAGES, fold=str.lower)(v)
    return lang


def timezone(v: str) -> str:
    if not v:
        return v
    try:
        zoneinfo.ZoneInfo(v)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise Invalid(f'unknown time zone {quote(v)} (an IANA name such as "Asia/Shanghai")') from None
    return v


def hours_rule(v: str) -> HoursRule:
    """ "mon-fri 09:00-18:00", "sat,sun 10:00-14:00", "daily 08:00-20:00", "fri 22:00-06:00" (overnight)."""
    m = _HOURS.fullmatch(v.lower())
    if not m:
        raise Invalid(f'expected "days HH:MM-HH:MM" (e.g. "mon-fri 09:00-18:00"), got {quote(v)}')
    days: set[int] = set()
    for part in m.group(1).split(","):
        if part == "daily":
            days |= set(range(7))
            continue
        a, _, b = part.partition("-")
        if a not in DAYS or (b and b not in DAYS):
            raise Invalid(f"unknown day in {quote(v)}: days are {', '.join(DAYS)} or daily")
        i, j = DAYS.index(a), DAYS.index(b or a)
        days |= {k % 7 for k in range(i, i + (j - i) % 7 + 1)}
    h1, m1, h2, m2 = (int(g) for g in m.groups()[1:])
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        raise Invalid(f"not a time of day in {quote(v)}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise Invalid(f"empty range in {quote(v)}")
    return HoursRule(frozenset(days), start, end)


def _date(v: Any, ctx: Context) -> datetime.date:
    if isinstance(v, datetime.datetime):
        raise Invalid("expected a date (2026-10-01), got a date-time")
    if isinstance(v, datetime.date):
        return v
    try:
        return datetime.date.fromisoformat(v)
    except ValueError:
        raise Invalid(f"expected a date YYYY-MM-DD, got {quote(v)}") from None


def _choices(raw: dict[str, Any], ctx: Context) -> dict[str, str]:
    if not raw:
        raise Invalid("must not be empty")
    for k, v in raw.items():
        if len(k) != 1 or k not in DTMF_KEYS:
            raise Invalid(f"keys are single DTMF keys 0-9, * or # (quote them: \"1\" = ...), got {quote(k)}",
                          at=f".{k}")
        if not isinstance(v, str):
            raise Invalid("expected the name of a node", at=f".{k}")
    return dict(raw)


def _keywords(raw: dict[str, Any], ctx: Context) -> dict[str, list[str]]:
    out = {}
    for k, v in raw.items():
        if not isinstance(v, list) or not v or not all(isinstance(w, str) and w.strip() for w in v):
            raise Invalid("expected a non-empty array of words", at=f".{k}")
        out[k] = [w.strip().lower() for w in v]
    return out


def _numbers(raw: dict[str, Any], ctx: Context) -> dict[str, str]:
    for k, v in raw.items():
        try:
            ext_number(k)
        except Invalid as e:
            raise Invalid(e.reason, at=f".{k}") from None
        if not isinstance(v, str):
            raise Invalid("expected the name of a flow", at=f".{k}")
    return dict(raw)


DATE = Scalar("date", (str, datetime.date), _date)
PROMPT_LIST = Array(STRING, each=(nonempty, printable))
CHOICES = Scalar("table", (dict,), _choices)
KEYWORDS = Scalar("table", (dict,), _keywords)
NUMBERS = Scalar("table", (dict,), _numbers)
SECONDS = FLOAT


def _type(t: str) -> Key:
    return Key(STRING, checks=(one_of(t),))


def _prompt(default: str) -> Key:
    return Key(STRING, default, (printable,))


def _collect_post(v: dict[str, Any]) -> None:
    if v["min_length"] > v["max_length"]:
        raise Invalid(f"must not be greater than max_length ({v['max_length']})", at="min_length")
    if v["terminator"] not in ("", "#", "*"):
        raise Invalid(f'must be "#", "*" or "" (none), got {quote(v["terminator"])}', at="terminator")


def _menu_post(v: dict[str, Any]) -> None:
    for k in v["keywords"]:
        if k not in v["choices"]:
            raise Invalid(f"keywords for {quote(k)}, which is not one of the choices ({', '.join(v['choices'])})",
                          at=f"keywords.{k}")


NODE_TABLES: dict[str, Table] = {
    "play": Table(PlayNode, {
        "type": _type("play"), "prompts": Key(PROMPT_LIST), "next": Key(STRING), "barge_in": Key(BOOLEAN, False)}),
    "menu": Table(MenuNode, {
        "type": _type("menu"), "prompts": Key(PROMPT_LIST), "choices": Key(CHOICES), "fallback": Key(STRING),
        "keywords": Key(KEYWORDS, {}), "timeout": Key(SECONDS, 5.0, (between(0.5, 120),)),
        "retries": Key(INTEGER, 2, (between(0, 10),)), "invalid_prompt": _prompt("invalid"),
        "timeout_prompt": _prompt("timeout"), "no_input": Key(STRING, ""), "variable": Key(STRING, "", (variable,)),
    }, post=_menu_post),
    "collect": Table(CollectNode, {
        "type": _type("collect"), "prompts": Key(PROMPT_LIST), "variable": Key(STRING, checks=(nonempty, variable)),
        "next": Key(STRING), "fallback": Key(STRING), "min_length": Key(INTEGER, 1, (between(0, 64),)),
        "max_length": Key(INTEGER, 20, (between(1, 64),)), "terminator": Key(STRING, "#"),
        "first_timeout": Key(SECONDS, 5.0, (between(0.5, 120),)),
        "inter_digit_timeout": Key(SECONDS, 3.0, (between(0.5, 60),)),
        "retries": Key(INTEGER, 2, (between(0, 10),)), "invalid_prompt": _prompt("invalid"),
        "timeout_prompt": _prompt("timeout"),
    }, post=_collect_post),
    "language": Table(LanguageNode, {
        "type": _type("language"), "language": Key(STRING, checks=(language,)), "next": Key(STRING)}),
    "hours": Table(HoursNode, {
        "type": _type("hours"), "hours": Key(Array(STRING, each=(hours_rule,), min_len=1)),
        "open": Key(STRING), "closed": Key(STRING), "holiday": Key(STRING, ""),
        "timezone": Key(STRING, "", (timezone,)), "holidays": Key(Array(DATE), []),
    }),
    "queue": Table(QueueNode, {
        "type": _type("queue"), "queue": Key(STRING, checks=(nonempty, printable)),
        "priority": Key(INTEGER, 0, (between(0, 100),)), "skill": Key(STRING, "", (printable,)),
        "prompts": Key(PROMPT_LIST, []),
    }),
    "voicemail": Table(VoicemailNode, {
        "type": _type("voicemail"), "mailbox": Key(STRING, checks=(nonempty, variable)),
        "greeting": _prompt("voicemail-greeting"), "beep": _prompt("beep"),
        "max_length": Key(SECONDS, 120.0, (between(5, 3600),)), "silence": Key(SECONDS, 5.0, (between(1, 60),)),
        "min_length": Key(SECONDS, 1.0, (between(0, 60),)), "ask_callback": Key(BOOLEAN, True),
        "callback_prompt": _prompt("enter-callback"), "callback_max_length": Key(INTEGER, 15, (between(2, 20),)),
        "callback_timeout": Key(SECONDS, 8.0, (between(1, 60),)), "thanks_prompt": _prompt("thanks"),
        "next": Key(STRING, ""),
    }),
    "transfer": Table(TransferNode, {
        "type": _type("transfer"), "extension": Key(STRING, checks=(ext_number,)), "prompts": Key(PROMPT_LIST, []),
    }),
    "hangup": Table(HangupNode, {
        "type": _type("hangup"), "prompts": Key(PROMPT_LIST, []), "reason": Key(STRING, "normal", (nonempty,)),
    }),
    "survey": Table(SurveyNode, {
        "type": _type("survey"), "prompts": Key(PROMPT_LIST), "timeout": Key(SECONDS, 6.0, (between(0.5, 120),)),
        "retries": Key(INTEGER, 1, (between(0, 10),)), "invalid_prompt": _prompt("invalid"),
        "timeout_prompt": _prompt("timeout"), "thanks_prompt": _prompt("thanks"), "next": Key(STRING, ""),
    }),
    "say": Table(SayNode, {
        "type": _type("say"), "next": Key(STRING), "text": Key(STRING, "", (say_text,)),
        "lookup": Key(STRING, "", (one_of("", "order_status"),)), "variable": Key(STRING, "", (variable,)),
    }, post=_say_post),
    "screen": Table(ScreenNode, {
        "type": _type("screen"), "next": Key(STRING), "refusal": _prompt("blacklisted"),
        "blacklist": Key(Array(STRING, each=(number_pattern,)), []),
        "warning_list": Key(Array(STRING, each=(number_pattern,)), []),
    }),
}


def _reraise(e: ConfigError) -> Invalid:
    return Invalid(e.reason, at=f".{e.key}" if e.key else "")


def _nodes(raw: dict[str, Any], ctx: Context) -> dict[str, Node]:
    if not raw:
        raise Invalid("a flow needs at least one node")
    out: dict[str, Node] = {}
    walker = Walker(ctx)
    for name, item in raw.items():
        try:
            node_name(name)
        except Invalid as e:
            raise Invalid(e.reason, at=f".{name}") from None
        if not isinstance(item, dict):
            raise Invalid(f"expected a table [..nodes.{name}] with a type", at=f".{name}")
        t = item.get("type")
        if t is None:
            raise Invalid(f"required key is missing (one of {', '.join(NODE_TABLES)})", at=f".{name}.type")
        if t not in NODE_TABLES:
            raise Invalid(f"must be one of {', '.join(NODE_TABLES)}, got {quote(t)}" + hint(str(t), list(NODE_TABLES)),
                          at=f".{name}.type")
        try:
            node = walker.value(NODE_TABLES[t], item, name)
        except ConfigError as e:
            raise _reraise(e) from None
        out[name] = replace(node, name=name)
    return out


NODES = Scalar("table", (dict,), _nodes)
FLOW = Table(None, {
    "start": Key(STRING, checks=(nonempty,)),
    "language": Key(STRING, "", (lambda v: language(v) if v else v,)),
    "nodes": Key(NODES),
})


def _flows(raw: dict[str, Any], ctx: Context) -> dict[str, Flow]:
    out: dict[str, Flow] = {}
    walker = Walker(ctx)
    for name, item in raw.items():
        try:
            node_name(name)
        except Invalid as e:
            raise Invalid(e.reason, at=f".{name}") from None
        try:
            values = walker.value(FLOW, item, name)
        except ConfigError as e:
            raise _reraise(e) from None
        out[name] = Flow(name=name, **values)
    return out


FLOWS = Scalar("table", (dict,), _flows)
ASR = Table(AsrConfig, {"model": Key(STRING, None, (nonempty,))})

IVR_TABLE = Table(None, {
    "default_language": Key(STRING, "en", (language,)),
    "languages": Key(Array(STRING, each=(language,), min_len=1), list(LANGUAGES), (unique,)),
    "timezone": Key(STRING, "UTC", (nonempty, timezone)),
    "holidays": Key(Array(DATE), []),
    "prompts_dir": Key(STRING, "prompts", (nonempty,)),
    "sounds_dir": Key(STRING, "var/prompts", (nonempty,)),
    "voicemail_dir": Key(STRING, "var/voicemail", (nonempty,)),
    "blacklist": Key(Array(STRING, each=(number_pattern,)), []),
    "warning_list": Key(Array(STRING, each=(number_pattern,)), []),
    "numbers": Key(NUMBERS, {}),
    "asr": Key(ASR, {}),
    "max_steps": Key(INTEGER, 50, (between(5, 1000),)),
    "flows": Key(FLOWS),
})


# ============================================================================ cross-references

def _refs(node: Node) -> Iterator[tuple[str, str]]:
    """(dotted key under the node, value) of every node reference."""
    for f in node.NODE_REFS:
        v = getattr(node, f)
        if isinstance(v, dict):
            for k, target in v.items():
                yield f"{f}.{k}", target
        elif v:
            yield f, v


def _prompt_refs(node: Node) -> Iterator[tuple[str, str]]:
    for f in node.PROMPT_REFS:
        v = getattr(node, f)
        if isinstance(v, list):
            for i, p in enumerate(v):
                if not p.startswith("$"):  # "$var": the variable's digits, spoken
                    yield f"{f}[{i}]", p
        elif v:
            yield f, v


def missing_prompt_files(cfg: IvrConfig) -> list[str]:
    """The built prompt WAVs (``<sounds_dir>/<lang>/<name>.wav``) the flows play that are not there: prompts
    not rendered yet (``softswitch prompts build``), or a language left out of the build."""
    wanted: set[str] = set()
    for flow in cfg.flows.values():
        for node in flow.nodes.values():
            for f in node.PROMPT_REFS:
                v = getattr(node, f)
                for p in v if isinstance(v, list) else [v] if v else []:
                    fixed, _, bare = p.rpartition(":")
                    for lang in [fixed] if fixed else cfg.languages:
                        names = say_digits(lang, "0123456789") if bare.startswith("$") else [bare]
                        wanted.update(prompt_file(cfg.sounds_dir, lang, n) for n in names)
    return sorted(f for f in wanted if not Path(f).is_file())


def _check(cfg: IvrConfig) -> None:
    if cfg.default_language not in cfg.languages:
        raise Invalid(f"{quote(cfg.default_language)} is not in languages ({', '.join(cfg.languages)})",
                      at="default_language")
    prompts: dict[str, set[str]] = {}
    for lang in cfg.languages:
        try:
            prompts[lang] = available_prompts(cfg.prompts_dir, lang)
        except ValueError as e:
            raise Invalid(str(e), at="prompts_dir") from None
    for num, flow_name in cfg.numbers.items():
        if flow_name not in cfg.flows:
            raise Invalid(f"unknown flow {quote(flow_name)}" + hint(flow_name, list(cfg.flows)), at=f"numbers.{num}")
    for fname, flow in cfg.flows.items():
        at = f"flows.{fname}"
        if flow.start not in flow.nodes:
            raise Invalid(f"unknown node {quote(flow.start)}" + hint(flow.start, list(flow.nodes)), at=f"{at}.start")
        if flow.language and flow.language not in cfg.languages:
            raise Invalid(f"{quote(flow.language)} is not in languages", at=f"{at}.language")
        for nname, node in flow.nodes.items():
            nat = f"{at}.nodes.{nname}"
            for key, target in _refs(node):
                if target not in flow.nodes:
                    raise Invalid(f"unknown node {quote(target)} in flow {quote(fname)}"
                                  + hint(target, list(flow.nodes)),
                                  at=f"{nat}.{key}")
            for key, p in _prompt_refs(node):
                fixed, _, bare = p.rpartition(":")  # "yue:lang-yue": always that language's prompt
                if fixed and fixed not in cfg.languages:
                    raise Invalid(f"{quote(fixed)} in {quote(p)} is not in languages ({', '.join(cfg.languages)})",
                                  at=f"{nat}.{key}")
                for lang in [fixed] if fixed else cfg.languages:
                    p = bare
                    if p not in prompts[lang]:
                        raise Invalid(f"unknown prompt {quote(p)}: not in {cfg.prompts_dir / lang / 'prompts.toml'} "
                                      f"nor a recorded {p}.wav" + hint(p, sorted(prompts[lang])), at=f"{nat}.{key}")
            if isinstance(node, LanguageNode) and node.language not in cfg.languages:
                raise Invalid(f"{quote(node.language)} is not in languages ({', '.join(cfg.languages)})",
                              at=f"{nat}.language")


def _ivr(raw: dict[str, Any], ctx: Context) -> IvrConfig:
    try:
        values = Walker(ctx).table(IVR_TABLE, raw, "")
    except ConfigError as e:
        raise _reraise(e) from None
    for k in ("prompts_dir", "sounds_dir", "voicemail_dir"):
        values[k] = ctx.resolve(values[k])
    model = values["asr"].model
    values["asr"] = AsrConfig(ctx.resolve(model) if model else None)
    cfg = IvrConfig(**values)
    _check(cfg)
    return cfg


IVR = Scalar("table", (dict,), _ivr)


def check_queues(cfg: IvrConfig, queues: Collection[str]) -> None:
    """Every queue node names a known ACD queue (Invalid with the key under ``ivr``)."""
    for fname, flow in cfg.flows.items():
        for nname, node in flow.nodes.items():
            if isinstance(node, QueueNode) and node.queue not in queues:
                raise Invalid(f"unknown queue {quote(node.queue)}" + hint(node.queue, list(queues)),
                              at=f"flows.{fname}.nodes.{nname}.queue")


def parse_ivr_config(raw: dict[str, Any], source: str = "<config>", base_dir: Path = Path("."),
                     prompts_dir: Path | str | None = None, queues: Collection[str] | None = None,
                     key: str = "ivr") -> IvrConfig:
    """Validate the contents of the ``[ivr]`` table. Errors are ``ConfigError(source, "ivr.<dotted key>",
    reason)``. ``prompts_dir`` overrides ``[ivr] prompts_dir``; ``queues`` (the ACD's queue names) turns on
    the queue check."""
    if prompts_dir is not None and isinstance(raw, dict):
        raw = {**raw, "prompts_dir": str(Path(prompts_dir).absolute())}
    walker = Walker(Context(str(source), Path(base_dir)))
    cfg: IvrConfig = walker.value(IVR, raw, key)
    if queues is not None:
        try:
            check_queues(cfg, queues)
        except Invalid as e:
            raise ConfigError(str(source), f"{key}.{e.at}", e.reason) from None
    return cfg
