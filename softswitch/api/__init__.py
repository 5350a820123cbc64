"""The HTTP API, the agents' WebSocket (screen pop) and the agent desk page; see ``softswitch.api.app``."""
from .app import ApiServer

__all__ = ["ApiServer"]
