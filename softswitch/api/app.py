"""The HTTP API, the agents' WebSocket and the agent desk, served by the switch process (aiohttp on the
switch's event loop).

Routes come from the OpenAPI document (``softswitch.api.spec``): each operation's ``operationId``
is a method ``op_<id>`` here, and its parameters and body are checked against the document before
the method runs (``softswitch.api.validate``). Call control goes through ``softswitch.control.Control``;
customers, work orders, call records and the rest through ``store.crm.CallCentre``.

The switch's event stream feeds ``ApiServer.on_event``: an offer to an agent sends that agent's
WebSocket(s) the screen pop; call ends and agent states reach the desk. (Call records, agent state
history and voicemails are written by the switch's records service, ``softswitch.records``, with or
without the API.)
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import WSMsgType, web

from acd.identity import WRONG_PIN, login_refusal
from store.crm import CallCentre, Customer, ScreenPop
from store.keyfile import derive
from store.validation import NotFoundError, TransitionError, ValidationError

from ..browserphone.service import BrowserPhones
from .outbound import OutboundOps
from ..control import Control
from . import spec as spec_mod
from .floor import FloorApi
from .orders import OrdersApi
from .reports import ReportsApi
from .ops import Ops
from .auth import SUPERVISING, Session, TokenSigner, check_password
from .context import Ctx, _dumps, _plain, error, reply
from .throttle import LoginThrottle
from .validate import ApiError, check, parse_path, parse_query

log = logging.getLogger("softswitch.api")

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_FILES = {"desk.html": "text/html", "desk.js": "text/javascript", "desk.css": "text/css",
                "wallboard.html": "text/html", "wallboard.js": "text/javascript", "wallboard.css": "text/css",
                "reports.html": "text/html", "reports.js": "text/javascript",
                "orders.html": "text/html", "orders.js": "text/javascript",
                "phone.js": "text/javascript", "login.js": "text/javascript"}   # login.js: every page's login
COOKIE = "session"
CONTEXT_KEY = __import__("re").compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
ONE_TIME_ITERATIONS = 1_000  # the first-admin password's hash (``ApiServer._first_admin``)
_DUMMY_HASH = "pbkdf2_sha256$200000$MDEyMzQ1Njc4OWFiY2RlZg$" + "A" * 43  # costs what a real check costs


class _QuietBadRequests(logging.Filter):
    """aiohttp logs each malformed HTTP request (a scanner, a fuzzer) at ERROR with a traceback; it is
    the client's fault: one INFO line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in ("BadHttpMessage", "BadStatusLine", "LineTooLong",
                                                       "InvalidHeader", "BadHttpMethod", "InvalidURLError",
                                                       "TransferEncodingError", "ContentLengthError"):
            record.msg = f"{record.getMessage()}: {str(exc).splitlines()[0][:200]}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


_filter = _QuietBadRequests()
for _name in ("aiohttp.server", "aiohttp.web", "aiohttp.access"):
    if _filter not in logging.getLogger(_name).filters:
        logging.getLogger(_name).addFilter(_filter)


def _public_file(path: Any, base: Path | None) -> Any:
    """A stored file's name as the API shows it: relative to its directory (voicemail, recordings), never
    the absolute path (it tells an outsider where and as whom the switch runs)."""
    if not isinstance(path, str) or not path:
        return path
    p = Path(path)
    if base is not None and p.is_absolute():
        try:
            return str(p.relative_to(base))
        except ValueError:
            pass
        try:
            return str(p.resolve().relative_to(base.resolve()))
        except (ValueError, OSError):
            pass
    return p.name if p.is_absolute() else path


def pop_json(pop: ScreenPop) -> dict:
    return {"number": pop.number, "is_new": pop.is_new, "region": pop.customer.region,
            "customer": _plain(pop.customer), "calls": _plain(pop.calls), "orders": _plain(pop.orders),
            "warnings": _plain(pop.warnings)}


