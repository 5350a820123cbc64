"""The switch's secret key, kept in a file beside the database so that a restart changes nothing a phone or
a desk holds: digest nonces and API session tokens are signed with keys derived from it.

The file (``softswitch.key`` in the store's directory) holds 32 random bytes in hex; it is created once,
mode 0600, with ``O_EXCL`` (two processes starting together agree on one key). Keys for each use are
derived from it with HMAC-SHA256 and a label, so the nonce key and the session key are independent.
Deleting the file logs every desk out and makes every phone re-authenticate once (a fresh challenge,
never a 403).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["KEY_FILE", "derive", "key_path", "load_or_create"]

log = logging.getLogger("softswitch.store")

KEY_FILE = "softswitch.key"
_KEY_BYTES = 32


def key_path(store_path: str | os.PathLike[str]) -> Path | None:
    """Where the key of the store at ``store_path`` lives; None for an in-memory store (no key file)."""
    if str(store_path) == ":memory:":
        return None
    return Path(store_path).parent / KEY_FILE


def load_or_create(path: Path) -> bytes:
    """The key in ``path``, created (0600) if the file does not exist. OSError if it cannot be read or
    written; ValueError if the file holds something else than a key."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    key = secrets.token_bytes(_KEY_BYTES)
    try:
        os.write(fd, (key.hex() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("secret key created in %s (mode 0600): it signs SIP nonces and desk sessions across restarts", path)
    return key


def _read(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s is readable by other users (mode %o): chmod 600 it", path, stat.S_IMODE(mode))
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(f"{path}: not a key file (expected {2 * _KEY_BYTES} hex digits); delete it to make a new one")
    return key


def derive(key: bytes, label: str) -> bytes:
    """An independent key for one use (``"sip-nonce"``, ``"api-session"``)."""
    return hmac.new(key, b"softswitch key|" + label.encode(), hashlib.sha256).digest()
