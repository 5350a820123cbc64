"""Request checking against the OpenAPI document (``softswitch.api.spec``): JSON bodies and query /
path parameters. A small JSON-schema subset (what the document uses): type, nullable, enum, properties,
required, additionalProperties, min/maxProperties, items, maxItems, min/maxLength, pattern,
minimum/maximum, $ref. Anything else in a request is refused with ``ApiError(400)``."""
from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any, Mapping

__all__ = ["ApiError", "check", "parse_query", "parse_path"]


class ApiError(Exception):
    def __init__(self, status: int, message: str, field: str = "", retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.retry_after = retry_after  # seconds, sent as Retry-After (429)


@lru_cache(maxsize=None)
def _pattern(p: str) -> re.Pattern:
    return re.compile(p)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else type(v).__name__


def check(schema: Mapping, value: Any, where: str, schemas: Mapping[str, Mapping]) -> Any:
    """``value`` if it fits ``schema``; raises ``ApiError(400)`` naming ``where`` otherwise."""
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if value is None:
        if schema.get("nullable"):
            return None
        raise ApiError(400, f"{where or 'body'}: must not be null", where)
    t = schema.get("type")
    got = _type_name(value)
    ok = (t is None or got == t or (t == "number" and got == "integer"))
    if not ok:
        raise ApiError(400, f"{where or 'body'}: expected {t}, got {got}", where)
    if "enum" in schema and value not in schema["enum"]:
        raise ApiError(400, f"{where}: must be one of {', '.join(map(str, schema['enum']))}", where)
    if t == "string":
        if len(value) > schema.get("maxLength", 1 << 30):
            raise ApiError(400, f"{where}: too long ({len(value)} characters, at most {schema['maxLength']})", where)
        if len(value) < schema.get("minLength", 0):
            raise ApiError(400, f"{where}: must not be empty" if schema["minLength"] == 1
                           else f"{where}: at least {schema['minLength']} characters", where)
        if "\x00" in value:
            raise ApiError(400, f"{where}: must not contain NUL characters", where)
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            raise ApiError(400, f"{where}: {value[:40]!r} does not match {schema['pattern']}", where)
    elif t in ("number", "integer"):
        if isinstance(value, float) and not math.isfinite(value):
            raise ApiError(400, f"{where}: must be a finite number", where)
        if "minimum" in schema and value < schema["minimum"]:
            raise ApiError(400, f"{where}: must be at least {schema['minimum']:g}", where)
        if "maximum" in schema and value > schema["maximum"]:
            raise ApiError(400, f"{where}: must be at most {schema['maximum']:g}", where)
    elif t == "array":
        if len(value) > schema.get("maxItems", 1 << 30):
            raise ApiError(400, f"{where}: at most {schema['maxItems']} items", where)
        items = schema.get("items", {})
        value = [check(items, v, f"{where}[{i}]", schemas) for i, v in enumerate(value)]
    elif t == "object":
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        if extra is False:
            unknown = [k for k in value if k not in props]
            if unknown:
                known = ", ".join(props) or "none"
                raise ApiError(400, f"{where + ': ' if where else ''}unknown field(s) "
                                    f"{', '.join(repr(k[:40]) for k in unknown[:5])}; known: {known}",
                               f"{where + '.' if where else ''}{unknown[0][:40]}")
        missing = [k for k in schema.get("required", ()) if k not in value]
        if missing:
            raise ApiError(400, f"{where + ': ' if where else ''}missing required field(s) {', '.join(missing)}",
                           f"{where + '.' if where else ''}{missing[0]}")
        if len(value) > schema.get("maxProperties", 1 << 30):
            raise ApiError(400, f"{where or 'body'}: at most {schema['maxProperties']} fields", where)
        if len(value) < schema.get("minProperties", 0):
            raise ApiError(400, f"{where or 'body'}: nothing to change (give at least one field)", where)
        out = {}
        for k, v in value.items():
            sub = props.get(k, extra if isinstance(extra, dict) else {})
            out[k] = check(sub, v, f"{where + '.' if where else ''}{k}", schemas)
        value = out
    return value


def _convert(text: str, schema: Mapping, name: str) -> Any:
    t = schema.get("type", "string")
    try:
        if t == "integer":
            if not re.fullmatch(r"[+-]?[0-9]{1,19}", text):
                raise ValueError
            return int(text)
        if t == "number":
            if not re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
                raise ValueError
            return float(text)
        if t == "boolean":
            return {"true": True, "false": False}[text]
    except (ValueError, KeyError):
        raise ApiError(400, f"{name}: expected {t}, got {text[:40]!r}", name) from None
    return text


def parse_query(params: list[Mapping], query: Any, schemas: Mapping) -> dict[str, Any]:
    """Declared query parameters, converted and checked; unknown or repeated ones are refused."""
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    out: dict[str, Any] = {}
    for name in set(query.keys()):
        if name not in declared:
            raise ApiError(400, f"unknown query parameter {name[:40]!r}; known: {', '.join(declared) or 'none'}",
                           name[:40])
        values = query.getall(name)
        if len(values) > 1:
            raise ApiError(400, f"{name}: given {len(values)} times", name)
        out[name] = check(declared[name]["schema"], _convert(values[0], declared[name]["schema"], name), name, schemas)
    for name, p in declared.items():
        if p.get("required") and name not in out:
            raise ApiError(400, f"missing required query parameter {name}", name)
        if name not in out and "default" in p["schema"]:
            out[name] = p["schema"]["default"]
    return out


def parse_path(params: list[Mapping], match: Mapping[str, str], schemas: Mapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in params:
        if p["in"] == "path":
            name = p["name"]
            value = _convert(match[name], p["schema"], name)
            out[name] = check(p["schema"], value, name, schemas)
    return out
