"""The call centre's memory: customers, call records, work orders, voicemails, recordings, the block
and warning lists and agent state history, over the same SQLite file as the registrar (schema:
migration 2 in ``store.migrations``).

``CallCentre(store, ...)`` is the API the ACD, the HTTP API and the CLI call. Every write is checked
completely before its transaction (bad input raises ``ValidationError``, a ``ValueError``, and
changes nothing) and goes through a ``GroupWriter``: it returns only once committed (fsynced), while
concurrent writes share one commit. Reads run in the database thread in one hop
(``Store.read_sync``), inside one read transaction.

Pagination is keyset ("after this row"): each ``Page`` carries ``next`` (an opaque cursor string,
None on the last page) to pass back as ``after``; a page costs the same however deep it is.
"""
from __future__ import annotations

import base64
import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Mapping, Sequence, TypeVar

from base.figures import average_handle_time, average_speed_of_answer, service_level

from .db import Store
from .group import GroupWriter
from .numbers import NumberPlan, PrefixTable, prefixes_of
from .validation import (Field, NotFoundError, TransitionError, ValidationError, between, check_fields, check_value,
                         non_empty, non_negative)

__all__ = ["CallCentre", "Customer", "CallRecord", "WorkOrder", "OrderEvent", "Voicemail", "Recording", "ListEntry",
           "AgentState", "ScreenPop", "QueueStats", "Page", "ORDER_KINDS", "ORDER_STATUSES", "OPEN_STATUSES",
           "TRANSITIONS", "DISPOSITIONS"]

T = TypeVar("T")

ORDER_KINDS = frozenset({"pickup", "delivery", "repair", "complaint", "consultation", "appointment"})
ORDER_STATUSES = ("open", "assigned", "in_progress", "resolved", "closed")
OPEN_STATUSES = ("open", "assigned", "in_progress")  # what the screen pop shows
# Mirrors the work_order_transitions table (the trigger enforces it in the database too).
TRANSITIONS: dict[str, frozenset[str]] = {
    "open": frozenset({"assigned"}),
    "assigned": frozenset({"in_progress", "open"}),
    "in_progress": frozenset({"resolved", "assigned"}),
    "resolved": frozenset({"closed", "in_progress"}),
    "closed": frozenset(),
}
MAX_ESCALATION = 5
# 'timeout' and 'no_agents': the queue gave up on the call (max_wait; nobody serves the queue) - the
# switch ended it, so it is not an abandon (docs/reports.md)
DISPOSITIONS = frozenset({"answered", "abandoned", "voicemail", "busy", "no_answer", "failed", "transferred",
                          "overflow", "blocked", "timeout", "no_agents"})
LISTS = frozenset({"block", "warn"})
ANONYMOUS = "anonymous"  # a caller who withheld the number (from a SIP trunk): recorded, never a customer
MAX_PAGE = 1000

NAME, TEXT, LONG = 200, 1000, 10_000  # string length limits
_time = Field(float, nullable=True, check=non_negative)
_id = Field(int, check=lambda v: None if v > 0 else "must be a positive id")
_opt_name = Field(str, NAME, nullable=True)


# ------------------------------------------------------------------------------------ records

@dataclass
class Customer:
    id: int | None            # None: a stub for a number not in the database yet (screen pop)
    name: str
    address: str
    region: str | None
    vip_level: int
    notes: str
    created_at: float | None
    updated_at: float | None
    phones: list[str] = field(default_factory=list)

    @property
    def is_new(self) -> bool:
        return self.id is None


@dataclass
class CallRecord:
    id: int
    call_ref: str | None
    caller: str
    callee: str
    queue: str | None
    agent: str | None
    ivr_path: str
    arrived_at: float
    answered_at: float | None
    ended_at: float | None
    wait_s: float | None      # in the queue (from queued_at, else from arrival) to answer, or to the end
    talk_s: float | None      # answer to talk_ended_at (else to ended_at)
    wrap_s: float | None      # the agent's after-call work, counted in AHT
    disposition: str
    recording: str | None
    survey_score: int | None
    caller_loss_pct: float | None
    caller_jitter_ms: float | None
    agent_loss_pct: float | None
    agent_jitter_ms: float | None
    queued_at: float | None = None      # when it entered the queue it is recorded under
    talk_ended_at: float | None = None  # when the agent's part ended (the caller may stay for a survey)
    direction: str = ""                 # "inbound" / "outbound" on a SIP trunk; "" internal
    trunk: str = ""                     # the trunk it came in or went out on
    did: str = ""                       # the carrier's number the customer dialled (inbound)
    external: str = ""                  # the outside party's number, E.164 ("anonymous" when withheld)
    transfers: int = 0                  # times an agent (or a phone) transferred the caller on
    hold_seconds: float = 0.0           # on hold (desk or phone hold), part of talk_s: talk without hold = the rest
    holds: int = 0                      # times the call was put on hold


@dataclass
class WorkOrder:
    id: int
    kind: str
    status: str
    customer_id: int
    call_id: int | None
    region: str | None
    service_point: str | None
    assignee: str | None
    summary: str
    details: str
    due_at: float | None
    escalation: int
    created_by: str
    created_at: float
    updated_at: float
    closed_at: float | None


@dataclass
class OrderEvent:
    id: int
    order_id: int
    at: float
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    escalation: int | None
    note: str


@dataclass
class Voicemail:
    id: int
    file: str
    caller: str
    callback_number: str | None
    queue: str | None
    call_id: int | None
    duration_s: float
    created_at: float
    handled_by: str | None
    handled_at: float | None


@dataclass
class Recording:
    id: int
    file: str
    call_id: int | None
    parties: list[str]
    started_at: float
    duration_s: float


@dataclass
class ListEntry:
    id: int
    list: str
    pattern: str             # '0900*' for a prefix
    reason: str
    added_by: str
    added_at: float
    expires_at: float | None


@dataclass
class AgentState:
    id: int
    agent: str
    state: str
    reason: str
    started_at: float
    ended_at: float | None


@dataclass
class ScreenPop:
    number: str                      # the caller number, normalised
    customer: Customer               # a stub (customer.id is None) for a new number
    calls: list[CallRecord]          # the last interactions, newest first
    orders: list[WorkOrder]          # open work orders (open, assigned, in progress), newest first
    warnings: list[ListEntry]        # block / warning list entries matching the number

    @property
    def is_new(self) -> bool:
        return self.customer.id is None


@dataclass
class QueueStats:
    period: str          # '2024-05-06' (day; week: its Monday; month: its first day)
    queue: str
    offered: int
    answered: int
    abandoned: int        # the caller hung up waiting or while an agent rang (not timeout / no_agents)
    answered_within: int  # answered with wait_s <= the queue's service-level threshold
    service_level_pct: float | None  # 100 * answered_within / (answered + abandoned) (base.figures)
    asa_s: float | None   # average speed of answer: mean wait of answered calls
    aht_s: float | None   # average handle time: (talk + wrap-up) / answered calls
    timed_out: int = 0    # ended by the queue's max_wait (disposition 'timeout')
    no_agents: int = 0    # ended because nobody served the queue ('no_agents')
    sl_threshold_s: float | None = None  # the threshold answered_within was counted with


@dataclass
class Page(Generic[T]):
    items: list[T]
    next: str | None     # pass as ``after`` for the next page; None: this is the last one


def _cols(cls: type) -> list[str]:
    return [f for f in cls.__dataclass_fields__ if f not in ("phones",)]  # type: ignore[attr-defined]


