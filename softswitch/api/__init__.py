"""The HTTP API, the agents' WebSocket (screen pop) and the agent desk page; see ``softswitch.api.app``.
``ApiServer`` is imported on first use, so the CLI tools and the spec load without aiohttp."""
from typing import Any

__all__ = ["ApiServer"]


def __getattr__(name: str) -> Any:
    if name == "ApiServer":
        from .app import ApiServer
        return ApiServer
    raise AttributeError(name)
