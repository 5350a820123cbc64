"""Declarative TOML schemas: describe a table once, let one walker check it.

A bad config must be refused at start, before any socket is opened, with the file, the dotted key
(``extensions[2].number``, list indexes count from 0) and the reason: a switch that starts with a
typo silently ignored (``[sip] min_expire = 30``) is worse than one that does not start.

Each TOML table is described once (``Table`` of ``Key``s: kind, default, checks) and ``Walker`` does
the type checks, unknown-key detection ("did you mean ...") and error paths for every section. It
lives here, below every package, so that the switch (``softswitch.config``), the ACD (``acd.config``)
and the IVR (``ivr.config``) each describe their own section with it without importing each other;
``softswitch.config`` composes the sections into the root table.
"""
from __future__ import annotations

import copy
import datetime
import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "BOOLEAN", "FLOAT", "INTEGER", "PATH", "REQUIRED", "STRING", "Array", "Check", "ConfigError", "Context",
    "Invalid", "Key", "Kind", "Scalar", "Table", "Tables", "Walker", "assert_fields", "hint", "quote", "toml_type",
]


class ConfigError(Exception):
    """A config the switch refuses to start with. ``str(e) == f"{file}: {key}: {reason}"``; ``key`` is
    None for file-level problems (unreadable file, TOML syntax error)."""

    def __init__(self, file: str, key: str | None, reason: str):
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}" if key else f"{file}: {reason}")


