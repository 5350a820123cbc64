"""Passwords and session tokens for the HTTP API.

Passwords are stored as ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (salt and hash base64, no
padding), checked in constant time. A session token is ``<payload>.<signature>``: the payload is
base64url JSON ``{"u": user id, "r": role, "e": expiry (epoch seconds), "s": session id}``, the signature an
HMAC-SHA256 of the payload under the API secret (``[api] secret``, else derived from the switch's key file,
so sessions survive a restart). Tokens are not stored server side; a logout revokes the session id
(``"s"``) for as long as its tokens could live (kept across restarts in softswitch.security.json); a changed
secret (or a deleted key file) ends every session. A token past half its life is refreshed (same session id)
on use.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass

__all__ = ["hash_password", "check_password", "Session", "TokenSigner", "DEFAULT_ITERATIONS"]

DEFAULT_ITERATIONS = 200_000
ROLES = ("agent", "supervisor", "admin")
SUPERVISING = ("supervisor", "admin")   # roles that see the whole floor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        want = _unb64(digest)
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(want, got)


@dataclass(frozen=True)
class Session:
    user: str
    role: str       # "agent" | "supervisor" | "admin"
    expires: float
    sid: str = ""   # the login this token belongs to (refreshed tokens keep it; logout revokes it)

    @property
    def supervisor(self) -> bool:
        """Supervisors and admins: the floor (every agent, call, report)."""
        return self.role in SUPERVISING

    @property
    def admin(self) -> bool:
        """Admins: besides the floor, the management endpoints (config reload)."""
        return self.role == "admin"


class TokenSigner:
    """Signs and checks session tokens; ``revoked`` (session id -> when its last token expires anyway) makes
    a logout final although tokens are not stored: bounded, since entries go once their tokens expired."""

    def __init__(self, secret: bytes, ttl: float, revoked: dict[str, float] | None = None):
        self.secret = secret
        self.ttl = ttl
        self.revoked: dict[str, float] = dict(revoked or {})

    def issue(self, user: str, role: str, now: float | None = None, sid: str | None = None) -> tuple[str, Session]:
        """A new token; ``sid`` continues a session (a refresh), None starts one."""
        exp = int((now if now is not None else time.time()) + self.ttl)
        sid = sid or _b64(os.urandom(12))
        payload = _b64(json.dumps({"u": user, "r": role, "e": exp, "s": sid}, separators=(",", ":")).encode())
        return f"{payload}.{self._sign(payload)}", Session(user, role, exp, sid)

    def verify(self, token: str, now: float | None = None) -> Session | None:
        # A token is base64url and a dot: anything else (non-ASCII included, which compare_digest would
        # refuse with a TypeError) is simply not a session.
        if not isinstance(token, str) or len(token) > 1024 or not token.isascii() or token.count(".") != 1:
            return None
        payload, sig = token.split(".")
        if not hmac.compare_digest(sig, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            user, role, exp, sid = data["u"], data["r"], data["e"], data["s"]
        except (ValueError, KeyError, TypeError):
            return None
        if (not isinstance(user, str) or role not in ROLES or not isinstance(exp, int)
                or not isinstance(sid, str)):
            return None
        t = now if now is not None else time.time()
        if exp <= t or sid in self.revoked:
            return None
        return Session(user, role, exp, sid)

    def revoke(self, session: Session, now: float | None = None) -> None:
        """End this login: its tokens (the refreshed ones too) are refused from now on."""
        t = now if now is not None else time.time()
        self.revoked = {k: v for k, v in self.revoked.items() if v > t}  # forget what expired anyway
        self.revoked[session.sid] = t + self.ttl  # the longest a token of it could still live

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())
