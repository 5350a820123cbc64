"""The dialler's edge: its state in the store, its pacing tick, and the API's way in.

``dialler.Dialler`` decides (sans-IO); call control (``apps.outbound.OutboundApp``) places the calls; this
service, on the event loop, joins them:

- one worker takes events in order (the API's requests, ``DiallerInput`` from call control, ticks),
  hands each to the dialler, **commits its ``Save`` through the store's group-commit writer and only then**
  asks call control to make the ``Dial``\\ s: an attempt is durable before the customer's phone rings, so
  after a kill -9 no contact is dialled again inside its retry window;
- every ``[outbound] tick`` seconds it tells the dialler how many agents of each queue are free and not
  yet reserved by a virtual call (the ACD's count less the dialler's calls waiting in that queue);
- at start it loads the dialler's rows and puts held queue callbacks back in line, in their order;
- a voicemail becomes a callback task for the queue whose fallback mailbox it is;
- campaigns with a ``source`` are fed from the store's work orders once a minute;
- campaign figures go to the subscribers (wallboard, desk) as ``events.CampaignFigures``, at most one
  a second per campaign.
"""
from __future__ import annotations

import asyncio
import csv
import functools
import io
import logging
import time
from typing import Any

from dialler import events as de
from dialler.config import CALLBACKS
from dialler.engine import ContactState, Dialler
from dialler.rules import AGENT_CODES, Result
from store.outbound import attempts_of, load_outbound, save_outbound, work_order_contacts

from .events import CampaignFigures, DiallerInput, VoicemailLeft

log = logging.getLogger("softswitch.outbound")

SOURCE_INTERVAL = 60.0
_TICK = object()   # a pacing pass waiting in the worker's queue