class Invalid(ValueError):
    """Raised by checks. ``at`` is where, relative to the value being checked (".min_expires",
    "[2].number"), so a check on a whole list or table can point at the offending element."""

    def __init__(self, reason: str, at: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.at = at


Check = Callable[[Any], Any]  # returns the (possibly converted) value or raises Invalid / ValueError


@dataclass(frozen=True)
class Context:
    """What a conversion may need besides the value: the file (for errors) and its directory."""

    source: str
    base_dir: Path

    def resolve(self, value: str) -> Path:
        """A file name from the config: ``~`` expanded, relative to the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


# ============================================================================ kinds

@dataclass(frozen=True)
class Scalar:
    """A TOML scalar; ``convert`` turns the raw TOML value into the Python value (Path, ...)."""

    name: str
    types: tuple[type, ...]
    convert: Callable[[Any, Context], Any] | None = None


@dataclass(frozen=True)
class Array:
    of: Kind
    each: Sequence[Check] = ()  # checks applied to every element, errors at "key[i]"
    min_len: int = 0


@dataclass(frozen=True)
class Table:
    """A TOML table that becomes ``cls(**values)`` (the values dict itself if cls is None); ``post`` does
    cross-key checks on the values dict (and may fill in values) before ``cls`` is built."""

    cls: type | None
    keys: dict[str, Key]
    post: Callable[[dict[str, Any]], None] | None = None

    def __post_init__(self) -> None:
        if self.cls is not None:  # catch a schema/dataclass mismatch at import, not in production
            assert_fields(self.cls, self.keys)


@dataclass(frozen=True)
class Tables:
    """An array of tables (``[[extensions]]``)."""

    table: Table


Kind = Scalar | Array | Table | Tables


def assert_fields(cls: type, keys: dict[str, Any]) -> None:
    """Every schema key is an ``__init__`` field of the dataclass ``cls`` (checked at import)."""
    names = {f.name for f in fields(cls) if f.init}
    assert set(keys) <= names, f"{cls.__name__}: schema keys {set(keys) - names} are not fields"


REQUIRED: Any = object()  # the default of a key that has none


@dataclass(frozen=True)
class Key:
    """One key: its kind, its default (``REQUIRED`` if none; for a Table kind the default is raw TOML
    data run through the table's schema, so ``{}`` means "all defaults"), and checks in order."""

    kind: Kind
    default: Any = REQUIRED
    checks: Sequence[Check] = ()


def _path(value: str, ctx: Context) -> Path:
    if not value.strip():
        raise Invalid("must not be empty")
    return ctx.resolve(value)


STRING = Scalar("string", (str,))
INTEGER = Scalar("integer", (int,))
BOOLEAN = Scalar("boolean", (bool,))
FLOAT = Scalar("float", (float, int))
PATH = Scalar("string", (str,), _path)  # a file name; relative to the config file's directory


# ============================================================================ messages

def toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, for "expected ..., got ..." messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    for t, name in ((float, "float"), (str, "string"), (list, "array"), (dict, "table"),
                    (datetime.datetime, "datetime"), (datetime.date, "date"), (datetime.time, "time")):
        if isinstance(value, t):
            return name
    return type(value).__name__


def quote(value: Any) -> str:
    """A value as it would be written in TOML (strings in double quotes), for messages."""
    return '"' + value.replace('"', '\\"') + '"' if isinstance(value, str) else str(value).lower()


def hint(word: str, choices: Sequence[str]) -> str:
    """' (did you mean "x"?)' for the closest of ``choices``, or "" when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _kind_name(kind: Kind) -> str:
    if isinstance(kind, Scalar):
        return kind.name
    if isinstance(kind, Array):
        return f"array of {_kind_name(kind.of)}s"
    if isinstance(kind, Table):
        return "table"
    return "array of tables"


def _join(path: str, at: str) -> str:
    if not at:
        return path
    if at.startswith("["):
        return path + at
    at = at.lstrip(".")
    return f"{path}.{at}" if path else at


def _wrong_type(kind: Kind, value: Any, key: str) -> str:
    reason = f"expected {_kind_name(kind)}, got {toml_type(value)}"
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        reason += f" ({quote(value)})" if isinstance(value, str) else f" ({value})"
    if isinstance(kind, Tables) and isinstance(value, dict):
        reason += f": write each entry as [[{key.rsplit('.', 1)[-1]}]]"
    elif (isinstance(kind, Array) and isinstance(kind.of, Scalar) and isinstance(value, kind.of.types)
          and (bool in kind.of.types or not isinstance(value, bool))):
        reason += f": put it in brackets, [{quote(value)}]"
    return reason


# ============================================================================ the walker

class Walker:
    """Checks raw TOML data against a kind and builds the Python values; every problem is a
    ``ConfigError`` naming ``ctx.source`` and the dotted key."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.ctx.source, key or None, reason)

    def value(self, kind: Kind, raw: Any, path: str) -> Any:
        """``raw`` checked and converted as ``kind``; ``path`` is its dotted key (for errors)."""
        if isinstance(kind, Scalar):
            if (isinstance(raw, bool) and bool not in kind.types) or not isinstance(raw, kind.types):
                raise self.fail(path, _wrong_type(kind, raw, path))
            convert = kind.convert
            if convert is None:
                return raw
            return self.checked(raw, (lambda v: convert(v, self.ctx),), path)
        if isinstance(kind, Table):
            if not isinstance(raw, dict):
                raise self.fail(path, _wrong_type(kind, raw, path))
            return self.table(kind, raw, path)
        if not isinstance(raw, list):
            raise self.fail(path, _wrong_type(kind, raw, path))
        if isinstance(kind, Tables):
            return [self.value(kind.table, item, f"{path}[{i}]") for i, item in enumerate(raw)]
        if len(raw) < kind.min_len:
            raise self.fail(path, "must not be empty" if kind.min_len == 1 else
                            f"needs at least {kind.min_len} entries")
        return [self.checked(self.value(kind.of, item, f"{path}[{i}]"), kind.each, f"{path}[{i}]")
                for i, item in enumerate(raw)]

    def checked(self, value: Any, checks: Sequence[Check], path: str) -> Any:
        """``value`` run through ``checks`` in order; an ``Invalid`` becomes a ``ConfigError`` at its ``at``."""
        for check in checks:
            try:
                value = check(value)
            except Invalid as e:
                raise self.fail(_join(path, e.at), e.reason) from None
            except ValueError as e:
                raise self.fail(path, str(e)) from None
        return value

    def table(self, table: Table, raw: dict[str, Any], path: str) -> Any:
        """A TOML table: unknown keys refused, defaults filled in, ``post`` run, ``cls`` built."""
        for name in raw:
            if name not in table.keys:
                item = raw[name]
                is_table = isinstance(item, dict) or (isinstance(item, list) and item and isinstance(item[0], dict))
                what = "unknown table" if is_table else "unknown key"
                raise self.fail(_join(path, name), what + hint(name, list(table.keys)))
        values: dict[str, Any] = {}
        for name, key in table.keys.items():
            sub = _join(path, name)
            if name in raw:
                values[name] = self.checked(self.value(key.kind, raw[name], sub), key.checks, sub)
            elif key.default is REQUIRED:
                what = (f"required table [{sub}] is missing" if isinstance(key.kind, Table) else
                        f"required array of tables [[{sub}]] is missing" if isinstance(key.kind, Tables) else
                        "required key is missing")
                raise self.fail(sub, what)
            elif isinstance(key.kind, Table):
                values[name] = self.value(key.kind, key.default, sub)
            else:
                values[name] = copy.deepcopy(key.default)
        if table.post is not None:
            try:
                table.post(values)
            except Invalid as e:
                raise self.fail(_join(path, e.at), e.reason) from None
        return values if table.cls is None else table.cls(**values)
