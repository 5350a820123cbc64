"""The dialler's tables (migration 6): contacts and callback tasks, attempts, the do-not-call list.

Synchronous bodies for the store's group-commit writer (``Store.writer.run``) and reader
(``Store.read_sync``). Rows come in as objects with the dialler's row attributes (``dialler.events``
``ContactRow``/``AttemptRow``: duck-typed, the store imports nothing above it) and go out as dicts.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any, Iterable

__all__ = ["CONTACT_FIELDS", "load_outbound", "save_outbound"]

CONTACT_FIELDS = ("id", "campaign", "kind", "queue", "number", "name", "timezone", "data", "audio", "note", "key",
                  "position", "state", "attempts", "day", "day_attempts", "next_due", "last_result", "last_attempt",
                  "created")
_COLUMNS = ("id", "campaign", "kind", "queue", "number", "name", "timezone", "data", "audio", "note", "source_key",
            "position", "state", "attempts", "day", "day_attempts", "next_due", "last_result", "last_attempt",
            "created_at")

_UPSERT_CONTACT = (
    f"INSERT INTO outbound_contacts ({', '.join(_COLUMNS)}, updated_at) VALUES ({', '.join('?' * len(_COLUMNS))}, ?) "
    "ON CONFLICT (id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    + ", updated_at = excluded.updated_at")
_UPSERT_ATTEMPT = (
    "INSERT INTO outbound_attempts (id, contact_id, campaign, number, agent, call_ref, started_at, ended_at, result, "
    "amd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET agent = excluded.agent, "
    "call_ref = excluded.call_ref, ended_at = excluded.ended_at, result = excluded.result, amd = excluded.amd")


def save_outbound(conn: sqlite3.Connection, contacts: Iterable[Any], attempts: Iterable[Any],
                  dnc: Iterable[tuple[str, bool]] = ()) -> None:
    """Upsert contacts, then attempts (they reference contacts), then do-not-call changes, in order."""
    now = time.time()
    conn.executemany(_UPSERT_CONTACT, [
        tuple(json.dumps(dict(getattr(c, f)), ensure_ascii=False, default=str) if f == "data" else getattr(c, f)
              for f in CONTACT_FIELDS) + (now,) for c in contacts])
    conn.executemany(_UPSERT_ATTEMPT, [(a.id, a.contact, a.campaign, a.number, a.agent, a.call, a.started, a.ended,
                                        a.result, a.amd) for a in attempts])
    for number, add in dnc:
        if add:
            conn.execute("INSERT OR IGNORE INTO outbound_dnc (number, added_at) VALUES (?, ?)", (number, now))
        else:
            conn.execute("DELETE FROM outbound_dnc WHERE number = ?", (number,))


def load_outbound(conn: sqlite3.Connection) -> dict[str, Any]:
    """Everything the dialler needs at start: ``contacts`` (dicts keyed like ``CONTACT_FIELDS``),
    ``open_attempts`` (attempts without an end), ``next_attempt`` (the next free attempt id), ``dnc``."""
    contacts = []
    for row in conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM outbound_contacts ORDER BY id"):
        d = dict(zip(CONTACT_FIELDS, row))
        d["data"] = json.loads(d["data"] or "{}")
        contacts.append(d)
    open_attempts = [dict(zip(("id", "contact", "campaign", "number", "agent", "call", "started"), r))
                     for r in conn.execute("SELECT id, contact_id, campaign, number, agent, call_ref, started_at "
                                           "FROM outbound_attempts WHERE ended_at IS NULL")]
    (last,), = conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbound_attempts").fetchall()
    dnc = [n for (n,) in conn.execute("SELECT number FROM outbound_dnc")]
    return {"contacts": contacts, "open_attempts": open_attempts, "next_attempt": int(last) + 1, "dnc": dnc}


def attempts_of(conn: sqlite3.Connection, contact: int) -> list[dict[str, Any]]:
    """A contact's attempts, oldest first (the API's contact history)."""
    cols = ("id", "agent", "call", "started", "ended", "result", "amd")
    return [dict(zip(cols, r)) for r in conn.execute(
        "SELECT id, agent, call_ref, started_at, ended_at, result, amd FROM outbound_attempts WHERE contact_id = ? "
        "ORDER BY started_at", (contact,))]


def work_order_contacts(conn: sqlite3.Connection, source: str, since: float, now: float) -> list[dict[str, Any]]:
    """Contacts a campaign generates from the store (``[[outbound.campaigns]] source``):

    - ``closed_work_orders``: a satisfaction follow-up for each work order closed after ``since``;
    - ``work_order_due``: an appointment reminder the day before each open work order due in the next
      two days (``due`` is then ``due_at`` less a day, or now if that has passed).

    The customer's first number is called; ``key`` (``wo-<id>``) makes a second run add nothing twice."""
    phone = ("(SELECT number FROM customer_phones p WHERE p.customer_id = w.customer_id "
             "ORDER BY added_at, number LIMIT 1)")
    if source == "closed_work_orders":
        rows = conn.execute(
            f"SELECT w.id, {phone}, c.name, w.kind, w.summary, w.closed_at, NULL FROM work_orders w "
            "JOIN customers c ON c.id = w.customer_id WHERE w.status = 'closed' AND w.closed_at > ? "
            "ORDER BY w.closed_at", (since,)).fetchall()
    elif source == "work_order_due":
        rows = conn.execute(
            f"SELECT w.id, {phone}, c.name, w.kind, w.summary, NULL, w.due_at FROM work_orders w "
            "JOIN customers c ON c.id = w.customer_id WHERE w.status NOT IN ('resolved', 'closed') "
            "AND w.due_at > ? AND w.due_at <= ? ORDER BY w.due_at", (now, now + 2 * 86400)).fetchall()
    else:
        raise ValueError(f"unknown contact source {source!r}")
    out = []
    for oid, number, name, kind, summary, closed, due in rows:
        if not number:
            continue
        out.append({"key": f"wo-{oid}", "number": number, "name": name,
                    "data": {"order": oid, "kind": kind, "summary": summary, "due_at": due},
                    "due": None if due is None else max(now, due - 86400), "closed_at": closed})
    return out
