"""The trunks as one value built from config alone: trunks by name, inbound identification, the dial
plan and the number format. A reload builds a new ``TrunkTable`` and swaps it in (nothing here holds
live state: registrations, keep-alives and channel counts live in ``runtime`` and the B2BUA)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Trunk
from .dialrules import DialPlan
from .identify import Identifier
from .numbers import NumberFormat


@dataclass(frozen=True)
class TrunkTable:
    trunks: dict[str, Trunk] = field(default_factory=dict)
    identifier: Identifier = field(default_factory=lambda: Identifier(()))
    dialplan: DialPlan = field(default_factory=lambda: DialPlan((), NumberFormat.from_config(None)))
    numbers: NumberFormat = field(default_factory=lambda: NumberFormat.from_config(None))

    @classmethod
    def from_config(cls, config: Any) -> "TrunkTable":
        trunks = list(getattr(config, "trunks", None) or [])
        numbers = NumberFormat.from_config(config)
        return cls({t.name: t for t in trunks}, Identifier(trunks), DialPlan(getattr(config, "dial_rules", None) or [],
                                                                              numbers), numbers)

    def __bool__(self) -> bool:
        return bool(self.trunks)