class BadRequest(ValueError):
    """An API request the dialler refuses (``field``: which input)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


class DiallerService:
    def __init__(self, server: Any):
        self.server = server
        self.config = server.config.outbound
        self.app = server.core.router.outbound
        self.dialler = Dialler(self.config, queue_caller_id=self.app.queue_number)
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[list[Any]] | None]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._sources: asyncio.Task[None] | None = None
        self._figures_sent: dict[str, float] = {}
        self._figures_due: dict[str, de.FiguresChanged] = {}
        self._figures_timer: asyncio.TimerHandle | None = None
        self._since: dict[str, float] = {}
        self._tick_waiting = False
        self.started = False

    # ------------------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        store = self.server.store
        assert store is not None
        state = await store.read_sync(load_outbound)
        wall = time.time()
        rows = [de.ContactRow(**r) for r in state["contacts"]]
        opened = [de.AttemptRow(a["id"], a["contact"], a["campaign"], a["number"], a["started"], agent=a["agent"],
                                call=a["call"]) for a in state["open_attempts"]]
        self.dialler.dnc.update(state["dnc"])
        actions = self.dialler.load(rows, opened, state["next_attempt"], wall)
        await self._commit(actions)
        held = self.dialler.held()
        if held:
            now = self.server.now()

            def restore() -> None:
                for c in held:
                    self.app.restore_held(c, self.app.queue_caller_id(c.queue), now)
            self._run(restore)
        log.info("dialler: %d contact(s) and callback task(s) loaded, %d interrupted attempt(s) rescheduled, "
                 "%d held callback(s) back in line", len(rows), len(opened), len(held))
        self.server.subscribers.add(self._on_event)
        self._worker = asyncio.ensure_future(self._work())
        self._schedule_tick()
        if any(c.source for c in self.config.campaigns):
            self._sources = asyncio.ensure_future(self._source_loop())
        self.started = True

    async def stop(self) -> None:
        self.server.subscribers.discard(self._on_event)
        for h in (self._tick, self._figures_timer):
            if h is not None:
                h.cancel()
        for t in (self._sources, self._worker):
            if t is not None:
                t.cancel()
                try:
                    await t
                except (asyncio.CancelledError, Exception):
                    pass
        self.started = False

    # ---------------------------------------------------------------------------- input
    def feed(self, event: Any) -> None:
        """An event from call control (``DiallerInput``): processed in order by the worker."""
        self._queue.put_nowait((event, None))

    async def submit(self, event: Any) -> list[Any]:
        """An event from the API: returns the dialler's actions once its state is committed."""
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, fut))
        return await fut

    async def _work(self) -> None:
        while True:
            event, fut = await self._queue.get()
            if event is _TICK:   # the free agents as they are now, not when the tick was queued
                self._tick_waiting = False
                event = de.Tick(self.free_agents())
            try:
                actions = self.dialler.handle(event, time.time())
            except (KeyError, ValueError) as e:
                if fut is not None and not fut.done():
                    fut.set_exception(BadRequest(str(e).strip("'")))
                else:
                    log.warning("dialler refused %s: %s", type(event).__name__, e)
                continue
            except Exception as e:  # the dialler must keep going
                log.exception("dialler failed on %s", type(event).__name__)
                if fut is not None and not fut.done():
                    fut.set_exception(e)
                continue
            try:
                await self._commit(actions)
            except Exception as e:
                log.exception("dialler state not committed: its calls are not placed")
                if fut is not None and not fut.done():
                    fut.set_exception(e)
                continue
            dials = [a for a in actions if isinstance(a, de.Dial)]
            if dials:
                self._run(functools.partial(self._dial, dials))
            for a in actions:
                if isinstance(a, de.FiguresChanged):
                    self._figures(a)
            if fut is not None and not fut.done():
                fut.set_result(actions)

    def _dial(self, dials: list[de.Dial]) -> None:
        now = self.server.now()
        for d in dials:
            try:
                self.app.dial(d, now)
            except Exception:  # one bad dial must not lose the others (the attempt stays open: retried)
                log.exception("attempt %d not placed", d.attempt)

    async def _commit(self, actions: list[Any]) -> None:
        store = self.server.store
        assert store is not None
        for a in actions:
            if isinstance(a, de.Save):
                await store.writer.run(functools.partial(_save, a))

    def _run(self, fn: Any) -> None:
        """Call control from here: what it causes (SIP, events, more dialler input) is executed."""
        server = self.server
        out = server.core.run(fn, now=server.now())
        server._execute(out)
        server._rearm()

    # ----------------------------------------------------------------------------- pacing
    def _schedule_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._tick = loop.call_later(self.config.tick, self._on_tick)

    def _on_tick(self) -> None:
        try:
            if not self._tick_waiting:   # one pacing pass at a time in the queue (a slow commit: no pile-up)
                self._tick_waiting = True
                self._queue.put_nowait((_TICK, None))
        finally:
            self._schedule_tick()

    def free_agents(self) -> dict[str, int]:
        """Per queue: agents free now and not already promised to a virtual call waiting there."""
        acd = self.server.core.router.queue.acd
        return {q.name: max(0, acd.free_agents(q.name) - self.app.waiting(q.name)) for q in acd.config.queues}

    # ----------------------------------------------------------------------------- events
    def _on_event(self, ev: Any) -> None:
        """Subscriber of the switch's events: voicemails become callback tasks."""
        if isinstance(ev, VoicemailLeft) and self.config.callbacks.voicemail:
            queue = self._voicemail_queue(ev.mailbox)
            number = ev.callback_number or ev.caller
            if not queue or not number:
                log.info("voicemail %s: no callback task (no queue for mailbox %r or no number)", ev.file, ev.mailbox)
                return
            try:
                number = self._normalise(number)
            except BadRequest:
                log.info("voicemail %s: callback number %r is not a number: no callback task", ev.file, number)
                return
            self._queue.put_nowait((de.CallbackRequested(queue, number, kind="voicemail", audio=ev.file,
                                                         note=f"voicemail {ev.duration:.0f} s", ref=ev.call), None))

    def _voicemail_queue(self, mailbox: str) -> str:
        acd = self.server.core.router.queue.acd.config
        for q in acd.queues:
            if mailbox and mailbox in (q.on_timeout.mailbox, q.on_no_agents.mailbox):
                return str(q.name)
        return self.config.callbacks.voicemail_queue or (acd.queues[0].name if acd.queues else "")

    def _figures(self, f: de.FiguresChanged) -> None:
        """At most one ``CampaignFigures`` a second per campaign (the last figures win)."""
        self._figures_due[f.campaign] = f
        if self._figures_timer is None:
            loop = asyncio.get_running_loop()
            last = max(self._figures_sent.values(), default=0.0)
            self._figures_timer = loop.call_later(max(0.0, 1.0 - (time.monotonic() - last)), self._send_figures)

    def _send_figures(self) -> None:
        self._figures_timer = None
        due, self._figures_due = self._figures_due, {}
        now = time.monotonic()
        for name in due:
            self._figures_sent[name] = now
        self.server._execute([CampaignFigures(name, dict(f.figures)) for name, f in due.items()])

    async def _source_loop(self) -> None:
        store = self.server.store
        assert store is not None
        while True:
            for c in self.config.campaigns:
                if not c.source:
                    continue
                now = time.time()
                since = self._since.get(c.name, now - 86400)
                def query(conn: Any, source: str = c.source, since: float = since, now: float = now) -> Any:
                    return work_order_contacts(conn, source, since, now)
                try:
                    found = await store.read_sync(query)
                    if found:
                        await self.submit(de.ContactsAdded(c.name, tuple(
                            de.NewContact(f["number"], f["name"], data=f["data"], due=f["due"], key=f["key"])
                            for f in found)))
                        log.info("campaign %s: %d contact(s) from %s", c.name, len(found), c.source)
                    closed = [f["closed_at"] for f in found if f["closed_at"] is not None]
                    self._since[c.name] = max(closed) if closed else (since if c.source == "closed_work_orders"
                                                                     else now)
                except Exception:
                    log.exception("campaign %s: contacts from %s not read", c.name, c.source)
            await asyncio.sleep(SOURCE_INTERVAL)

    # -------------------------------------------------------------------------------- API
    def _normalise(self, number: Any, field: str = "number") -> str:
        centre = self.server.centre
        try:
            return centre.normalise(number, field) if centre is not None else str(number)
        except ValueError as e:
            raise BadRequest(str(e), field) from None

    def campaigns(self) -> list[dict[str, Any]]:
        out = []
        for c in self.config.campaigns:
            out.append({"name": c.name, "mode": c.mode, "queue": c.queue, "flow": c.flow, "source": c.source,
                        "figures": self.dialler.campaign_figures(c.name)})
        out.append({"name": CALLBACKS, "mode": "callback", "queue": "", "flow": "", "source": "",
                    "figures": self.dialler.campaign_figures(CALLBACKS)})
        return out

    def campaign(self, name: str) -> dict[str, Any]:
        c = next((x for x in self.campaigns() if x["name"] == name), None)
        if c is None:
            raise KeyError(name)
        return c

    async def add_contacts(self, campaign: str, items: list[dict[str, Any]]) -> int:
        """JSON contacts (``number`` required; ``name``, ``timezone``, ``due`` (Unix time), ``key``, ``data``).
        Every item is checked first: one bad item refuses the whole list (nothing is added)."""
        if self.config.campaign(campaign) is None:
            raise KeyError(campaign)
        if not isinstance(items, list) or not items:
            raise BadRequest("a non-empty list of contacts is required", "contacts")
        if len(items) > 100_000:
            raise BadRequest("at most 100,000 contacts per request", "contacts")
        new = []
        for i, it in enumerate(items):
            where = f"contacts[{i}]"
            if not isinstance(it, dict):
                raise BadRequest("expected an object", where)
            unknown = set(it) - {"number", "name", "timezone", "due", "key", "data"}
            if unknown:
                raise BadRequest(f"unknown field(s) {', '.join(sorted(unknown))}", where)
            number = self._normalise(it.get("number"), f"{where}.number")
            tz = it.get("timezone") or ""
            if not isinstance(tz, str):
                raise BadRequest("must be a string", f"{where}.timezone")
            if tz:
                from dialler.rules import zone
                try:
                    zone(tz)
                except ValueError:
                    raise BadRequest(f"unknown time zone {tz!r}", f"{where}.timezone") from None
            due = it.get("due")
            if due is not None and (isinstance(due, bool) or not isinstance(due, (int, float))):
                raise BadRequest("must be Unix time (seconds)", f"{where}.due")
            data = it.get("data") or {}
            if not isinstance(data, dict):
                raise BadRequest("must be an object", f"{where}.data")
            name, key = it.get("name") or "", it.get("key") or ""
            if not isinstance(name, str) or not isinstance(key, str):
                raise BadRequest("name and key must be strings", where)
            new.append(de.NewContact(number, name[:200], tz, data, None if due is None else float(due), key[:200]))
        before = self.dialler.figures[campaign].contacts
        await self.submit(de.ContactsAdded(campaign, tuple(new)))
        return self.dialler.figures[campaign].contacts - before

    async def add_contacts_csv(self, campaign: str, text: str) -> int:
        """CSV with a header: ``number`` (required), ``name``, ``timezone``, ``due``, ``key``; other columns
        go into the contact's data (shown to the agent, read by TTS)."""
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "number" not in reader.fieldnames:
            raise BadRequest("the first line must name the columns, one of them 'number'", "csv")
        items = []
        for row in reader:
            item: dict[str, Any] = {"data": {}}
            for k, v in row.items():
                if k is None:
                    raise BadRequest(f"line {reader.line_num}: more values than columns", "csv")
                if k in ("number", "name", "timezone", "key"):
                    item[k] = v or ""
                elif k == "due":
                    try:
                        item["due"] = float(v) if v else None
                    except ValueError:
                        raise BadRequest(f"line {reader.line_num}: due must be Unix time", "csv") from None
                else:
                    item["data"][k] = v
            items.append(item)
        return await self.add_contacts(campaign, items)

    async def set_running(self, campaign: str, on: bool) -> None:
        if self.config.campaign(campaign) is None:
            raise KeyError(campaign)
        await self.submit(de.CampaignStarted(campaign) if on else de.CampaignStopped(campaign))

    async def request_callback(self, queue: str, number: str, *, name: str = "", note: str = "",
                               due: float | None = None) -> int:
        if self.server.core.router.queue.acd.queue_index.get(queue) is None:
            raise BadRequest(f"no queue {queue!r}", "queue")
        n = self._normalise(number)
        actions = await self.submit(de.CallbackRequested(queue, n, kind="web", name=name[:200], note=note[:1000],
                                                         due=due))
        rows = [r for a in actions if isinstance(a, de.Save) for r in a.contacts if r.kind == "web" and r.number == n]
        return max(r.id for r in rows)

    async def set_result(self, contact: int, result: str, due: float | None = None) -> dict[str, Any]:
        try:
            code = Result(result)
        except ValueError:
            raise BadRequest(f"unknown result code {result!r} (codes: "
                             f"{', '.join(sorted(r.value for r in AGENT_CODES))})", "result") from None
        if code not in AGENT_CODES:
            raise BadRequest(f"{result!r} is set by the switch, not at wrap-up", "result")
        if contact not in self.dialler.contacts:
            raise KeyError(contact)
        await self.submit(de.ResultCode(contact, code, due))
        return self.contact(contact)

    async def set_dnc(self, number: str, add: bool) -> str:
        n = self._normalise(number)
        await self.submit(de.DncChanged(n, add))
        return n

    def contact(self, contact: int) -> dict[str, Any]:
        c = self.dialler.contacts.get(contact)
        if c is None:
            raise KeyError(contact)
        r = c.row()
        return {"id": r.id, "campaign": r.campaign, "kind": r.kind, "queue": r.queue, "number": r.number,
                "name": r.name, "timezone": r.timezone, "data": dict(r.data), "note": r.note,
                "audio": bool(r.audio), "state": r.state, "attempts": r.attempts, "next_due": r.next_due,
                "last_result": r.last_result, "last_attempt": r.last_attempt, "created": r.created}

    async def contact_history(self, contact: int) -> list[dict[str, Any]]:
        if contact not in self.dialler.contacts:
            raise KeyError(contact)
        store = self.server.store
        assert store is not None
        return await store.read_sync(lambda conn: attempts_of(conn, contact))

    def tasks(self, queue: str = "", limit: int = 200) -> list[dict[str, Any]]:
        """Open callback tasks (waiting, held or being dialled), oldest first."""
        out = [self.contact(c.id) for c in self.dialler.contacts.values()
               if c.campaign == CALLBACKS and c.state is not ContactState.DONE and (not queue or c.queue == queue)]
        return sorted(out, key=lambda t: t["created"])[:limit]

    def audio(self, contact: int) -> str:
        c = self.dialler.contacts.get(contact)
        if c is None or not c.audio:
            raise KeyError(contact)
        return c.audio


def _save(save: de.Save, conn: Any) -> None:
    save_outbound(conn, save.contacts, save.attempts, save.dnc)


def wire(server: Any, item: Any) -> bool:
    """``Server._execute``'s hook: ``DiallerInput`` goes to the dialler service."""
    if isinstance(item, DiallerInput):
        svc = getattr(server, "outbound", None)
        if svc is not None and svc.started:
            svc.feed(item.event)
        else:
            log.warning("dialler not running: %s dropped", type(item.event).__name__)
        return True
    return False
