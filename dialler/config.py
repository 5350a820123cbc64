"""The ``[outbound]`` section of config.toml: click-to-dial presentation, callbacks and campaigns.

```toml
[outbound]
caller_id = "4008001234"                 # the hotline number customers see
timezone = "Asia/Shanghai"               # contacts without one of their own
calling_hours = ["mon-fri 09:00-20:00", "sat 10:00-16:00"]
max_attempts = 6

[outbound.retry.busy]                    # per result code; the default is every 4 h, <= 3 a day
interval = 14400
per_day = 3

[outbound.callbacks]
offer_after = 60                         # seconds in a queue before "press 1 to be called back"

[[outbound.campaigns]]
name = "followup"
mode = "progressive"                     # preview | progressive | predictive | notification
queue = "service"
```

Validated with ``base.schema`` like every section, so a typo is refused at start with its dotted key.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from base.checks import between, nonempty, one_of, printable
from base.schema import BOOLEAN, FLOAT, INTEGER, STRING, Array, Invalid, Key, Scalar, Table, Tables, quote

from .amd import AmdParams
from .rules import DEFAULT_RULES, CallingHours, Result, RetryRule, parse_hours, parse_window, zone

__all__ = ["AMD", "AMD_MACHINE", "AmdSettings", "CALLBACKS", "Campaign", "CallbackSettings", "MODES", "OUTBOUND", "OutboundConfig"]

MODES = ("preview", "progressive", "predictive", "notification")
AMD_MACHINE = ("hangup", "message")   # what a campaign does with an answering machine


@dataclass(frozen=True)
class AmdSettings:
    """``[outbound.amd]``: answering-machine detection (dialler.amd) for campaigns with ``amd = true``; the
    analysis parameters are Asterisk's amd.conf (names and defaults); a campaign's ``amd_settings``
    overrides any key."""
    machine: str = "hangup"               # hangup | message: after the greeting's end, play ``message``
    message: str = ""                     # the prompt (prompts/ name) left on a machine
    message_text: str = ""                # or runtime speech (TTS): "Dear {name}, ..." with the contact's data
    message_wait: int = 20                # seconds waiting for the greeting's end (the beep) before speaking
    # the analysis parameters: AmdParams' names, defaults taken from it (one place for Asterisk's numbers)
    initial_silence: int = AmdParams.initial_silence
    greeting: int = AmdParams.greeting
    after_greeting_silence: int = AmdParams.after_greeting_silence
    total_analysis_time: int = AmdParams.total_analysis_time
    min_word_length: int = AmdParams.min_word_length
    between_words_silence: int = AmdParams.between_words_silence
    maximum_number_of_words: int = AmdParams.maximum_number_of_words
    maximum_word_length: int = AmdParams.maximum_word_length
    silence_threshold: int = AmdParams.silence_threshold

    def params(self) -> AmdParams:
        return AmdParams(**{f.name: getattr(self, f.name) for f in fields(AmdParams)})
CALLBACKS = "callbacks"   # the built-in campaign that holds callback tasks


@dataclass(frozen=True)
class Campaign:
    name: str
    mode: str = "progressive"
    queue: str = ""                       # its agents (preview/progressive/predictive; "press 1" of notifications)
    flow: str = ""                        # IVR flow played on answer (notification)
    caller_id: str = ""                   # "" = [outbound] caller_id
    timezone: str = ""                    # "" = [outbound] timezone
    calling_hours: list[str] = field(default_factory=list)   # [] = [outbound] calling_hours
    max_attempts: int = 0                 # 0 = [outbound] max_attempts
    retry: dict[str, RetryRule] = field(default_factory=dict)   # overrides per result code
    max_channels: int = 10                # notification/predictive: calls in progress at most
    priority: int = 0                     # of two campaigns on one queue, the higher is served first
    start: bool = True                    # running when the switch starts
    max_ratio: float = 2.5                # predictive: customers dialled per free agent at most
    abandon_target: float = 0.03          # predictive: abandoned / answered over the last 100 answers
    source: str = ""                      # generated from the store: "closed_work_orders" | "work_order_due"
    amd: bool = False                     # answering-machine detection on the customer's answer
    amd_machine: str = ""                 # hangup | message ("" = [outbound.amd] machine)
    amd_message: str = ""                 # the prompt left on machines ("" = [outbound.amd] message)
    amd_message_text: str = ""            # or runtime speech with the contact's data ("" = [outbound.amd]'s)
    amd_settings: dict[str, Any] = field(default_factory=dict)   # overrides of [outbound.amd]'s other keys


@dataclass(frozen=True)
class CallbackSettings:
    offer_after: int = 0                  # seconds waiting before "press 1 to be called back" (0: never)
    queues: list[str] = field(default_factory=list)   # queues offering it ([] = all)
    retry: dict[str, RetryRule] = field(default_factory=dict)
    max_attempts: int = 0
    voicemail: bool = True                # a voicemail left in a queue's mailbox becomes a callback task
    voicemail_queue: str = ""             # for mailboxes no queue falls back to ("" = the first queue)


@dataclass(frozen=True)
class OutboundConfig:
    caller_id: str = ""
    timezone: str = "UTC"
    calling_hours: list[str] = field(default_factory=lambda: ["daily 09:00-20:00"])
    max_attempts: int = 6
    retry: dict[str, RetryRule] = field(default_factory=dict)
    dnc: list[str] = field(default_factory=list)          # numbers never dialled (besides the store's list)
    tick: float = 1.0                     # seconds between pacing passes
    callbacks: CallbackSettings = field(default_factory=CallbackSettings)
    campaigns: list[Campaign] = field(default_factory=list)
    amd: AmdSettings = field(default_factory=AmdSettings)

    # ------------------------------------------------------------------ resolved settings
    def campaign(self, name: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.name == name), None)

    def rules(self, campaign: Campaign | None) -> dict[Result, RetryRule]:
        rules = dict(DEFAULT_RULES)
        for source in (self.retry, (campaign.retry if campaign is not None else self.callbacks.retry)):
            rules.update({Result(k): v for k, v in source.items()})
        return rules

    def hours(self, campaign: Campaign | None) -> CallingHours:
        return parse_hours((campaign.calling_hours if campaign is not None else []) or self.calling_hours)

    def zone_name(self, campaign: Campaign | None) -> str:
        return (campaign.timezone if campaign is not None else "") or self.timezone

    def presented(self, campaign: Campaign | None, queue_caller_id: str = "") -> str:
        """The number customers see on a call of ``campaign`` (None: a callback task) made for a queue whose
        ``caller_id`` is ``queue_caller_id``: the campaign's own, else the queue's, else ``[outbound]
        caller_id``; "" leaves it to the dial rule's, then the trunk's (softswitch.trunks.dialer)."""
        return (campaign.caller_id if campaign is not None else "") or queue_caller_id or self.caller_id

    def amd_for(self, campaign: Campaign | None) -> AmdSettings | None:
        """The campaign's answering-machine detection settings, None when it does not detect (callbacks
        never do: the customer asked for the call)."""
        if campaign is None or not campaign.amd:
            return None
        own = campaign.amd_message or campaign.amd_message_text   # the campaign's message replaces both
        return replace(self.amd, **campaign.amd_settings, machine=campaign.amd_machine or self.amd.machine,
                       message=campaign.amd_message if own else self.amd.message,
                       message_text=campaign.amd_message_text if own else self.amd.message_text)

    def attempts_limit(self, campaign: Campaign | None) -> int:
        own = campaign.max_attempts if campaign is not None else self.callbacks.max_attempts
        return own or self.max_attempts


# ================================================================================= schema

def _zone(v: str) -> str:
    zone(v)
    return v


def _window(v: str) -> str:
    parse_window(v)
    return v


def _name(v: str) -> str:
    if not v or not all(c.isalnum() or c in "-_" for c in v):
        raise Invalid(f"letters, digits, - and _ only, got {quote(v)}")
    if v == CALLBACKS:
        raise Invalid(f"{quote(CALLBACKS)} is the built-in campaign of callback tasks")
    return v


_RESULTS = [r.value for r in Result if r not in (Result.DNC, Result.EXHAUSTED)]
_RULE_KEYS = {"retry": bool, "interval": int, "per_day": int}


def _rules(raw: dict[str, Any]) -> dict[str, RetryRule]:
    """``{busy = {interval = 14400, per_day = 3}, wrong_number = {retry = false}}``: per result code."""
    out: dict[str, RetryRule] = {}
    for code, rule in raw.items():
        if code not in _RESULTS:
            raise Invalid(f"unknown result code (result codes: {', '.join(_RESULTS)})", at=f".{code}")
        if not isinstance(rule, dict):
            raise Invalid("expected a table {retry, interval, per_day}", at=f".{code}")
        for k, v in rule.items():
            kind = _RULE_KEYS.get(k)
            if kind is None:
                raise Invalid(f"unknown key (keys: {', '.join(_RULE_KEYS)})", at=f".{code}.{k}")
            if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
                raise Invalid(f"expected {kind.__name__}", at=f".{code}.{k}")
        r = RetryRule(**rule)
        if not 1 <= r.interval <= 30 * 86400:
            raise Invalid(f"must be between 1 and {30 * 86400} seconds, got {r.interval}", at=f".{code}.interval")
        if not 1 <= r.per_day <= 100:
            raise Invalid(f"must be between 1 and 100, got {r.per_day}", at=f".{code}.per_day")
        out[code] = r
    return out


RULES = Scalar("table", (dict,))
HOURS = Array(STRING, each=(_window,))


# [outbound.amd] keys: (minimum, maximum) of the integers (milliseconds, the threshold of 32767)
_AMD_RANGES = {
    "message_wait": (1, 120),
    "initial_silence": (100, 30000),
    "greeting": (100, 30000),
    "after_greeting_silence": (100, 10000),
    "total_analysis_time": (500, 30000),
    "min_word_length": (20, 5000),
    "between_words_silence": (20, 5000),
    "maximum_number_of_words": (1, 100),
    "maximum_word_length": (100, 30000),
    "silence_threshold": (1, 32767),
}


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def _template(v: str) -> str:
    """``"Dear {name}, ..."``: the contact's data fills it in at the call; a broken brace is refused now."""
    try:
        v.format_map(_Blank())
    except (ValueError, IndexError, AttributeError) as e:
        raise Invalid(f"not a text template ({e}): use {{name}} for a variable, {{{{ for a brace") from None
    return v