class ApiServer(FloorApi, ReportsApi, OrdersApi, OutboundOps):
    def __init__(self, server: Any):
        self.server = server
        self.settings = server.config.api
        self.control = Control(server)
        self.centre: CallCentre | None = None
        self.users = {u.id: u for u in self.settings.users}
        # [api] secret, else a key derived from the switch's key file: sessions outlive a restart
        key = getattr(server, "key", b"")
        secret = (self.settings.secret.encode() if self.settings.secret
                  else derive(key, "api-session") if key else os.urandom(32))
        revoked = getattr(server, "security_state", {}).get("revoked", {})  # logouts of the last run stay final
        self.signer = TokenSigner(secret, self.settings.session_ttl, revoked)
        self.spec = spec_mod.spec()
        self.schemas = self.spec["components"]["schemas"]
        self.sockets: dict[str, set[web.WebSocketResponse]] = {}   # user id -> open WebSockets
        self.ws_session: dict[web.WebSocketResponse, str] = {}       # open WebSocket -> its session id
        self.offered: dict[str, set[str]] = {}                     # call id -> agents it was offered to
        self.throttle = LoginThrottle()  # per source address, back-off (softswitch.api.throttle)
        self._proxies = [ipaddress.ip_network(n, strict=False) for n in self.settings.trusted_proxies]
        self.tasks: set[asyncio.Task] = set()
        self._unsubscribe: Callable[[], None] | None = None
        self._runner: web.AppRunner | None = None
        self.app = self._build_app()
        self.port = 0
        self.ops = Ops(server)   # /metrics, /health, /ready (softswitch.api.ops)
        self._floor_init()       # the wallboard, lists, reload (softswitch.api.floor)
        self.phones = BrowserPhones(server, self.control)   # the desk's browser phones (WebRTC)

    # --------------------------------------------------------------------------- lifecycle
    def _build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body, middlewares=[self._errors])
        app.on_response_prepare.append(_server_header)
        for path, methods in self.spec["paths"].items():
            for method, op in methods.items():
                app.router.add_route(method.upper(), path, self._operation(op))
        app.router.add_get("/openapi.json", self._openapi_json)
        app.router.add_get("/openapi.yaml", self._openapi_yaml)
        app.router.add_get("/api/ws", self._ws)
        app.router.add_get("/", self._desk)
        app.router.add_get("/desk", self._desk)
        app.router.add_get("/static/{name}", self._static)
        self._floor_routes(app)
        self._reports_routes(app)
        self._orders_routes(app)
        return app

    async def start(self) -> None:
        assert self.server.store is not None
        self.centre = self.server.centre  # owned by the switch (records are written without the API too)
        for u in self.settings.users:
            if u.password:
                log.warning("api: user %s has a plain-text password in the config; store password_hash instead "
                            "(softswitch hash-password)", u.id)
        agent_ids = {a["id"] for a in self.control.agents()}
        for u in self.settings.users:
            if u.role == "agent" and u.id not in agent_ids:
                log.warning("api: user %s has role agent but is not an [[acd.agents]] id", u.id)
        try:   # before the first wallboard connects: its first message has the whole day
            await self._floor_seed()
        except Exception:
            log.exception("wallboard: today's calls before the start not read (the figures count from now)")
        host, _, port = self.settings.listen.rpartition(":")
        host = host.strip("[]")
        # long query strings (a 200-character name in percent-encoded UTF-8 is 2,400 bytes) reach the
        # JSON error handling instead of aiohttp's plain-text "line too long"
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, max_line_size=32768,
                                     max_field_size=16384)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, int(port), reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self._unsubscribe = self.control.subscribe(self.on_event)
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        log.info("api listening on http://%s:%d (%d user(s))", host if ":" not in host else f"[{host}]",
                 self.port, len(self.users))
        if not self.users:
            await self._first_admin(host if ":" not in host else f"[{host}]")

    async def _first_admin(self, host: str) -> None:
        """No [[api.users]]: "admin" (role admin: a supervisor who may also reload the config) with a password
        made up for this run and printed to the log, so that the first start of the shipped config leaves a desk one can log in to (like Jenkins' initial
        admin password). A new one at each start until users are configured (``softswitch users add``)."""
        from ..config import ApiUser
        from .auth import hash_password

        password = secrets.token_urlsafe(12)
        # 96 random bits, held only in memory: stretching (DEFAULT_ITERATIONS, ~80 ms of CPU on the start-up
        # path) guards weak chosen passwords against offline guessing and adds nothing here
        digest = hash_password(password, iterations=ONE_TIME_ITERATIONS)
        self.users["admin"] = ApiUser(id="admin", role="admin", password_hash=digest)
        log.warning("api: no [[api.users]] in the config: log in to the desk http://%s:%d/desk as admin with the "
                    "one-time password %s (a new one at each start until users are added: softswitch users add "
                    "ID --role agent|supervisor)", host, self.port, password)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        await self._floor_stop()
        await self.phones.close_all()
        for socks in list(self.sockets.values()):
            for ws in list(socks):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)

    def spawn(self, coro: Awaitable[Any], what: str) -> None:
        async def run() -> None:
            try:
                await coro
            except (ValidationError, ValueError) as e:
                log.warning("api: %s not stored: %s", what, e)
            except Exception:
                log.exception("api: %s failed", what)

        task = asyncio.ensure_future(run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ------------------------------------------------------------------------ plumbing
    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ApiError as e:
            resp = error(e.status, e.message, e.field)
            if e.retry_after is not None:
                resp.headers["Retry-After"] = str(e.retry_after)
            return resp
        except NotFoundError as e:
            return error(404, str(e), e.field)
        except TransitionError as e:
            return error(409, str(e), e.field)
        except ValidationError as e:
            return error(400, str(e), e.field)
        except web.HTTPException as e:
            if e.status < 400:
                raise
            return error(e.status, e.reason if e.status != 413 else
                         f"request body too large (at most {self.settings.max_body} bytes)")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("api: %s %s failed", request.method, request.path)
            return error(500, "internal error (logged)")
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    def client_address(self, request: web.Request) -> str:
        """The client's address for throttling: the peer, or, when the peer is one of ``[api] trusted_proxies``
        (the TLS reverse proxy), the last address it appended to X-Forwarded-For (the one it saw)."""
        peer = request.remote or ""
        if not self._proxies or not peer:
            return peer
        try:
            addr = ipaddress.ip_address(peer)
        except ValueError:
            return peer
        if not any(addr.version == n.version and addr in n for n in self._proxies):
            return peer
        forwarded = request.headers.get("X-Forwarded-For", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer

    def session_of(self, request: web.Request) -> Session:
        token = ""
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, value = auth.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise ApiError(401, "Authorization must be 'Bearer <token>' (POST /api/session gives one)")
            token = value.strip()
        else:
            token = request.cookies.get(COOKIE, "")
        if not token:
            raise ApiError(401, "not logged in (POST /api/session)")
        session = self.signer.verify(token)
        if session is None or session.user not in self.users or self.users[session.user].role != session.role:
            raise ApiError(401, "session expired or invalid; log in again")
        if request.headers.get("Upgrade", "").lower() == "websocket" and not self._origin_allowed(request):
            log.info("api: WebSocket %s for %s from origin %s refused (not %s, not in [api] allowed_origins)",
                     request.path[:60], session.user, (request.headers.get("Origin") or "")[:100],
                     request.headers.get("Host", "")[:100])
            raise ApiError(403, "this origin may not open the WebSocket ([api] allowed_origins)")
        return session

    def _operation(self, op: dict) -> Callable:
        method = getattr(self, "op_" + op["operationId"])
        params = op.get("parameters", [])
        body_spec = op.get("requestBody")
        body_schema = body_spec["content"]["application/json"]["schema"] if body_spec else None
        public = op.get("security") == []
        supervisor_only = op.get("x-role") == "supervisor"
        admin_only = op.get("x-role") == "admin"

        async def handler(request: web.Request) -> web.StreamResponse:
            session = None if public else self.session_of(request)
            if supervisor_only and not session.supervisor:  # type: ignore[union-attr]
                raise ApiError(403, "supervisors only")
            if admin_only and not session.admin:  # type: ignore[union-attr]
                raise ApiError(403, "admins only")
            path = parse_path(params, request.match_info, self.schemas)
            query = parse_query(params, request.query, self.schemas)
            body = None
            if body_schema is not None:
                body = await self._body(request, body_schema, (body_spec or {}).get("required", True))
            elif request.can_read_body and request.content_length:
                raise ApiError(400, "this request takes no body")
            resp = await method(Ctx(request, session, path, query, body))
            if session is not None and op["operationId"] != "logout":
                self._refresh(request, session, resp)
            return resp

        return handler

    def _refresh(self, request: web.Request, session: Session, resp: web.StreamResponse) -> None:
        """A session past half its life gets a new token (same session id) with the answer: a desk in use
        stays logged in, one left alone expires after ``session_ttl``."""
        if session.expires - time.time() > self.signer.ttl / 2 or resp.prepared:
            return
        token, fresh = self.signer.issue(session.user, session.role, sid=session.sid)
        resp.headers["X-Session-Token"] = token
        if not request.headers.get("Authorization"):
            resp.set_cookie(COOKIE, token, max_age=self.settings.session_ttl, httponly=True, samesite="Strict",
                            path="/")

    async def _body(self, request: web.Request, schema: dict, required: bool) -> Any:
        if request.content_length is not None and request.content_length > self.settings.max_body:
            raise ApiError(413, f"request body too large (at most {self.settings.max_body} bytes)")
        raw = await request.read()
        if not raw:
            if required:
                raise ApiError(400, "a JSON body is required")
            return {}
        ctype = request.content_type
        if ctype not in ("application/json", "application/octet-stream") and not ctype.endswith("+json"):
            raise ApiError(415, f"send JSON (Content-Type: application/json), not {ctype[:60]}")
        try:
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise ApiError(400, f"body is not valid JSON: {str(e)[:100]}") from None
        return check(schema, data, "", self.schemas)

    # ------------------------------------------------------------------------ documents
    async def _openapi_json(self, request: web.Request) -> web.Response:
        return web.json_response(self.spec, dumps=lambda o: json.dumps(o, indent=1))

    async def _openapi_yaml(self, request: web.Request) -> web.Response:
        try:
            import yaml
        except ImportError:
            raise ApiError(404, "PyYAML is not installed; use /openapi.json") from None
        return web.Response(text=yaml.safe_dump(self.spec, sort_keys=False, allow_unicode=True),
                            content_type="application/yaml")

    async def _desk(self, request: web.Request) -> web.StreamResponse:
        return self._file("desk.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise ApiError(404, "no such file")
        return self._file(name)

    def _file(self, name: str) -> web.StreamResponse:
        resp = web.FileResponse(STATIC / name, headers={"Content-Type": STATIC_FILES[name]})
        resp.headers["Content-Security-Policy"] = ("default-src 'self'; connect-src 'self' ws: wss:; "
                                                   "img-src 'self' data:; frame-ancestors 'none'")
        return resp

    # ------------------------------------------------------------------------ operations
    async def op_metrics(self, ctx: Ctx) -> web.Response:
        return await self.ops.metrics(ctx.request)

    async def op_health(self, ctx: Ctx) -> web.Response:
        return await self.ops.health(ctx.request)

    async def op_ready(self, ctx: Ctx) -> web.Response:
        return await self.ops.ready(ctx.request)

    # ------------------------------------------------------------------------ sessions
    async def op_login(self, ctx: Ctx) -> web.Response:
        user_id, password = ctx.body["user"], ctx.body["password"]
        now = time.monotonic()
        source = self.client_address(ctx.request)
        wait = self.throttle.wait(source, user_id, now)
        if wait > 0:  # refused without checking: a guesser learns nothing while it waits
            raise ApiError(429, f"too many failed logins from this address; try again in {math.ceil(wait)} s",
                           retry_after=math.ceil(wait))
        user = self.users.get(user_id)
        loop = asyncio.get_running_loop()
        if user is not None and user.password_hash:
            ok = await loop.run_in_executor(None, check_password, password, user.password_hash)
        else:  # plain password, or no such user: spend the same time either way
            await loop.run_in_executor(None, check_password, password, _DUMMY_HASH)
            ok = user is not None and bool(user.password) and _eq(password, user.password)
        if not ok:
            owed = self.throttle.failed(source, user_id, now)
            if owed > 0:
                log.info("api: failed login for %s from %s; that address now waits %d s", user_id[:60], source,
                         math.ceil(owed))
            raise ApiError(401, "wrong user or password")
        token, session = self.signer.issue(user.id, user.role)  # type: ignore[union-attr]
        resp = reply({"user": session.user, "role": session.role, "expires": session.expires, "token": token,
                      "agent": self._agent(session.user)})
        resp.set_cookie(COOKIE, token, max_age=self.settings.session_ttl, httponly=True, samesite="Strict", path="/")
        return resp

    async def op_logout(self, ctx: Ctx) -> web.Response:
        """Revoke the session: its token (and every refreshed one) is refused from now on, its WebSockets close."""
        session = ctx.session
        assert session is not None
        self.signer.revoke(session)
        for ws, sid in list(self.ws_session.items()):
            if sid == session.sid:
                self.spawn(ws.close(), "WebSocket close at logout")
        save = getattr(self.server, "save_security_state", None)
        if save is not None:
            save()  # a logout survives a restart
        resp = reply({"ok": True})
        resp.del_cookie(COOKIE, path="/")
        return resp

    async def op_me(self, ctx: Ctx) -> web.Response:
        s = ctx.session
        assert s is not None
        return reply({"user": s.user, "role": s.role, "expires": s.expires, "agent": self._agent(s.user)})

    # ------------------------------------------------------------------------ agents
    def _agent(self, agent_id: str) -> dict | None:
        return next((a for a in self.control.agents() if a["id"] == agent_id), None)

    def _may_see_agent(self, ctx: Ctx, agent_id: str) -> None:
        if not ctx.supervisor and agent_id != ctx.user:
            raise ApiError(403, "agents may only see and change their own state")

    async def op_list_agents(self, ctx: Ctx) -> web.Response:
        agents = self.control.agents()
        return reply(agents if ctx.supervisor else [a for a in agents if a["id"] == ctx.user])

    async def op_agent_action(self, ctx: Ctx) -> web.Response:
        agent_id = ctx.path["agent"]
        self._may_see_agent(ctx, agent_id)
        if self._agent(agent_id) is None:
            raise ApiError(404, f"no ACD agent {agent_id}", "agent")
        b = ctx.body
        action = b["action"]
        if action == "login":
            extension = b.get("extension") or None
            if not ctx.supervisor:  # the rules a feature-code login follows (acd.identity); supervisors place anyone
                self._check_agent_login(ctx, agent_id, extension, b.get("pin"))
            self.control.agent_login(agent_id, extension)
        elif action == "ready":
            self.control.agent_ready(agent_id)
        elif action == "not_ready":
            self.control.agent_not_ready(agent_id, b.get("reason", ""))
        elif action == "logout":
            self.control.agent_logout(agent_id)
        else:
            self.control.wrapup_end(agent_id)
        return reply(self._agent(agent_id))

    def _check_agent_login(self, ctx: Ctx, agent_id: str, extension: str | None, pin: str | None) -> None:
        """An agent logs itself in only at its own phones, or with its PIN where its config allows: a stolen
        desk password alone does not divert the agent's queue calls and screen pops to another phone."""
        acd = self.server.config.acd
        agent = next((a for a in (acd.agents if acd is not None else []) if a.id == agent_id), None)
        if agent is None:
            return
        source = self.client_address(ctx.request)
        now = time.monotonic()
        key = f"pin:{agent_id}"
        wait = self.throttle.wait(source, key, now)
        if wait > 0:
            raise ApiError(429, f"too many wrong PINs from this address; try again in {math.ceil(wait)} s",
                           retry_after=math.ceil(wait))
        refusal = login_refusal(agent, extension or agent.extension, pin)
        if refusal is None:
            return
        if refusal == WRONG_PIN:
            self.throttle.failed(source, key, now)
        log.info("api: %s may not log agent %s in at %s: %s", ctx.user, agent_id, extension or agent.extension,
                 refusal)
        raise ApiError(403, refusal, "pin" if refusal == WRONG_PIN or "PIN" in refusal else "extension")

    async def op_agent_history(self, ctx: Ctx) -> web.Response:
        agent_id = ctx.path["agent"]
        self._may_see_agent(ctx, agent_id)
        assert self.centre is not None
        return reply(await self.centre.agent_history(agent_id, since=ctx.query.get("since"),
                                                     until=ctx.query.get("until")))

    async def op_list_queues(self, ctx: Ctx) -> web.Response:
        return reply(self.control.queues())

    async def op_overload(self, ctx: Ctx) -> web.Response:
        adm = self.server.overload
        return reply(adm.snapshot(self.server.now()) if adm is not None else {"mode": "disabled"})

    async def op_list_trunks(self, ctx: Ctx) -> web.Response:
        return reply(self.control.trunks())

    # ------------------------------------------------------------------------ live calls
    def _visible(self, ctx: Ctx, call: dict) -> bool:
        return ctx.supervisor or call["agent"] == ctx.user or ctx.user in self.offered.get(call["id"], ())

    def _live_call(self, ctx: Ctx) -> dict:
        call_id = ctx.path["call"]
        call = next((c for c in self.control.calls() if c["id"] == call_id), None)
        # only the agent on the call (or a supervisor) controls it; agents merely offered it do not
        if call is None or not (ctx.supervisor or call["agent"] == ctx.user):
            raise ApiError(404, f"no call {call_id} in progress (that you may control)", "call")
        return call

    async def op_list_calls(self, ctx: Ctx) -> web.Response:
        return reply([c for c in self.control.calls() if self._visible(ctx, c)])

    async def op_originate(self, ctx: Ctx) -> web.Response:
        a, b, caller_id = ctx.body["from"], ctx.body["to"], ctx.body.get("caller_id", "")
        if not ctx.supervisor:
            agent = self._agent(ctx.user)
            if agent is None or agent.get("extension") != a:
                raise ApiError(403, "agents may only originate calls from their own extension", "from")
        queue = ctx.body.get("queue", "")
        if queue and self.control.router.config.acd.queue(queue) is None:
            raise ApiError(400, f"no queue {queue}", "queue")
        call_id = self.control.originate(a, b, caller_id, queue=queue)
        if call_id is None:
            raise ApiError(409, f"extension {a} cannot be rung (not registered, or no media port free)", "from")
        log.info("api: %s originates call %s: %s, then %s", ctx.user, call_id, a, b)
        return reply({"id": call_id}, 201)

    async def op_call_hold(self, ctx: Ctx) -> web.Response:
        call = self._live_call(ctx)
        try:
            self.control.hold(call["id"], ctx.body["on"])
        except ValueError as e:
            raise ApiError(409, str(e)) from None
        return reply({"ok": True})

    async def op_call_transfer(self, ctx: Ctx) -> web.Response:
        call = self._live_call(ctx)
        self.control.transfer(call["id"], ctx.body["target"])
        log.info("api: %s transfers call %s to %s", ctx.user, call["id"], ctx.body["target"])
        return reply({"ok": True})

    async def op_call_hangup(self, ctx: Ctx) -> web.Response:
        call = self._live_call(ctx)
        self.control.hangup(call["id"])
        return reply({"ok": True})

    async def op_call_recording(self, ctx: Ctx) -> web.Response:
        call = self._live_call(ctx)
        on = ctx.body["on"]
        if on and not call["recording"]:
            if not call.get("answered"):
                raise ApiError(409, "the call is not connected to an agent yet")
            self.control.recording(call["id"], True)
        elif not on and call["recording"]:
            self.control.recording(call["id"], False)  # the call record lists every recording of the call
        return reply({"ok": True})

    async def op_call_context(self, ctx: Ctx) -> web.Response:
        call = self._live_call(ctx)
        bad = [k for k in ctx.body if not CONTEXT_KEY.fullmatch(k)]
        if bad:
            raise ApiError(400, f"note name {bad[0][:40]!r}: a letter or '_', then letters, digits, '_' (at most 40)",
                           bad[0][:40])
        if len(set(call["context"]) | set(ctx.body)) > 40:
            raise ApiError(409, "a call carries at most 40 notes")
        self.control.set_context(call["id"], **ctx.body)
        return reply(next(c for c in self.control.calls() if c["id"] == call["id"]))

    # ------------------------------------------------------------------------ customers
    async def op_screen_pop(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(pop_json(await self.centre.screen_pop(ctx.query["number"])))

    async def op_search_customers(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        q = ctx.query
        return reply(await self.centre.search_customers(name_prefix=q.get("name"), number_prefix=q.get("number"),
                                                        limit=q["limit"], after=q.get("after")))

    async def op_create_customer(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        b = dict(ctx.body)
        phones, labels = b.pop("phones", []), b.pop("labels", None)
        return reply(await self.centre.create_customer(phones=phones, labels=labels, **b), 201)

    async def _customer(self, cid: int) -> Customer:
        assert self.centre is not None
        c = await self.centre.get_customer(cid)
        if c is None:
            raise ApiError(404, f"no customer {cid}", "id")
        return c

    async def op_get_customer(self, ctx: Ctx) -> web.Response:
        return reply(await self._customer(ctx.path["id"]))

    async def op_update_customer(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.update_customer(ctx.path["id"], **ctx.body))

    async def op_add_phone(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.add_phone(ctx.path["id"], ctx.body["number"], ctx.body.get("label", "")))

    async def op_remove_phone(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        c = await self._customer(ctx.path["id"])
        n = self.centre.normalise(ctx.path["number"])
        if n not in c.phones:
            raise ApiError(404, f"customer {c.id} has no number {n}", "number")
        await self.centre.remove_phone(n)
        return reply(await self._customer(ctx.path["id"]))

    # ------------------------------------------------------------------------ work orders
    async def op_search_orders(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        q = ctx.query
        return reply(await self.centre.search_orders(status=q.get("status"), kind=q.get("kind"), region=q.get("region"),
                                                     customer_id=q.get("customer_id"), assignee=q.get("assignee"),
                                                     limit=q["limit"], after=q.get("after")))

    async def op_create_order(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.create_order(created_by=ctx.user, **ctx.body), 201)

    async def op_get_order(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        order = await self.centre.get_order(ctx.path["id"])
        if order is None:
            raise ApiError(404, f"no work order {ctx.path['id']}", "id")
        return reply({"order": order, "history": await self.centre.order_history(order.id)})

    async def op_update_order(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.update_order(ctx.path["id"], actor=ctx.user, **ctx.body))

    async def op_order_status(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        b = ctx.body
        return reply(await self.centre.set_status(ctx.path["id"], b["status"], actor=ctx.user, note=b.get("note", ""),
                                                  expect=b.get("expect")))

    async def op_order_assign(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.assign(ctx.path["id"], ctx.body["assignee"], actor=ctx.user,
                                              note=ctx.body.get("note", "")))

    async def op_order_escalate(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.escalate(ctx.path["id"], actor=ctx.user, note=ctx.body.get("note", ""),
                                                level=ctx.body.get("level")))

    async def op_order_note(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        note_id = await self.centre.add_order_note(ctx.path["id"], actor=ctx.user, note=ctx.body["note"])
        return reply({"ok": True, "id": note_id})

    # ------------------------------------------------------------------------ call records
    async def op_search_records(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        q = dict(ctx.query)
        if not ctx.supervisor:
            if q.get("agent", ctx.user) != ctx.user:
                raise ApiError(403, "agents see only their own call records", "agent")
            q["agent"] = ctx.user
        max_talk = q.pop("max_talk_s", None)
        page = await self.centre.search_calls(min_talk_s=q.pop("min_talk_s", None), **q)
        if max_talk is not None:  # filtered within the page: a page may hold fewer items; follow `next`
            page.items = [c for c in page.items if c.talk_s is not None and c.talk_s <= max_talk]
        return reply(page)

    async def op_get_record(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        rec = await self.centre.get_call(ctx.path["id"])
        if rec is None or (not ctx.supervisor and rec.agent != ctx.user):
            raise ApiError(404, f"no call record {ctx.path['id']}", "id")
        return reply(rec)

    async def op_search_recordings(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        q = ctx.query
        agent = q.get("agent")
        if not ctx.supervisor:
            if agent not in (None, ctx.user):
                raise ApiError(403, "agents see only their own recordings", "agent")
            agent = ctx.user
        caller = self.centre.normalise(q["caller"], "caller") if "caller" in q else None
        # the store filters by call and time; parties and duration are filtered here
        scan = 1000 if (agent or caller or "min_duration_s" in q or "max_duration_s" in q) else q["limit"]
        items = await self.centre.recordings(call_id=q.get("call_id"), since=q.get("since"), until=q.get("until"),
                                             limit=scan)
        out = [r for r in items
               if (agent is None or agent in r.parties) and (caller is None or caller in r.parties)
               and r.duration_s >= q.get("min_duration_s", 0) and r.duration_s <= q.get("max_duration_s", 1e18)]
        found = _plain(out[:q["limit"]])
        base = Path(self.server.config.media.recordings_dir)
        for item in found:
            if isinstance(item, dict) and "file" in item:
                item["file"] = _public_file(item["file"], base)
        return reply(found)

    async def op_recording_audio(self, ctx: Ctx) -> web.StreamResponse:
        assert self.centre is not None
        rid = ctx.path["id"]
        row = await self.centre.store.read_sync(
            lambda conn: conn.execute("SELECT file, parties FROM recordings WHERE id = ?", (rid,)).fetchone())
        if row is None or (not ctx.supervisor and ctx.user not in json.loads(row[1] or "[]")):
            raise ApiError(404, f"no recording {rid}", "id")
        path = Path(row[0])
        base = Path(self.server.config.media.recordings_dir).resolve()
        try:
            real = path.resolve()
            real.relative_to(base)
        except (ValueError, OSError):
            raise ApiError(404, f"recording {rid}: file is outside the recordings directory") from None
        if not real.is_file():
            raise ApiError(404, f"recording {rid}: file {path.name} is missing")
        return web.FileResponse(real, headers={"Content-Type": "audio/wav",
                                               "Content-Disposition": f'attachment; filename="{real.name}"'})

    # ------------------------------------------------------------------------ voicemail
    async def op_list_voicemails(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        page = _plain(await self.centre.unhandled_voicemails(limit=ctx.query["limit"], after=ctx.query.get("after")))
        ivr = self.server.config.ivr
        base = Path(ivr.voicemail_dir) if ivr is not None else None
        for item in page.get("items", []):
            item["file"] = _public_file(item.get("file"), base)
        return reply(page)

    async def op_voicemail_handled(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        return reply(await self.centre.handle_voicemail(ctx.path["id"], by=ctx.user))

    async def op_queue_report(self, ctx: Ctx) -> web.Response:
        assert self.centre is not None
        q = ctx.query
        # each queue's own service-level threshold, as the live figures use (docs/reports.md), unless one is asked for
        acd = self.server.config.acd
        thresholds = ({} if "sl_threshold_s" in q or acd is None else
                      {qu.name: float(qu.service_level_threshold) for qu in acd.queues})
        return reply(await self.centre.queue_report(period=q.get("period", "day"), since=q["since"], until=q["until"],
                                                    sl_threshold_s=q.get("sl_threshold_s", 20.0), thresholds=thresholds,
                                                    queue=q.get("queue")))

    # ------------------------------------------------------------------------ WebSocket
    def _origin_allowed(self, request: web.Request) -> bool:
        """A browser names the page that opens a WebSocket in ``Origin``; only the desk's own origin (or one
        listed in ``[api] allowed_origins``) may use the session cookie over it (cross-site WebSocket
        hijacking). No Origin: not a browser, which must present the token itself."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in {o.rstrip("/").lower() for o in self.settings.allowed_origins}:
            return True
        host = (request.headers.get("Host") or "").lower()
        return bool(host) and origin in (f"http://{host}", f"https://{host}")

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        session = self.session_of(request)  # (checks the Origin of a WebSocket upgrade too)
        # (16 KiB: a browser phone's WebRTC offer, with its ICE candidates, is 3-8 KB; everything else is small)
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16384)
        await ws.prepare(request)
        self.ws_session[ws] = session.sid
        socks = self.sockets.setdefault(session.user, set())
        socks.add(ws)
        try:
            await ws.send_str(_dumps({"type": "hello", "protocol": WS_PROTOCOL, "user": session.user,
                                      "role": session.role,
                                      "agent": self._agent(session.user)}))
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.TEXT and msg.data.startswith("{"):
                    await self._phone_message(session.user, ws, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.ws_session.pop(ws, None)
            socks.discard(ws)
            if not socks:
                self.sockets.pop(session.user, None)
            await self.phones.closed(ws)
        return ws

    async def _phone_message(self, user: str, ws: web.WebSocketResponse, text: str) -> None:
        """The desk's browser phone (softswitch.browserphone, docs/browser-phone.md): its signalling."""
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not str(message.get("type", "")).startswith("phone."):
            return

        def send(m: dict) -> None:
            if not ws.closed:
                self.spawn(ws.send_str(_dumps(m)), f"browser phone message to {user}")
        await self.phones.handle(user, ws, message, send)

    def _send(self, users: set[str], message: dict) -> None:
        text = _dumps(message)
        targets = set(users) | {u for u in self.sockets if self.users.get(u) and self.users[u].role in SUPERVISING}
        for u in targets:
            for ws in list(self.sockets.get(u, ())):
                if not ws.closed:
                    self.spawn(ws.send_str(text), f"WebSocket message to {u}")

    # ------------------------------------------------------------------------ switch events
    # What the WebSocket sends of each event (docs/events.md, a stable interface: fields are added, never
    # renamed or removed, within a protocol version); "connected" is sent whole, "offer" adds "pop".
    WS_FIELDS: dict[str, tuple[str, ...]] = {
        "offer": ("type", "call", "agent", "caller", "queue", "variables", "context"),
        "agent_state": ("type", "agent", "state", "reason"),
        "call_end": ("type", "call", "caller", "callee", "queue", "agent", "reason", "disposition", "arrived",
                     "answered", "ended"),
        "amd": ("type", "call", "campaign", "contact", "verdict", "cause", "action", "agent"),
    }

    def on_event(self, ev: dict) -> None:
        """Called on the loop thread for every switch event; never blocks (store writes are tasks)."""
        self._floor_event(ev)
        t = ev.get("type")
        if t == "offer":
            self.offered.setdefault(ev["call"], set()).add(ev["agent"])
            self.spawn(self._offer(ev), f"screen pop for call {ev.get('call')}")
        elif t == "connected":
            self._send({ev["agent"]}, ev)
        elif t == "agent_state":
            self._send({ev["agent"]}, {k: ev.get(k) for k in self.WS_FIELDS["agent_state"]})
        elif t == "amd" and ev.get("agent"):   # the agent on the line sees what the detector heard
            self._send({ev["agent"]}, {k: ev.get(k) for k in self.WS_FIELDS["amd"]})
        elif t == "call_end":  # (its call record is written by the switch's records service)
            agents = self.offered.pop(ev["call"], set()) | ({ev["agent"]} if ev.get("agent") else set())
            self._send(agents, {k: ev.get(k) for k in self.WS_FIELDS["call_end"]})

    async def _offer(self, ev: dict) -> None:
        assert self.centre is not None
        msg = {k: ev.get(k) for k in self.WS_FIELDS["offer"]}
        try:
            msg["pop"] = pop_json(await self.centre.screen_pop(ev.get("caller") or ""))
        except ValidationError:  # anonymous or not a number: no customer to show
            msg["pop"] = None
        self._send({ev["agent"]}, msg)


WS_PROTOCOL = 1   # the WebSocket's message set (docs/events.md); in the hello message


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """No software versions in answers (aiohttp would say "Python/3.11 aiohttp/3.9.1")."""
    response.headers["Server"] = "softswitch"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _eq(a: str, b: str) -> bool:
    import hmac
    return hmac.compare_digest(a.encode(), b.encode())
