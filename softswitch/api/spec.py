"""The API's OpenAPI 3 document, built here once and used three ways: served at ``/openapi.json``
(and ``/openapi.yaml``), written to ``docs/openapi.json`` (a test keeps the two equal), and used by the
server itself to check every request (``softswitch.api.validate``): the schemas a client reads are
the ones its requests are held to, unknown fields and query parameters included.

Each operation's ``operationId`` names its handler in ``softswitch.api.app``; ``x-role: supervisor``
marks what agents may not call.
"""
from __future__ import annotations

import copy
from typing import Any

VERSION = "1.0.0"

_STR = {"type": "string"}


def s(max_len: int = 200, **kw: Any) -> dict:
    return {"type": "string", "maxLength": max_len, **kw}


def ns(max_len: int = 200, **kw: Any) -> dict:
    return {"type": "string", "maxLength": max_len, "nullable": True, **kw}


def num(**kw: Any) -> dict:
    return {"type": "number", **kw}


def integer(**kw: Any) -> dict:
    return {"type": "integer", **kw}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict, required: tuple[str, ...] = (), extra: bool = False, **kw: Any) -> dict:
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": extra, **kw}
    if required:
        out["required"] = list(required)
    return out


def arr(items: dict, **kw: Any) -> dict:
    return {"type": "array", "items": items, **kw}


NUMBER = s(40, pattern=r"^\s*\+?[0-9][0-9 ()./-]{0,60}$", description="a phone number (normalised: digits, optional '+')")
EXTENSION = s(15, pattern=r"^\+?[0-9]{2,15}$")
TIME = num(minimum=0, maximum=1e11, description="seconds since the epoch")
ORDER_KINDS = ["pickup", "delivery", "repair", "complaint", "consultation", "appointment"]
ORDER_STATUSES = ["open", "assigned", "in_progress", "resolved", "closed"]
DISPOSITIONS = ["answered", "abandoned", "voicemail", "busy", "no_answer", "failed", "transferred", "overflow",
                "blocked", "timeout", "no_agents"]
LIMIT = {"name": "limit", "in": "query", "schema": integer(minimum=1, maximum=1000, default=50)}
AFTER = {"name": "after", "in": "query", "description": "the `next` cursor of the previous page",
         "schema": s(2000, pattern=r"^[A-Za-z0-9_-]+$")}

