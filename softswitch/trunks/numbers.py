"""One form for every external number: E.164 ("+8613800138000") with the configured country code.

Carriers send callers as "013800138000", "8613800138000", "+86 138 0013 8000" or "tel:+86..."; the
store, the block and warning lists, VIP and sticky-agent rules must all see one number. The rules are
the store's ``NumberPlan`` (international prefix ``00`` → ``+``, national prefix ``0`` → ``+<cc>``),
with two additions for what carriers send: a bare international number that starts with our own
country code and is longer than a national one ("8613800138000") gets its ``+``, and withheld callers
(``anonymous``, ``Privacy: id``, no digits at all) become ``"anonymous"``.

The same rules classify a dialled number for permissions: emergency, local (no prefix, short),
national (our country code) or international (any other).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from store.numbers import NumberPlan
from store.validation import ValidationError

from .config import CLASSES, Numbering

ANONYMOUS = "anonymous"
_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")
_USER = re.compile(r"(?:sips?|tel):([^@;>?]*)", re.I)


@dataclass(frozen=True)
class NumberFormat:
    numbering: Numbering
    country_code: str = ""

    @classmethod
    def from_config(cls, config: object) -> "NumberFormat":
        numbering: Numbering = getattr(config, "numbering", None) or Numbering()
        store = getattr(config, "store", None)
        cc = (numbering.country_code or getattr(store, "country_code", "") or "").lstrip("+")
        return cls(numbering, cc)

    @cached_property
    def plan(self) -> NumberPlan:
        n = self.numbering
        return NumberPlan(country_code=self.country_code, international_prefix=n.international_prefix,
                          trunk_prefix=n.national_prefix, internal_max_len=n.internal_max_len,
                          national_min_len=max(n.local_max_len, n.internal_max_len) + 1)

    def clean(self, raw: str) -> str:
        """Digits and an optional leading '+', or "" when ``raw`` holds no number."""
        text = raw.strip()
        m = _USER.match(text)
        if m:
            text = m.group(1)
        text = _SEPARATORS.sub("", text)
        return text if re.fullmatch(r"\+?[0-9]{1,32}", text) else ""

    def normalise(self, raw: str) -> str:
        """The E.164 form of an external number (``anonymous`` for a withheld or unusable one)."""
        text = self.clean(raw)
        if not text:
            return ANONYMOUS
        try:
            return self.plan.normalise(text)   # the store's rules: one form for the store and the switch
        except ValidationError:
            return ANONYMOUS

    def classify(self, dialled: str) -> str:
        """The permission class a dialled number needs: emergency, local, national or international.
        Decided by the prefixes as dialled (never by a rule's say-so), so "0044..." is international
        whatever rule it matched, with or without a configured country code."""
        text = self.clean(dialled)
        n = self.numbering
        cc = self.country_code
        if text in n.emergency:
            return "emergency"
        if text.startswith("+"):
            rest = text[1:]
        elif n.international_prefix and text.startswith(n.international_prefix):
            rest = text[len(n.international_prefix):]
        elif n.national_prefix and text.startswith(n.national_prefix):
            return "national"
        elif len(text) <= n.local_max_len:
            return "local"
        else:
            return "national"  # a national number dialled without its prefix (mobiles in many countries)
        return "national" if cc and rest.startswith(cc) else "international"

    def send_as(self, number: str, fmt: str) -> str:
        """``number`` (as dialled) in the form a carrier wants (a dial rule's ``send``)."""
        if fmt == "dialled":
            return self.clean(number) or number
        e164 = self.normalise(number)
        if not e164.startswith("+"):  # short, or no country code to know better: as dialled
            return self.clean(number) or number
        if fmt == "e164":
            return e164
        if fmt == "e164-no-plus":
            return e164.lstrip("+")
        cc = self.country_code
        if fmt == "national" and cc and e164.startswith("+" + cc):
            return self.numbering.national_prefix + e164[1 + len(cc):]
        if fmt == "national":  # abroad: the international prefix
            return self.numbering.international_prefix + e164.lstrip("+")
        return e164


def allowed(have: str, need: str) -> bool:
    """Whether an extension of class ``have`` may dial a number of class ``need`` (emergency: always)."""
    if need == "emergency":
        return True
    if need not in CLASSES:
        return False
    return CLASSES.index(have) >= CLASSES.index(need) if have in CLASSES else False
