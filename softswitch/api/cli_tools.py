"""Command-line tools around the call-centre store and the API's users:

    softswitch customers import FILE.csv [--skip-bad] [--config config.toml]
    softswitch customers export FILE.csv [--config config.toml]
    softswitch records --since 2024-05-01 [--until 2024-06-01T12:00] [--agent ID] [--queue Q] [--config ...]
    softswitch hash-password [--iterations N]      (password from stdin, or asked for on a terminal)

They open the store named by the config's ``[store] path`` (SQLite in WAL mode: safe while the switch runs).
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import getpass
import sys
from softswitch.records import centre_for
from typing import Any

__all__ = ["customers_main", "records_main", "hash_password_main"]

RECORD_COLUMNS = ("id", "call_ref", "caller", "callee", "queue", "agent", "ivr_path", "arrived_at", "answered_at",
                  "ended_at", "wait_s", "talk_s", "wrap_s", "disposition", "recording", "survey_score",
                  "caller_loss_pct", "caller_jitter_ms", "agent_loss_pct", "agent_jitter_ms", "hold_seconds", "holds")


def _config(path: str) -> Any:
    from ..config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"softswitch: configuration refused: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _time(text: str) -> float:
    """Epoch seconds, or an ISO date / date-time (UTC unless it names an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time (epoch seconds or ISO 8601, e.g. 2024-05-01T08:00): {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def customers_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="softswitch customers", description="import or export customers as CSV "
                                "(columns: id,name,phones,address,region,vip_level,notes; phones separated by ';')")
    p.add_argument("action", choices=("import", "export"))
    p.add_argument("file")
    p.add_argument("--config", "-c", default="config.toml")
    p.add_argument("--skip-bad", action="store_true", help="import the good rows and report the bad ones "
                                                           "(default: a bad row imports nothing)")
    args = p.parse_args(argv)
    config = _config(args.config)

    async def run() -> int:
        from store.customers_csv import CustomerImportError, export_customers, import_customers
        from store.db import Store
        store = await Store.open(config.store.path)
        try:
            if args.action == "export":
                n = await export_customers(store, args.file)
                print(f"exported {n} customer(s) to {args.file}")
                return 0
            try:
                r = await import_customers(store, args.file, skip_bad=args.skip_bad)
            except CustomerImportError as e:
                print(f"softswitch customers import: {e}", file=sys.stderr)
                return 1
            except OSError as e:
                print(f"softswitch customers import: {e}", file=sys.stderr)
                return 1
            print(f"{args.file}: {r.rows} row(s): {r.created} created, {r.updated} updated, {r.skipped} skipped")
            for line, reason in r.errors[:50]:
                print(f"  line {line}: {reason}", file=sys.stderr)
            return 0
        finally:
            await store.close()

    return asyncio.run(run())


def records_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="softswitch records", description="print call records as CSV, newest first")
    p.add_argument("--since", type=_time, required=True, help="epoch seconds or ISO 8601 (UTC unless an offset)")
    p.add_argument("--until", type=_time, default=None)
    p.add_argument("--agent", default=None)
    p.add_argument("--caller", default=None)
    p.add_argument("--queue", default=None)
    p.add_argument("--config", "-c", default="config.toml")
    args = p.parse_args(argv)
    config = _config(args.config)

    async def run() -> int:
        from store.db import Store
        from store.validation import ValidationError
        store = await Store.open(config.store.path)
        centre = centre_for(store, config)
        out = csv.writer(sys.stdout)
        out.writerow(RECORD_COLUMNS)
        try:
            after = None
            while True:
                page = await centre.search_calls(since=args.since, until=args.until, agent=args.agent,
                                                 caller=args.caller, queue=args.queue, limit=1000, after=after)
                for rec in page.items:
                    out.writerow(["" if getattr(rec, c) is None else getattr(rec, c) for c in RECORD_COLUMNS])
                if page.next is None:
                    return 0
                after = page.next
        except ValidationError as e:
            print(f"softswitch records: {e}", file=sys.stderr)
            return 2
        finally:
            await centre.close()
            await store.close()

    return asyncio.run(run())


def hash_password_main(argv: list[str]) -> int:
    from .auth import DEFAULT_ITERATIONS, hash_password
    p = argparse.ArgumentParser(prog="softswitch hash-password",
                                description="print a hash for [[api.users]] password_hash; the password is read "
                                            "from standard input (first line) or asked for on a terminal")
    p.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    args = p.parse_args(argv)
    if sys.stdin.isatty():
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            print("softswitch hash-password: the passwords differ", file=sys.stderr)
            return 1
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if len(pw) < 4:
        print("softswitch hash-password: at least 4 characters", file=sys.stderr)
        return 1
    if not 1000 <= args.iterations <= 9_999_999:
        print("softswitch hash-password: --iterations must be 1000-9999999", file=sys.stderr)
        return 1
    print(hash_password(pw, iterations=args.iterations))
    return 0


def ha1_main(argv: list[str]) -> int:
    """``softswitch ha1 NUMBER``: the ``ha1_md5``/``ha1_sha256`` lines for an extension, so that the config
    holds no plaintext password (docs/security.md). The realm is ``--realm`` or the config's ``[sip] realm``."""
    from ..sip.digest import compute_ha1
    p = argparse.ArgumentParser(prog="softswitch ha1",
                                description="print ha1_md5 / ha1_sha256 for an [[extensions]] block; the password is "
                                            "read from standard input (first line) or asked for on a terminal")
    p.add_argument("number", help="the extension number (the digest user name)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--realm", help="the digest realm ([sip] realm, by default its domain)")
    g.add_argument("--config", default="config.toml", help="read the realm from this config (default config.toml)")
    args = p.parse_args(argv)
    realm = args.realm
    if realm is None:
        from ..config import ConfigError, load_config
        try:
            realm = load_config(args.config).sip.realm
        except ConfigError as e:
            print(f"softswitch ha1: {e} (or give --realm)", file=sys.stderr)
            return 1
    if sys.stdin.isatty():
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            print("softswitch ha1: the passwords differ", file=sys.stderr)
            return 1
    else:
        pw = sys.stdin.readline().rstrip("\r\n")
    if len(pw) < 4:
        print("softswitch ha1: at least 4 characters", file=sys.stderr)
        return 1
    print(f"# extension {args.number}, realm {realm!r} (changing the realm invalidates these)")
    print(f'ha1_md5 = "{compute_ha1(args.number, realm, pw, "MD5")}"')
    print(f'ha1_sha256 = "{compute_ha1(args.number, realm, pw, "SHA-256")}"')
    return 0
