"""Customers to and from CSV (the CLI's ``customers import`` / ``customers export``).

Format (UTF-8, a header row, comma-separated, RFC 4180 quoting):

    id,name,phones,address,region,vip_level,notes

``phones``: one or more numbers separated by ``;`` (normalised on import). On import only
``phones`` is required; ``id`` may be empty. A row with an ``id`` updates that customer, or
creates it with that id when there is none (an export restored into another database keeps its
ids); a row without one updates the customer owning one of its numbers, or creates a new customer. Numbers are
added to a customer, never taken away. Fields not in the header keep their values (or defaults).

Import is all-or-nothing by default: every row is checked first and, if any is bad,
``CustomerImportError`` lists each bad row's line number and reason and nothing is imported.
``skip_bad=True`` imports the good rows instead and reports the bad ones in the result. The
import is one transaction: a crash in the middle imports nothing.
"""
from __future__ import annotations

import csv
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .crm import CUSTOMER_FIELDS, CallCentre
from .db import Store
from .numbers import NumberPlan
from .validation import ValidationError, check_value

__all__ = ["import_customers", "export_customers", "ImportResult", "CustomerImportError", "COLUMNS"]

COLUMNS = ("id", "name", "phones", "address", "region", "vip_level", "notes")
MAX_ROWS = 5_000_000


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    rows: int = 0                                     # data rows read
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason), rows not imported

    @property
    def skipped(self) -> int:
        return len(self.errors)


class CustomerImportError(ValidationError):
    """The file has bad rows (``errors``: (line, reason)); nothing was imported."""

    def __init__(self, path: str, errors: list[tuple[int, str]]):
        self.errors = errors
        shown = "; ".join(f"line {line}: {reason}" for line, reason in errors[:20])
        more = f"; and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(str(path), f"{len(errors)} bad row(s), nothing imported: {shown}{more}")


@dataclass
class _Row:
    line: int
    id: int | None
    values: dict[str, Any]
    phones: list[str]