_CUSTOMER_COLS = ", ".join(f"c.{c}" for c in _cols(Customer))
_CALL_COLS = ", ".join(_cols(CallRecord))
_ORDER_COLS = ", ".join(_cols(WorkOrder))
_EVENT_COLS = ", ".join(_cols(OrderEvent))
_VM_COLS = ", ".join(_cols(Voicemail))
_STATE_COLS = ", ".join(_cols(AgentState))


# ------------------------------------------------------------------------------------ field specs

CUSTOMER_FIELDS = {
    "name": Field(str, NAME),
    "address": Field(str, TEXT),
    "region": Field(str, NAME, nullable=True),
    "vip_level": Field(int, check=between(0, 9)),
    "notes": Field(str, LONG),
}

CALL_FIELDS = {
    "call_ref": Field(str, NAME, nullable=True),
    "caller": Field(str, 64),
    "callee": Field(str, 64),
    "queue": _opt_name,
    "agent": _opt_name,
    "ivr_path": Field(str, NAME),
    "arrived_at": Field(float, check=non_negative),
    "queued_at": _time,
    "answered_at": _time,
    "talk_ended_at": _time,
    "ended_at": _time,
    "wrap_s": _time,
    "disposition": Field(str, choices=DISPOSITIONS),
    "recording": Field(str, TEXT, nullable=True),
    "survey_score": Field(int, nullable=True, check=between(1, 5)),
    "caller_loss_pct": Field(float, nullable=True, check=between(0, 100)),
    "caller_jitter_ms": _time,
    "agent_loss_pct": Field(float, nullable=True, check=between(0, 100)),
    "agent_jitter_ms": _time,
    "direction": Field(str, choices=frozenset({"", "inbound", "outbound"})),
    "trunk": Field(str, NAME),
    "did": Field(str, 64),
    "external": Field(str, 64),
    "transfers": Field(int, check=non_negative),
    "hold_seconds": Field(float, check=non_negative),
    "holds": Field(int, check=non_negative),
}
CALL_UPDATABLE = frozenset(CALL_FIELDS) - {"caller", "arrived_at", "call_ref"}

ORDER_FIELDS = {
    "kind": Field(str, choices=ORDER_KINDS),
    "customer_id": _id,
    "created_by": Field(str, NAME, check=non_empty),
    "call_id": Field(int, nullable=True, check=lambda v: None if v > 0 else "must be a positive id"),
    "region": _opt_name,
    "assignee": _opt_name,
    "summary": Field(str, TEXT),
    "details": Field(str, LONG),
    "due_at": _time,
}
ORDER_UPDATABLE = {"summary", "details", "due_at"}

VOICEMAIL_FIELDS = {
    "file": Field(str, TEXT, check=non_empty),
    "caller": Field(str, 64),
    "callback_number": Field(str, 64, nullable=True),
    "queue": _opt_name,
    "call_id": Field(int, nullable=True),
    "duration_s": Field(float, check=non_negative),
    "created_at": Field(float, nullable=True, check=non_negative),
}

_ACTOR = Field(str, NAME, check=non_empty)
_NOTE = Field(str, LONG)


def _encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None, types: Sequence[type]) -> list[Any] | None:
    if cursor is None:
        return None
    try:
        if not isinstance(cursor, str) or len(cursor) > 2000:
            raise ValueError
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        for v, t in zip(values, types):
            if isinstance(v, bool) or not isinstance(v, (int, float) if t is float else t):
                raise ValueError
        return values
    except ValueError:
        raise ValidationError("after", "not a cursor returned by this search") from None


def _limit(limit: object) -> int:
    return check_value("limit", Field(int, check=between(1, MAX_PAGE)), limit)


def _prefix_upper(prefix: str) -> str:
    """Smallest string above every string starting with ``prefix`` (for an index range scan)."""
    return prefix + "\U0010ffff"


# ------------------------------------------------------------------------------------ the API

