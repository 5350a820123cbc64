"""Reusable value checks for ``base.schema`` keys: ranges, enumerations, text safety, host names, files
and telephone numbers.

A check takes the converted value and returns it (possibly normalised) or raises ``Invalid`` with the
reason. They live here, not in one section's module, because several sections need the same rule (an
agent's number and an extension number are the same kind of thing) and must not import each other.
"""
from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .schema import Check, Invalid, hint, quote

__all__ = [
    "between", "existing_file", "ext_number", "hostname", "no_quote", "nonempty", "number_pattern", "one_of",
    "one_of_int", "printable", "unique",
]


def between(lo: int | float, hi: int | float) -> Check:
    def check(v: int | float) -> int | float:
        if not lo <= v <= hi:
            raise Invalid(f"must be between {lo} and {hi}, got {v}")
        return v
    return check


def one_of(*choices: str, fold: Callable[[str], str] | None = None) -> Check:
    """Enumerations; ``fold`` (str.upper, str.lower) makes them case-insensitive and normalises."""
    def check(v: str) -> str:
        norm = fold(v) if fold else v
        if norm not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}, got {quote(v)}" + hint(norm, choices))
        return norm
    return check


def one_of_int(*choices: int) -> Check:
    def check(v: int) -> int:
        if v not in choices:
            raise Invalid(f"must be one of {', '.join(map(str, choices))}, got {v}")
        return v
    return check


def nonempty(v: str) -> str:
    if not v.strip():
        raise Invalid("must not be empty")
    return v


def no_quote(v: str) -> str:
    if '"' in v:
        raise Invalid("must not contain '\"' (it is sent inside a quoted string)")
    return v


def printable(v: str) -> str:
    """For values that go into SIP headers: a CR/LF would let a config inject header lines."""
    if any(not c.isprintable() for c in v):
        raise Invalid("must not contain control characters (newline, tab, ...)")
    return v


def unique(v: list[Any]) -> list[Any]:
    seen: dict[Any, int] = {}
    for i, item in enumerate(v):
        if item in seen:
            raise Invalid(f"duplicate {quote(str(item))} (also at [{seen[item]}])", at=f"[{i}]")
        seen[item] = i
    return v


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def hostname(v: str) -> str:
    """A DNS name or an IP address (IPv6 with or without brackets)."""
    bare = v[1:-1] if v.startswith("[") and v.endswith("]") else v
    try:
        ipaddress.ip_address(bare)
        return v
    except ValueError:
        pass
    name = bare[:-1] if bare.endswith(".") else bare
    if not name:
        raise Invalid("must not be empty")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise Invalid(f"not a valid host name or IP address: {quote(v)}")
    return v


def existing_file(p: Path) -> Path:
    if not p.exists():
        raise Invalid(f"file not found: {p}")
    if not p.is_file():
        raise Invalid(f"not a file: {p}")
    if not os.access(p, os.R_OK):
        raise Invalid(f"not readable: {p}")
    return p


_NUMBER = re.compile(r"\+?[0-9]{2,15}")


def ext_number(v: str) -> str:
    """An extension, agent or dialled number: 2-15 digits, optionally after a '+'."""
    if not _NUMBER.fullmatch(v):
        raise Invalid(f"must be 2-15 digits, optionally after a '+', got {quote(v)}")
    return v


_PATTERN = re.compile(r"\+?[0-9]+|\+?[0-9]*\*")


def number_pattern(v: str) -> str:
    """A caller number, or a prefix ending in '*' (caller lists, priority rules)."""
    if not _PATTERN.fullmatch(v) or v == "*":
        raise Invalid(f"must be a number (digits, optional leading '+') or a prefix ending in '*', got {quote(v)}")
    return v
