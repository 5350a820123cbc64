"""What an API operation is handed (the request, its session and its parsed path, query and body) and how it
answers (JSON, errors).

Its own module so that the API's parts (floor, reports, orders, outbound) can use them without importing
the server that assembles them (``softswitch.api.app``), which imports them.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from .auth import Session


@dataclasses.dataclass
class Ctx:
    request: web.Request
    session: Session | None
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any

    @property
    def user(self) -> str:
        assert self.session is not None
        return self.session.user

    @property
    def supervisor(self) -> bool:
        return self.session is not None and self.session.supervisor


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


def _dumps(obj: Any) -> str:
    return json.dumps(_plain(obj), ensure_ascii=False, separators=(",", ":"))


def reply(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def error(status: int, message: str, field: str = "") -> web.Response:
    body = {"error": message, "status": status}
    if field:
        body["field"] = field
    return web.json_response(body, status=status, dumps=_dumps)
