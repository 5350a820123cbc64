"""Command line: ``softswitch run --config FILE``, ``check-config FILE``, ``staffing ...``, ``prompts build``."""
from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from typing import Any, Callable

from .config import ConfigError, load_config


def _setup_logging(level: str, fmt: str = "plain") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if fmt == "json":  # [log] format: one JSON object per line (softswitch.logfmt)
        from .logfmt import JsonFormatter
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)  # one line per SQL statement otherwise


async def _run(config) -> int:
    from .transport import Server

    server = Server(config)
    await server.start()
    # Long-lived state (config, bindings) never becomes garbage: keep it out of every collection, and
    # collect the young generation less often (each collection walks it; at thousands of messages
    # per second the default 700-allocation threshold runs it hundreds of times a second).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logging.getLogger("softswitch").info(
        "softswitch running: domain %s, %d extension(s)", config.sip.domain, len(config.extensions))
    await stop.wait()
    logging.getLogger("softswitch").info("shutting down")
    await server.stop()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"softswitch: configuration refused: {e}", file=sys.stderr)
        return 2
    _setup_logging(args.log_level or config.log.level, config.log.format)
    runner: Callable[..., Any]
    try:
        import uvloop  # 3x cheaper per packet than the stock loop on this workload (see bench/README.md)
        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    try:
        return runner(_run(config))
    except OSError as e:
        logging.getLogger("softswitch").error("cannot start: %s", e)
        return 1


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as e:
        print(f"softswitch: configuration refused: {e}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(config.extensions)} extension(s), listening on "
          f"{', '.join(f'{l.transport}:{l.host}:{l.port}' for l in config.sip.listen)})")
    return 0


# Subcommands owned by other packages: everything after the name is theirs to parse.
DELEGATED = {
    "staffing": ("acd.staffing_cli", "Erlang C: agents needed for a service level (--calls-per-hour N --aht S --target 80/20)"),
    "prompts": ("ivr.prompts_build", "render the IVR prompt texts in prompts/ to WAV (prompts build [--lang en,zh,yue])"),
    "customers": ("softswitch.api.cli_tools:customers_main",
                  "customers import FILE.csv [--skip-bad] / customers export FILE.csv [--config FILE]"),
    "records": ("softswitch.api.cli_tools:records_main",
                "call records as CSV: records --since 2024-05-01 [--until ...] [--agent ID] [--config FILE]"),
    "hash-password": ("softswitch.api.cli_tools:hash_password_main",
                      "print a password hash for [[api.users]] password_hash (reads the password from stdin)"),
    "backup": ("softswitch.backup:backup_main",
               "copy the database to FILE while the switch runs: backup FILE [--config FILE | --db PATH] [--force]"),
    "restore": ("softswitch.backup:restore_main",
                "put a backup back (stop the switch first): restore FILE [--config FILE | --db PATH]"),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        import importlib
        module, _, func = DELEGATED[argv[0]][0].partition(":")
        return getattr(importlib.import_module(module), func or "main")(argv[1:])
    p = argparse.ArgumentParser(prog="softswitch", description=__doc__,
                                epilog="also: " + "; ".join(f"{k}: {v[1]}" for k, v in DELEGATED.items()))
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the switch in the foreground")
    r.add_argument("--config", "-c", default="config.toml")
    r.add_argument("--log-level", default=None, help="override [log] level")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check-config", help="validate a config file and exit")
    c.add_argument("file")
    c.set_defaults(func=cmd_check_config)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
