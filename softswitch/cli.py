"""softswitch: a SIP softswitch with a call-centre ACD. Commands: ``run --config FILE``, ``check-config FILE``,
and the tools below (``users``, ``prompts``, ``staffing``, ``customers``, ``records``, ``hash-password``, ``ha1``)."""
from __future__ import annotations

import signal
import sys

if __name__ == "__main__":  # python -m softswitch.cli: quiet Ctrl-C from here on (see main)
    signal.signal(signal.SIGINT, lambda signum, frame: sys.exit(128 + signum))

import argparse
import asyncio
import gc
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .config import Config


def _setup_logging(level: str, fmt: str = "plain") -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if fmt == "json":  # [log] format: one JSON object per line (base.logfmt)
        from base.logfmt import JsonFormatter
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)  # one line per SQL statement otherwise


def _log_off_the_loop() -> Callable[[], None]:
    """Log writes (a blocking write to a pipe or a disk, for each line) leave the event loop: the root
    logger's handlers move behind a queue that a thread empties (``logging.handlers.QueueListener``).
    Returns the function that flushes and stops it (at exit)."""
    import logging.handlers
    import queue

    root = logging.getLogger()
    handlers = list(root.handlers)
    if not handlers:
        return lambda: None
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, *handlers, respect_handler_level=True)
    for h in handlers:
        root.removeHandler(h)
    front = logging.handlers.QueueHandler(q)
    root.addHandler(front)
    listener.start()

    def stop() -> None:
        listener.stop()  # writes what is queued
        root.removeHandler(front)
        for h in handlers:
            root.addHandler(h)
    return stop


async def _run(config: Config) -> int:
    from .transport import Server

    log = logging.getLogger("softswitch")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # from the start: Ctrl-C while starting stops cleanly too
        loop.add_signal_handler(sig, stop.set)
    server = Server(config)
    # SIGHUP re-reads the config for new calls (softswitch.reload); a broken one is refused and logged
    loop.add_signal_handler(signal.SIGHUP, lambda: server.reload() if server.running else None)
    if not await _start(server, stop, log):
        await _close(server, log)
        return 1
    # Long-lived state (config, bindings) never becomes garbage: keep it out of every collection, and
    # collect the young generation less often (each collection walks it; at thousands of messages
    # per second the default 700-allocation threshold runs it hundreds of times a second).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    logging.getLogger("softswitch").info(
        "softswitch running: domain %s, %d extension(s)", config.sip.domain, len(config.extensions))
    await stop.wait()
    logging.getLogger("softswitch").info("shutting down")
    await _close(server, log)
    return 0


# What a failure to start usually is (a port taken, a database or directory that cannot be written, a
# database of a newer release): one line says it; anything else gets its traceback.
_START_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)


async def _start(server: Any, stop: asyncio.Event, log: logging.Logger) -> bool:
    """``server.start()`` unless a signal comes first; False (logged) when it failed or was interrupted."""
    import sqlite3

    from store.migrations import StoreError

    starting = asyncio.ensure_future(server.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        log.info("interrupted while starting")
        return False
    e = starting.exception()
    if e is None:
        return True
    if isinstance(e, (*_START_ERRORS, sqlite3.Error, StoreError)):
        log.error("cannot start: %s", e)
    else:
        log.error("cannot start", exc_info=e)
    return False


async def _close(server: Any, log: logging.Logger) -> None:
    """Stop whatever started; the store is closed whatever happens (its thread would keep the process)."""
    try:
        await server.stop()
    except Exception:
        log.exception("error while stopping")
    finally:
        if server.store is not None:
            await server.store.close()


def cmd_run(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config

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
    stop_logging = _log_off_the_loop()
    try:
        return runner(_run(config))
    finally:
        stop_logging()


def cmd_check_config(args: argparse.Namespace) -> int:
    from .config import ConfigError, config_warnings, load_config

    try:
        config = load_config(args.file)
    except ConfigError as e:
        print(f"softswitch: configuration refused: {e}", file=sys.stderr)
        return 2
    print(f"{args.file}: OK ({len(config.extensions)} extension(s), listening on "
          f"{', '.join(f'{l.transport}:{l.host}:{l.port}' for l in config.sip.listen)})")
    for warning in config_warnings(config, args.file):
        print(f"softswitch: warning: {warning}", file=sys.stderr)
    return 0


# Subcommands owned by other packages: everything after the name is theirs to parse.
DELEGATED = {
    "staffing": ("acd.staffing_cli", "Erlang C: agents needed for a service level (--calls-per-hour N --aht S --target 80/20)"),
    "prompts": ("ivr.prompts_build", "render the IVR prompt texts in prompts/ to WAV (prompts build [--lang en,zh,yue])"),
    "customers": ("softswitch.api.cli_tools:customers_main",
                  "customers import FILE.csv [--skip-bad] / customers export FILE.csv [--config FILE]"),
    "records": ("softswitch.api.cli_tools:records_main",
                "call records as CSV: records --since 2024-05-01 [--until ...] [--agent ID] [--config FILE]"),
    "users": ("softswitch.api.users_cli:users_main",
              "the desk's users: users add ID [--role agent|supervisor] | passwd ID | remove ID | list [--config FILE]"),
    "hash-password": ("softswitch.api.cli_tools:hash_password_main",
                      "print a password hash for [[api.users]] password_hash (reads the password from stdin)"),
    "ha1": ("softswitch.api.cli_tools:ha1_main",
            "print ha1_md5/ha1_sha256 for an extension instead of its password: ha1 NUMBER [--realm R | --config FILE]"),
    "backup": ("softswitch.backup:backup_main",
               "copy the database to FILE while the switch runs: backup FILE [--config FILE | --db PATH] [--force]"),
    "restore": ("softswitch.backup:restore_main",
                "put a backup back (stop the switch first): restore FILE [--config FILE | --db PATH]"),
}


def _interrupted(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C while loading (imports, the config; the switch installs its own handlers as it starts) or in a
    # tool: exit 130 without a traceback. (Modules are imported below, after this.)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted)
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return 130


def _main(argv: list[str]) -> int:
    if argv and argv[0] in DELEGATED:
        import importlib
        module, _, func = DELEGATED[argv[0]][0].partition(":")
        return int(getattr(importlib.import_module(module), func or "main")(argv[1:]))
    p = argparse.ArgumentParser(prog="softswitch", description="A SIP softswitch with a call-centre ACD.",
                                epilog="softswitch COMMAND --help for a command's options")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    r = sub.add_parser("run", help="run the switch in the foreground")
    r.add_argument("--config", "-c", default="config.toml")
    r.add_argument("--log-level", default=None, help="override [log] level")
    r.set_defaults(func=cmd_run)
    c = sub.add_parser("check-config", help="validate a config file and exit")
    c.add_argument("file")
    c.set_defaults(func=cmd_check_config)
    for name, (_, text) in DELEGATED.items():  # listed here; dispatched above with their own parsers
        sub.add_parser(name, help=text, add_help=False)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
