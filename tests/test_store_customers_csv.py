"""Customer CSV import/export (store.customers_csv): bad rows reported with line numbers and nothing
imported, updates by id or by number, round trip through export."""
from __future__ import annotations

import asyncio
import csv
import sqlite3
from pathlib import Path
from typing import TypeVar

import pytest

from store.crm import CallCentre
from store.customers_csv import COLUMNS, CustomerImportError, export_customers, import_customers
from store.db import Store
from store.numbers import NumberPlan
from store.validation import ValidationError

REGIONS = {"030": "Berlin", "089": "Munich"}
T = TypeVar("T")


def some(value: T | None) -> T:
    """``value``, which the test expects to be there (a lookup that must find something)."""
    assert value is not None
    return value


def run(coro):
    return asyncio.run(coro)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def centre_run(tmp_path: Path, fn):
    async def main():
        store = await Store.open(tmp_path / "cc.db")
        cc = CallCentre(store, plan=NumberPlan(country_code="49"), regions=REGIONS)
        try:
            return await fn(cc)
        finally:
            await cc.close()
            await store.close()

    return run(main())


def test_import_with_bad_rows_imports_nothing_and_names_each_line(tmp_path):
    src = write(tmp_path / "in.csv",
                "name,phones,address,region,vip_level,notes\n"
                "Anna Alt,030 1111111,Hauptstr. 1,,0,\n"                    # 2 ok
                "Ben Bauer,not-a-number,,,0,\n"                             # 3 bad number
                "Clara,089 2222222;0170 3333333,\"Weg 2, Hof\",,11,\n"     # 4 vip out of range
                "Dora,,,,,\n"                                               # 5 no phone
                "\n"                                                        # 6 blank: ignored
                "Emil,030 4444444,,,x,\n"                                   # 7 vip not a number
                "Fritz,030 1111111,,,,\n"                                   # 8 number repeats line 2
                "Gerd,030 5555555,,,1\n"                                    # 9 too few fields
                + "Hans," + "0306666666" + ",,," + "0," + "n" * 10_001 + "\n")  # 10 notes too long

    async def body(cc: CallCentre):
        with pytest.raises(CustomerImportError) as err:
            await import_customers(cc, src)
        return err.value

    e = centre_run(tmp_path, body)
    assert isinstance(e, ValueError) and isinstance(e, ValidationError)
    lines = {line: reason for line, reason in e.errors}
    assert sorted(lines) == [3, 4, 5, 7, 8, 9, 10]
    assert "not a phone number" in lines[3]
    assert "vip_level" in lines[4] and "between 0 and 9" in lines[4]
    assert "at least one number" in lines[5]
    assert "whole number" in lines[7]
    assert "also on line 2" in lines[8]
    assert "header has 6" in lines[9]
    assert "notes" in lines[10] and "too long" in lines[10]
    assert "line 3:" in str(e) and "nothing imported" in str(e)
    assert count(tmp_path / "cc.db", "customers") == 0 and count(tmp_path / "cc.db", "customer_phones") == 0

    # skip_bad: the good rows go in, the bad ones are reported
    async def skipping(cc: CallCentre):
        return await import_customers(cc, src, skip_bad=True)

    result = centre_run(tmp_path, skipping)
    assert (result.created, result.updated, result.rows, result.skipped) == (1, 0, 8, 7)
    assert [line for line, _ in result.errors] == [3, 4, 5, 7, 8, 9, 10]


def test_bad_header_and_bad_files(tmp_path):
    cases = {
        "unknown.csv": ("name,phones,email\nA,0301111111,a@b\n", r"unknown column\(s\) 'email'"),
        "nophones.csv": ("name,address\nA,B\n", "'phones' column is required"),
        "twice.csv": ("name,phones,name\nA,0301111111,B\n", "appears twice"),
        "empty.csv": ("", "empty file"),
    }

    async def body(cc: CallCentre):
        for name, (text, message) in cases.items():
            with pytest.raises(CustomerImportError, match=message):
                await import_customers(cc, write(tmp_path / name, text))
        (tmp_path / "latin1.csv").write_bytes("name,phones\nJürgen,0301111111\n".encode("latin-1"))
        with pytest.raises(CustomerImportError, match="not UTF-8"):
            await import_customers(cc, tmp_path / "latin1.csv")

    centre_run(tmp_path, body)
    assert count(tmp_path / "cc.db", "customers") == 0


