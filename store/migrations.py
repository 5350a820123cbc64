"""Versioned schema migrations, applied when the store opens.

A migration is ``(version, description, sql_script)``. Versions start at 1 and go up by one; the
versions a database has received are rows of ``schema_version``. Rules that keep data safe:

* Append only. A shipped migration is never edited or removed: a database that already ran it
  would never see the edit. Fix mistakes with a new migration.
* Additive. Prefer ``ALTER TABLE ... ADD COLUMN`` / new tables; when a table must be rebuilt, copy
  the rows inside the same migration (create new, ``INSERT ... SELECT``, drop old, rename).
* All pending migrations and their ``schema_version`` rows run in ONE ``BEGIN IMMEDIATE``
  transaction: a failure (or a crash) leaves the database exactly as it was, and two processes
  opening the same file cannot both migrate it.
* A database newer than this code (a downgrade) is refused rather than used: old code could
  corrupt data whose meaning it does not know.
* Before upgrading a database that already holds a schema, a consistent copy is written next to
  it (``<file>.v<N>.bak``, N = its current version, via ``VACUUM INTO``), so even a migration that
  is wrong in logic (not just one that fails) cannot lose data.
"""
from __future__ import annotations

import logging
import os
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

log = logging.getLogger("softswitch.store")

__all__ = ["Migration", "MIGRATIONS", "LATEST_VERSION", "StoreError", "SchemaTooNewError", "MigrationError",
           "migrate", "split_sql", "current_version"]


class StoreError(Exception):
    """Base class of the store's own errors."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer version of the software than this one."""


class MigrationError(StoreError):
    """A migration failed; the database was left as it was before it."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


# Append only (see the module docstring). Scripts may hold several statements, triggers included.
MIGRATIONS: list[Migration] = [
    Migration(1, "registrar bindings", """
        -- One row per registered contact of an extension (RFC 3261 section 10). The registrar keeps
        -- the live table in memory; this copy lets bindings survive a restart.
        CREATE TABLE registrations (
            aor          TEXT    NOT NULL,              -- extension, e.g. '1001'
            contact_uri  TEXT    NOT NULL,
            expires_at   REAL    NOT NULL,              -- unix time
            call_id      TEXT    NOT NULL,
            cseq         INTEGER NOT NULL,
            q            REAL    NOT NULL DEFAULT 1.0,
            received     TEXT,                          -- 'udp:203.0.113.5:40312': where the REGISTER came from (NAT)
            user_agent   TEXT    NOT NULL DEFAULT '',
            instance_id  TEXT,                          -- RFC 5626 +sip.instance
            path         TEXT,                          -- RFC 3327 Path
            updated_at   REAL    NOT NULL,
            PRIMARY KEY (aor, contact_uri)
        ) WITHOUT ROWID;
        CREATE INDEX registrations_expires_at ON registrations (expires_at);
    """),
]

LATEST_VERSION = MIGRATIONS[-1].version

_SCHEMA_VERSION_DDL = """CREATE TABLE IF NOT EXISTS schema_version (
    version     INTEGER PRIMARY KEY,
    applied_at  REAL    NOT NULL,
    description TEXT    NOT NULL
)"""


def split_sql(script: str) -> list[str]:
    """Split a script into single statements (``execute`` takes one at a time, and
    ``executescript`` would COMMIT our transaction). Semicolons inside literals, comments and
    trigger bodies are handled by ``sqlite3.complete_statement``; comment-only pieces are dropped."""
    statements: list[str] = []
    buf = ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            statements.append(buf.strip())
            buf = ""
    # the loop added one ';' too many after the last piece: what is left is an unfinished statement
    rest = buf[:-1]
    if _has_code(rest):
        raise ValueError(f"incomplete SQL statement at end of script: {rest.strip()[:80]!r}")
    return [s for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    """False for pieces holding only whitespace, comments and ';' (harmless, but noise)."""
    text = re.sub(r"/\*.*?(\*/|$)", " ", statement, flags=re.S)
    text = re.sub(r"--[^\n]*", " ", text)
    return bool(text.replace(";", "").strip())


def _check_list(migrations: list[Migration]) -> None:
    for expected, m in enumerate(migrations, start=1):
        if m.version != expected:
            raise ValueError(f"migrations must be numbered 1, 2, 3...: found version {m.version} at position "
                             f"{expected}")


async def current_version(conn: aiosqlite.Connection) -> int:
    """Highest version recorded in ``schema_version`` (0 for a new or foreign database)."""
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if not rows:
        return 0
    rows = await conn.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
    return int(rows[0][0])


def _too_new(db_version: int, known: int, where: str) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"{where}: database schema version {db_version} is newer than this software supports (version "
        f"{known}); it was written by a newer release. Refusing to open it: upgrade the software, or "
        f"restore a backup made by this version.")


async def migrate(conn: aiosqlite.Connection, migrations: list[Migration] | None = None, *,
                  name: str = "database", backup_file: str | Path | None = None,
                  now: float | None = None) -> int:
    """Bring the database up to the last of ``migrations``; returns the resulting version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open transaction.
    ``name`` labels error messages (the file path); ``backup_file``: when given, an existing
    schema is first copied to ``<backup_file>.v<current version>.bak``.
    """
    migrations = MIGRATIONS if migrations is None else migrations
    _check_list(migrations)
    known = migrations[-1].version if migrations else 0
    where = name
    # Cheap unlocked look first: the common case (up to date) takes no write lock at all.
    version = await current_version(conn)
    if version > known:
        raise _too_new(version, known, where)
    if version == known:
        return version

    if version > 0 and backup_file is not None:
        await _backup(conn, Path(backup_file), version, known)

    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_SCHEMA_VERSION_DDL)
        version = await current_version(conn)  # again, under the lock: another process may have migrated
        if version > known:
            raise _too_new(version, known, where)
        for m in migrations[version:]:
            try:
                for statement in split_sql(m.sql):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
                                   (m.version, time.time() if now is None else now, m.description))
            except sqlite3.Error as e:
                raise MigrationError(f"{where}: migration {m.version} ({m.description}) failed: {e}; "
                                     f"nothing was changed, the database stays at version {version}") from e
        await conn.execute("COMMIT")
    except BaseException:
        await conn.rollback()  # a no-op when no transaction is open
        raise
    for m in migrations[version:]:
        log.info("store %s: applied migration %d (%s)", where, m.version, m.description)
    return known


async def _backup(conn: aiosqlite.Connection, db_file: Path, version: int, target: int) -> None:
    """Consistent copy of the database before its schema changes (kept; operators delete it)."""
    dest = db_file.with_name(f"{db_file.name}.v{version}.bak")
    if dest.exists():
        return  # an earlier (failed) upgrade attempt already saved this version; keep that copy
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        tmp.unlink()
    await conn.execute("VACUUM INTO ?", (str(tmp),))
    os.replace(tmp, dest)
    log.info("store %s: saved a copy of schema version %d as %s before upgrading to version %d",
             db_file, version, dest, target)
