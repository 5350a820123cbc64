"""docs/events.md, the event stream's interface, stays in step with the code: every event type of
``softswitch.events`` has a section listing every field of its ``as_dict()``, and the fields marked as sent on
the WebSocket are exactly the ones the API sends."""
from __future__ import annotations

import dataclasses
import re

from softswitch import events
from softswitch.api.app import WS_PROTOCOL, ApiServer

from .conftest import ROOT

DOC = ROOT / "docs" / "events.md"


def sections() -> dict[str, dict[str, bool]]:
    """event type -> {field: sent on the WebSocket?} from the doc's tables."""
    out: dict[str, dict[str, bool]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        m = re.match(r"### `(\w+)`", line)
        if m:
            current = out.setdefault(m.group(1), {})
            continue
        m = re.match(r"\| `(\w+)` \| [^|]+ \|(?: ([^|]+) \|)?", line)
        if m and current is not None:
            current[m.group(1)] = (m.group(2) or "✓").strip().startswith("✓")
    return out


def event_types() -> dict[str, type]:
    return {cls.type: cls for cls in vars(events).values()
            if isinstance(cls, type) and issubclass(cls, events.SwitchEvent) and cls is not events.SwitchEvent}


def test_every_event_and_field_is_documented():
    doc = sections()
    types = event_types()
    assert {"call_end", "offer", "connected", "agent_state", "voicemail"} <= set(types)
    for name, cls in types.items():
        assert name in doc, f"docs/events.md has no section for event {name!r}"
        fields = {f.name for f in dataclasses.fields(cls)} | {"type"}
        if cls is events.CallEnded:
            fields.add("recording")                          # added by CallEnded.as_dict
        missing = fields - set(doc[name])
        assert not missing, f"docs/events.md, {name}: fields not documented: {sorted(missing)}"


def test_websocket_fields_are_the_ones_sent():
    doc = sections()
    for name, sent in ApiServer.WS_FIELDS.items():
        on_ws = {f for f, ws in doc[name].items() if ws}
        assert on_ws - {"pop"} == set(sent), (name, sorted(on_ws), sorted(sent))
    connected = {f.name for f in dataclasses.fields(events.AgentConnected)} | {"type"}
    assert {f for f, ws in doc["connected"].items() if ws} == connected          # sent whole
    for name in ("wrapup_end", "voicemail"):                                   # not sent
        assert not any(doc[name].values()), name
    assert set(doc["hello"]) == {"type", "protocol", "user", "role", "agent"}
    assert f"now **{WS_PROTOCOL}**" in DOC.read_text()


def test_readme_links_the_event_stream():
    assert "docs/events.md" in (ROOT / "README.md").read_text()
