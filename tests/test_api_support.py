"""Helpers for the API tests (no tests here): a switch config with [acd] and [api], and a tiny JSON HTTP client
(urllib, so the tests do not share the switch's HTTP stack)."""
from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from softswitch.api.auth import hash_password

from .conftest import free_port
from .e2e_configs import support_agents
from .conftest import wait_for as wait_for  # (the API tests import it from here)

PASSWORDS = {"2001": "alice-pw-1", "2002": "bob-pw-22", "boss": "boss-pw-333"}


def api_config(api_port: int, agents: bool = True, extra_acd: str = "") -> str:
    """[acd] with queue "support" on 500 (agents 2001 at 1002, 2002 at 1003) and [api] users: 2001 and
    2002 (agents, hashed passwords), boss (supervisor, plain-text password: accepted with a warning)."""
    text = ""
    if agents:
        text += f'''[acd]
{extra_acd}
{support_agents()}[[acd.queues]]
name = "support"
skill = "support"
ring_time = 15
wrapup_time = 1
announce_agent = false
[[acd.dialplan]]
number = "500"
queue = "support"
'''
    text += f'''[api]
listen = "127.0.0.1:{api_port}"
max_body = 8192
[[api.users]]
id = "2001"
password_hash = "{hash_password(PASSWORDS['2001'], iterations=2000)}"
[[api.users]]
id = "2002"
password_hash = "{hash_password(PASSWORDS['2002'], iterations=2000)}"
[[api.users]]
id = "boss"
role = "supervisor"
password = "{PASSWORDS['boss']}"
'''
    return text


class Http:
    def __init__(self, port: int, token: str | None = None):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, Any, dict]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        h = {"Content-Type": "application/json"} if data is not None else {}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, content, hdrs = r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            status, content, hdrs = e.code, e.read(), dict(e.headers)
        ctype = hdrs.get("Content-Type", "")
        return status, (json.loads(content) if "json" in ctype and content else content), hdrs

    def get(self, path: str, **kw) -> tuple[int, Any]:
        return self.request("GET", path, **kw)[:2]

    def post(self, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)[:2]

    def patch(self, path: str, body: Any = None, **kw) -> tuple[int, Any]:
        return self.request("PATCH", path, body, **kw)[:2]

    def delete(self, path: str, **kw) -> tuple[int, Any]:
        return self.request("DELETE", path, **kw)[:2]

    def login(self, user: str, password: str | None = None) -> "Http":
        status, body = Http(int(self.base.rsplit(":", 1)[1])).post(
            "/api/session", {"user": user, "password": password or PASSWORDS[user]})
        assert status == 200, body
        return Http(int(self.base.rsplit(":", 1)[1]), body["token"])


def start_api_switch(switch_factory, extensions: dict[str, str] | None = None, extra: str = "",
                     agents: bool = True, extra_acd: str = ""):
    port = free_port()
    sw = switch_factory(extensions, extra=extra + "\n" + api_config(port, agents, extra_acd))
    sw.wait_log(r"api listening on http://127\.0\.0\.1:\d+")
    sw.api_port = port  # type: ignore[attr-defined]
    return sw, Http(port)


def db_rows(sw, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the switch's database directly (WAL: safe while it runs)."""
    path = Path(sw.config_path).parent / "var" / "softswitch.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()
