"""What the switch's defences must remember across a restart, in a small file beside the database
(``softswitch.security.json``, mode 0600): active bans (address or IPv6 /64 -> until, Unix time) and
revoked desk sessions (session id -> the time its last token expires anyway).

A file, not a table: both sets are small, bounded by their expiry, and written whole on a change (a ban,
a logout), which a JSON file written atomically (temporary file, fsync, rename) does as well as SQLite,
without a schema migration. Read at start; written from the switch's file thread.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "load", "save", "state_path"]

log = logging.getLogger("softswitch.store")

STATE_FILE = "softswitch.security.json"
_MAX_ENTRIES = 100_000  # a corrupt or hostile file cannot make the switch load more


def state_path(store_path: str | os.PathLike[str]) -> Path | None:
    """The state file of the store at ``store_path``; None for an in-memory store."""
    if str(store_path) == ":memory:":
        return None
    return Path(store_path).parent / STATE_FILE


def _table(raw: Any, now: float) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(raw, dict):
        return out
    for k, v in list(raw.items())[:_MAX_ENTRIES]:
        if isinstance(k, str) and isinstance(v, (int, float)) and v > now:
            out[k] = float(v)
    return out


def load(path: Path, now: float | None = None) -> dict[str, dict[str, float]]:
    """{"bans": {...}, "revoked": {...}} without expired entries; empty tables if the file is missing or
    unreadable (logged: the switch starts anyway, with no bans)."""
    now = time.time() if now is None else now
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    except (OSError, ValueError) as e:
        log.warning("%s not read (%s): starting without the saved bans and revoked sessions", path, e)
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {"bans": _table(data.get("bans"), now), "revoked": _table(data.get("revoked"), now)}


def save(path: Path, state: dict[str, dict[str, float]]) -> None:
    """Write the whole state atomically (mode 0600). OSError is the caller's to log."""
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps({k: {kk: round(vv, 3) for kk, vv in v.items()} for k, v in state.items()}, indent=0)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