def _amd_post(v: dict[str, Any]) -> None:
    if v["machine"] == "message" and not v["message"] and not v["message_text"]:
        raise Invalid('required: the prompt (or message_text) left on an answering machine (machine = "message")',
                      at="message")
    if v["message"] and v["message_text"]:
        raise Invalid("message or message_text, not both", at="message_text")


def _amd_overrides(raw: dict[str, Any]) -> dict[str, Any]:
    """A campaign's ``amd_settings = {greeting = 2000, maximum_number_of_words = 3}``: any ``[outbound.amd]``
    number, checked as there (``machine`` and ``message`` are the campaign's ``amd_machine``, ``amd_message``)."""
    for k, val in raw.items():
        if k not in _AMD_RANGES:
            raise Invalid(f"unknown key (keys: {', '.join(_AMD_RANGES)}; machine and message are the campaign's "
                          "amd_machine and amd_message)", at=f".{k}")
        lo, hi = _AMD_RANGES[k]
        if not isinstance(val, int) or isinstance(val, bool):
            raise Invalid("expected integer", at=f".{k}")
        if not lo <= val <= hi:
            raise Invalid(f"must be between {lo} and {hi}, got {val}", at=f".{k}")
    return dict(raw)


def _campaign_post(v: dict[str, Any]) -> None:
    if v["mode"] in ("preview", "progressive", "predictive") and not v["queue"]:
        raise Invalid(f'required: the queue whose agents take the calls of a {v["mode"]} campaign', at="queue")
    if v["mode"] == "notification" and not v["flow"]:
        raise Invalid("required: the IVR flow played when a notification is answered", at="flow")
    if v["amd_message"] and v["amd_message_text"]:
        raise Invalid("amd_message or amd_message_text, not both", at="amd_message_text")
    for key in ("amd_settings", "amd_machine", "amd_message", "amd_message_text"):
        if v[key] and not v["amd"]:
            raise Invalid(f"{key} without amd = true: answering-machine detection is off", at=key)
    if v["amd"] and v["mode"] == "preview":
        raise Invalid("preview campaigns cannot detect machines: the agent listens before the customer "
                      "is dialled", at="amd")