SCHEMAS: dict[str, dict] = {
    "Error": obj({"error": _STR, "field": _STR, "status": integer()}, ("error", "status"), extra=True),
    "Login": obj({"user": s(200, minLength=1), "password": s(1024)}, ("user", "password")),
    "Session": obj({"user": _STR, "role": {"type": "string", "enum": ["agent", "supervisor", "admin"]}, "expires": num(),
                    "token": _STR, "agent": {"nullable": True, **ref("AgentLive")}}, ("user", "role", "expires"),
                   extra=True),
    "AgentLive": obj({"id": _STR, "name": _STR, "extension": {"type": "string", "nullable": True},
                      "state": _STR, "reason": _STR, "call": {"type": "string", "nullable": True},
                      "skills": {"type": "object", "additionalProperties": True}}, ("id", "state"), extra=True),
    "AgentAction": obj({
        "action": {"type": "string", "enum": ["login", "ready", "not_ready", "logout", "wrapup_end"]},
        "reason": s(200), "extension": EXTENSION,
        "pin": s(12, pattern=r"^[0-9]{4,12}$", description="the agent's PIN, to log in at a phone not its own")},
        ("action",)),
    "AgentState": obj({"id": integer(), "agent": _STR, "state": _STR, "reason": _STR, "started_at": num(),
                       "ended_at": num(nullable=True)}, extra=True),
    "LiveCall": obj({"id": _STR, "caller": _STR, "callee": _STR, "state": _STR,
                     "queue": {"type": "string", "nullable": True}, "agent": _STR, "since": num(),
                     "answered": num(nullable=True), "on_hold": {"type": "boolean"}, "recording": {"type": "boolean"},
                     "context": {"type": "object", "additionalProperties": True}}, ("id",), extra=True),
    "Hold": obj({"on": {"type": "boolean"}}, ("on",)),
    "Transfer": obj({"target": s(32, pattern=r"^\+?[0-9*#]{1,32}$",
                                 description="an extension, a queue number or an IVR number")}, ("target",)),
    "Originate": obj({
        "from": {**EXTENSION, "description": "the extension rung first (A); an agent may only give her own"},
        "to": {**EXTENSION, "description": "the number rung when A answers (B)"},
        "caller_id": {**EXTENSION, "description": "the number A's phone shows (default: `to`)"},
        "queue": s(64, description="the call is made for this queue: an external `to` is shown the queue's "
                                   "`caller_id` (default: `[outbound] caller_id`)")},
        ("from", "to")),
    "Originated": obj({"id": _STR}, ("id",), extra=True),
    "Empty": obj({}),
    "Health": obj({"status": {"type": "string", "enum": ["alive"]}, "uptime_s": num()}, ("status",), extra=True),
    "Ready": obj({"ready": {"type": "boolean"}, "reasons": arr(_STR, description="why it is not ready"),
                  "checks": {"type": "object", "additionalProperties": True,
                             "description": "listening, store, media_ports_free, media_tick"}},
                 ("ready",), extra=True),
    "Context": {"type": "object", "maxProperties": 20, "additionalProperties": s(2000),
                "description": "notes that travel with the call (shown to the next agent after a transfer); "
                               "names: a letter or '_', then letters, digits, '_' (at most 40)"},
    "Ok": obj({"ok": {"type": "boolean"}}, ("ok",), extra=True),
    "Overload": obj({"mode": {"type": "string", "enum": ["normal", "overloaded", "disabled"]},
                     "load": num(description="share of the last second the SIP edge was busy (0..1)"),
                     "lag_ms": num(description="event-loop lag at the last probe"),
                     "delay_ms": num(description="how long the oldest waiting request has waited"),
                     "backlog": integer(description="SIP datagrams read and waiting"),
                     "offered": integer(), "served": integer(),
                     "shed": {"type": "object", "additionalProperties": integer(),
                              "description": "datagrams not served, by reason (rejected, backlog, retransmission, "
                                             "stale, refused_dialog)"},
                     "refused_by_rank": {"type": "object", "additionalProperties": integer(),
                                         "description": "503s by rank (urgent, centre, answer, refresh, new)"},
                     "write_delay_ms": num(description="how long the oldest registration being committed "
                                                       "has waited (past 0.4 x T1 new REGISTERs are held back)"),
                     "held_for_store": integer(description="times new REGISTERs were held back for the store"),
                     "overloads": integer(description="times the switch went into overload"),
                     "overloaded_for_s": num(nullable=True)}, ("mode",), extra=True),
    "Customer": obj({"id": integer(nullable=True), "name": _STR, "address": _STR, "region": {"type": "string", "nullable": True},
                     "vip_level": integer(), "notes": _STR, "created_at": num(nullable=True),
                     "updated_at": num(nullable=True), "phones": arr(_STR)}, ("id", "name", "phones"), extra=True),
    "CustomerNew": obj({"name": s(200), "address": s(1000), "region": ns(200), "vip_level": integer(minimum=0, maximum=9),
                        "notes": s(10000), "phones": arr(NUMBER, maxItems=20),
                        "labels": {"type": "object", "maxProperties": 20, "additionalProperties": s(40)}}),
    "CustomerChange": obj({"name": s(200), "address": s(1000), "region": ns(200),
                           "vip_level": integer(minimum=0, maximum=9), "notes": s(10000)}, minProperties=1),
    "Phone": obj({"number": NUMBER, "label": s(40)}, ("number",)),
    "CustomerPage": obj({"items": arr(ref("Customer")), "next": {"type": "string", "nullable": True}}, ("items", "next")),
    "WorkOrder": obj({"id": integer(), "kind": _STR, "status": _STR, "customer_id": integer(),
                      "call_id": integer(nullable=True), "region": {"type": "string", "nullable": True},
                      "service_point": {"type": "string", "nullable": True},
                      "assignee": {"type": "string", "nullable": True}, "summary": _STR, "details": _STR,
                      "due_at": num(nullable=True), "escalation": integer(), "created_by": _STR,
                      "created_at": num(), "updated_at": num(), "closed_at": num(nullable=True)},
                     ("id", "kind", "status", "customer_id"), extra=True),
    "WorkOrderNew": obj({"kind": {"type": "string", "enum": ORDER_KINDS}, "customer_id": integer(minimum=1, maximum=2**62),
                         "call_id": integer(minimum=1, maximum=2**62, nullable=True), "region": ns(200),
                         "summary": s(1000), "details": s(10000), "due_at": {**TIME, "nullable": True}},
                        ("kind", "customer_id")),
    "WorkOrderChange": obj({"summary": s(1000), "details": s(10000), "due_at": {**TIME, "nullable": True}},
                           minProperties=1),
    "StatusChange": obj({"status": {"type": "string", "enum": ORDER_STATUSES}, "note": s(10000),
                         "expect": {"type": "string", "enum": ORDER_STATUSES}}, ("status",)),
    "Assign": obj({"assignee": s(200, minLength=1), "note": s(10000)}, ("assignee",)),
    "Escalate": obj({"note": s(10000), "level": integer(minimum=1, maximum=5)}),
    "Note": obj({"note": s(10000, minLength=1)}, ("note",)),
    "OrderEvent": obj({"id": integer(), "order_id": integer(), "at": num(), "actor": _STR, "action": _STR,
                       "from_status": {"type": "string", "nullable": True},
                       "to_status": {"type": "string", "nullable": True}, "escalation": integer(nullable=True),
                       "note": _STR}, extra=True),
    "WorkOrderDetail": obj({"order": ref("WorkOrder"), "history": arr(ref("OrderEvent"))}, ("order", "history")),
    "WorkOrderPage": obj({"items": arr(ref("WorkOrder")), "next": {"type": "string", "nullable": True}}, ("items", "next")),
    "CallRecord": obj({"id": integer(), "call_ref": {"type": "string", "nullable": True}, "caller": _STR,
                       "callee": _STR, "queue": {"type": "string", "nullable": True},
                       "agent": {"type": "string", "nullable": True}, "arrived_at": num(),
                       "answered_at": num(nullable=True), "ended_at": num(nullable=True),
                       "talk_s": num(nullable=True), "hold_seconds": num(), "holds": integer(),
                       "disposition": _STR,
                       "recording": {"type": "string", "nullable": True}}, ("id", "caller", "arrived_at"), extra=True),
    "CallRecordPage": obj({"items": arr(ref("CallRecord")), "next": {"type": "string", "nullable": True}}, ("items", "next")),
    "ScreenPop": obj({"number": _STR, "is_new": {"type": "boolean"}, "region": {"type": "string", "nullable": True},
                      "customer": ref("Customer"), "calls": arr(ref("CallRecord")), "orders": arr(ref("WorkOrder")),
                      "warnings": arr({"type": "object"})}, ("number", "is_new", "customer", "calls", "orders"),
                     extra=True),
    "Recording": obj({"id": integer(), "file": _STR, "call_id": integer(nullable=True), "parties": arr(_STR),
                      "started_at": num(), "duration_s": num()}, ("id",), extra=True),
    "Voicemail": obj({"id": integer(), "file": _STR, "caller": _STR, "callback_number": {"type": "string", "nullable": True},
                      "queue": {"type": "string", "nullable": True}, "duration_s": num(), "created_at": num(),
                      "handled_by": {"type": "string", "nullable": True}, "handled_at": num(nullable=True)},
                     ("id",), extra=True),
    "VoicemailPage": obj({"items": arr(ref("Voicemail")), "next": {"type": "string", "nullable": True}}, ("items", "next")),
    "QueueLive": {"type": "object", "additionalProperties": True},
    "TrunkLive": {"type": "object", "additionalProperties": True},
    "QueueReportRow": obj({"period": _STR, "queue": _STR, "offered": integer(), "answered": integer(),
                           "abandoned": integer(), "answered_within": integer(),
                           "service_level_pct": num(nullable=True, description="100 x answered within the threshold "
                                                    "/ (answered + abandoned); docs/reports.md"),
                           "asa_s": num(nullable=True), "aht_s": num(nullable=True, description="(talk + hold + "
                                                                    "wrap-up) / answered"),
                           "timed_out": integer(), "no_agents": integer(),
                           "sl_threshold_s": num(nullable=True, description="the queue's service_level_threshold "
                                                 "(or the sl_threshold_s asked for)")}, extra=True),
}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


