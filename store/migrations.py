"""Versioned schema migrations, applied when the store opens.

A migration is ``(version, description, sql_script)``. Versions start at 1 and go up by one; the
versions a database has received are rows of ``schema_version``. Rules that keep data safe:

* Append only. A shipped migration is never edited or removed: a database that already ran it
  would never see the edit. Fix mistakes with a new migration.
* Additive. Prefer ``ALTER TABLE ... ADD COLUMN`` / new tables; when a table must be rebuilt (a
  CHECK constraint changes), copy the rows inside the same migration (create new, ``INSERT ... SELECT``,
  drop old, rename, then its indexes and triggers again: migration 3). Migrations run with foreign keys
  off (SQLite's procedure for a rebuild: dropping a parent table would otherwise delete or refuse its
  children's references), and ``PRAGMA foreign_key_check`` must find nothing before the commit.
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
    Migration(2, "call centre: customers, calls, work orders, voicemail, recordings, lists, agent states", """
        -- Times are unix seconds (REAL); durations are seconds. Phone numbers are stored normalised
        -- (store.numbers: digits with an optional leading '+'). The call-centre API is store.crm.
        CREATE TABLE customers (
            id          INTEGER PRIMARY KEY,
            name        TEXT    NOT NULL DEFAULT '',
            name_key    TEXT    NOT NULL DEFAULT '',     -- lower-cased name: prefix search
            address     TEXT    NOT NULL DEFAULT '',
            region      TEXT,                           -- derived from the first number's prefix
            vip_level   INTEGER NOT NULL DEFAULT 0 CHECK (vip_level BETWEEN 0 AND 9),
            notes       TEXT    NOT NULL DEFAULT '',
            created_at  REAL    NOT NULL,
            updated_at  REAL    NOT NULL
        );
        CREATE INDEX customers_name_key ON customers (name_key);

        -- Several numbers per customer; a number belongs to one customer.
        CREATE TABLE customer_phones (
            number      TEXT    PRIMARY KEY,            -- normalised
            customer_id INTEGER NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
            label       TEXT    NOT NULL DEFAULT '',    -- 'mobile', 'office'...
            added_at    REAL    NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX customer_phones_customer ON customer_phones (customer_id, added_at);

        CREATE TABLE call_records (
            id           INTEGER PRIMARY KEY,
            call_ref     TEXT UNIQUE,                   -- the switch's call id (SIP Call-ID), if any
            caller       TEXT    NOT NULL,              -- normalised
            callee       TEXT    NOT NULL DEFAULT '',
            queue        TEXT,
            agent        TEXT,
            ivr_path     TEXT    NOT NULL DEFAULT '',   -- menu choices, e.g. '1>3>0'
            arrived_at   REAL    NOT NULL,
            answered_at  REAL,
            ended_at     REAL,
            wait_s       REAL,                          -- arrival to answer (or to the end, unanswered)
            talk_s       REAL,                          -- answer to end
            wrap_s       REAL,                          -- after-call work, counted in AHT
            disposition  TEXT    NOT NULL CHECK (disposition IN ('answered', 'abandoned', 'voicemail',
                                 'busy', 'no_answer', 'failed', 'transferred', 'overflow', 'blocked')),
            recording    TEXT,
            survey_score INTEGER CHECK (survey_score BETWEEN 1 AND 5),
            caller_loss_pct   REAL,                     -- RTP quality, caller leg
            caller_jitter_ms  REAL,
            agent_loss_pct    REAL,                     -- RTP quality, agent leg
            agent_jitter_ms   REAL
        );
        CREATE INDEX call_records_caller ON call_records (caller, arrived_at);
        CREATE INDEX call_records_agent ON call_records (agent, arrived_at);
        CREATE INDEX call_records_queue ON call_records (queue, arrived_at);
        CREATE INDEX call_records_arrived ON call_records (arrived_at);

        CREATE TABLE work_orders (
            id           INTEGER PRIMARY KEY,
            kind         TEXT    NOT NULL CHECK (kind IN ('pickup', 'delivery', 'repair', 'complaint',
                                                         'consultation', 'appointment')),
            status       TEXT    NOT NULL DEFAULT 'open'
                                 CHECK (status IN ('open', 'assigned', 'in_progress', 'resolved', 'closed')),
            customer_id  INTEGER NOT NULL REFERENCES customers (id),
            call_id      INTEGER REFERENCES call_records (id),
            region       TEXT,
            service_point TEXT,                         -- dispatched from the region (config)
            assignee     TEXT,
            summary      TEXT    NOT NULL DEFAULT '',
            details      TEXT    NOT NULL DEFAULT '',
            due_at       REAL,
            escalation   INTEGER NOT NULL DEFAULT 0 CHECK (escalation >= 0 AND (kind = 'complaint' OR escalation = 0)),
            created_by   TEXT    NOT NULL,
            created_at   REAL    NOT NULL,
            updated_at   REAL    NOT NULL,
            closed_at    REAL
        );
        CREATE INDEX work_orders_customer ON work_orders (customer_id);
        CREATE INDEX work_orders_call ON work_orders (call_id);  -- also makes deleting old calls cheap (FK check)
        CREATE INDEX work_orders_open_by_customer ON work_orders (customer_id)
            WHERE status IN ('open', 'assigned', 'in_progress');
        CREATE INDEX work_orders_status ON work_orders (status);
        CREATE INDEX work_orders_kind ON work_orders (kind);
        CREATE INDEX work_orders_region ON work_orders (region);
        CREATE INDEX work_orders_due ON work_orders (due_at) WHERE status IN ('open', 'assigned', 'in_progress');

        -- The workflow, as data: the trigger below refuses any other status change, whoever writes.
        CREATE TABLE work_order_transitions (
            from_status TEXT NOT NULL,
            to_status   TEXT NOT NULL,
            PRIMARY KEY (from_status, to_status)
        ) WITHOUT ROWID;
        INSERT INTO work_order_transitions VALUES
            ('open', 'assigned'), ('assigned', 'in_progress'), ('in_progress', 'resolved'),
            ('resolved', 'closed'),
            ('assigned', 'open'),            -- unassigned again
            ('in_progress', 'assigned'),     -- handed back / reassigned
            ('resolved', 'in_progress');     -- reopened: the customer is not satisfied
        CREATE TRIGGER work_orders_transition BEFORE UPDATE OF status ON work_orders
            WHEN NEW.status <> OLD.status AND NOT EXISTS (
                SELECT 1 FROM work_order_transitions WHERE from_status = OLD.status AND to_status = NEW.status)
        BEGIN
            SELECT RAISE(ABORT, 'work order status change not allowed');
        END;

        -- Who did what to a work order (creation, status changes, assignment, escalation, notes).
        CREATE TABLE order_events (
            id          INTEGER PRIMARY KEY,
            order_id    INTEGER NOT NULL REFERENCES work_orders (id),
            at          REAL    NOT NULL,
            actor       TEXT    NOT NULL,
            action      TEXT    NOT NULL CHECK (action IN ('created', 'status', 'assigned', 'escalated',
                                                           'note', 'due')),
            from_status TEXT,
            to_status   TEXT,
            escalation  INTEGER,
            note        TEXT    NOT NULL DEFAULT ''
        );
        CREATE INDEX order_events_order ON order_events (order_id, id);

        CREATE TABLE voicemails (
            id              INTEGER PRIMARY KEY,
            file            TEXT    NOT NULL,
            caller          TEXT    NOT NULL,
            callback_number TEXT,
            queue           TEXT,
            call_id         INTEGER REFERENCES call_records (id),
            duration_s      REAL    NOT NULL,
            created_at      REAL    NOT NULL,
            handled_by      TEXT,
            handled_at      REAL
        );
        CREATE INDEX voicemails_unhandled ON voicemails (created_at) WHERE handled_at IS NULL;
        CREATE INDEX voicemails_caller ON voicemails (caller, created_at);
        CREATE INDEX voicemails_call ON voicemails (call_id);

        CREATE TABLE recordings (
            id          INTEGER PRIMARY KEY,
            file        TEXT    NOT NULL UNIQUE,
            call_id     INTEGER REFERENCES call_records (id),
            parties     TEXT    NOT NULL DEFAULT '[]',  -- JSON array of numbers / agent names
            started_at  REAL    NOT NULL,
            duration_s  REAL    NOT NULL
        );
        CREATE INDEX recordings_call ON recordings (call_id);
        CREATE INDEX recordings_started ON recordings (started_at);

        -- Blacklist ('block') and warning list ('warn'): a whole number, or a prefix ('0900*').
        CREATE TABLE number_lists (
            id          INTEGER PRIMARY KEY,
            list        TEXT    NOT NULL CHECK (list IN ('block', 'warn')),
            digits      TEXT    NOT NULL,               -- the number, or the prefix without its '*'
            is_prefix   INTEGER NOT NULL CHECK (is_prefix IN (0, 1)),
            reason      TEXT    NOT NULL DEFAULT '',
            added_by    TEXT    NOT NULL,
            added_at    REAL    NOT NULL,
            expires_at  REAL,                           -- NULL: never
            UNIQUE (list, digits, is_prefix)
        );
        CREATE INDEX number_lists_digits ON number_lists (digits);

        CREATE TABLE agent_states (
            id          INTEGER PRIMARY KEY,
            agent       TEXT    NOT NULL,
            state       TEXT    NOT NULL,               -- 'ready', 'not_ready', 'busy', 'wrap_up', 'logged_out'...
            reason      TEXT    NOT NULL DEFAULT '',
            started_at  REAL    NOT NULL,
            ended_at    REAL                            -- NULL: the agent's current state
        );
        CREATE INDEX agent_states_agent ON agent_states (agent, started_at);
        CREATE UNIQUE INDEX agent_states_current ON agent_states (agent) WHERE ended_at IS NULL;
    """),
    Migration(3, "call records: time-out and no-agents dispositions, queue entry and talk end times", """
        -- Calls the switch ended are not abandons: 'timeout' (left on the queue's max_wait) and
        -- 'no_agents' (left because nobody serves the queue). A CHECK constraint cannot be altered in
        -- SQLite: the table is rebuilt (sqlite.org/lang_altertable.html, "making other kinds of table
        -- schema changes"): new table, copy, drop, rename, indexes again. migrate() runs this with
        -- foreign keys off and checks them (PRAGMA foreign_key_check) before it commits, so the work
        -- orders, voicemails and recordings that point at call records keep pointing at them.
        -- queued_at: when the call entered the queue it is recorded under (wait_s and the service
        -- level count from there, not from the IVR's greeting); talk_ended_at: when the agent's part
        -- ended (a caller who stays for the survey does not make the talk longer).
        CREATE TABLE call_records_new (
            id           INTEGER PRIMARY KEY,
            call_ref     TEXT UNIQUE,
            caller       TEXT    NOT NULL,
            callee       TEXT    NOT NULL DEFAULT '',
            queue        TEXT,
            agent        TEXT,
            ivr_path     TEXT    NOT NULL DEFAULT '',
            arrived_at   REAL    NOT NULL,
            answered_at  REAL,
            ended_at     REAL,
            wait_s       REAL,                          -- queue entry (else arrival) to answer (or to the end)
            talk_s       REAL,                          -- answer to the talk's end (else the call's end)
            wrap_s       REAL,
            disposition  TEXT    NOT NULL CHECK (disposition IN ('answered', 'abandoned', 'voicemail',
                                 'busy', 'no_answer', 'failed', 'transferred', 'overflow', 'blocked',
                                 'timeout', 'no_agents')),
            recording    TEXT,
            survey_score INTEGER CHECK (survey_score BETWEEN 1 AND 5),
            caller_loss_pct   REAL,
            caller_jitter_ms  REAL,
            agent_loss_pct    REAL,
            agent_jitter_ms   REAL,
            queued_at    REAL,                          -- NULL: not a queue call (or recorded before v3)
            talk_ended_at REAL                          -- NULL: the talk lasted until ended_at
        );
        INSERT INTO call_records_new (id, call_ref, caller, callee, queue, agent, ivr_path, arrived_at, answered_at,
                                      ended_at, wait_s, talk_s, wrap_s, disposition, recording, survey_score,
                                      caller_loss_pct, caller_jitter_ms, agent_loss_pct, agent_jitter_ms)
            SELECT id, call_ref, caller, callee, queue, agent, ivr_path, arrived_at, answered_at,
                   ended_at, wait_s, talk_s, wrap_s, disposition, recording, survey_score,
                   caller_loss_pct, caller_jitter_ms, agent_loss_pct, agent_jitter_ms FROM call_records;
        DROP TABLE call_records;
        ALTER TABLE call_records_new RENAME TO call_records;
        CREATE INDEX call_records_caller ON call_records (caller, arrived_at);
        CREATE INDEX call_records_agent ON call_records (agent, arrived_at);
        CREATE INDEX call_records_queue ON call_records (queue, arrived_at);
        CREATE INDEX call_records_arrived ON call_records (arrived_at);
    """),
    Migration(4, "agent states: the phone an agent is logged in at", """
        -- The extension the agent took calls at while in this state (hot-desking: not always the
        -- configured one): after a restart an agent logged in before is logged in again at that phone.
        ALTER TABLE agent_states ADD COLUMN extension TEXT;   -- NULL: logged out, or recorded before v4
    """),
    Migration(5, "VIP customers index", """
        -- The switch reads the VIP customers (vip_level above 0: their queue priority, softswitch.vip)
        -- every minute; they are few among many customers.
        CREATE INDEX customers_vip ON customers (id, vip_level) WHERE vip_level > 0;
    """),
    Migration(6, "outbound: campaign contacts, callback tasks, attempts, do-not-call list", """
        -- The dialler's state (dialler.engine, written through store.outbound): a row per contact of a
        -- campaign or callback task (campaign 'callbacks'), its state and when it is due again; a row per
        -- attempt, written BEFORE the call is placed, so after a crash an attempt without a result still
        -- counts and its contact is not dialled again inside its retry window. Times are unix seconds.
        CREATE TABLE outbound_contacts (
            id            INTEGER PRIMARY KEY,          -- the dialler's own id (it allocates them)
            campaign      TEXT    NOT NULL,
            kind          TEXT    NOT NULL CHECK (kind IN ('campaign', 'voicemail', 'queue', 'web')),
            queue         TEXT    NOT NULL DEFAULT '',
            number        TEXT    NOT NULL,
            name          TEXT    NOT NULL DEFAULT '',
            timezone      TEXT    NOT NULL DEFAULT '',  -- IANA zone; '' = the campaign's
            data          TEXT    NOT NULL DEFAULT '{}',-- JSON shown to the agent, read by TTS
            audio         TEXT    NOT NULL DEFAULT '',  -- a voicemail callback's message
            note          TEXT    NOT NULL DEFAULT '',
            source_key    TEXT    NOT NULL DEFAULT '',  -- the source's id (a work order): added once
            position      REAL    NOT NULL DEFAULT 0,   -- a queue callback's place (its queue entry time)
            state         TEXT    NOT NULL CHECK (state IN ('waiting', 'held', 'dialling', 'done')),
            attempts      INTEGER NOT NULL DEFAULT 0,
            day           TEXT    NOT NULL DEFAULT '',  -- the contact's local date of its last attempt
            day_attempts  INTEGER NOT NULL DEFAULT 0,
            next_due      REAL,                         -- NULL: not waiting
            last_result   TEXT    NOT NULL DEFAULT '',
            last_attempt  REAL,
            created_at    REAL    NOT NULL,
            updated_at    REAL    NOT NULL
        );
        CREATE INDEX outbound_contacts_campaign ON outbound_contacts (campaign, state, next_due);
        CREATE UNIQUE INDEX outbound_contacts_key ON outbound_contacts (campaign, source_key) WHERE source_key <> '';
        CREATE INDEX outbound_contacts_number ON outbound_contacts (number);

        CREATE TABLE outbound_attempts (
            id          INTEGER PRIMARY KEY,
            contact_id  INTEGER NOT NULL REFERENCES outbound_contacts (id) ON DELETE CASCADE,
            campaign    TEXT    NOT NULL,
            number      TEXT    NOT NULL,
            agent       TEXT    NOT NULL DEFAULT '',
            call_ref    TEXT    NOT NULL DEFAULT '',    -- the call record's call_ref
            started_at  REAL    NOT NULL,
            ended_at    REAL,                           -- NULL: in progress (or the switch died during it)
            result      TEXT    NOT NULL DEFAULT ''
        );
        CREATE INDEX outbound_attempts_contact ON outbound_attempts (contact_id, started_at);
        CREATE INDEX outbound_attempts_open ON outbound_attempts (id) WHERE ended_at IS NULL;

        CREATE TABLE outbound_dnc (
            number      TEXT    PRIMARY KEY,            -- normalised
            added_at    REAL    NOT NULL
        ) WITHOUT ROWID;
    """),
    Migration(7, "call records: direction, trunk, DID and external number (SIP trunks)", """
        -- A call that came in on a carrier's trunk (inbound) or went out on one (outbound): the trunk's
        -- name, the DID the customer dialled, and the outside party's number in E.164 ('anonymous' when
        -- withheld). Internal calls keep ''.
        ALTER TABLE call_records ADD COLUMN direction TEXT NOT NULL DEFAULT ''
            CHECK (direction IN ('', 'inbound', 'outbound'));
        ALTER TABLE call_records ADD COLUMN trunk TEXT NOT NULL DEFAULT '';
        ALTER TABLE call_records ADD COLUMN did TEXT NOT NULL DEFAULT '';
        ALTER TABLE call_records ADD COLUMN external TEXT NOT NULL DEFAULT '';
        CREATE INDEX call_records_trunk ON call_records (trunk, arrived_at) WHERE trunk <> '';
    """),
    Migration(8, "call records: how many times the call was transferred", """
        -- A blind or attended transfer hands the caller on; the call's disposition stays what the end was
        -- (answered...). Reports count the calls transferred (transfers > 0) per queue and agent.
        ALTER TABLE call_records ADD COLUMN transfers INTEGER NOT NULL DEFAULT 0 CHECK (transfers >= 0);
    """),
    Migration(9, "call records: hold time and number of holds", """
        -- Time the answered call spent on hold (the agent's desk hold, a phone's own hold) and how many
        -- times it was put on hold. hold_seconds is part of talk_s (the connected time); reports show talk
        -- without hold, hold and wrap-up apart (AHT = talk + hold + wrap-up). Earlier calls read as 0.
        ALTER TABLE call_records ADD COLUMN hold_seconds REAL NOT NULL DEFAULT 0 CHECK (hold_seconds >= 0);
        ALTER TABLE call_records ADD COLUMN holds INTEGER NOT NULL DEFAULT 0 CHECK (holds >= 0);
    """),
    Migration(10, "call agent parts: each agent's part of a call (transfers credited per agent)", """
        -- One row per agent who talked to the caller, in order (seq): the agent who answered and transferred
        -- the caller on has her part (transferred = 1, her talk and hold), the agent who took the caller
        -- next has hers. Per-agent reports read these; the call record keeps the call's totals (queues).
        -- Calls recorded before this table have no parts: reports credit their record's agent as before.
        CREATE TABLE call_agent_parts (
            id           INTEGER PRIMARY KEY,
            call_ref     TEXT    NOT NULL,              -- the call record's call_ref
            seq          INTEGER NOT NULL CHECK (seq >= 0),
            agent        TEXT    NOT NULL,
            queue        TEXT    NOT NULL DEFAULT '',   -- the queue she took it from ('': at her extension)
            answered_at  REAL    NOT NULL,
            ended_at     REAL    NOT NULL,
            talk_s       REAL    NOT NULL CHECK (talk_s >= 0),   -- connected time, hold inside
            hold_seconds REAL    NOT NULL DEFAULT 0 CHECK (hold_seconds >= 0),
            holds        INTEGER NOT NULL DEFAULT 0 CHECK (holds >= 0),
            wrap_s       REAL,                          -- her after-call work for this call
            transferred  INTEGER NOT NULL DEFAULT 0 CHECK (transferred IN (0, 1)),
            UNIQUE (call_ref, seq)
        );
        CREATE INDEX call_agent_parts_agent ON call_agent_parts (agent, answered_at);
    """),
    Migration(11, "outbound attempts: the answering-machine detector's decision", """
        -- A campaign with amd = true listens to the customer's answer (dialler.amd, Asterisk app_amd's
        -- algorithm): its decision and cause, e.g. 'MACHINE LONGGREETING-1500-1500', 'HUMAN HUMAN-800-800'.
        -- '' = not analysed (no detection, not answered, or recorded before v11).
        ALTER TABLE outbound_attempts ADD COLUMN amd TEXT NOT NULL DEFAULT '';
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
    return int(next(iter(rows))[0])


def _too_new(db_version: int, known: int, where: str) -> SchemaTooNewError:
    return SchemaTooNewError(
        f"{where}: database schema version {db_version} is newer than this software supports (version "
        f"{known}); it was written by a newer release. Refusing to open it: upgrade the software, or "
        f"restore a backup made by this version.")


async def migrate(conn: aiosqlite.Connection, migrations: list[Migration] | None = None, *,
                  name: str = "database", backup_file: str | os.PathLike[str] | None = None,
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

    # Foreign keys off for the migration (it cannot change inside a transaction), checked before the commit.
    (fk_on,), = await conn.execute_fetchall("PRAGMA foreign_keys")
    await conn.execute("PRAGMA foreign_keys = OFF")
    try:
        return await _migrate_locked(conn, migrations, known, where, time.time() if now is None else now)
    finally:
        if fk_on:
            await conn.execute("PRAGMA foreign_keys = ON")


async def _migrate_locked(conn: aiosqlite.Connection, migrations: list[Migration], known: int, where: str,
                          now: float) -> int:
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(_SCHEMA_VERSION_DDL)
        version = await current_version(conn)  # again, under the lock: another process may have migrated
        if version > known:
            raise _too_new(version, known, where)
        # (broken before: not this upgrade's fault, and refusing to upgrade would not mend them)
        broken_before = {tuple(r) for r in await conn.execute_fetchall("PRAGMA foreign_key_check")}
        for m in migrations[version:]:
            try:
                for statement in split_sql(m.sql):
                    await conn.execute(statement)
                await conn.execute("INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
                                   (m.version, now, m.description))
            except sqlite3.Error as e:
                raise MigrationError(f"{where}: migration {m.version} ({m.description}) failed: {e}; "
                                     f"nothing was changed, the database stays at version {version}") from e
        broken = [tuple(r) for r in await conn.execute_fetchall("PRAGMA foreign_key_check")
                  if tuple(r) not in broken_before]
        if broken:
            raise MigrationError(f"{where}: migrations {version + 1}-{known} left {len(broken)} broken foreign "
                                 f"key(s), e.g. {broken[0]}; nothing was changed, the database stays at "
                                 f"version {version}")
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
