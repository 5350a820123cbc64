"""Input checking for the call-centre store: every public write checks its whole input BEFORE its
transaction starts, so bad input raises ``ValidationError`` (a ``ValueError``) and changes nothing.

Values always reach SQLite as parameters, never as SQL text: quotes, semicolons and ``--`` in a
name are stored verbatim. The only identifiers ever put into SQL text are column names taken from
the ``Field`` tables below (never from the caller).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

__all__ = ["ValidationError", "UnknownFieldError", "TransitionError", "NotFoundError", "Field", "check_fields"]


class ValidationError(ValueError):
    """Bad input; nothing was written. ``field`` names the offending field ('' for the whole input)."""

    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class UnknownFieldError(ValidationError):
    """A field name the record does not have."""


class TransitionError(ValidationError):
    """A work-order status change (or escalation) that the workflow does not allow."""


class NotFoundError(ValidationError, LookupError):
    """The record named by an id does not exist."""


@dataclass(frozen=True)
class Field:
    kind: type | tuple[type, ...]   # str, int, float (int accepted for float), bool
    max_len: int = 0                # strings: maximum length in characters (0: no limit)
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None  # returns a reason when the value is bad
    choices: frozenset[str] | None = None


def check_value(name: str, spec: Field, value: Any) -> Any:
    if value is None:
        if spec.nullable:
            return None
        raise ValidationError(name, "must not be empty (None)")
    kind = spec.kind
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(name, f"must be a number, got {type(value).__name__} {value!r:.40}")
        value = float(value)
        if not math.isfinite(value):
            raise ValidationError(name, f"must be a finite number, got {value!r}")
    elif kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(name, f"must be an integer, got {type(value).__name__} {value!r:.40}")
        if not -(2 ** 63) <= value < 2 ** 63:
            raise ValidationError(name, "integer out of range")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ValidationError(name, f"must be true or false, got {type(value).__name__}")
    elif kind is str:
        if not isinstance(value, str):
            raise ValidationError(name, f"must be a string, got {type(value).__name__} {value!r:.40}")
        if spec.max_len and len(value) > spec.max_len:
            raise ValidationError(name, f"too long: {len(value)} characters, at most {spec.max_len}")
        if "\x00" in value:
            raise ValidationError(name, "must not contain NUL characters")
    if spec.choices is not None and value not in spec.choices:
        raise ValidationError(name, f"must be one of {', '.join(sorted(spec.choices))}; got {value!r:.40}")
    if spec.check is not None:
        reason = spec.check(value)
        if reason:
            raise ValidationError(name, reason)
    return value


def check_fields(what: str, specs: Mapping[str, Field], values: Mapping[str, Any], *,
                 required: tuple[str, ...] = ()) -> dict[str, Any]:
    """Check a dict of field values against ``specs``: unknown names, missing required ones, types,
    lengths, choices. Returns a new dict of the checked (possibly converted) values."""
    if not isinstance(values, Mapping):
        raise ValidationError(what, f"expected a mapping of fields, got {type(values).__name__}")
    unknown = [k for k in values if k not in specs]
    if unknown:
        raise UnknownFieldError(what, f"unknown field(s) {', '.join(repr(k) for k in unknown)}; "
                                      f"known: {', '.join(specs)}")
    missing = [k for k in required if values.get(k) is None]
    if missing:
        raise ValidationError(what, f"missing required field(s) {', '.join(missing)}")
    return {k: check_value(k, specs[k], v) for k, v in values.items()}


def between(lo: float, hi: float) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}, got {v!r}"
    return check


def non_negative(v: Any) -> str | None:
    return None if v >= 0 else f"must not be negative, got {v!r}"


def non_empty(v: Any) -> str | None:
    return None if v.strip() else "must not be empty"