ERRORS = {"default": {"description": "an error: 400 bad input (unknown field, wrong type, bad value), 401 not "
                                     "logged in, 403 not allowed for this role, 404 not found, 409 not allowed "
                                     "in the current state, 413 body too large, 429 too many failed logins",
                      **_json(ref("Error"))}}


def op(op_id: str, summary: str, ok: dict | None = None, *, body: str | None = None, params: list | None = None,
       role: str | None = None, public: bool = False, status: str = "200", ok_desc: str = "OK") -> dict:
    out: dict[str, Any] = {"operationId": op_id, "summary": summary,
                           "responses": {status: {"description": ok_desc, **(_json(ok) if ok is not None else {})},
                                         **ERRORS}}
    if body is not None:
        out["requestBody"] = {"required": body != "Empty", **_json(ref(body))}
    if params:
        out["parameters"] = params
    if role:
        out["x-role"] = role
    if public:
        out["security"] = []
    return out


def q(name: str, schema: dict, desc: str = "") -> dict:
    p = {"name": name, "in": "query", "schema": schema}
    if desc:
        p["description"] = desc
    return p


def path_id(name: str = "id") -> dict:
    return {"name": name, "in": "path", "required": True, "schema": integer(minimum=1, maximum=2**62)}


CALL_ID = {"name": "call", "in": "path", "required": True, "schema": s(128, pattern=r"^[A-Za-z0-9._@:+-]{1,128}$")}
AGENT_ID = {"name": "agent", "in": "path", "required": True, "schema": s(64, pattern=r"^[A-Za-z0-9._-]{1,64}$")}

