"""A voicemail index as JSON lines (one message per line, appended): enough to list messages until the
store (SQLite) takes it over. Appending a line is atomic enough for one writer and survives crashes
better than rewriting a JSON file."""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .actions import VoicemailLeft

__all__ = ["INDEX_NAME", "add_message", "list_messages"]

INDEX_NAME = "index.jsonl"


def add_message(voicemail_dir: Path | str, vm: VoicemailLeft, fsync: bool = True) -> dict[str, Any]:
    """Append one ``VoicemailLeft`` to ``<voicemail_dir>/index.jsonl``; returns the stored entry."""
    d = Path(voicemail_dir)
    d.mkdir(parents=True, exist_ok=True)
    entry = {**asdict(vm), "heard": False}
    with open(d / INDEX_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    return entry


def list_messages(voicemail_dir: Path | str, mailbox: str | None = None, since: float | None = None) -> list[dict[str, Any]]:
    """Messages, oldest first, optionally of one mailbox / from a time on. A torn last line (crash while
    appending) is skipped."""
    path = Path(voicemail_dir) / INDEX_NAME
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (mailbox is None or e.get("mailbox") == mailbox) and (since is None or e.get("time", 0) >= since):
            out.append(e)
    return sorted(out, key=lambda e: e.get("time", 0))
