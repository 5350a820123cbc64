"""Records as a service of the switch: call records, agent state history and voicemails reach the store
from the switch's events, whatever ``[api]`` says.

One writer task drains a queue in order (a call's record never overtakes the agent state change that
preceded it), so a burst of call ends costs the event loop nothing but an append; the store's own
group commit batches the writes. ``flush`` waits for everything queued (shutdown, tests).

An agent's wrap-up (``WrapUpEnded``) goes into the call record's ``wrap_s``. It usually ends after the
call (the record is there); when the caller stays for the survey longer than the wrap-up lasts, it
ends first and waits here for the call's record.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from store.crm import CallCentre
from store.validation import NotFoundError, ValidationError

from .trunks.numbers import NumberFormat
from .events import AgentStateChanged, CallEnded, SwitchEvent, VoicemailLeft, WrapUpEnded

log = logging.getLogger("softswitch.records")

MAX_EARLY_WRAPUPS = 10_000  # wrap-ups waiting for their call's record (a call without one must not grow this)


def centre_for(store: Any, config: Any) -> CallCentre:
    """``CallCentre`` with the number plan (country code, prefixes: ``[numbering]``, by default ``[store]``'s
    country code; the one the SIP trunks normalise callers with), the number-prefix → region table and the
    region → service point dispatch of ``[store]`` (a new caller's region shows in the screen pop; work
    orders go to the region's service point)."""
    s = config.store
    return CallCentre(store, plan=NumberFormat.from_config(config).plan, regions=s.regions,
                      service_points=s.service_points, default_service_point=s.default_service_point or None)


class Records:
    def __init__(self, centre: Any):
        self.centre = centre          # store.crm.CallCentre
        self._queue: asyncio.Queue[SwitchEvent | None] = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self.written = 0
        self._early_wrap: OrderedDict[str, dict[str, float]] = OrderedDict()  # call ref -> agent -> wrap-up s before its record

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def __call__(self, event: SwitchEvent) -> None:
        """A switch event (the edge calls this for every one); records are written in the background."""
        if isinstance(event, CallEnded) and event.service:
            return  # feature codes and supervisors listening in are not customer calls
        if isinstance(event, (CallEnded, AgentStateChanged, VoicemailLeft, WrapUpEnded)):
            self._queue.put_nowait(event)

    async def flush(self) -> None:
        await self._queue.join()

    async def stop(self) -> None:
        if self._task is None:
            return
        await self._queue.join()
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                if event is None:
                    return
                await self._write(event)
                self.written += 1
            except (ValidationError, ValueError, TypeError) as e:
                log.warning("record of %s not stored: %s", type(event).__name__, e)
            except Exception:
                log.exception("record of %s not stored", type(event).__name__)
            finally:
                self._queue.task_done()

    async def _write(self, event: SwitchEvent) -> None:
        if isinstance(event, CallEnded):
            await self._call(event)
        elif isinstance(event, AgentStateChanged):
            await self.centre.set_agent_state(event.agent, event.state or "unknown", reason=event.reason,
                                              at=event.at or None, extension=event.extension or None)
        elif isinstance(event, WrapUpEnded):
            await self._wrap_up(event)
        elif isinstance(event, VoicemailLeft):
            await self.centre.add_voicemail(file=event.file, caller=event.caller or "0",
                                            callback_number=event.callback_number or None,
                                            queue=event.mailbox or None, duration_s=float(event.duration),
                                            created_at=event.at or None)
            log.info("voicemail of call %s from %s stored", event.call, event.caller)

    async def _wrap_up(self, ev: WrapUpEnded) -> None:
        ref = ev.call[:200]
        try:
            await self.centre.add_wrap_up(ref, max(0.0, float(ev.seconds)), agent=ev.agent[:200])
        except NotFoundError:  # the call goes on (the caller is in the survey): kept for its record
            per_agent = self._early_wrap.setdefault(ref, {})
            per_agent[ev.agent] = per_agent.get(ev.agent, 0.0) + max(0.0, float(ev.seconds))
            while len(self._early_wrap) > MAX_EARLY_WRAPUPS:
                self._early_wrap.popitem(last=False)

    async def import_voicemail_index(self, voicemail_dir: Any) -> int:
        """Voicemails listed in the folder's JSONL index that the store does not have (left by an earlier
        version, or while the store could not be written): imported once, at start."""
        from pathlib import Path

        from ivr.voicemail_index import list_messages
        vm_dir = Path(voicemail_dir)
        if not vm_dir.is_dir():
            return 0
        known = set(await self.centre.store.read_sync(
            lambda conn: [r[0] for r in conn.execute("SELECT file FROM voicemails")]))
        n = 0
        for e in list_messages(vm_dir):
            file = str(vm_dir / str(e.get("file", "")))
            if file in known:
                continue
            try:
                await self.centre.add_voicemail(file=file, caller=str(e.get("caller") or "0"),
                                                callback_number=e.get("callback_number") or None,
                                                queue=e.get("mailbox") or None, duration_s=float(e.get("duration", 0)),
                                                created_at=float(e["time"]) if e.get("time") else None)
                n += 1
            except (ValidationError, ValueError, TypeError) as err:
                log.warning("voicemail %s not imported: %s", file, err)
            known.add(file)
        if n:
            log.info("%d voicemail(s) imported from %s", n, vm_dir)
        return n

    async def _call(self, ev: CallEnded) -> None:
        q = ev.quality

        def loss(role: str) -> float | None:
            st = q.get(role)
            if not st:
                return None
            total = (st.get("rx_packets") or 0) + (st.get("rx_lost") or 0)
            return round(100.0 * (st.get("rx_lost") or 0) / total, 3) if total else None

        def jitter(role: str) -> float | None:
            st = q.get(role)
            return float(st["rx_jitter_ms"]) if st and st.get("rx_jitter_ms") is not None else None

        def within(t: float | None) -> float | None:  # a time inside the call (the store refuses others)
            return None if t is None else min(max(t, ev.arrived), ev.ended)

        agent_leg = "browser" if q.get("browser") else "callee"
        early = self._early_wrap.pop(ev.call[:200], None) or {}
        parts = [{"agent": p.agent[:200], "queue": p.queue[:200], "answered_at": within(p.answered),
                  "ended_at": within(p.ended), "hold_seconds": max(0.0, p.hold_seconds), "holds": max(0, p.holds),
                  "transferred": p.transferred} for p in ev.parts if p.agent]
        for agent, seconds in early.items():   # an agent's wrap-up goes to her last part of the call
            mine = [p for p in parts if p["agent"] == agent]
            if mine:
                mine[-1]["wrap_s"] = seconds
        score = ev.survey_score if ev.survey_score is not None and 1 <= ev.survey_score <= 5 else None
        rid = await self.centre.add_call(
            call_ref=ev.call[:200], caller=ev.caller or "", callee=ev.callee or "", queue=ev.queue or None,
            agent=ev.agent or None, ivr_path=ev.ivr[:200], arrived_at=ev.arrived, answered_at=ev.answered,
            ended_at=ev.ended, queued_at=within(ev.queued) if ev.queue else None,
            talk_ended_at=within(ev.talk_ended) if ev.answered is not None else None,
            wrap_s=sum(early.values()) if early else None, disposition=ev.disposition.value,
            recording=ev.recordings[-1][0] if ev.recordings else None, survey_score=score,
            caller_loss_pct=loss("caller"), caller_jitter_ms=jitter("caller"),
            # an agent on the desk's browser phone: the WebRTC leg's figures (the engine's leg is a loopback hop)
            agent_loss_pct=loss(agent_leg), agent_jitter_ms=jitter(agent_leg),
            direction=ev.direction, trunk=ev.trunk[:200], did=ev.did[:64], external=ev.external[:64],
            transfers=max(0, ev.transfers), hold_seconds=max(0.0, float(ev.hold_seconds)), holds=max(0, ev.holds),
            parts=parts)
        parties = [p for p in (ev.caller, ev.agent) if p]
        for f, s, e in ev.recordings:
            await self.centre.add_recording(file=f, started_at=s, duration_s=max(0.0, e - s), call_id=rid,
                                            parties=parties)
        log.info("call %s recorded as call record %d (%s%s)", ev.call, rid, ev.disposition.value,
                 f", {len(ev.recordings)} recording(s)" if ev.recordings else "")
