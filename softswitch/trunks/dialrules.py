"""Outbound: which trunks a dialled number goes to, with which digits, and who may dial it.

A dial rule matches a dialled number by prefix (the longest matching prefix wins, then the order in
config.toml) and length; it names the trunks in failover order and how the number is sent (``send``
formats it: as dialled, E.164, E.164 without '+', national; then ``strip`` leading digits are removed
and ``add`` is prepended). The class a number needs is the stricter of the rule's ``permission`` and
the number's own class (``NumberFormat.classify``): a rule written as "national" cannot let a
"0044..." number through as national. Emergency numbers are always allowed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from .config import CLASSES, DialRule
from .numbers import NumberFormat


@dataclass(frozen=True)
class Route:
    """A dialled number resolved through a dial rule."""
    rule: DialRule
    dialled: str
    send: str                # the digits the trunks get in the Request-URI and To
    external: str            # E.164, for records and lists
    needs: str               # permission class: local | national | international | emergency


class DialPlan:
    def __init__(self, rules: Iterable[DialRule], numbers: NumberFormat):
        self.numbers = numbers
        # longest prefix first; equal prefixes keep their config order (sorted is stable)
        self.rules = sorted(rules, key=lambda r: -len(r.prefix))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def rule_for(self, dialled: str) -> DialRule | None:
        found = self._match(dialled)
        return found[0] if found is not None else None

    def _match(self, dialled: str) -> tuple[DialRule, str] | None:
        """The rule and the form of the number it matched: as dialled, else (for an E.164 number, as the
        CRM, callbacks and campaigns store them) as it is dialled here: national or international."""
        for number in self._forms(self.numbers.clean(dialled)):
            for r in self.rules:
                if number.startswith(r.prefix) and r.min_length <= len(number) <= r.max_length:
                    return r, number
        return None

    def _forms(self, number: str) -> list[str]:
        if not number.startswith("+"):
            return [number] if number else []
        n, cc = self.numbers.numbering, self.numbers.country_code
        if cc and number.startswith("+" + cc):
            return [number, n.national_prefix + number[1 + len(cc):]]
        return [number, n.international_prefix + number[1:]]

    def resolve(self, dialled: str) -> Route | None:
        found = self._match(dialled)
        if found is None:
            return None
        rule, number = found
        numbers = self.numbers
        own = numbers.classify(number)
        needs = own if own == "emergency" else _stricter(rule.permission, own)
        send = rule.add + numbers.send_as(number, rule.send)[rule.strip:]
        return Route(rule, number, send, numbers.normalise(number), needs)


def _stricter(a: str, b: str) -> str:
    if a not in CLASSES:  # "" or "emergency": only the emergency list makes a number an emergency call
        return b
    if b not in CLASSES:
        return a
    return a if CLASSES.index(a) >= CLASSES.index(b) else b