async def import_customers(store: Store | CallCentre, path: str | os.PathLike[str], *, skip_bad: bool = False,
                           plan: NumberPlan | None = None, regions: dict[str, str] | None = None) -> ImportResult:
    """Import ``path`` into the store; returns the counts. ``store`` may be a ``CallCentre`` (its
    number plan and region table are used for new customers without a region) or a bare ``Store``."""
    centre = store if isinstance(store, CallCentre) else CallCentre(store, plan=plan, regions=regions)
    result = ImportResult()
    rows: list[_Row] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise CustomerImportError(str(path), [(1, "empty file: no header row")]) from None
            names = [h.strip().lower() for h in header]
            unknown = [h for h in names if h not in COLUMNS]
            problems = []
            if unknown:
                problems.append(f"unknown column(s) {', '.join(repr(h) for h in unknown)}; known: {', '.join(COLUMNS)}")
            if len(set(names)) != len(names):
                problems.append("a column appears twice")
            if "phones" not in names:
                problems.append("the 'phones' column is required")
            if problems:
                raise CustomerImportError(str(path), [(1, "; ".join(problems))])
            seen_numbers: dict[str, int] = {}
            line_end = reader.line_num
            for cells in reader:
                line, line_end = line_end + 1, reader.line_num  # where the row starts (quoted newlines)
                if not any(c.strip() for c in cells):
                    continue  # blank line
                result.rows += 1
                if result.rows > MAX_ROWS:
                    raise CustomerImportError(str(path), [(line, f"more than {MAX_ROWS} rows")])
                try:
                    row = _parse_row(centre, names, cells, line)
                    for n in row.phones:
                        if n in seen_numbers:
                            raise ValidationError("phones", f"number {n} also on line {seen_numbers[n]}")
                    for n in row.phones:
                        seen_numbers[n] = line
                    rows.append(row)
                except ValidationError as e:
                    result.errors.append((line, str(e)))
    except UnicodeDecodeError as e:
        raise CustomerImportError(str(path), [(0, f"not UTF-8 text ({e.reason} at byte {e.start})")]) from None
    except csv.Error as e:
        raise CustomerImportError(str(path), [(reader.line_num, f"bad CSV: {e}")]) from None
    if result.errors and not skip_bad:
        raise CustomerImportError(str(path), result.errors)

    now = centre.clock()
    errors: list[tuple[int, str]] = []

    def body(conn: sqlite3.Connection) -> tuple[int, int]:
        created = updated = 0
        for row in rows:
            try:
                target = row.id
                new_id = None
                owners = {r[0] for n in row.phones for r in conn.execute(
                    "SELECT customer_id FROM customer_phones WHERE number = ?", (n,))}
                if target is not None and not conn.execute(
                        "SELECT 1 FROM customers WHERE id = ?", (target,)).fetchone():
                    new_id, target = target, None  # restoring an export: keep the customer's id
                    if owners:
                        raise ValidationError("phones", f"customer {new_id} is new but a number belongs to "
                                                        f"customer {sorted(owners)[0]}")
                if target is None and len(owners) > 1:
                    raise ValidationError("phones", f"numbers belong to different customers {sorted(owners)}")
                if target is None and owners:
                    target = owners.pop()
                if target is not None and owners - {target}:
                    raise ValidationError("phones", f"a number belongs to customer {sorted(owners - {target})[0]}")
            except ValidationError as e:
                errors.append((row.line, str(e)))
                continue
            if target is None:
                values = dict(row.values)
                if values.get("region") is None and row.phones:
                    values["region"] = centre.region_of(row.phones[0])
                centre._insert_customer(conn, values, row.phones, {}, now, customer_id=new_id)
                created += 1
            else:
                values = dict(row.values)
                if "name" in values:
                    values["name_key"] = values["name"].casefold()
                values["updated_at"] = now
                conn.execute(f"UPDATE customers SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                             (*values.values(), target))
                conn.executemany("INSERT OR IGNORE INTO customer_phones (number, customer_id, label, added_at) "
                                 "VALUES (?, ?, '', ?)", [(n, target, now) for n in row.phones])
                updated += 1
        if errors and not skip_bad:
            raise CustomerImportError(str(path), errors)  # rolls the whole import back
        return created, updated

    result.created, result.updated = await centre.store.write_sync(body)
    result.errors = sorted(result.errors + errors)
    return result


def _parse_row(centre: CallCentre, names: list[str], cells: list[str], line: int) -> _Row:
    if len(cells) != len(names):
        raise ValidationError("", f"{len(cells)} field(s), the header has {len(names)}")
    raw = dict(zip(names, cells))
    values: dict[str, Any] = {}
    for k in ("name", "address", "notes"):
        if k in raw:
            values[k] = check_value(k, CUSTOMER_FIELDS[k], raw[k].strip())
    if "region" in raw:
        values["region"] = check_value("region", CUSTOMER_FIELDS["region"], raw["region"].strip() or None)
    if "vip_level" in raw:
        text = raw["vip_level"].strip() or "0"
        if not text.isdigit():
            raise ValidationError("vip_level", f"must be a whole number 0-9, got {raw['vip_level']!r:.40}")
        values["vip_level"] = check_value("vip_level", CUSTOMER_FIELDS["vip_level"], int(text))
    phones = [p for p in raw.get("phones", "").split(";") if p.strip()]
    if not phones:
        raise ValidationError("phones", "at least one number is required")
    numbers = centre._phones(phones)
    cid = None
    if raw.get("id", "").strip():
        text = raw["id"].strip()
        if not text.isdigit() or int(text) == 0:
            raise ValidationError("id", f"must be a positive whole number, got {text!r:.40}")
        cid = int(text)
    return _Row(line, cid, values, numbers)


async def export_customers(store: Store | CallCentre, path: str | os.PathLike[str], *, batch: int = 5000) -> int:
    """Write every customer to ``path`` (in the import format, ordered by id); returns the count.
    Written to a temporary file and renamed, so ``path`` is never half-written."""
    st = store.store if isinstance(store, CallCentre) else store
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    last = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        while True:
            def page(conn: sqlite3.Connection, after: int = last) -> list[tuple]:
                return conn.execute(
                    "SELECT c.id, c.name, (SELECT group_concat(number, ';') FROM (SELECT number FROM customer_phones "
                    "  WHERE customer_id = c.id ORDER BY added_at, number)), c.address, c.region, c.vip_level, "
                    "c.notes FROM customers c WHERE c.id > ? ORDER BY c.id LIMIT ?", (after, batch)).fetchall()

            rows = await st.read_sync(page)
            if not rows:
                break
            writer.writerows(["" if v is None else v for v in r] for r in rows)
            count += len(rows)
            last = rows[-1][0]
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    return count