def test_import_creates_updates_and_round_trips(tmp_path):
    src = write(tmp_path / "in.csv",
                "\ufeffName,Phones,Address,Region,VIP_level,Notes\n"  # a BOM and capitalised headers (Excel)
                "Anna Alt,030 1111111;0170 1111111,Hauptstr. 1,,2,\"likes \"\"quotes\"\"\"\n"
                "Bernd Berg,089 2222222,,South,0,\"multi\nline; with = and '); DROP TABLE customers;--\"\n"
                "Carl,0221 3333333,,,,\n")

    async def body(cc: CallCentre):
        first = await import_customers(cc, src)
        assert (first.created, first.updated, first.errors) == (3, 0, [])
        anna = some(await cc.find_customer("01701111111"))
        assert (anna.name, anna.region, anna.vip_level, anna.notes) == ("Anna Alt", "Berlin", 2, 'likes "quotes"')
        bernd = some(await cc.find_customer("0892222222"))
        assert bernd.region == "South"  # an explicit region wins over the derived one
        assert bernd.notes == "multi\nline; with = and '); DROP TABLE customers;--"
        assert some(await cc.find_customer("02213333333")).region is None  # no prefix entry

        # a second file: update by number (adds a number), by id, and a new customer
        upd = write(tmp_path / "upd.csv",
                    "id,name,phones,vip_level\n"
                    f",Anna Alt-Neu,030 1111111;030 7777777,5\n"
                    f"{bernd.id},Bernd B.,089 2222222,1\n"
                    ",Dieter,030 8888888,0\n")
        second = await import_customers(cc, upd)
        assert (second.created, second.updated) == (1, 2)
        anna2 = some(await cc.get_customer(some(anna.id)))
        assert (anna2.name, anna2.vip_level, anna2.address) == ("Anna Alt-Neu", 5, "Hauptstr. 1")  # address kept
        assert set(anna2.phones) == {"+49301111111", "+491701111111", "+49307777777"}
        assert some(await cc.get_customer(some(bernd.id))).name == "Bernd B."
        assert (await cc.search_customers(name_prefix="anna alt-")).items[0].id == anna.id  # name_key follows

        # conflicts found against the database are reported too, and nothing is imported
        bad = write(tmp_path / "bad.csv",
                    "id,name,phones\n"
                    "999,Ghost,030 7777777\n"                       # a new id with another's number
                    ",Mixed,030 1111111;089 2222222\n"              # numbers of two customers
                    f"{bernd.id},Steal,0170 1111111\n"               # number of another customer
                    ",Fine,030 4242424\n")
        with pytest.raises(CustomerImportError) as err:
            await import_customers(cc, bad)
        assert [line for line, _ in err.value.errors] == [2, 3, 4]
        assert "customer 999 is new but a number belongs to customer" in err.value.errors[0][1]
        assert await cc.find_customer("0304242424") is None  # the good row was not imported either

        out = tmp_path / "out.csv"
        assert await export_customers(cc, out) == 4
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == COLUMNS
        assert [r["name"] for r in rows] == ["Anna Alt-Neu", "Bernd B.", "Carl", "Dieter"]
        assert rows[1]["notes"] == "multi\nline; with = and '); DROP TABLE customers;--"
        assert rows[0]["phones"].split(";")[0] in {"+49301111111", "+491701111111"}
        return out

    out = centre_run(tmp_path, body)

    # round trip into an empty database gives the same export
    async def again(cc: CallCentre):
        res = await import_customers(cc, out)
        assert res.errors == []
        await export_customers(cc, tmp_path / "out2.csv")

    other = tmp_path / "other"
    other.mkdir()
    centre_run(other, again)
    assert (tmp_path / "out2.csv").read_bytes() == out.read_bytes()  # ids kept too


def test_import_accepts_a_bare_store_and_is_fast_enough(tmp_path):
    lines = ["name,phones,region"] + [f"Customer {i},+4930{i:07d},R{i % 7}" for i in range(20_000)]
    src = write(tmp_path / "big.csv", "\n".join(lines) + "\n")

    async def main():
        store = await Store.open(tmp_path / "cc.db")
        try:
            result = await import_customers(store, src)
            assert (result.created, result.rows) == (20_000, 20_000)
            assert await export_customers(store, tmp_path / "big-out.csv", batch=3000) == 20_000
        finally:
            await store.close()

    run(main())
    assert count(tmp_path / "cc.db", "customer_phones") == 20_000
    assert len((tmp_path / "big-out.csv").read_text().splitlines()) == 20_001