CAMPAIGN = Table(Campaign, {
    "name": Key(STRING, checks=(_name,)),
    "mode": Key(STRING, "progressive", (one_of(*MODES, fold=str.lower),)),
    "queue": Key(STRING, ""),
    "flow": Key(STRING, ""),
    "caller_id": Key(STRING, "", (printable,)),
    "timezone": Key(STRING, "", (lambda v: _zone(v) if v else v,)),
    "calling_hours": Key(HOURS, []),
    "max_attempts": Key(INTEGER, 0, (between(0, 100),)),
    "retry": Key(RULES, {}, (_rules,)),
    "max_channels": Key(INTEGER, 10, (between(1, 10000),)),
    "priority": Key(INTEGER, 0, (between(0, 100),)),
    "start": Key(BOOLEAN, True),
    "max_ratio": Key(FLOAT, 2.5, (between(1.0, 10.0),)),
    "abandon_target": Key(FLOAT, 0.03, (between(0.0, 0.5),)),
    "source": Key(STRING, "", (one_of("", "closed_work_orders", "work_order_due"),)),
    "amd": Key(BOOLEAN, False),
    "amd_machine": Key(STRING, "", (one_of("", *AMD_MACHINE, fold=str.lower),)),
    "amd_message": Key(STRING, ""),
    "amd_message_text": Key(STRING, "", (printable, _template)),
    "amd_settings": Key(Scalar("table", (dict,)), {}, (_amd_overrides,)),
}, post=_campaign_post)


def _unique_names(cs: list[Campaign]) -> list[Campaign]:
    seen: set[str] = set()
    for i, c in enumerate(cs):
        if c.name in seen:
            raise Invalid(f"duplicate campaign name {quote(c.name)}", at=f"[{i}].name")
        seen.add(c.name)
    return cs


CALLBACK_SETTINGS = Table(CallbackSettings, {
    "offer_after": Key(INTEGER, 0, (between(0, 3600),)),
    "queues": Key(Array(STRING, each=(nonempty,)), []),
    "retry": Key(RULES, {}, (_rules,)),
    "max_attempts": Key(INTEGER, 0, (between(0, 100),)),
    "voicemail": Key(BOOLEAN, True),
    "voicemail_queue": Key(STRING, ""),
})

AMD = Table(AmdSettings, {
    "machine": Key(STRING, "hangup", (one_of(*AMD_MACHINE, fold=str.lower),)),
    "message": Key(STRING, ""),
    "message_text": Key(STRING, "", (printable, _template)),
    **{k: Key(INTEGER, getattr(AmdSettings, k), (between(lo, hi),)) for k, (lo, hi) in _AMD_RANGES.items()},
}, post=_amd_post)

def _outbound_post(v: dict[str, Any]) -> None:
    """A campaign leaving messages on machines names its message (its own, or [outbound.amd]'s)."""
    amd: AmdSettings = v["amd"]
    for i, c in enumerate(v["campaigns"]):
        if c.amd and (c.amd_machine or amd.machine) == "message" and not (
                c.amd_message or c.amd_message_text or amd.message or amd.message_text):
            raise Invalid('required: the prompt (or amd_message_text) left on an answering machine '
                          '(amd_machine = "message")', at=f"campaigns[{i}].amd_message")


OUTBOUND = Table(OutboundConfig, {
    "caller_id": Key(STRING, "", (printable,)),
    "timezone": Key(STRING, "UTC", (_zone,)),
    "calling_hours": Key(HOURS, ["daily 09:00-20:00"]),
    "max_attempts": Key(INTEGER, 6, (between(1, 100),)),
    "retry": Key(RULES, {}, (_rules,)),
    "dnc": Key(Array(STRING, each=(nonempty,)), []),
    "tick": Key(FLOAT, 1.0, (between(0.05, 60.0),)),
    "callbacks": Key(CALLBACK_SETTINGS, {}),
    "campaigns": Key(Tables(CAMPAIGN), [], (_unique_names,)),
    "amd": Key(AMD, {}),
}, post=_outbound_post)