PATHS: dict[str, dict] = {
    "/metrics": {"get": {**op("metrics", "Prometheus metrics (text format 0.0.4; the list is in the README's "
                                         "Operations section). No login; `[metrics] allow` limits the source "
                                         "addresses (403 otherwise); 404 when `[metrics] enabled = false`",
                              None, public=True),
                         "responses": {"200": {"description": "the metrics", "content": {
                             "text/plain": {"schema": {"type": "string"}}}}, **ERRORS}}},
    "/health": {"get": op("health", "Liveness: 200 as long as the process runs and its event loop answers",
                          ref("Health"), public=True)},
    "/ready": {"get": {**op("ready", "Readiness: 200 when the SIP sockets listen, the store answers and RTP "
                                     "ports are free (and the media tick runs); 503 with the reasons otherwise",
                            ref("Ready"), public=True),
                       "responses": {"200": {"description": "ready", **_json(ref("Ready"))},
                                     "503": {"description": "not ready; `reasons` says why", **_json(ref("Ready"))},
                                     **ERRORS}}},
    "/api/session": {
        "post": op("login", "Log in (agent id or supervisor id + password); sets the session cookie and returns a "
                            "bearer token", ref("Session"), body="Login", public=True),
        "delete": op("logout", "End the session (clears the cookie)", ref("Ok")),
    },
    "/api/me": {"get": op("me", "Who is logged in, and the agent's live state", ref("Session"))},
    "/api/agents": {"get": op("list_agents", "Live agent states (an agent sees only its own)", arr(ref("AgentLive")))},
    "/api/agents/{agent}/state": {
        "post": op("agent_action", "Log an agent in or out, make it ready / not ready, end its wrap-up",
                   ref("AgentLive"), body="AgentAction", params=[AGENT_ID])},
    "/api/agents/{agent}/history": {
        "get": op("agent_history", "An agent's state history", arr(ref("AgentState")),
                  params=[AGENT_ID, q("since", TIME), q("until", TIME)])},
    "/api/overload": {"get": op("overload", "Overload control: normal or shedding, load, event-loop lag, queueing "
                                            "delay, backlog, and what was shed by reason ([overload])",
                                ref("Overload"), role="supervisor")},
    "/api/trunks": {"get": op("list_trunks", "SIP trunks: settings (never the password), OPTIONS keep-alive "
                                             "health, registration state, channels in use", arr(ref("TrunkLive")),
                              role="supervisor")},
    "/api/queues": {"get": op("list_queues", "Live queue state (waiting callers, agents by state, counters)",
                              arr(ref("QueueLive")))},
    "/api/calls": {
        "get": op("list_calls", "Calls in progress (an agent sees only calls offered to it)", arr(ref("LiveCall"))),
        "post": op("originate", "Click-to-dial: ring extension `from` (A); when A answers, A hears music while "
                                "`to` (B) rings, and B answering connects them. An agent may only ring her own "
                                "extension. 409 when A is not registered", ref("Originated"), body="Originate",
                   status="201", ok_desc="A is ringing; `id` is the new call's id"),
    },
    "/api/calls/{call}/hold": {"post": op("call_hold", "Hold (music to the caller) or resume", ref("Ok"),
                                          body="Hold", params=[CALL_ID])},
    "/api/calls/{call}/transfer": {"post": op("call_transfer", "Blind transfer of the caller to an extension or a "
                                                               "queue number", ref("Ok"), body="Transfer",
                                              params=[CALL_ID])},
    "/api/calls/{call}/hangup": {"post": op("call_hangup", "Hang up the call", ref("Ok"), body="Empty",
                                            params=[CALL_ID])},
    "/api/calls/{call}/recording": {"post": op("call_recording", "Start or stop recording", ref("Ok"), body="Hold",
                                               params=[CALL_ID])},
    "/api/calls/{call}/context": {"post": op("call_context", "Attach notes that travel with the call",
                                             ref("LiveCall"), body="Context", params=[CALL_ID])},
    "/api/screen-pop": {"get": op("screen_pop", "What an agent's screen shows for a caller number", ref("ScreenPop"),
                                  params=[{**q("number", NUMBER), "required": True}])},
    "/api/customers": {
        "get": op("search_customers", "Customers by name prefix or number prefix (exactly one)", ref("CustomerPage"),
                  params=[q("name", s(200)), q("number", s(40, pattern=r"^\+?[0-9 ()./-]{0,40}$")), LIMIT, AFTER]),
        "post": op("create_customer", "Create a customer", ref("Customer"), body="CustomerNew", status="201",
                   ok_desc="created"),
    },
    "/api/customers/{id}": {
        "get": op("get_customer", "One customer", ref("Customer"), params=[path_id()]),
        "patch": op("update_customer", "Change a customer", ref("Customer"), body="CustomerChange", params=[path_id()]),
    },
    "/api/customers/{id}/phones": {
        "post": op("add_phone", "Add a number to a customer", ref("Customer"), body="Phone", params=[path_id()])},
    "/api/customers/{id}/phones/{number}": {
        "delete": op("remove_phone", "Remove a number from a customer", ref("Customer"),
                     params=[path_id(), {"name": "number", "in": "path", "required": True, "schema": NUMBER}])},
    "/api/orders": {
        "get": op("search_orders", "Work orders, newest first", ref("WorkOrderPage"),
                  params=[q("status", {"type": "string", "enum": ORDER_STATUSES}),
                          q("kind", {"type": "string", "enum": ORDER_KINDS}), q("region", s(200)),
                          q("customer_id", integer(minimum=1, maximum=2**62)), q("assignee", s(200)), LIMIT, AFTER]),
        "post": op("create_order", "Open a work order (or a complaint)", ref("WorkOrder"), body="WorkOrderNew",
                   status="201", ok_desc="created"),
    },
    "/api/orders/{id}": {
        "get": op("get_order", "A work order and its history", ref("WorkOrderDetail"), params=[path_id()]),
        "patch": op("update_order", "Change summary, details, due time", ref("WorkOrder"), body="WorkOrderChange",
                    params=[path_id()]),
    },
    "/api/orders/{id}/status": {"post": op("order_status", "Move a work order along its workflow", ref("WorkOrder"),
                                           body="StatusChange", params=[path_id()])},
    "/api/orders/{id}/assign": {"post": op("order_assign", "Assign a work order", ref("WorkOrder"), body="Assign",
                                           params=[path_id()])},
    "/api/orders/{id}/escalate": {"post": op("order_escalate", "Escalate a complaint", ref("WorkOrder"),
                                             body="Escalate", params=[path_id()])},
    "/api/orders/{id}/notes": {"post": op("order_note", "Add a note to a work order's history", ref("Ok"),
                                          body="Note", params=[path_id()])},
    "/api/records": {"get": op("search_records", "Call records, newest first (an agent sees only its own)",
                               ref("CallRecordPage"),
                               params=[q("agent", s(200)), q("caller", NUMBER), q("queue", s(200)), q("since", TIME),
                                       q("until", TIME), q("min_talk_s", num(minimum=0, maximum=1e9)),
                                       q("max_talk_s", num(minimum=0, maximum=1e9)),
                                       q("disposition", {"type": "string", "enum": DISPOSITIONS}), LIMIT, AFTER])},
    "/api/records/{id}": {"get": op("get_record", "One call record", ref("CallRecord"), params=[path_id()])},
    "/api/recordings": {"get": op("search_recordings", "Recordings, newest first (an agent sees only its own)",
                                  arr(ref("Recording")),
                                  params=[q("call_id", integer(minimum=1, maximum=2**62)), q("agent", s(200)),
                                          q("caller", NUMBER), q("since", TIME), q("until", TIME),
                                          q("min_duration_s", num(minimum=0, maximum=1e9)),
                                          q("max_duration_s", num(minimum=0, maximum=1e9)), LIMIT])},
    "/api/recordings/{id}/audio": {"get": {**op("recording_audio", "The recording (WAV), streamed", None,
                                                params=[path_id()]),
                                           "responses": {"200": {"description": "the WAV file", "content": {
                                               "audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                                               **ERRORS}}},
    "/api/voicemails": {"get": op("list_voicemails", "Voicemails nobody handled yet, oldest first",
                                  ref("VoicemailPage"), params=[LIMIT, AFTER])},
    "/api/voicemails/{id}/handled": {"post": op("voicemail_handled", "Mark a voicemail handled (called back)",
                                                ref("Voicemail"), body="Empty", params=[path_id()])},
    "/api/reports/queues": {"get": op("queue_report", "Per-queue statistics per day, week or month",
                                      arr(ref("QueueReportRow")), role="supervisor",
                                      params=[{**q("since", TIME), "required": True}, {**q("until", TIME), "required": True},
                                              q("period", {"type": "string", "enum": ["day", "week", "month"]}),
                                              q("queue", s(200)),
                                              q("sl_threshold_s", num(minimum=0, maximum=3600),
                                                "one service-level threshold for every queue; by default each "
                                                "queue's configured service_level_threshold")])},
}

# the supervisor's floor (softswitch.api.floor): wallboard, monitoring, caller lists, config reload; reports
REPORT_SECTIONS = ("queues", "agents", "campaigns", "orders", "order_regions", "overdue")   # store.reports.SECTIONS
REPORT_CHARTS = ("calls", "service_level", "handle_time", "satisfaction", "agent_states", "work_orders")
REPORT_RANGE = [{**q("since", TIME), "required": True}, {**q("until", TIME), "required": True},
                q("period", {"type": "string", "enum": ["day", "week", "month"]})]
LIST_NAME = {"name": "list", "in": "path", "required": True, "schema": {"type": "string", "enum": ["block", "warn"]}}
SCHEMAS.update({
    "Floor": obj({"type": _STR, "at": num(), "queues": arr({"type": "object", "additionalProperties": True}),
                  "agents": arr({"type": "object", "additionalProperties": True}),
                  "alarms": arr(ref("Alarm"))}, ("queues", "agents", "alarms"), extra=True),
    "Alarm": obj({"kind": _STR, "subject": _STR, "level": {"type": "string", "enum": ["warning", "alarm"]},
                  "message": _STR, "since": num()}, ("kind", "subject", "level", "message"), extra=True),
    "Monitor": obj({"agent": s(64, pattern=r"^[0-9]{1,20}$"),
                    "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]},
                    "extension": {**EXTENSION, "description": "the supervisor's phone (in [acd] supervisors)"}},
                   ("agent", "mode", "extension")),
    "ListEntry": obj({"id": integer(), "list": _STR, "pattern": _STR, "reason": _STR, "added_by": _STR,
                      "added_at": num(), "expires_at": num(nullable=True)}, ("id", "pattern"), extra=True),
    "ListEntryNew": obj({"pattern": s(41, pattern=r"^\+?[0-9]{1,40}\*?$",
                                      description="a number, or a prefix ending in '*'"),
                         "reason": s(500), "expires_at": {**TIME, "nullable": True}}, ("pattern",)),
    "Report": obj({"period": _STR, "since": num(), "until": num(), "utc_offset_s": integer(),
                   "queues": arr({"type": "object", "additionalProperties": True}),
                   "agents": arr({"type": "object", "additionalProperties": True}),
                   "campaigns": arr({"type": "object", "additionalProperties": True}),
                   "orders": arr({"type": "object", "additionalProperties": True}),
                   "order_regions": arr({"type": "object", "additionalProperties": True}),
                   "overdue": arr({"type": "object", "additionalProperties": True})},
                  ("period", "queues", "agents", "campaigns", "orders", "overdue"), extra=True),
    "ReloadResult": obj({"ok": {"type": "boolean"}, "error": _STR, "changed": arr(_STR),
                         "restart_needed": arr(_STR), "agents_added": arr(_STR), "agents_removed": arr(_STR),
                         "queues_changed": arr(_STR)}, ("ok",), extra=True),
})
PATHS.update({
    "/api/wallboard": {"get": op("wallboard", "The floor now: per queue today's figures, agents with time in state, "
                                              "alarms (the /wallboard page is pushed the same over "
                                              "/api/wallboard/ws)", ref("Floor"), role="supervisor")},
    "/api/monitor": {"post": op("monitor", "Listen to, whisper to or barge in on an agent's call: the switch rings "
                                           "the supervisor's extension and joins her to the call when she answers",
                                ref("Originated"), body="Monitor", role="supervisor", status="201")},
    "/api/lists/{list}": {
        "get": op("list_entries", "The block or warning list (unexpired entries)", arr(ref("ListEntry")),
                  params=[LIST_NAME]),
        "post": op("add_list_entry", "Add a number or prefix to the block or warning list (in force for the next "
                                     "call)", ref("ListEntry"), body="ListEntryNew", params=[LIST_NAME], status="201")},
    "/api/lists/entries/{id}": {"delete": op("remove_list_entry", "Remove a list entry (in force for the next call)",
                                             ref("Ok"), params=[path_id()])},
    "/api/reports": {"get": op("report", "The call centre's report over a range of days: per queue, agent and "
                                         "campaign per day/week/month (offered, answered, abandoned and their wait, "
                                         "service level, ASA, AHT = talk + hold + wrap-up with talk (without "
                                         "hold), hold and its average apart, transfers, overflow, "
                                         "voicemails, dispositions, satisfaction, occupancy and state time), work "
                                         "orders by kind/status/region, escalations, overdue orders (docs/reports.md)",
                               ref("Report"), role="supervisor", params=REPORT_RANGE)},
    "/api/reports/export": {"get": {**op("report_export", "The report as CSV (one `section`) or XLSX (a sheet per "
                                                          "section)", None, role="supervisor",
                                         params=REPORT_RANGE + [
                                             q("format", {"type": "string", "enum": ["csv", "xlsx"]}),
                                             q("section", {"type": "string", "enum": list(REPORT_SECTIONS)})]),
                                    "responses": {"200": {"description": "the file", "content": {
                                        "text/csv": {"schema": {"type": "string"}},
                                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                                            "schema": {"type": "string", "format": "binary"}}}}, **ERRORS}}},
    "/api/reports/charts/{chart}": {"get": {**op("report_chart", "A chart of the report (SVG drawn by the server)",
                                                 None, role="supervisor", params=REPORT_RANGE + [
                                                     {"name": "chart", "in": "path", "required": True,
                                                      "schema": {"type": "string", "enum": list(REPORT_CHARTS)}}]),
                                            "responses": {"200": {"description": "the chart", "content": {
                                                "image/svg+xml": {"schema": {"type": "string"}}}}, **ERRORS}}},
    "/api/overdue-orders": {"get": op("overdue_orders", "Work orders past their due time, not resolved or closed, "
                                                        "oldest first, with who they were escalated to",
                                      arr({"type": "object", "additionalProperties": True}))},
    "/api/admin/reload": {"post": op("reload_config", "Re-read config.toml: extensions, agents, skills, queues, IVR "
                                                      "flows, lists change for new calls; calls in progress go on. "
                                                      "A config with an error is refused (422, `error` says file, "
                                                      "key and reason) and the running one stays",
                                     ref("ReloadResult"), body="Empty", role="admin")},
})

# ------------------------------------------------------------------ outbound (docs/outbound.md)
CAMPAIGN = {"name": "campaign", "in": "path", "required": True, "schema": s(64, pattern=r"^[A-Za-z0-9_-]{1,64}$")}
RESULT_CODES = ["completed", "busy", "no_answer", "machine", "wrong_number", "callback", "refused"]
SCHEMAS.update({
    "Campaign": obj({"name": _STR, "mode": _STR, "queue": _STR, "flow": _STR, "source": _STR,
                     "figures": {"type": "object", "additionalProperties": {"type": "number"}}},
                    ("name", "mode", "figures"), extra=True),
    "ContactNew": obj({"number": NUMBER, "name": s(200), "timezone": s(64), "due": TIME, "key": s(200),
                       "data": {"type": "object", "additionalProperties": True}}, ("number",)),
    "ContactsNew": obj({"contacts": arr(ref("ContactNew"), minItems=1, maxItems=100000),
                        "csv": s(20_000_000, description="CSV with a header line naming `number` (and optionally "
                                                         "`name`, `timezone`, `due`, `key`; other columns are data)")}),
    "ContactsAdded": obj({"added": integer(), "figures": {"type": "object", "additionalProperties": True}},
                         ("added",), extra=True),
    "CampaignState": obj({"running": {"type": "boolean"}}, ("running",)),
    "Contact": obj({"id": integer(), "campaign": _STR, "kind": _STR, "queue": _STR, "number": _STR, "name": _STR,
                    "state": _STR, "attempts": integer(), "next_due": num(nullable=True), "last_result": _STR,
                    "audio": {"type": "boolean"}, "data": {"type": "object", "additionalProperties": True},
                    "history": arr({"type": "object", "additionalProperties": True})}, ("id", "state"), extra=True),
    "ResultCode": obj({"result": {"type": "string", "enum": RESULT_CODES},
                       "due": {**TIME, "description": "with `callback`: call again at this time"}}, ("result",)),
    "CallbackNew": obj({"queue": s(64, minLength=1), "number": NUMBER, "name": s(200), "note": s(1000), "due": TIME},
                       ("queue", "number")),
    "Dnc": obj({"number": NUMBER, "add": {"type": "boolean", "default": True}}, ("number",)),
    "Preview": obj({"action": {"type": "string", "enum": ["dial", "skip"]}}, ("action",)),
})
PATHS.update({
    "/api/outbound/campaigns": {"get": op("list_campaigns", "Campaigns (and the built-in `callbacks`) with their live "
                                                            "figures", arr(ref("Campaign")))},
    "/api/outbound/campaigns/{campaign}/contacts": {
        "post": op("add_contacts", "Add contacts to a campaign (JSON list or CSV text); one bad contact refuses "
                                   "them all; a `key` already added is skipped", ref("ContactsAdded"),
                   body="ContactsNew", params=[CAMPAIGN], role="supervisor")},
    "/api/outbound/campaigns/{campaign}/state": {
        "post": op("campaign_state", "Start or stop a campaign", ref("Campaign"), body="CampaignState",
                   params=[CAMPAIGN], role="supervisor")},
    "/api/outbound/contacts/{id}": {"get": op("get_contact", "A contact or callback task, with its attempts",
                                              ref("Contact"), params=[path_id()])},
    "/api/outbound/contacts/{id}/result": {
        "post": op("contact_result", "The agent's result code at wrap-up (decides the retry)", ref("Contact"),
                   body="ResultCode", params=[path_id()])},
    "/api/outbound/contacts/{id}/audio": {"get": {**op("contact_audio", "A voicemail callback's message (WAV)", None,
                                                      params=[path_id()]),
                                                  "responses": {"200": {"description": "the WAV file", "content": {
                                                      "audio/wav": {"schema": {"type": "string", "format": "binary"}}}},
                                                      **ERRORS}}},
    "/api/outbound/callbacks": {
        "get": op("list_callbacks", "Open callback tasks, oldest first", arr(ref("Contact")),
                  params=[q("queue", s(64))]),
        "post": op("request_callback", "A callback request (web form, agent): offered to a free agent of the queue",
                   ref("Contact"), body="CallbackNew", status="201", ok_desc="the task")},
    "/api/outbound/dnc": {"post": op("dnc", "Add a number to (or remove it from) the do-not-call list", ref("Ok"),
                                     body="Dnc", role="supervisor")},
    "/api/calls/{call}/preview": {"post": op("call_preview", "Preview mode: the agent starts the call to the contact "
                                                             "(or skips it)", ref("Ok"), body="Preview",
                                             params=[CALL_ID])},
})

DESCRIPTION = """\
The softswitch's call-centre API. JSON in and out; errors are `{"error": ..., "field": ..., "status": ...}`.

Log in with `POST /api/session` (`{"user": "2001", "password": "..."}`): the answer sets an HttpOnly
`session` cookie and carries the same token for an `Authorization: Bearer` header. Users and their roles
come from `[[api.users]]` in the config. An **agent** (its user id is its ACD agent id) sees and changes
its own state, its own calls, records and recordings, and all customers and work orders; a **supervisor**
sees everything, other agents and reports included; an **admin** is a supervisor who may also reload the
configuration (`POST /api/admin/reload`).

Screen pop: `GET /api/ws` (a WebSocket, same authentication) sends the agent JSON messages:
`{"type": "offer", "call", "caller", "queue", "variables", "context", "pop": ScreenPop}` when a call
is offered to it (before it answers), and `connected`, `agent_state` and `call_end` messages for its calls.
"""

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "softswitch call-centre API", "version": VERSION, "description": DESCRIPTION},
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "cookie": {"type": "apiKey", "in": "cookie", "name": "session"}},
    },
    "security": [{"bearer": []}, {"cookie": []}],
}


def spec() -> dict[str, Any]:
    return copy.deepcopy(SPEC)


if __name__ == "__main__":  # python -m softswitch.api.spec > docs/openapi.json
    import json
    import sys

    json.dump(SPEC, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
