"""``softswitch users``: the desk's users, kept where an Asterisk or FreeSWITCH administrator keeps them - in
the config file, as ``[[api.users]]`` blocks with a password hash (never the password).

    softswitch users add ID [--role agent|supervisor] [--config config.toml] [--password-stdin] [--print]
    softswitch users passwd ID [--config config.toml] [--password-stdin]
    softswitch users remove ID [--config config.toml]
    softswitch users list [--config config.toml]

``add`` makes up a password (or reads one from standard input) and prints it once; the config file gets
a block appended, the rest of the file (comments included) untouched. Every change is checked by loading
the new file as the switch would, then written atomically (a temporary file renamed over it, same mode);
a change the switch would refuse changes nothing. ``--print`` only prints the block (a config under
configuration management). The running switch sees the change at its next start (a restart keeps
registrations, agent states and desk sessions).
"""
from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["users_main", "add_user_block", "remove_user_block", "set_password"]

_HEADER = re.compile(r"^\s*\[")
_USERS = re.compile(r"^\s*\[\[\s*api\s*\.\s*users\s*\]\]\s*(#.*)?$")
_PW_LINE = re.compile(r"^\s*(password_hash|password)\s*=")


def _toml_string(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _blocks(lines: list[str]) -> list[tuple[int, int, str | None]]:
    """(first line, end line exclusive, id) of each ``[[api.users]]`` block of the file."""
    out = []
    i = 0
    while i < len(lines):
        if _USERS.match(lines[i]):
            j = i + 1
            while j < len(lines) and not _HEADER.match(lines[j]):
                j += 1
            uid = None
            for line in lines[i + 1:j]:
                m = re.match(r'^\s*id\s*=\s*"((?:[^"\\]|\\.)*)"', line)
                if m:
                    uid = m.group(1).replace('\\"', '"').replace("\\\\", "\\")
            # trailing blank and comment lines belong to what follows
            while j > i + 1 and (not lines[j - 1].strip() or lines[j - 1].lstrip().startswith("#")):
                j -= 1
            out.append((i, j, uid))
            i = j
        else:
            i += 1
    return out


def add_user_block(text: str, user_id: str, role: str, password_hash: str) -> str:
    block = f"\n[[api.users]]\nid = {_toml_string(user_id)}\n"
    if role != "agent":
        block += f"role = {_toml_string(role)}\n"
    block += f"password_hash = {_toml_string(password_hash)}\n"
    return text + ("" if text.endswith("\n") or not text else "\n") + block


def remove_user_block(text: str, user_id: str) -> str:
    lines = text.splitlines(keepends=True)
    for start, end, uid in _blocks(lines):
        if uid == user_id:
            if start > 0 and not lines[start - 1].strip():
                start -= 1  # the blank line add put before it
            return "".join(lines[:start] + lines[end:])
    raise KeyError(user_id)


def set_password(text: str, user_id: str, password_hash: str) -> str:
    lines = text.splitlines(keepends=True)
    for start, end, uid in _blocks(lines):
        if uid == user_id:
            body = [line for line in lines[start + 1:end] if not _PW_LINE.match(line)]
            new = [lines[start], *body, f"password_hash = {_toml_string(password_hash)}\n"]
            return "".join(lines[:start] + new + lines[end:])
    raise KeyError(user_id)


def _write_checked(path: Path, text: str) -> None:
    """``text`` becomes the config file only if the switch would load it; atomically, mode kept."""
    from ..config import ConfigError, parse_config
    import tomllib

    try:
        parse_config(tomllib.loads(text), str(path), path.absolute().parent)
    except (ConfigError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"softswitch users: the change was not made, the config would be refused: {e}") from None
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, made up here)."""
    if args.password_stdin:
        pw = sys.stdin.readline().rstrip("\r\n")
        if len(pw) < 8:
            raise SystemExit("softswitch users: a password of at least 8 characters, please")
        return pw, False
    return secrets.token_urlsafe(12), True


def _load(path: Path) -> Any:
    from ..config import ConfigError, load_config
    try:
        return load_config(path)
    except ConfigError as e:
        raise SystemExit(f"softswitch: configuration refused: {e}") from None


def users_main(argv: list[str]) -> int:
    from .auth import hash_password

    p = argparse.ArgumentParser(prog="softswitch users", description="the desk's users ([[api.users]] in the "
                                "config file; passwords stored as hashes)")
    sub = p.add_subparsers(dest="action", required=True)
    a = sub.add_parser("add", help="add a user and print its password")
    a.add_argument("id", help="an [[acd.agents]] id for an agent; any name for a supervisor")
    a.add_argument("--role", choices=("agent", "supervisor", "admin"), default="agent")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input "
                   "(default: make one up and print it)")
    a.add_argument("--print", action="store_true", help="print the [[api.users]] block instead of adding it")
    w = sub.add_parser("passwd", help="give a user a new password")
    w.add_argument("id")
    w.add_argument("--password-stdin", action="store_true")
    r = sub.add_parser("remove", help="remove a user")
    r.add_argument("id")
    sub.add_parser("list", help="the users and their roles")
    for s in (a, w, r, *[sub.choices["list"]]):
        s.add_argument("--config", "-c", default="config.toml")
    args = p.parse_args(argv)
    path = Path(args.config)
    config = _load(path)
    users = {u.id: u for u in config.api.users}
    text = path.read_text(encoding="utf-8")

    if args.action == "list":
        for u in config.api.users:
            print(f"{u.id}\t{u.role}\t{'hashed password' if u.password_hash else 'PLAIN-TEXT password'}")
        if not users:
            print("no users: the switch makes up a one-time 'admin' password at each start (see its log)",
                  file=sys.stderr)
        return 0
    if args.action == "remove":
        try:
            new = remove_user_block(text, args.id)
        except KeyError:
            raise SystemExit(f"softswitch users: no [[api.users]] block with id {args.id!r} in {path}") from None
        _write_checked(path, new)
        print(f"user {args.id} removed from {path}; reload (kill -HUP) or restart the switch to apply")
        return 0

    pw, made_up = _password(args)
    digest = hash_password(pw)
    if args.action == "passwd":
        try:
            new = set_password(text, args.id, digest)
        except KeyError:
            raise SystemExit(f"softswitch users: no [[api.users]] block with id {args.id!r} in {path}") from None
        _write_checked(path, new)
        print(f"new password for {args.id} in {path}" + (f": {pw}" if made_up else "")
              + "; reload (systemctl reload softswitch, kill -HUP) or restart the switch to apply")
        return 0

    if args.id in users:
        raise SystemExit(f"softswitch users: {args.id!r} is already a user in {path} (users passwd to change "
                         "its password)")
    agents = {ag.id for ag in config.acd.agents} if config.acd is not None else set()
    if args.role == "agent" and args.id not in agents:
        print(f"softswitch users: warning: {args.id!r} is not an [[acd.agents]] id; an agent user is the agent "
              "it logs in as", file=sys.stderr)
    if args.print:
        print(add_user_block("", args.id, args.role, digest).lstrip("\n"), end="")
        if made_up:
            print(f"# password: {pw}", file=sys.stderr)
        return 0
    _write_checked(path, add_user_block(text, args.id, args.role, digest))
    print(f"user {args.id} ({args.role}) added to {path}" + (f"; password: {pw}" if made_up else "")
          + "\nreload (systemctl reload softswitch, kill -HUP) or restart the switch to apply (registrations, agent "
              "states and desk sessions survive both)")
    return 0
