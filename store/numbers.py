"""Phone numbers: one normal form for storing and matching, and the prefix tables that map a number to
a region (and a region to a service point).

Normal form: digits with an optional leading ``+`` (E.164 when the number plan allows it). Spaces,
dashes, dots, slashes and parentheses are dropped; a ``sip:``/``sips:``/``tel:`` URI gives its user
part; with a configured country code, the international prefix (``00``) becomes ``+`` and the trunk
prefix (``0``) becomes ``+<country code>``. Short internal numbers (extensions) stay as they are.
Every stored number goes through ``NumberPlan.normalise``, and so does every looked-up number, so
"030 1234-567", "+49 30 1234567" and "0049301234567" are one customer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .validation import ValidationError

__all__ = ["NumberPlan", "PrefixTable", "normalise_number"]

_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")
_NUMBER = re.compile(r"\+?[0-9]{1,32}")
_URI = re.compile(r"(?:sips?|tel):([^@;>]*)", re.I)
MAX_NUMBER_LEN = 33  # '+' and at most 32 digits (E.164 allows 15; leave room for odd PBX dial strings)


@dataclass(frozen=True)
class NumberPlan:
    """How national numbers are written where the call centre is. With ``country_code=""`` (the
    default) only separators are dropped: without knowing the country, neither ``00`` nor ``0`` can
    be rewritten safely."""
    country_code: str = ""          # e.g. "49"
    international_prefix: str = "00"
    trunk_prefix: str = "0"
    internal_max_len: int = 6       # numbers this short are extensions: never rewritten
    # numbers without any prefix and at least this long are national numbers written without the trunk
    # prefix (mobiles in China: "13800138000" is "+8613800138000"); one that starts with the country code
    # and is longer still is an international number without its prefix, as carriers send it
    # ("8613800138000"). 0 = off: without prefix a number stays as written (SIP trunks set it: [numbering]).
    national_min_len: int = 0

    def normalise(self, raw: object, *, field_name: str = "number", prefix: bool = False) -> str:
        """The normal form of ``raw``; ``ValidationError`` if it is not a number. ``prefix``: ``raw``
        is the start of a number (a prefix table key, a search), so shortness says nothing."""
        if not isinstance(raw, str):
            raise ValidationError(field_name, f"must be a string, got {type(raw).__name__}")
        text = raw.strip()
        m = _URI.match(text)
        if m:
            text = m.group(1)
        text = _SEPARATORS.sub("", text)
        if not _NUMBER.fullmatch(text):
            raise ValidationError(field_name, f"not a phone number (digits with an optional leading '+'): {raw!r}")
        if text.startswith("+") or not self.country_code or (not prefix and len(text) <= self.internal_max_len):
            return text
        if self.international_prefix and text.startswith(self.international_prefix):
            return "+" + text[len(self.international_prefix):]
        if self.trunk_prefix and text.startswith(self.trunk_prefix):
            return "+" + self.country_code + text[len(self.trunk_prefix):]
        n = self.national_min_len
        if n and not prefix and len(text) >= n:
            if text.startswith(self.country_code) and len(text) >= n + len(self.country_code):
                return "+" + text
            return "+" + self.country_code + text
        return text


DEFAULT_PLAN = NumberPlan()


def normalise_number(raw: object, plan: NumberPlan = DEFAULT_PLAN) -> str:
    return plan.normalise(raw)


@dataclass
class PrefixTable:
    """Number prefix -> value (a region), longest prefix wins. Prefixes are normalised with the same
    plan as the numbers, so ``"030"`` and ``"+4930"`` are one key under a German plan."""
    entries: Mapping[str, str] = field(default_factory=dict)
    plan: NumberPlan = DEFAULT_PLAN

    def __post_init__(self) -> None:
        table: dict[str, str] = {}
        for prefix, value in dict(self.entries).items():
            key = prefix.rstrip("*")
            if key in ("", "+"):
                raise ValidationError(f"prefix {prefix!r}", "needs at least one digit")
            key = self.plan.normalise(key, field_name=f"prefix {prefix!r}", prefix=True)
            if not isinstance(value, str) or not value:
                raise ValidationError(f"prefix {prefix!r}", "needs a non-empty string value")
            table[key] = value
        self._table = table
        self._lengths = sorted({len(k) for k in table}, reverse=True)

    def lookup(self, number: str) -> str | None:
        """The value of the longest prefix of ``number`` (already normalised), or None."""
        for n in self._lengths:
            if n <= len(number):
                hit = self._table.get(number[:n])
                if hit is not None:
                    return hit
        return None

    def __len__(self) -> int:
        return len(self._table)


def prefixes_of(number: str) -> list[str]:
    """Every prefix of ``number`` (itself included), for 'number or prefix' list look-ups."""
    return [number[:i] for i in range(1, len(number) + 1)]


def number_list(values: Iterable[object], plan: NumberPlan, field_name: str = "phones") -> list[str]:
    """Normalise several numbers, dropping duplicates but keeping their order."""
    out: list[str] = []
    for v in values:
        n = plan.normalise(v, field_name=field_name)
        if n not in out:
            out.append(n)
    return out
