"""Load the RFC 4475 / RFC 5118 torture-test corpus kept in ``../shared/conformance`` (never copied here).

Every message comes with its manifest entry (see shared/conformance/README.md for the schema). The
bytes are read exactly as stored; RFC 5118 messages are read in their ``wire/`` form (CRLF, correct
Content-Length), which is what the manifest says a parser must be fed.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
RFCS = ("rfc4475", "rfc5118")
# How many messages each manifest must yield (RFC 4475: 50 files minus the unreferenced test.dat).
EXPECTED_COUNTS = {"rfc4475": 49, "rfc5118": 12}


@dataclass(frozen=True)
class Case:
    rfc: str
    m: dict  # the manifest entry
    data: bytes

    @property
    def name(self) -> str:
        return self.m["name"]

    @property
    def id(self) -> str:
        return f"{self.rfc}/{self.m.get('wire_file', self.m['file'])}"

    @property
    def is_request(self) -> bool:
        return self.m["kind"] == "request"

    @property
    def content_length(self) -> list[str]:
        """Declared Content-Length values of the bytes actually fed (the wire form for RFC 5118)."""
        return self.m.get("wire_content_length", self.m["content_length_declared"])

    @property
    def body_length(self) -> int | None:
        """Octets after the empty line in the bytes fed (None: no empty line, RFC 4475 baddn)."""
        return self.m.get("wire_body_length", self.m.get("body_length"))

    def __repr__(self) -> str:  # keeps pytest's failure output readable
        return f"Case({self.id})"


@cache
def load(rfc: str) -> tuple[Case, ...]:
    base = CORPUS / rfc
    manifest = tomllib.loads((base / "manifest.toml").read_text("utf-8"))
    out = []
    for m in manifest["message"]:
        if m["verdict"] == "unreferenced":
            continue  # test.dat: the RFC gives no verdict
        path = base / m.get("wire_file", m["file"])
        out.append(Case(rfc, m, path.read_bytes()))
    return tuple(out)


def all_cases() -> list[Case]:
    if not CORPUS.is_dir():
        return []
    return [c for rfc in RFCS for c in load(rfc)]


def params(cases: list[Case] | None = None) -> list:
    """``pytest.param``s named after the corpus file, for readable failures."""
    return [pytest.param(c, id=c.id) for c in (all_cases() if cases is None else cases)]


def start_line(data: bytes) -> str:
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "surrogateescape")