class CallCentre:
    """The call-centre data over a ``Store``.

    ``plan``: how numbers are normalised; ``regions``: number prefix -> region (longest prefix wins;
    a new caller's region); ``service_points``: region -> service point that work orders of that
    region are dispatched to (``default_service_point`` for other regions). ``clock`` gives "now"
    (tests pass a fake one). Call ``await close()`` before closing the store.
    """

    def __init__(self, store: Store, *, plan: NumberPlan | None = None, regions: Mapping[str, str] | None = None,
                 service_points: Mapping[str, str] | None = None, default_service_point: str | None = None,
                 clock: Callable[[], float] = time.time, max_batch: int = 256):
        self.store = store
        self.plan = plan or NumberPlan()
        self.regions = PrefixTable(regions or {}, self.plan)
        self.service_points = dict(service_points or {})
        self.default_service_point = default_service_point
        self.clock = clock
        self.writer: GroupWriter = store.writer  # the store's one group commit, shared with registrations
        del max_batch  # (kept in the signature for callers; the store's writer sets the batch size)

    async def close(self) -> None:
        """Wait for the queued writes to commit (the store's writer, and the store, stay open)."""
        await self.writer.flush()

    def normalise(self, number: object, field_name: str = "number", *, prefix: bool = False) -> str:
        return self.plan.normalise(number, field_name=field_name, prefix=prefix)

    def region_of(self, number: str) -> str | None:
        return self.regions.lookup(number)

    def service_point_of(self, region: str | None) -> str | None:
        if region is not None and region in self.service_points:
            return self.service_points[region]
        return self.default_service_point

    def _now(self, at: object = None, name: str = "at") -> float:
        return self.clock() if at is None else check_value(name, Field(float, check=non_negative), at)

    # ------------------------------------------------------------------------------ customers
    async def create_customer(self, *, phones: Iterable[str] = (), labels: Mapping[str, str] | None = None,
                              **fields: Any) -> Customer:
        """A new customer with its numbers (each normalised; a number already belonging to another
        customer is refused). ``fields``: name, address, region, vip_level, notes. Without a region,
        it is derived from the first number."""
        values = check_fields("customer", CUSTOMER_FIELDS, fields)
        numbers = self._phones(phones)
        label_of = self._labels(labels, numbers)
        now = self.clock()
        if values.get("region") is None and numbers:
            values["region"] = self.region_of(numbers[0])

        def body(conn: sqlite3.Connection) -> int:
            self._check_free(conn, numbers, None)
            return self._insert_customer(conn, values, numbers, label_of, now)

        return await self.writer.run(lambda conn: _written_customer(conn, body(conn)))

    async def ensure_customer(self, number: str) -> Customer:
        """The customer owning ``number``, created (with just the number and the derived region) when
        there is none: what the first call from a new number does."""
        n = self.normalise(number)
        now = self.clock()
        region = self.region_of(n)

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT customer_id FROM customer_phones WHERE number = ?", (n,)).fetchone()
            if row:
                return row[0]
            return self._insert_customer(conn, {"region": region}, [n], {}, now)

        return await self.writer.run(lambda conn: _written_customer(conn, body(conn)))

    async def update_customer(self, customer_id: int, **fields: Any) -> Customer:
        """Change name, address, region, vip_level and/or notes."""
        cid = check_value("customer_id", _id, customer_id)
        values = check_fields("customer", CUSTOMER_FIELDS, fields)
        if not values:
            raise ValidationError("customer", "nothing to update")
        if "name" in values:
            values["name_key"] = values["name"].casefold()
        values["updated_at"] = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute(f"UPDATE customers SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                               (*values.values(), cid))
            if cur.rowcount == 0:
                raise NotFoundError("customer_id", f"no customer {cid}")

        return await self.writer.run(_then(body, lambda conn: _written_customer(conn, cid)))

    async def add_phone(self, customer_id: int, number: str, label: str = "") -> Customer:
        cid = check_value("customer_id", _id, customer_id)
        n = self.normalise(number)
        label = check_value("label", Field(str, 40), label)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            if not conn.execute("SELECT 1 FROM customers WHERE id = ?", (cid,)).fetchone():
                raise NotFoundError("customer_id", f"no customer {cid}")
            self._check_free(conn, [n], cid)
            conn.execute("INSERT OR IGNORE INTO customer_phones (number, customer_id, label, added_at) "
                         "VALUES (?, ?, ?, ?)", (n, cid, label, now))
            conn.execute("UPDATE customers SET updated_at = ? WHERE id = ?", (now, cid))

        return await self.writer.run(_then(body, lambda conn: _written_customer(conn, cid)))

    async def remove_phone(self, number: str) -> bool:
        n = self.normalise(number)
        return await self.writer.run(
            lambda conn: conn.execute("DELETE FROM customer_phones WHERE number = ?", (n,)).rowcount > 0)

    async def get_customer(self, customer_id: int) -> Customer | None:
        cid = check_value("customer_id", _id, customer_id)
        return await self.store.read_sync(lambda conn: _load_customer(conn, cid))

    async def find_customer(self, number: str) -> Customer | None:
        n = self.normalise(number)

        def body(conn: sqlite3.Connection) -> Customer | None:
            row = conn.execute("SELECT customer_id FROM customer_phones WHERE number = ?", (n,)).fetchone()
            return _load_customer(conn, row[0]) if row else None

        return await self.store.read_sync(body)

    async def search_customers(self, *, name_prefix: str | None = None, number_prefix: str | None = None,
                               limit: int = 50, after: str | None = None) -> Page[Customer]:
        """Customers whose name starts with ``name_prefix`` (case-insensitive), ordered by name, or
        who have a number starting with ``number_prefix`` (normalised), ordered by that number (a
        customer with two matching numbers appears for each). Exactly one of the two."""
        limit = _limit(limit)
        if (name_prefix is None) == (number_prefix is None):
            raise ValidationError("search", "give exactly one of name_prefix, number_prefix")
        if name_prefix is not None:
            key = check_value("name_prefix", Field(str, NAME), name_prefix).casefold()
            cursor = _decode_cursor(after, (str, int))

            def by_name(conn: sqlite3.Connection) -> Page[Customer]:
                lo, after_id = (key, 0) if cursor is None else (max(key, cursor[0]), cursor[1])
                rows = conn.execute(
                    f"SELECT {_CUSTOMER_COLS}, c.name_key FROM customers c INDEXED BY customers_name_key "
                    "WHERE c.name_key >= ? AND c.name_key < ? AND (c.name_key > ? OR c.id > ?) "
                    "ORDER BY c.name_key, c.id LIMIT ?", (lo, _prefix_upper(key), lo, after_id, limit + 1)).fetchall()
                more = len(rows) > limit
                rows = rows[:limit]
                items = [_with_phones(conn, Customer(*r[:-1])) for r in rows]
                return Page(items, _encode_cursor(rows[-1][-1], rows[-1][0]) if more else None)

            return await self.store.read_sync(by_name)

        prefix = check_value("number_prefix", Field(str, 40), number_prefix)
        stripped = prefix.replace(" ", "").replace("-", "")
        if stripped not in ("", "+"):
            stripped = self.normalise(stripped, "number_prefix", prefix=True)
        cursor = _decode_cursor(after, (str,))

        def by_number(conn: sqlite3.Connection) -> Page[Customer]:
            lo = stripped if cursor is None else max(stripped, cursor[0])
            rows = conn.execute(
                f"SELECT p.number, {_CUSTOMER_COLS} FROM customer_phones p JOIN customers c ON c.id = p.customer_id "
                "WHERE p.number >= ? AND p.number < ? AND p.number > ? ORDER BY p.number LIMIT ?",
                (lo, _prefix_upper(stripped), cursor[0] if cursor else "", limit + 1)).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            items = [_with_phones(conn, Customer(*r[1:])) for r in rows]
            return Page(items, _encode_cursor(rows[-1][0]) if more else None)

        return await self.store.read_sync(by_number)

    def _phones(self, phones: Iterable[str]) -> list[str]:
        if isinstance(phones, str):
            phones = [phones]
        out: list[str] = []
        for p in phones:
            n = self.normalise(p, "phones")
            if n not in out:
                out.append(n)
        if len(out) > 20:
            raise ValidationError("phones", "at most 20 numbers per customer")
        return out

    def _labels(self, labels: Mapping[str, str] | None, numbers: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw, label in (labels or {}).items():
            n = self.normalise(raw, "labels")
            if n not in numbers:
                raise ValidationError("labels", f"label for a number not in phones: {raw!r}")
            out[n] = check_value("labels", Field(str, 40), label)
        return out

    @staticmethod
    def _check_free(conn: sqlite3.Connection, numbers: list[str], owner: int | None) -> None:
        for n in numbers:
            row = conn.execute("SELECT customer_id FROM customer_phones WHERE number = ?", (n,)).fetchone()
            if row and row[0] != owner:
                raise ValidationError("phones", f"number {n} already belongs to customer {row[0]}")

    @staticmethod
    def _insert_customer(conn: sqlite3.Connection, values: dict[str, Any], numbers: list[str],
                         labels: dict[str, str], now: float, customer_id: int | None = None) -> int:
        v = {"name": "", "address": "", "region": None, "vip_level": 0, "notes": "", **values}
        cur = conn.execute(
            "INSERT INTO customers (id, name, name_key, address, region, vip_level, notes, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (customer_id, v["name"], v["name"].casefold(), v["address"], v["region"], v["vip_level"], v["notes"],
             now, now))
        cid = cur.lastrowid
        conn.executemany("INSERT INTO customer_phones (number, customer_id, label, added_at) VALUES (?, ?, ?, ?)",
                         [(n, cid, labels.get(n, ""), now) for n in numbers])
        return cid  # type: ignore[return-value]

    async def vip_levels(self) -> tuple[dict[str, int], dict[int, int]]:
        """The customers whose ``vip_level`` is above 0: (their phone numbers -> level, their customer
        ids -> level). The switch's VIP table (softswitch.vip) reloads it every minute."""
        def body(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[int, int]]:
            ids = dict(conn.execute("SELECT id, vip_level FROM customers WHERE vip_level > 0").fetchall())
            numbers = dict(conn.execute(
                "SELECT p.number, c.vip_level FROM customers c JOIN customer_phones p ON p.customer_id = c.id "
                "WHERE c.vip_level > 0").fetchall())
            return numbers, ids

        return await self.store.read_sync(body)

    # ------------------------------------------------------------------------------- call records
    async def add_call(self, *, create_customer: bool = True, parts: Sequence[Mapping[str, Any]] = (),
                       **fields: Any) -> int:
        """Record a call; returns its id. Required: caller, arrived_at, disposition. The caller and
        callee are normalised; wait_s and talk_s are derived from the times. With
        ``create_customer`` (the default), an unknown caller gets a customer stub (the first call
        creates the customer). ``parts``: each agent's part of the call, in order (``PART_FIELDS``:
        agent, queue, answered_at, ended_at, hold_seconds, holds, wrap_s, transferred), stored in
        ``call_agent_parts`` with the record (needs a call_ref); per-agent reports credit them."""
        values = self._check_call(fields, required=("caller", "arrived_at", "disposition"))
        rows = [_check_part(p, i) for i, p in enumerate(parts)]
        if rows and not values.get("call_ref"):
            raise ValidationError("parts", "agent parts need the call's call_ref")
        caller = values["caller"]
        now = self.clock()
        region = self.region_of(caller)
        cols = list(values)

        def body(conn: sqlite3.Connection) -> int:
            if create_customer and caller != ANONYMOUS and not conn.execute(
                    "SELECT 1 FROM customer_phones WHERE number = ?", (caller,)).fetchone():
                self._insert_customer(conn, {"region": region}, [caller], {}, now)
            cur = conn.execute(f"INSERT INTO call_records ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                               tuple(values.values()))
            _derive_times(conn, cur.lastrowid)  # type: ignore[arg-type]
            conn.executemany(
                "INSERT INTO call_agent_parts (call_ref, seq, agent, queue, answered_at, ended_at, talk_s, hold_seconds,"
                " holds, wrap_s, transferred) VALUES (:call_ref, :seq, :agent, :queue, :answered_at, :ended_at,"
                " :talk_s, :hold_seconds, :holds, :wrap_s, :transferred)",
                [{**r, "call_ref": values["call_ref"], "seq": i} for i, r in enumerate(rows)])
            return cur.lastrowid  # type: ignore[return-value]

        return await self.writer.run(body)

    async def update_call(self, call_id: int, **fields: Any) -> CallRecord:
        """Later facts about a call: answered_at, ended_at, agent, disposition, recording,
        survey_score, RTP quality... (not caller, arrived_at, call_ref)."""
        cid = check_value("call_id", _id, call_id)
        bad = [k for k in fields if k in CALL_FIELDS and k not in CALL_UPDATABLE]
        if bad:
            raise ValidationError("call", f"cannot change {', '.join(bad)} of a recorded call")
        values = self._check_call(fields)
        if not values:
            raise ValidationError("call", "nothing to update")

        def body(conn: sqlite3.Connection) -> None:
            cur = conn.execute(f"UPDATE call_records SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                               (*values.values(), cid))
            if cur.rowcount == 0:
                raise NotFoundError("call_id", f"no call record {cid}")
            _derive_times(conn, cid)

        def and_read(conn: sqlite3.Connection) -> CallRecord:
            body(conn)
            return CallRecord(*conn.execute(f"SELECT {_CALL_COLS} FROM call_records WHERE id = ?", (cid,)).fetchone())

        return await self.writer.run(and_read)

    async def add_wrap_up(self, call_ref: str, seconds: float, agent: str = "") -> CallRecord:
        """The agent's after-call work on the call the switch knows as ``call_ref``: added to its
        ``wrap_s`` (a call handled twice, transferred into a queue again, has two wrap-ups) and, with
        ``agent``, to that agent's last part of the call (``call_agent_parts``), if it has one.
        ``NotFoundError`` when no record has that call_ref (yet)."""
        ref = check_value("call_ref", Field(str, NAME, check=non_empty), call_ref)
        wrap = check_value("seconds", Field(float, check=non_negative), seconds)
        who = check_value("agent", Field(str, NAME), agent)

        def body(conn: sqlite3.Connection) -> CallRecord:
            row = conn.execute(f"UPDATE call_records SET wrap_s = COALESCE(wrap_s, 0) + ? WHERE call_ref = ? "
                               f"RETURNING {_CALL_COLS}", (wrap, ref)).fetchone()
            if row is None:
                raise NotFoundError("call_ref", f"no call record for call {ref}")
            if who:
                conn.execute("UPDATE call_agent_parts SET wrap_s = COALESCE(wrap_s, 0) + ? WHERE id = (SELECT id FROM "
                             "call_agent_parts WHERE call_ref = ? AND agent = ? ORDER BY seq DESC LIMIT 1)",
                             (wrap, ref, who))
            return CallRecord(*row)

        return await self.writer.run(body)

    def _check_call(self, fields: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
        values = check_fields("call", CALL_FIELDS, fields, required=required)
        for k in ("caller", "callee"):
            if k in values and (k == "caller" or values[k]) and values[k] != ANONYMOUS:
                values[k] = self.normalise(values[k], k)
        arrived, answered, ended = (values.get(k) for k in ("arrived_at", "answered_at", "ended_at"))
        if arrived is not None and answered is not None and answered < arrived:
            raise ValidationError("answered_at", "is before arrived_at")
        if ended is not None and (answered is not None and ended < answered or arrived is not None and ended < arrived):
            raise ValidationError("ended_at", "is before the call was answered / arrived")
        # (queued_at may follow answered_at: a call answered, then transferred into a queue)
        for k in ("queued_at", "talk_ended_at"):
            t = values.get(k)
            if t is not None and (arrived is not None and t < arrived or ended is not None and t > ended):
                raise ValidationError(k, "is outside the call (before arrived_at or after ended_at)")
        return values

    async def get_call(self, call_id: int) -> CallRecord | None:
        cid = check_value("call_id", _id, call_id)

        def body(conn: sqlite3.Connection) -> CallRecord | None:
            row = conn.execute(f"SELECT {_CALL_COLS} FROM call_records WHERE id = ?", (cid,)).fetchone()
            return CallRecord(*row) if row else None

        return await self.store.read_sync(body)

    async def search_calls(self, *, agent: str | None = None, caller: str | None = None, queue: str | None = None,
                           since: float | None = None, until: float | None = None, min_talk_s: float | None = None,
                           disposition: str | None = None, limit: int = 50, after: str | None = None
                           ) -> Page[CallRecord]:
        """Call records, newest first, filtered by any of: agent, caller number, queue, arrival time
        in [since, until), minimum talk time, disposition."""
        limit = _limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if agent is not None:
            where.append("agent = ?")
            params.append(check_value("agent", Field(str, NAME), agent))
        if caller is not None:
            where.append("caller = ?")
            params.append(self.normalise(caller, "caller"))
        if queue is not None:
            where.append("queue = ?")
            params.append(check_value("queue", Field(str, NAME), queue))
        if since is not None:
            where.append("arrived_at >= ?")
            params.append(check_value("since", Field(float), since))
        if until is not None:
            where.append("arrived_at < ?")
            params.append(check_value("until", Field(float), until))
        if min_talk_s is not None:
            where.append("talk_s >= ?")
            params.append(check_value("min_talk_s", Field(float, check=non_negative), min_talk_s))
        if disposition is not None:
            where.append("disposition = ?")
            params.append(check_value("disposition", Field(str, choices=DISPOSITIONS), disposition))
        cursor = _decode_cursor(after, (float, int))
        if cursor is not None:
            where.append("arrived_at <= ? AND (arrived_at < ? OR id < ?)")
            params += [cursor[0], cursor[0], cursor[1]]
        sql = (f"SELECT {_CALL_COLS} FROM call_records {'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY arrived_at DESC, id DESC LIMIT ?")
        params.append(limit + 1)

        def body(conn: sqlite3.Connection) -> Page[CallRecord]:
            rows = conn.execute(sql, params).fetchall()
            more = len(rows) > limit
            items = [CallRecord(*r) for r in rows[:limit]]
            return Page(items, _encode_cursor(items[-1].arrived_at, items[-1].id) if more else None)

        return await self.store.read_sync(body)

    # -------------------------------------------------------------------------------- screen pop
    async def screen_pop(self, number: str, *, calls: int = 10) -> ScreenPop:
        """Everything an agent's screen shows when ``number`` calls, in one database hop: the customer
        (or a stub with the region derived from the number), the last ``calls`` call records from
        any of the customer's numbers, open work orders and block/warning list entries."""
        n = self.normalise(number)
        calls = check_value("calls", Field(int, check=between(0, 200)), calls)
        now = self.clock()
        region = self.region_of(n)
        prefixes = prefixes_of(n)

        def body(conn: sqlite3.Connection) -> ScreenPop:
            row = conn.execute("SELECT customer_id FROM customer_phones WHERE number = ?", (n,)).fetchone()
            customer = _load_customer(conn, row[0]) if row else None
            if customer is None:
                customer = Customer(None, "", "", region, 0, "", None, None, [n])
            history: list[CallRecord] = []
            if calls:
                for phone in customer.phones:  # each: an index range read, newest first, no sort
                    history += [CallRecord(*r) for r in conn.execute(
                        f"SELECT {_CALL_COLS} FROM call_records WHERE caller = ? "
                        "ORDER BY arrived_at DESC LIMIT ?", (phone, calls))]
                history.sort(key=lambda c: (c.arrived_at, c.id), reverse=True)
            orders = [] if customer.id is None else [WorkOrder(*r) for r in conn.execute(
                f"SELECT {_ORDER_COLS} FROM work_orders WHERE customer_id = ? "
                "AND status IN ('open', 'assigned', 'in_progress') ORDER BY id DESC", (customer.id,))]
            return ScreenPop(n, customer, history[:calls], orders, _list_matches(conn, n, prefixes, now))

        return await self.store.read_sync(body)

    # ------------------------------------------------------------------------------- work orders
    async def create_order(self, **fields: Any) -> WorkOrder:
        """A new work order, status 'open'. Required: kind, customer_id, created_by. The region defaults
        to the customer's; the service point is dispatched from the region."""
        values = check_fields("work order", ORDER_FIELDS, fields, required=("kind", "customer_id", "created_by"))
        now = self.clock()
        if "assignee" in values and values["assignee"] is not None:
            raise ValidationError("assignee", "a new order is open; assign it with assign()")

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT region FROM customers WHERE id = ?", (values["customer_id"],)).fetchone()
            if row is None:
                raise NotFoundError("customer_id", f"no customer {values['customer_id']}")
            if values.get("call_id") is not None and not conn.execute(
                    "SELECT 1 FROM call_records WHERE id = ?", (values["call_id"],)).fetchone():
                raise NotFoundError("call_id", f"no call record {values['call_id']}")
            v = dict(values)
            if v.get("region") is None:
                v["region"] = row[0]
            v["service_point"] = self.service_point_of(v["region"])
            v.update(status="open", created_at=now, updated_at=now)
            cur = conn.execute(f"INSERT INTO work_orders ({', '.join(v)}) VALUES ({', '.join('?' * len(v))})",
                               tuple(v.values()))
            oid = cur.lastrowid
            conn.execute("INSERT INTO order_events (order_id, at, actor, action, to_status, note) "
                         "VALUES (?, ?, ?, 'created', 'open', ?)", (oid, now, v["created_by"], v.get("summary", "")))
            return oid  # type: ignore[return-value]

        return await self.writer.run(lambda conn: _fetch_order(conn, body(conn)))

    async def set_status(self, order_id: int, status: str, *, actor: str, note: str = "",
                         expect: str | None = None) -> WorkOrder:
        """Move a work order along its workflow (``TRANSITIONS``); anything else raises
        ``TransitionError``. ``expect``: fail unless the order is currently in that status (an agent's
        screen may be stale)."""
        oid = check_value("order_id", _id, order_id)
        status = check_value("status", Field(str, choices=frozenset(ORDER_STATUSES)), status)
        actor = check_value("actor", _ACTOR, actor)
        note = check_value("note", _NOTE, note)
        if expect is not None:
            check_value("expect", Field(str, choices=frozenset(ORDER_STATUSES)), expect)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            current = self._current_status(conn, oid)
            if expect is not None and current != expect:
                raise TransitionError("status", f"order {oid} is {current}, not {expect}")
            if status not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final)"
                raise TransitionError("status", f"order {oid}: {current} -> {status} is not allowed "
                                                f"(from {current}: {allowed})")
            extra = ", assignee = NULL" if status == "open" else ""
            conn.execute(f"UPDATE work_orders SET status = ?, updated_at = ?, closed_at = ?{extra} WHERE id = ?",
                         (status, now, now if status == "closed" else None, oid))
            conn.execute("INSERT INTO order_events (order_id, at, actor, action, from_status, to_status, note) "
                         "VALUES (?, ?, ?, 'status', ?, ?, ?)", (oid, now, actor, current, status, note))

        return await self.writer.run(_then(body, lambda conn: _fetch_order(conn, oid)))

    async def assign(self, order_id: int, assignee: str, *, actor: str, note: str = "") -> WorkOrder:
        """Give the order to ``assignee`` (a technician, an agent); an open order becomes 'assigned'.
        Reassigning keeps the status. Closed or resolved orders cannot be assigned."""
        oid = check_value("order_id", _id, order_id)
        assignee = check_value("assignee", Field(str, NAME, check=non_empty), assignee)
        actor = check_value("actor", _ACTOR, actor)
        note = check_value("note", _NOTE, note)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            current = self._current_status(conn, oid)
            if current in ("resolved", "closed"):
                raise TransitionError("assignee", f"order {oid} is {current}; it cannot be assigned")
            new = "assigned" if current == "open" else current
            conn.execute("UPDATE work_orders SET assignee = ?, status = ?, updated_at = ? WHERE id = ?",
                         (assignee, new, now, oid))
            conn.execute("INSERT INTO order_events (order_id, at, actor, action, from_status, to_status, note) "
                         "VALUES (?, ?, ?, 'assigned', ?, ?, ?)",
                         (oid, now, actor, current, new, f"to {assignee}" + (f": {note}" if note else "")))

        return await self.writer.run(_then(body, lambda conn: _fetch_order(conn, oid)))

    async def escalate(self, order_id: int, *, actor: str, note: str = "", level: int | None = None) -> WorkOrder:
        """Raise a complaint's escalation level (by one, or to ``level``, which must be higher), up
        to ``MAX_ESCALATION``; recorded in the order's history. Only open complaints escalate."""
        oid = check_value("order_id", _id, order_id)
        actor = check_value("actor", _ACTOR, actor)
        note = check_value("note", _NOTE, note)
        if level is not None:
            level = check_value("level", Field(int, check=between(1, MAX_ESCALATION)), level)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT kind, status, escalation FROM work_orders WHERE id = ?", (oid,)).fetchone()
            if row is None:
                raise NotFoundError("order_id", f"no work order {oid}")
            kind, status, current = row
            if kind != "complaint":
                raise TransitionError("escalation", f"order {oid} is a {kind}; only complaints escalate")
            if status == "closed":
                raise TransitionError("escalation", f"order {oid} is closed")
            new = current + 1 if level is None else level
            if new <= current:
                raise TransitionError("escalation", f"order {oid} is already at level {current}")
            if new > MAX_ESCALATION:
                raise TransitionError("escalation", f"order {oid} is at the highest level ({MAX_ESCALATION})")
            conn.execute("UPDATE work_orders SET escalation = ?, updated_at = ? WHERE id = ?", (new, now, oid))
            conn.execute("INSERT INTO order_events (order_id, at, actor, action, escalation, note) "
                         "VALUES (?, ?, ?, 'escalated', ?, ?)", (oid, now, actor, new, note))

        return await self.writer.run(_then(body, lambda conn: _fetch_order(conn, oid)))

    async def update_order(self, order_id: int, *, actor: str, **fields: Any) -> WorkOrder:
        """Change summary, details and/or due_at (a due change is recorded in the history)."""
        oid = check_value("order_id", _id, order_id)
        actor = check_value("actor", _ACTOR, actor)
        values = check_fields("work order", {k: ORDER_FIELDS[k] for k in ORDER_UPDATABLE}, fields)
        if not values:
            raise ValidationError("work order", "nothing to update")
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            if self._current_status(conn, oid) == "closed":
                raise TransitionError("work order", f"order {oid} is closed")
            conn.execute(f"UPDATE work_orders SET {', '.join(f'{k} = ?' for k in values)}, updated_at = ? "
                         "WHERE id = ?", (*values.values(), now, oid))
            if "due_at" in values:
                conn.execute("INSERT INTO order_events (order_id, at, actor, action, note) VALUES (?, ?, ?, 'due', ?)",
                             (oid, now, actor, "" if values["due_at"] is None else f"{values['due_at']:.0f}"))

        return await self.writer.run(_then(body, lambda conn: _fetch_order(conn, oid)))

    async def add_order_note(self, order_id: int, *, actor: str, note: str) -> int:
        oid = check_value("order_id", _id, order_id)
        actor = check_value("actor", _ACTOR, actor)
        note = check_value("note", Field(str, LONG, check=non_empty), note)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> int:
            self._current_status(conn, oid)
            return conn.execute("INSERT INTO order_events (order_id, at, actor, action, note) "
                                "VALUES (?, ?, ?, 'note', ?)", (oid, now, actor, note)).lastrowid  # type: ignore

        return await self.writer.run(body)

    async def get_order(self, order_id: int) -> WorkOrder | None:
        oid = check_value("order_id", _id, order_id)

        def body(conn: sqlite3.Connection) -> WorkOrder | None:
            row = conn.execute(f"SELECT {_ORDER_COLS} FROM work_orders WHERE id = ?", (oid,)).fetchone()
            return WorkOrder(*row) if row else None

        return await self.store.read_sync(body)

    async def order_history(self, order_id: int) -> list[OrderEvent]:
        oid = check_value("order_id", _id, order_id)
        return await self.store.read_sync(lambda conn: [OrderEvent(*r) for r in conn.execute(
            f"SELECT {_EVENT_COLS} FROM order_events WHERE order_id = ? ORDER BY id", (oid,))])

    async def search_orders(self, *, status: str | Sequence[str] | None = None, kind: str | None = None,
                            region: str | None = None, customer_id: int | None = None, assignee: str | None = None,
                            limit: int = 50, after: str | None = None) -> Page[WorkOrder]:
        """Work orders, newest first, filtered by status (one or several), kind, region, customer, assignee."""
        limit = _limit(limit)
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            if not statuses:
                raise ValidationError("status", "empty list")
            for s in statuses:
                check_value("status", Field(str, choices=frozenset(ORDER_STATUSES)), s)
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        if kind is not None:
            where.append("kind = ?")
            params.append(check_value("kind", Field(str, choices=ORDER_KINDS), kind))
        if region is not None:
            where.append("region = ?")
            params.append(check_value("region", Field(str, NAME), region))
        if customer_id is not None:
            where.append("customer_id = ?")
            params.append(check_value("customer_id", _id, customer_id))
        if assignee is not None:
            where.append("assignee = ?")
            params.append(check_value("assignee", Field(str, NAME), assignee))
        cursor = _decode_cursor(after, (int,))
        if cursor is not None:
            where.append("id < ?")
            params.append(cursor[0])
        sql = (f"SELECT {_ORDER_COLS} FROM work_orders {'WHERE ' + ' AND '.join(where) if where else ''} "
               "ORDER BY id DESC LIMIT ?")
        params.append(limit + 1)

        def body(conn: sqlite3.Connection) -> Page[WorkOrder]:
            rows = conn.execute(sql, params).fetchall()
            more = len(rows) > limit
            items = [WorkOrder(*r) for r in rows[:limit]]
            return Page(items, _encode_cursor(items[-1].id) if more else None)

        return await self.store.read_sync(body)

    @staticmethod
    def _current_status(conn: sqlite3.Connection, oid: int) -> str:
        row = conn.execute("SELECT status FROM work_orders WHERE id = ?", (oid,)).fetchone()
        if row is None:
            raise NotFoundError("order_id", f"no work order {oid}")
        return row[0]

    # -------------------------------------------------------------------------------- voicemail
    async def add_voicemail(self, **fields: Any) -> int:
        """Required: file, caller, duration_s. created_at defaults to now."""
        values = check_fields("voicemail", VOICEMAIL_FIELDS, fields, required=("file", "caller", "duration_s"))
        values["caller"] = self.normalise(values["caller"], "caller")
        if values.get("callback_number") is not None:
            values["callback_number"] = self.normalise(values["callback_number"], "callback_number")
        if values.get("created_at") is None:
            values["created_at"] = self.clock()
        cols = list(values)
        return await self.writer.run(lambda conn: _rowid(conn.execute(
            f"INSERT INTO voicemails ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            tuple(values.values()))))

    async def handle_voicemail(self, voicemail_id: int, *, by: str) -> Voicemail:
        """Mark a voicemail handled (called back); handling it twice is refused."""
        vid = check_value("voicemail_id", _id, voicemail_id)
        by = check_value("by", _ACTOR, by)
        now = self.clock()

        def body(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT handled_by FROM voicemails WHERE id = ?", (vid,)).fetchone()
            if row is None:
                raise NotFoundError("voicemail_id", f"no voicemail {vid}")
            if row[0] is not None:
                raise TransitionError("voicemail", f"voicemail {vid} was already handled by {row[0]}")
            conn.execute("UPDATE voicemails SET handled_by = ?, handled_at = ? WHERE id = ?", (by, now, vid))

        await self.writer.run(body)
        return (await self.store.read_sync(lambda conn: Voicemail(*conn.execute(
            f"SELECT {_VM_COLS} FROM voicemails WHERE id = ?", (vid,)).fetchone())))

    async def unhandled_voicemails(self, *, limit: int = 50, after: str | None = None) -> Page[Voicemail]:
        """Voicemails nobody handled yet, oldest first (the callback queue)."""
        limit = _limit(limit)
        cursor = _decode_cursor(after, (float, int)) or [-1.0, 0]

        def body(conn: sqlite3.Connection) -> Page[Voicemail]:
            rows = conn.execute(
                f"SELECT {_VM_COLS} FROM voicemails WHERE handled_at IS NULL AND created_at >= ? "
                "AND (created_at > ? OR id > ?) ORDER BY created_at, id LIMIT ?",
                (cursor[0], cursor[0], cursor[1], limit + 1)).fetchall()
            items = [Voicemail(*r) for r in rows[:limit]]
            return Page(items, _encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

        return await self.store.read_sync(body)

    # -------------------------------------------------------------------------------- recordings
    async def add_recording(self, *, file: str, started_at: float, duration_s: float, call_id: int | None = None,
                            parties: Sequence[str] = ()) -> int:
        file = check_value("file", Field(str, TEXT, check=non_empty), file)
        started_at = check_value("started_at", Field(float, check=non_negative), started_at)
        duration_s = check_value("duration_s", Field(float, check=non_negative), duration_s)
        if call_id is not None:
            call_id = check_value("call_id", _id, call_id)
        if isinstance(parties, str) or not all(isinstance(p, str) and len(p) <= NAME for p in parties):
            raise ValidationError("parties", "must be a list of strings (numbers, agent names)")
        party_json = json.dumps(list(parties))
        return await self.writer.run(lambda conn: _rowid(conn.execute(
            "INSERT INTO recordings (file, call_id, parties, started_at, duration_s) VALUES (?, ?, ?, ?, ?)",
            (file, call_id, party_json, started_at, duration_s))))

    async def recordings(self, *, call_id: int | None = None, since: float | None = None,
                         until: float | None = None, limit: int = 100) -> list[Recording]:
        limit = _limit(limit)
        where, params = [], []  # type: ignore[var-annotated]
        if call_id is not None:
            where.append("call_id = ?")
            params.append(check_value("call_id", _id, call_id))
        if since is not None:
            where.append("started_at >= ?")
            params.append(check_value("since", Field(float), since))
        if until is not None:
            where.append("started_at < ?")
            params.append(check_value("until", Field(float), until))
        sql = (f"SELECT id, file, call_id, parties, started_at, duration_s FROM recordings "
               f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY started_at DESC, id DESC LIMIT ?")
        return await self.store.read_sync(lambda conn: [
            Recording(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in conn.execute(sql, (*params, limit))])

    # ------------------------------------------------------------------- block and warning lists
    async def add_to_list(self, list_name: str, pattern: str, *, reason: str = "", added_by: str,
                          expires_at: float | None = None) -> int:
        """``list_name``: 'block' or 'warn'; ``pattern``: a number, or a prefix ending in '*'.
        Adding an existing entry again replaces its reason, author and expiry."""
        list_name = check_value("list", Field(str, choices=LISTS), list_name)
        pattern = check_value("pattern", Field(str, 40), pattern)
        is_prefix = pattern.endswith("*")
        digits = pattern[:-1] if is_prefix else pattern
        if is_prefix and digits in ("", "+"):
            raise ValidationError("pattern", "a prefix needs at least one digit")
        digits = self.normalise(digits, "pattern", prefix=is_prefix)
        reason = check_value("reason", Field(str, TEXT), reason)
        added_by = check_value("added_by", _ACTOR, added_by)
        if expires_at is not None:
            expires_at = check_value("expires_at", Field(float, check=non_negative), expires_at)
        now = self.clock()
        return await self.writer.run(lambda conn: conn.execute(
            "INSERT INTO number_lists (list, digits, is_prefix, reason, added_by, added_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (list, digits, is_prefix) DO UPDATE SET "
            "reason = excluded.reason, added_by = excluded.added_by, added_at = excluded.added_at, "
            "expires_at = excluded.expires_at RETURNING id",
            (list_name, digits, int(is_prefix), reason, added_by, now, expires_at)).fetchone()[0])

    async def remove_from_list(self, entry_id: int) -> bool:
        eid = check_value("entry_id", _id, entry_id)
        return await self.writer.run(
            lambda conn: conn.execute("DELETE FROM number_lists WHERE id = ?", (eid,)).rowcount > 0)

    async def check_number(self, number: str, *, at: float | None = None) -> list[ListEntry]:
        """Unexpired block/warning entries matching ``number`` (exactly, or by prefix); longest first."""
        n = self.normalise(number)
        now = self._now(at)
        prefixes = prefixes_of(n)
        return await self.store.read_sync(lambda conn: _list_matches(conn, n, prefixes, now))

    async def list_entries(self, list_name: str, *, at: float | None = None) -> list[ListEntry]:
        list_name = check_value("list", Field(str, choices=LISTS), list_name)
        now = self._now(at)
        return await self.store.read_sync(lambda conn: [_list_entry(r) for r in conn.execute(
            f"SELECT {_LIST_COLS} FROM number_lists WHERE list = ? AND (expires_at IS NULL OR expires_at > ?) "
            "ORDER BY digits, is_prefix", (list_name, now))])

    # -------------------------------------------------------------------------------- agent states
    async def set_agent_state(self, agent: str, state: str, *, reason: str = "", at: float | None = None,
                              extension: str | None = None) -> int:
        """The agent's state from ``at`` (default now) on: closes the current state's interval.
        ``extension``: the phone the agent is logged in at (restored after a restart)."""
        agent = check_value("agent", Field(str, NAME, check=non_empty), agent)
        state = check_value("state", Field(str, 40, check=non_empty), state)
        reason = check_value("reason", Field(str, TEXT), reason)
        extension = check_value("extension", Field(str, 40), extension) if extension else None
        when = self._now(at)

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT started_at FROM agent_states WHERE agent = ? AND ended_at IS NULL",
                               (agent,)).fetchone()
            if row and row[0] > when:
                raise ValidationError("at", f"agent {agent}'s current state started later ({row[0]})")
            conn.execute("UPDATE agent_states SET ended_at = ? WHERE agent = ? AND ended_at IS NULL", (when, agent))
            return conn.execute("INSERT INTO agent_states (agent, state, reason, started_at, extension) "
                                "VALUES (?, ?, ?, ?, ?)",
                                (agent, state, reason, when, extension)).lastrowid  # type: ignore[return-value]

        return await self.writer.run(body)

    async def agent_history(self, agent: str, *, since: float | None = None, until: float | None = None
                            ) -> list[AgentState]:
        """The agent's state intervals overlapping [since, until), oldest first."""
        agent = check_value("agent", Field(str, NAME), agent)
        lo = -1.0 if since is None else check_value("since", Field(float), since)
        hi = 1e18 if until is None else check_value("until", Field(float), until)
        return await self.store.read_sync(lambda conn: [AgentState(*r) for r in conn.execute(
            f"SELECT {_STATE_COLS} FROM agent_states WHERE agent = ? AND started_at < ? "
            "AND (ended_at IS NULL OR ended_at > ?) ORDER BY started_at, id", (agent, hi, lo))])

    async def current_agent_states(self) -> list[AgentState]:
        return await self.store.read_sync(lambda conn: [AgentState(*r) for r in conn.execute(
            f"SELECT {_STATE_COLS} FROM agent_states WHERE ended_at IS NULL ORDER BY agent")])

    async def current_agent_logins(self) -> dict[str, tuple[str, str, str | None]]:
        """agent -> (state, reason, extension) of each agent's current state: what to log in again after a
        restart."""
        return await self.store.read_sync(lambda conn: {r[0]: (r[1], r[2], r[3]) for r in conn.execute(
            "SELECT agent, state, reason, extension FROM agent_states WHERE ended_at IS NULL")})

    # -------------------------------------------------------------------------------- reports
    async def queue_report(self, *, period: str = "day", since: float, until: float, sl_threshold_s: float = 20.0,
                           thresholds: Mapping[str, float] | None = None, utc_offset_s: int = 0,
                           queue: str | None = None) -> list[QueueStats]:
        """Per queue and day / week (Monday-based) / month, over calls that arrived in [since, until),
        summed in SQL: offered (every call that reached the queue), answered, abandoned, time-outs,
        no-agents exits, answered within the queue's threshold (``thresholds``: queue name -> seconds,
        each queue's configured ``service_level_threshold``; ``sl_threshold_s`` for the others), and
        from those, with the definitions of ``base.figures`` (the live queue figures use the same):
        service level = answered within / (answered + abandoned), ASA, AHT (talk + wrap-up).
        ``utc_offset_s`` shifts the day boundaries to local time."""
        # Calls are first summed per local day (an integer: cheap to compute and group for each of
        # many rows), then the few day rows are summed per period.
        buckets = {
            "day": "date(d * 86400, 'unixepoch')",
            "week": "date((d - (d + 3) % 7) * 86400, 'unixepoch')",  # day 0 (1970-01-01) was a Thursday
            "month": "date(d * 86400, 'unixepoch', 'start of month')",
        }
        bucket = buckets[check_value("period", Field(str, choices=frozenset(buckets)), period)]
        default_t = check_value("sl_threshold_s", Field(float, check=non_negative), sl_threshold_s)
        params: dict[str, Any] = {
            "since": check_value("since", Field(float, check=non_negative), since),
            "until": check_value("until", Field(float, check=non_negative), until),
            "t": default_t,
            "off": check_value("utc_offset_s", Field(int, check=between(-12 * 3600, 14 * 3600)), utc_offset_s),
        }
        per_queue: dict[str, float] = {}
        for i, (name, t) in enumerate((thresholds or {}).items()):
            per_queue[check_value("thresholds", Field(str, NAME), name)] = check_value(
                f"thresholds[{name!r}]", Field(float, check=non_negative), t)
            params[f"q{i}"], params[f"t{i}"] = name, per_queue[name]
        # each call's threshold: its queue's (a CASE over a few bound names: no join per call row)
        threshold = (f"CASE queue {' '.join(f'WHEN :q{i} THEN :t{i}' for i in range(len(per_queue)))} ELSE :t END"
                     if per_queue else ":t")
        # '+queue': not an index term, so SQLite reads the arrival-time range, not every queued call
        where = "+queue IS NOT NULL"
        if queue is not None:
            where = "queue = :queue"
            params["queue"] = check_value("queue", Field(str, NAME), queue)
        sql = f"""
            SELECT {bucket} AS period, queue, SUM(offered), SUM(answered), SUM(abandoned), SUM(within),
                   SUM(wait), SUM(talk), SUM(wrap), SUM(timed_out), SUM(no_agents)
            FROM (SELECT CAST((arrived_at + :off) / 86400 AS INTEGER) AS d, queue,
                         COUNT(*) AS offered,
                         SUM(answered_at IS NOT NULL) AS answered,
                         SUM(disposition = 'abandoned') AS abandoned,
                         SUM(disposition = 'timeout') AS timed_out,
                         SUM(disposition = 'no_agents') AS no_agents,
                         SUM(answered_at IS NOT NULL AND wait_s <= {threshold}) AS within,
                         TOTAL(CASE WHEN answered_at IS NOT NULL THEN wait_s END) AS wait,
                         TOTAL(CASE WHEN answered_at IS NOT NULL THEN talk_s END) AS talk,
                         TOTAL(CASE WHEN answered_at IS NOT NULL THEN wrap_s END) AS wrap
                  FROM call_records
                  WHERE {where} AND arrived_at >= :since AND arrived_at < :until
                  GROUP BY d, queue)
            GROUP BY period, queue ORDER BY period, queue"""

        def row(r: tuple) -> QueueStats:
            period_, q, offered, answered, abandoned, within, wait, talk, wrap, timed_out, no_agents = r
            sl = service_level(within, answered, abandoned)
            asa = average_speed_of_answer(wait, answered)
            aht = average_handle_time(talk, wrap, answered)
            return QueueStats(period_, q, offered, answered, abandoned, within,
                              None if sl is None else round(100.0 * sl, 2),
                              None if asa is None else round(asa, 2), None if aht is None else round(aht, 2),
                              timed_out, no_agents, per_queue.get(q, default_t))

        return await self.store.read_sync(lambda conn: [row(r) for r in conn.execute(sql, params)])


# ------------------------------------------------------------------------------------ helpers

def _fetch_order(conn: sqlite3.Connection, oid: int) -> WorkOrder:
    return WorkOrder(*conn.execute(f"SELECT {_ORDER_COLS} FROM work_orders WHERE id = ?", (oid,)).fetchone())


def _load_customer(conn: sqlite3.Connection, cid: int) -> Customer | None:
    row = conn.execute(f"SELECT {_CUSTOMER_COLS} FROM customers c WHERE c.id = ?", (cid,)).fetchone()
    return _with_phones(conn, Customer(*row)) if row else None


def _written_customer(conn: sqlite3.Connection, cid: int) -> Customer:
    """The customer a write in this same transaction just inserted or checked (so it exists)."""
    customer = _load_customer(conn, cid)
    if customer is None:
        raise NotFoundError("customer_id", f"no customer {cid}")
    return customer


def _then(body: Callable[[sqlite3.Connection], None],
          result: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """``body`` then ``result`` in one transaction: a write, then what it left (the caller's answer)."""
    def run(conn: sqlite3.Connection) -> T:
        body(conn)
        return result(conn)
    return run


def _rowid(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added (sqlite3 types ``lastrowid`` as optional)."""
    rowid = cur.lastrowid
    assert rowid is not None, "INSERT without a row id"
    return rowid


def _with_phones(conn: sqlite3.Connection, c: Customer) -> Customer:
    c.phones = [r[0] for r in conn.execute(
        "SELECT number FROM customer_phones WHERE customer_id = ? ORDER BY added_at, number", (c.id,))]
    return c


PART_FIELDS: dict[str, Field] = {
    "agent": Field(str, NAME, check=non_empty), "queue": Field(str, NAME), "answered_at": Field(float),
    "ended_at": Field(float), "hold_seconds": Field(float, check=non_negative), "holds": Field(int, check=non_negative),
    "wrap_s": Field(float, nullable=True, check=non_negative), "transferred": Field(bool)}


def _check_part(part: Mapping[str, Any], i: int) -> dict[str, Any]:
    """One agent's part of a call, checked; talk_s derived (the connected time, hold inside)."""
    v = {"queue": "", "hold_seconds": 0.0, "holds": 0, "wrap_s": None, "transferred": False,
         **check_fields(f"parts[{i}]", PART_FIELDS, part, required=("agent", "answered_at", "ended_at"))}
    if v["ended_at"] < v["answered_at"]:
        raise ValidationError(f"parts[{i}].ended_at", "is before its answered_at")
    v["talk_s"] = v["ended_at"] - v["answered_at"]
    v["hold_seconds"] = min(v["hold_seconds"], v["talk_s"])
    v["transferred"] = int(v["transferred"])
    return v


def _derive_times(conn: sqlite3.Connection, call_id: int) -> None:
    """wait_s: in the queue (from queued_at; from the arrival for a call that never queued) to the answer,
    or to the end; talk_s: the answer to the end of the agent's part (talk_ended_at), else of the call."""
    conn.execute("""UPDATE call_records SET
        wait_s = MAX(0.0, COALESCE(answered_at, ended_at) - COALESCE(queued_at, arrived_at)),
        talk_s = CASE WHEN answered_at IS NOT NULL THEN MAX(0.0, COALESCE(talk_ended_at, ended_at) - answered_at) END
        WHERE id = ?""", (call_id,))


_LIST_COLS = "id, list, digits, is_prefix, reason, added_by, added_at, expires_at"


def _list_entry(r: tuple) -> ListEntry:
    return ListEntry(r[0], r[1], r[2] + ("*" if r[3] else ""), r[4], r[5], r[6], r[7])


def _list_matches(conn: sqlite3.Connection, number: str, prefixes: list[str], now: float) -> list[ListEntry]:
    rows = conn.execute(
        f"SELECT {_LIST_COLS} FROM number_lists WHERE digits IN ({', '.join('?' * len(prefixes))}) "
        "AND (is_prefix = 1 OR digits = ?) AND (expires_at IS NULL OR expires_at > ?)",
        (*prefixes, number, now)).fetchall()
    rows.sort(key=lambda r: (-len(r[2]), r[1], r[3]))  # longest match first (a few rows: no SQL sort)
    return [_list_entry(r) for r in rows]
