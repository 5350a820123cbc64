"""Supervisors join an agent's call: ``*21*<agent>`` listen (hears both), ``*22*<agent>`` whisper (heard
by the agent only), ``*23*<agent>`` barge (a three-way call). Only ``[acd] supervisors`` may; the
monitoring call is hung up when the call it watches ends."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .. import legs as L
from ..states import CallState
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.queues")

MONITOR_CODES = {"*21": "listen", "*22": "whisper", "*23": "barge"}


def monitor_code(number: str) -> tuple[str, str] | None:
    """``*21*2001`` → ("listen", "2001")."""
    for code, mode in MONITOR_CODES.items():
        if number.startswith(code):
            rest = number[len(code):].lstrip("*").rstrip("#")
            if rest.isdigit():
                return mode, rest
    return None


class MonitorApp(Application):
    name = "monitor"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.watching: dict[str, "Call"] = {}          # monitoring call id -> the call it watches
        self.watchers: dict[str, list["Call"]] = {}    # watched call id -> monitoring calls

    def serves(self, number: str) -> bool:
        return monitor_code(number) is not None

    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        mode, agent_id = monitor_code(number)  # type: ignore[misc]
        call.notes["service"] = True  # not a customer call: no call record
        caller = call.caller_number
        media = self.b2bua.media
        qc = self.router.queue.connected_call(agent_id)
        target = qc.call if qc is not None else None
        if caller not in self.config.acd.supervisors:
            log.info("monitor %s from %s refused: not a supervisor", number, caller)
            self.do(L.Reject(call, 403, "Not a supervisor"), now)
            return
        if target is None or media is None or target.bridge is None or target.answered is None:
            log.info("monitor %s from %s refused: agent %s is not on a call", number, caller, agent_id)
            self.do(L.Reject(call, 480, f"Agent {agent_id} is not on a call"), now)
            return
        if not self._answered(call, now):
            return
        media.join(target.bridge, call.caller.media, mode,
                   whisper_to=target.answered.media if mode == "whisper" else ())
        self.watching[call.id] = target
        self.watchers.setdefault(target.id, []).append(call)
        log.info("call %s: supervisor %s %s agent %s (call %s)", call.id, caller,
                 mode + "s" if mode != "barge" else "barges in on", agent_id, target.id)

    def _answered(self, call: "Call", now: float) -> bool:
        if call.notes.get("monitor_originated"):   # the supervisor's phone already answered the switch
            return True
        if not self.do(L.AnswerLocally(call), now):
            return False
        call.set_state(CallState.ANSWERED)
        call.answered_at = now
        return True

    def take(self, call: "Call", number: str, now: float) -> None:
        """From the wallboard or the desk: the switch rang the supervisor's phone (``OriginateApp``) and she
        answered; she joins the agent's call as if she had dialled ``number`` (``*23*<agent>``...)."""
        call.notes["monitor_originated"] = True
        code = monitor_code(number)
        qc = self.router.queue.connected_call(code[1]) if code is not None else None
        target = qc.call if qc is not None else None
        if (code is None or call.caller_number not in self.config.acd.supervisors or target is None
                or target.bridge is None or target.answered is None or self.b2bua.media is None):
            log.info("monitor %s for %s refused: not a supervisor, or the agent is not on a call", number,
                     call.caller_number)
            self.do(L.Hangup(call, f"monitor {number} refused"), now)
            return
        self.on_incoming(call, number, now)

    def set_mode(self, call: "Call", mode: str) -> None:
        """Switch a supervisor's monitoring call between listen, whisper and barge (the desk's buttons)."""
        target = self.watching.get(call.id)
        if target is None or target.bridge is None or self.b2bua.media is None:
            raise KeyError(call.id)
        self.b2bua.media.set_mode(target.bridge, call.caller.media, mode,
                                  whisper_to=target.answered.media if mode == "whisper" and target.answered else ())

    def gone(self, call: "Call", now: float) -> None:
        target = self.watching.pop(call.id, None)
        if target is not None:
            rest = [c for c in self.watchers.get(target.id, []) if c is not call]
            if rest:
                self.watchers[target.id] = rest
            else:
                self.watchers.pop(target.id, None)

    def watched_call_gone(self, call: "Call", now: float) -> None:
        """Any call ended: supervisors listening in to it are hung up."""
        for sup in self.watchers.pop(call.id, []):
            self.watching.pop(sup.id, None)
            self.do(L.Hangup(sup, "monitored call ended"), now)
