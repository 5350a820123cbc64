"""The running switch as the HTTP API (and tools) see it: agent state changes, call control, live
state, and a stream of events (offers for the screen pop, agent states, call ends).

Every method runs on the event loop thread, drives call control through the sans-IO core
(``SwitchCore.run``) and executes what it returns through the server, exactly as a SIP message would.
"""
from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, Callable

from acd import events as acd_events

from .events import SwitchEvent
from .holds import DESK
from .states import CallState


class Control:
    def __init__(self, server: Any):
        self.server = server
        self.core = server.core
        self.router = server.core.router

    # ------------------------------------------------------------------------------ events
    def subscribe(self, fn: Callable[[dict], None]) -> Callable[[], None]:
        """``fn(event)`` for every event, as the JSON dict the desk gets (with a ``type``); returns the
        unsubscribe function."""
        def deliver(ev: SwitchEvent) -> None:
            fn(ev.as_dict())
        self.server.subscribers.add(deliver)
        return lambda: self.server.subscribers.discard(deliver)

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        result: list = []
        now = self.server.now()
        actions = self.core.run(lambda: result.append(fn(*args, now)), now=now)
        self.server._execute(actions)
        self.server._rearm()
        return result[0] if result else None

    def _acd(self, event: Any) -> None:
        self._run(self.router.queue.feed, event)

    # ------------------------------------------------------------------------------ agents
    def agent_login(self, agent_id: str, extension: str | None = None) -> None:
        self._acd(acd_events.AgentLogin(agent_id, extension))

    def agent_logout(self, agent_id: str) -> None:
        self._acd(acd_events.AgentLogout(agent_id))

    def agent_ready(self, agent_id: str) -> None:
        self._acd(acd_events.AgentReady(agent_id))

    def agent_not_ready(self, agent_id: str, reason: str = "") -> None:
        self._acd(acd_events.AgentNotReady(agent_id, reason))

    def wrapup_end(self, agent_id: str) -> None:
        self._acd(acd_events.WrapUpEnd(agent_id))

    def agents(self) -> list[dict]:
        acd = self.router.queue.acd
        out = []
        for a in acd.config.agents:
            state, reason = acd.agent_state(a.id)
            ag = acd.agents[acd.agent_index[a.id]]
            registered = not acd.phone_down(a.id)
            if state == "ready" and not registered:
                state = "unregistered"  # ready, but no phone to ring: skipped until it registers
            out.append({"id": a.id, "name": a.name, "extension": ag.extension or a.extension, "state": state,
                        "reason": reason, "call": ag.call, "skills": dict(a.skills), "registered": registered})
        return out

    def trunks(self) -> list[dict]:
        """The SIP trunks' live state (docs/trunks.md); passwords never appear."""
        return self.core.trunk_runtime.status(self.server.now())

    def queues(self) -> list[dict]:
        acd = self.router.queue.acd
        now = self.server.now()
        return [_plain(acd.queue_stats(q.name, now)) for q in acd.config.queues]

    # ------------------------------------------------------------------------------- calls
    def calls(self) -> list[dict]:
        out = []
        for c in self.core.b2bua.calls.values():
            if not c.live:
                continue
            out.append({"id": c.id, "caller": c.caller_number, "callee": c.callee_number, "state": c.state.value,
                        "queue": c.notes.get("queue"), "agent": self._agent_of(c),
                        "since": c.created, "answered": c.answered_at, "on_hold": _held(c),
                        "recording": c.recording is not None, "context": dict(c.context)})
        return out

    def _agent_of(self, call: Any) -> str:
        """The agent the call is with now (none once she left it, e.g. for the survey)."""
        qc = self.router.queue.by_call.get(call.id)
        return qc.agent if qc is not None else ""

    def _call(self, call_id: str) -> Any:
        call = self.core.b2bua.calls.get(call_id)
        if call is None or not call.live:
            raise KeyError(call_id)
        return call

    def hangup(self, call_id: str) -> None:
        from .legs import Hangup
        call = self._call(call_id)
        self._run(lambda now: self.core.b2bua.do(Hangup(call, "hung up from the desk"), now))

    def hold(self, call_id: str, on: bool = True) -> None:
        """Switch-side hold: the caller hears music, the agent silence; ``on=False`` resumes."""
        call = self._call(call_id)
        media = self.core.media
        if media is None or call.caller.media is None:
            raise ValueError("hold needs anchored media")
        media.hold(call.caller.media, on)
        if call.state is CallState.ANSWERED or not on:  # the hold time of the call record (softswitch.holds)
            self._run(lambda now: call.hold.set(DESK, on, now))

    def transfer(self, call_id: str, target: str) -> None:
        """Blind transfer of the caller to an extension, a queue number or an IVR number."""
        call = self._call(call_id)
        if self.core.media is None or call.caller.media is None:
            return
        self._run(lambda now: self.router.transfer(call, target, now))

    def originate(self, a: str, b: str, caller_id: str = "", external_caller_id: str = "",
                  queue: str = "") -> str | None:
        """Ring extension ``a``, then connect it to ``b`` (click-to-dial); the new call's id, or None. An
        external ``b`` goes out through the dial rules and trunks with ``a``'s permission, presenting
        ``external_caller_id``, by default the number of ``queue`` when the call is made for a queue
        (``[[acd.queues]] caller_id``), else ``[outbound] caller_id`` (the hotline; docs/outbound.md)."""
        shown = external_caller_id or (self.router.outbound.queue_caller_id(queue) if queue else
                                       self.server.config.outbound.caller_id)
        call = self._run(lambda now: self.router.outbound.click_to_dial(a, b, now, caller_id, external_caller_id=shown))
        return call.id if call is not None else None

    def preview(self, call_id: str, skip: bool, user: str, supervisor: bool) -> None:
        """A previewing agent starts the call to the contact (or skips it); KeyError if ``call_id`` is not a
        preview of ``user`` (or of anyone, for a supervisor)."""
        vc = self.router.outbound.by_call.get(call_id)
        if vc is None or not (supervisor or vc.agent == user):
            raise KeyError(call_id)
        self._run(lambda now: self.router.outbound.start_preview(call_id, now, skip))

    def campaigns(self) -> list[dict]:
        """Campaigns and their live figures (the wallboard's; ``CampaignFigures`` events tell changes)."""
        svc = getattr(self.server, "outbound", None)
        return svc.campaigns() if svc is not None and svc.started else []

    def monitor_mode(self, call_id: str, mode: str) -> None:
        """A supervisor's monitoring call (``*21*<agent>``) switches to listen, whisper or barge."""
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError(f"mode must be listen, whisper or barge, not {mode!r}")
        self.router.monitor.set_mode(self._call(call_id), mode)

    def set_context(self, call_id: str, **values: Any) -> None:
        """Notes that travel with the call (shown to the next agent after a transfer)."""
        self._call(call_id).context.update(values)

    def recording(self, call_id: str, on: bool) -> None:
        from .legs import Record
        call = self._call(call_id)
        if on and (call.answered is None or call.state is not CallState.ANSWERED):
            return
        self._run(lambda now: self.core.b2bua.do(Record(call, on), now))


def _held(call: Any) -> bool:
    ep = call.caller.media
    return bool(ep is not None and (getattr(ep, "held", False) or getattr(ep, "holding", False)))


def _plain(obj: Any) -> Any:
    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj
