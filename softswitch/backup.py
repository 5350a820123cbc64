"""``softswitch backup FILE`` and ``softswitch restore FILE``: the store's SQLite database, copied with SQLite's
online backup API (``sqlite3.Connection.backup``).

Backup is safe while the switch runs and writes: the whole database is copied in one step inside one read
transaction, so the copy is the database as it was at one instant (every write committed before the
backup started is in it, none half-written), and in WAL mode the switch's writers are not blocked
meanwhile. The copy is checked (``PRAGMA integrity_check``), written to a temporary file, fsynced and
renamed, so FILE is either a complete backup or absent. It is a single self-contained file
(rollback-journal mode: no -wal beside it).

Restore refuses while anything holds the database open (a running switch, ``softswitch records``...):
it takes SQLite's exclusive lock first, which an open WAL-mode connection anywhere prevents; stop the
switch first (``systemctl stop softswitch``). It checks FILE, keeps the current database as
``<database>.before-restore-<time>``, then loads FILE into the database through the same lock (the backup
API again), so a switch started meanwhile waits and then fails instead of seeing a half-restored file.

The database is not everything: recordings (``[media] recordings_dir``), voicemail (``[ivr] voicemail_dir``),
the queue_log (``[acd] queue_log``), the config file and, beside the database, its key file are plain files;
back them up with the usual tools (README "Operations").
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

__all__ = ["DatabaseBusy", "backup", "restore", "main"]


class DatabaseBusy(RuntimeError):
    """Something (a running switch) holds the database open."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check(conn: sqlite3.Connection, what: str) -> None:
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    if rows != [("ok",)]:
        raise ValueError(f"{what} fails PRAGMA integrity_check: " + "; ".join(str(r[0]) for r in rows[:5]))


def _summary(conn: sqlite3.Connection) -> str:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    try:
        calls = conn.execute("SELECT count(*) FROM call_records").fetchone()[0]
    except sqlite3.Error:
        calls = None
    return f"{pages * size / 1e6:.1f} MB, {tables} tables" + (f", {calls} call records" if calls is not None else "")


def backup(database: str | os.PathLike[str], dest: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> str:
    """Copy ``database`` (live or not) to ``dest`` atomically; returns a one-line summary."""
    src_path, dest_path = Path(database), Path(dest)
    if not src_path.is_file():
        raise FileNotFoundError(f"no database at {src_path}")
    tmp = dest_path.with_name(f".{dest_path.name}.{os.getpid()}.tmp")
    src = sqlite3.connect(src_path, timeout=busy_timeout, isolation_level=None)
    try:
        dst = sqlite3.connect(tmp, isolation_level=None)
        try:
            src.backup(dst)                       # pages=-1: one step, one read transaction, one instant
            dst.execute("PRAGMA journal_mode = DELETE")   # a single file, whatever the source's WAL mode
            _check(dst, f"the backup {dest_path}")
            summary = _summary(dst)
        finally:
            dst.close()
        _fsync(tmp)
        os.replace(tmp, dest_path)
        _fsync(dest_path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    return summary


def _exclusive(database: Path) -> sqlite3.Connection:
    """A connection holding SQLite's exclusive lock on ``database`` until it is closed; ``DatabaseBusy``
    when another connection (another process) has it open."""
    conn = sqlite3.connect(database, timeout=0.2, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")   # locks are kept until the connection closes
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("COMMIT")
    except sqlite3.OperationalError as e:
        conn.close()
        if "locked" in str(e) or "busy" in str(e):
            raise DatabaseBusy(f"{database} is in use (a running switch or tool has it open): stop the switch "
                               "first (systemctl stop softswitch), then restore") from None
        raise
    return conn


def restore(backup_file: str | os.PathLike[str], database: str | os.PathLike[str]) -> str:
    """Replace ``database`` with ``backup_file`` (nothing may hold ``database`` open); returns a summary."""
    from store.migrations import LATEST_VERSION

    src_path, db_path = Path(backup_file), Path(database)
    if not src_path.is_file():
        raise FileNotFoundError(f"no backup at {src_path}")
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, isolation_level=None)
    try:
        _check(src, f"the backup {src_path}")
        has_versions = src.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
                                   ).fetchone()
        if not has_versions:
            raise ValueError(f"{src_path} is not a softswitch database (no schema_version table)")
        version = src.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if version > LATEST_VERSION:
            raise ValueError(f"{src_path} has schema version {version}, newer than this release's "
                             f"{LATEST_VERSION}: restore it with the release that wrote it")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        kept = ""
        existed = db_path.exists()
        conn = _exclusive(db_path)
        try:
            if existed:
                saved = db_path.with_name(f"{db_path.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
                keep = sqlite3.connect(saved, isolation_level=None)
                try:
                    conn.backup(keep)
                    keep.execute("PRAGMA journal_mode = DELETE")
                finally:
                    keep.close()
                kept = f"; the database it replaced is kept as {saved}"
            src.backup(conn)
            _check(conn, f"the restored {db_path}")
            summary = _summary(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        _fsync(db_path)
    finally:
        src.close()
    return summary + kept


def _database(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db)
    from .config import load_config

    return Path(load_config(args.config).store.path)


def main(argv: list[str]) -> int:
    """``softswitch backup FILE`` / ``softswitch restore FILE`` (the first word says which)."""
    command, rest = (argv[0], argv[1:]) if argv and argv[0] in ("backup", "restore") else ("backup", argv)
    p = argparse.ArgumentParser(prog=f"softswitch {command}", description=(
        "Copy the switch's database to FILE with SQLite's online backup API (safe while the switch runs)."
        if command == "backup" else
        "Replace the switch's database with FILE (a backup). Stop the switch first: refused while anything "
        "has the database open. The current database is kept beside it as <database>.before-restore-<time>."))
    p.add_argument("file", help="the backup file" + (" to write" if command == "backup" else " to restore"))
    p.add_argument("--config", "-c", default="config.toml", help="the switch's config (its [store] path)")
    p.add_argument("--db", help="the database file, instead of the config's [store] path")
    if command == "backup":
        p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    args = p.parse_args(rest)
    try:
        database = _database(args)
        if command == "backup":
            if Path(args.file).exists() and not args.force:
                print(f"softswitch backup: {args.file} exists (--force to overwrite)", file=sys.stderr)
                return 2
            t0 = time.monotonic()
            summary = backup(database, args.file)
            print(f"{database} backed up to {args.file} in {time.monotonic() - t0:.1f} s ({summary})")
        else:
            summary = restore(args.file, database)
            print(f"{args.file} restored to {database} ({summary})")
    except DatabaseBusy as e:
        print(f"softswitch {command}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a config error, a missing file, a bad backup: one line
        print(f"softswitch {command}: {e}", file=sys.stderr)
        return 2
    return 0


def backup_main(argv: list[str]) -> int:
    return main(["backup", *argv])


def restore_main(argv: list[str]) -> int:
    return main(["restore", *argv])
