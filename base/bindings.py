"""Registration bindings as plain data: what the registrar keeps in memory and the store persists.

They live below both so that the registrar (sans-IO, in ``softswitch``) can build and hold bindings
without importing the store, which brings in SQLite and aiosqlite, and the store can save them
without knowing the registrar.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["Binding", "Change"]


@dataclass
class Binding:
    """One contact registered for an address-of-record (an extension number).

    Its field names are the columns of the store's ``registrations`` table."""

    aor: str
    contact_uri: str
    expires_at: float  # unix time
    call_id: str
    cseq: int
    q: float = 1.0
    received: str | None = None  # "transport:ip:port" the REGISTER came from, e.g. "udp:203.0.113.5:40312"
    user_agent: str = ""
    instance_id: str | None = None  # RFC 5626 +sip.instance
    path: str | None = None  # RFC 3327 Path header value
    updated_at: float = 0.0


# ("put", Binding) upserts; ("del", (aor, contact_uri)) deletes one contact; ("del_aor", (aor, "")) all of an aor
Change = tuple[str, Union[Binding, tuple[str, str]]]
