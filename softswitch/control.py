"""The running switch as the HTTP API (and tools) see it: agent state changes, call control, live
state, and a stream of events (offers for the screen pop, agent states, call ends for call records).

Every method runs on the event loop thread, feeds the sans-IO core and executes what it returns
through the server, exactly as a SIP message would.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from acd import events as acd_events


class Control:
    def __init__(self, server: Any):
        self.server = server
        self.core = server.core

    # ------------------------------------------------------------------------------ events
    def subscribe(self, fn: Callable[[dict], None]) -> Callable[[], None]:
        """``fn(event)`` for every event (dicts with a ``type``); returns the unsubscribe function."""
        self.server.subscribers.add(fn)
        return lambda: self.server.subscribers.discard(fn)

    def _run(self, actions: list) -> None:
        self.server._execute(actions + self.core.b2bua.take_deferred())
        self.server._rearm()

    def _acd(self, event: Any) -> None:
        self._run(self.core.b2bua.queues.feed(event, time.time()))

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
        acd = self.core.b2bua.queues.acd
        out = []
        for a in acd.config.agents:
            state, reason = acd.agent_state(a.id)
            ag = acd.agents[acd.agent_index[a.id]]
            out.append({"id": a.id, "name": a.name, "extension": ag.extension or a.extension, "state": state,
                        "reason": reason, "call": ag.call, "skills": dict(a.skills)})
        return out

    def queues(self) -> list[dict]:
        acd = self.core.b2bua.queues.acd
        now = time.time()
        return [_plain(acd.queue_stats(q.name, now)) for q in acd.config.queues]

    # ------------------------------------------------------------------------------- calls
    def calls(self) -> list[dict]:
        out = []
        for c in self.core.b2bua.calls.values():
            if c.state == "ended":
                continue
            out.append({"id": c.id, "caller": c.caller_number, "callee": c.callee_number, "state": c.state,
                        "queue": c.queue, "agent": c.answered.agent_id if c.answered is not None else "",
                        "since": c.created, "answered": c.answered_at, "on_hold": _held(c),
                        "recording": c.recording is not None, "context": dict(c.context)})
        return out

    def _call(self, call_id: str) -> Any:
        call = self.core.b2bua.calls.get(call_id)
        if call is None or call.state == "ended":
            raise KeyError(call_id)
        return call

    def hangup(self, call_id: str) -> None:
        call = self._call(call_id)
        self._run(self.core.b2bua.hangup(call, time.time(), "hung up from the desk"))

    def hold(self, call_id: str, on: bool = True) -> None:
        """Switch-side hold: the caller hears music, the agent silence; ``on=False`` resumes."""
        call = self._call(call_id)
        media = self.core.media
        if media is None or call.caller.media is None:
            raise ValueError("hold needs anchored media")
        media.hold(call.caller.media, on)

    def transfer(self, call_id: str, target: str) -> None:
        """Blind transfer of the caller to an extension, a queue number or an IVR number."""
        call = self._call(call_id)
        self._run(self.core.b2bua.transfer_caller(call, target, time.time()))

    def monitor_mode(self, call_id: str, mode: str) -> None:
        """A supervisor's monitoring call (``*21*<agent>``) switches to listen, whisper or barge."""
        if mode not in ("listen", "whisper", "barge"):
            raise ValueError(f"mode must be listen, whisper or barge, not {mode!r}")
        self.core.b2bua.queues.set_monitor_mode(self._call(call_id), mode)

    def set_context(self, call_id: str, **values: Any) -> None:
        """Notes that travel with the call (shown to the next agent after a transfer)."""
        self._call(call_id).context.update(values)

    def recording(self, call_id: str, on: bool) -> None:
        call = self._call(call_id)
        b = self.core.b2bua
        if on and call.recording is None and call.answered is not None and b.media is not None:
            call.recording = b.media.start_recording(call.id, left=call.caller.media, right=call.answered.media,
                                                     parties={"left": call.caller_number,
                                                              "right": call.answered.extension or call.callee_number})
        elif not on and call.recording is not None and b.media is not None:
            b.media.stop_recording(call.recording)
            call.recording = None


def _held(call: Any) -> bool:
    ep = call.caller.media
    return bool(ep is not None and (getattr(ep, "held", False) or getattr(ep, "holding", False)))


def _plain(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass
    return asdict(obj) if is_dataclass(obj) else obj
