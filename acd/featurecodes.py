"""Agent feature codes dialled from the agent's own phone (``*11 2001`` login, ``*11*2001*<pin>`` login with
the agent's PIN, ``*12`` logout,
``*13 2`` not ready with reason 2, ``*14`` ready).

A parser of its own because the switch core must decide on the dialled digits alone (before any
routing) whether the call is a feature code; the ACD then applies the command to the calling
extension. Digits after the code may follow directly (``*112001``) or after a ``*``/``#``
separator (``*11*2001``); a trailing ``#`` (the phone's "send" key) is ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["FeatureCodes", "FeatureCommand", "mask_pin", "parse_feature_code"]

Command = Literal["login", "logout", "not_ready", "ready"]


@dataclass(frozen=True)
class FeatureCodes:
    login: str = "*11"
    logout: str = "*12"
    not_ready: str = "*13"
    ready: str = "*14"


@dataclass(frozen=True)
class FeatureCommand:
    command: Command
    agent_id: str | None = None  # login only; None = the agent whose configured extension this is
    reason: str | None = None  # not_ready only; the reason code, None = no reason given
    pin: str | None = None  # login only: ``*11*<id>*<pin>``, the agent's PIN (acd.identity)


_ARG = re.compile(r"[0-9]{1,15}")
_LOGIN_ARGS = re.compile(r"([0-9]{1,15})(?:[*#]([0-9]{1,15}))?")


def parse_feature_code(digits: str, codes: FeatureCodes = FeatureCodes()) -> FeatureCommand | None:
    """The command these dialled digits mean, or None when they are not a (well-formed) feature code."""
    digits = digits.strip()
    if digits.endswith("#") and len(digits) > 1:
        digits = digits[:-1]
    table: list[tuple[str, Command]] = sorted(
        ((codes.login, "login"), (codes.logout, "logout"), (codes.not_ready, "not_ready"), (codes.ready, "ready")),
        key=lambda item: -len(item[0]))  # longest code first, should a config make one a prefix of another
    for code, command in table:
        if not digits.startswith(code):
            continue
        rest = digits[len(code):]
        if rest[:1] in ("*", "#"):
            rest = rest[1:]
            if not rest:
                return None  # "*11*" with nothing after the separator
        if not rest:
            return FeatureCommand(command)
        if command == "login":
            m = _LOGIN_ARGS.fullmatch(rest)
            if m is None:
                return None
            return FeatureCommand(command, agent_id=m.group(1), pin=m.group(2))
        if command in ("logout", "ready") or not _ARG.fullmatch(rest):
            return None
        return FeatureCommand(command, reason=rest)
    return None


def mask_pin(digits: str, codes: FeatureCodes = FeatureCodes()) -> str:
    """The dialled digits with a login PIN starred out, for logs and call records (``*11*2001*1234`` ->
    ``*11*2001*****``); anything else unchanged."""
    cmd = parse_feature_code(digits, codes)
    if cmd is None or cmd.pin is None:
        return digits
    return f"{codes.login}*{cmd.agent_id}*****"
