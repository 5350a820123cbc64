"""Call control's router: the dialplan in one place, and the dispatch of leg events to applications.

A number is served by exactly one application, decided here (``route``): feature codes and
supervisor codes, IVR hotline numbers, queue numbers, and otherwise the extension it names. The
application that serves a call owns it: it hears the leg events of that call (queued by the B2BUA
and drained by ``pump``), and it hands the call over when it moves on (blind transfer, IVR → queue,
queue → survey). When a call ends, the router turns what it knows into one ``CallEnded`` event
with a disposition, for the records service and the desk.

Where a new application goes: a module in ``softswitch/apps/`` implementing ``apps.base.Application``,
an instance created in ``Router.__init__``, and a line in ``route`` (or a hand-over from another
application).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from . import legs as L
from .apps.base import Application
from .apps.extension import ExtensionApp
from .apps.features import FeatureApp
from .apps.ivr import IvrApp
from .apps.monitor import MonitorApp
from .apps.originate import OriginateApp
from .apps.external import ExternalApp
from .apps.outbound import OutboundApp
from .apps.queue import QueueApp
from .apps.sounds import Sounds
from .events import CallEnded, Disposition, disposition_for_status
from .presence import Presence
from .trunks.dialer import Dialer
from .trunks.table import TrunkTable

if TYPE_CHECKING:
    from .b2bua import B2BUA
    from .call import Call

log = logging.getLogger("softswitch.router")


class Router:
    def __init__(self, b2bua: "B2BUA", config: Any, out: list):
        self.b2bua = b2bua
        self.config = config
        self.out = out                      # the core's outbox: events for the outside go here too
        self.wall_offset = 0.0              # add to the core's clock for Unix time (set by the edge)
        self.sounds = Sounds(config, b2bua.media)
        self.queue = QueueApp(self)
        self.presence = Presence(self.queue.phone_busy, self.queue.phone_free)
        self.extension = ExtensionApp(self)
        self.ivr = IvrApp(self)
        self.features = FeatureApp(self)
        self.monitor = MonitorApp(self)
        self.originator = OriginateApp(self)
        self.trunks = TrunkTable.from_config(config)   # swapped whole by a reload (set_trunks)
        self.dialer = Dialer(b2bua, self.trunks, float(config.sip.ring_timeout))
        self.external = ExternalApp(self)
        self.outbound = OutboundApp(self)   # the dialler's calls and queue callbacks (softswitch.outbound)
        self.apps: list[Application] = [self.extension, self.queue, self.ivr, self.features, self.monitor,
                                        self.originator, self.external, self.outbound]
        b2bua.should_record = self.should_record

    def wall(self, t: float) -> float:
        return t + self.wall_offset

    # ------------------------------------------------------------------------------ dialplan
    def route(self, number: str) -> Application:
        """The application that serves ``number`` (the dialplan)."""
        if number.startswith("*"):
            if self.monitor.serves(number):
                return self.monitor
            if self.features.serves(number):
                return self.features
        if self.ivr.serves(number):
            return self.ivr
        if self.queue.serves(number):
            return self.queue
        if self.config.extension(number) is None and self.dialer.serves(number):
            return self.external  # an external number: dial rules and trunks
        return self.extension

    def set_trunks(self, table: TrunkTable) -> None:
        """A new trunk table (a reload): calls in progress keep the trunks they went out on."""
        self.trunks = table
        self.dialer.table = table

    # ------------------------------------------------------------------------------ dispatch
    def pump(self, now: float) -> None:
        """Deliver the B2BUA's leg events until none is left (handlers may cause more)."""
        events = self.b2bua.events
        while events:
            ev = events.popleft()
            try:
                self._dispatch(ev, now)
            except Exception:  # one event's failure must not stop the others
                log.exception("call %s: error handling %s", ev.call.id, type(ev).__name__)

    def _dispatch(self, ev: L.LegEvent, now: float) -> None:
        call = ev.call
        if isinstance(ev, L.IncomingCall):
            app = self.route(ev.number)
            call.app = app
            if not call.caller.trunk and self.config.extension(ev.caller) is not None:  # (a carrier's caller
                # may present a short number that is also one of our extensions: it is not that phone)
                # whatever it called (a colleague, the hotline, a queue), a phone in a call is not offered
                # queue calls: not even its own
                self.presence.mark(call.id, ev.caller, now)
            app.on_incoming(call, ev.number, now)
        elif isinstance(ev, L.CallGone):
            self._gone(call, now)
        elif isinstance(ev, L.TransferRequested):
            self.transfer(call, ev.target, now)
        elif isinstance(ev, L.CallMerged):
            self._merged(call, ev.leg.party, ev.gone, now)
        elif isinstance(ev, L.LegFailed) and ev.leg.trunk and self.dialer.on_leg_failed(ev, now):
            pass  # a trunk failed and the next one rings (failover): the application need not know
        elif call.app is not None:
            call.app.handle(ev, now)

    # ------------------------------------------------------------------------- hand-overs
    def transfer(self, call: "Call", target: str, now: float) -> None:
        """Blind transfer: the caller leaves the party it talks to (hung up) for ``target``: an
        extension, a queue or an IVR number. Its notes (``context``) travel with it."""
        old_party = call.answered.party if call.answered is not None else ""
        call.hold.close(now)            # whoever held the caller let go: the next party starts afresh
        if call.answered is not None:   # a person handed the caller on (reports count transferred calls)
            call.notes["transfers"] = call.notes.get("transfers", 0) + 1
            call.parts.end(now, call.hold, transferred=True)   # the agent's part ends in a transfer
        if call.app is not None:
            call.app.release(call, now, target)
        self.b2bua.do(L.Detach(call), now)
        if old_party:
            self.presence.unmark(call.id, old_party, now)
        call.callee_number = target
        self.hand_over(call, self.route(target), target, now)

    def hand_over(self, call: "Call", app: Application, number: str, now: float) -> None:
        """``app`` serves the (answered) call from now on."""
        call.app = app
        app.take(call, number, now)

    def _merged(self, call: "Call", referrer: str, gone: "Call", now: float) -> None:
        """Attended transfer joined ``call``'s remaining party with a party of ``gone``: the result is
        a plain two-party call; the referrer's phone is free, the joined party's busy mark moves."""
        call.notes["transfers"] = call.notes.get("transfers", 0) + 1
        call.hold.close(now)   # the referrer held the caller while consulting: that hold is over
        call.parts.end(now, call.hold, transferred=True)
        if call.app is not None and call.app is not self.extension:
            call.app.release(call, now, call.answered.party if call.answered is not None else "")
            call.app = self.extension
        self.presence.unmark(call.id, referrer, now)
        joined = call.answered.party if call.answered is not None else ""
        self.agent_answered(call, joined, now)
        if self.presence.has(gone.id, joined):  # marked here before unmarked there: no false "free"
            self.presence.mark(call.id, joined, now)
            self.presence.unmark(gone.id, joined, now)

    def agent_answered(self, call: "Call", extension: str, now: float) -> None:
        """A transferred caller now talks to ``extension``: when an agent is there and the call had an
        agent's part before (a queue call handed on), her own part begins (softswitch.agentparts). Direct
        calls to an agent's extension stay out of the agent figures, as before."""
        if not call.parts.any:
            return
        agent = self.agent_at(extension)
        if agent:
            call.parts.begin(agent, "", now, call.hold)

    def agent_at(self, extension: str) -> str:
        """The agent logged in at ``extension``, else the one whose home extension it is; '' for none."""
        acd = self.queue.acd
        i = acd.by_extension.get(extension)
        if i is None:
            i = next((n for n, a in enumerate(acd.agents) if a.home == extension), None)
        return acd.agents[i].id if i is not None else ""

    # ---------------------------------------------------------------------------- the end
    def _gone(self, call: "Call", now: float) -> None:
        if call.app is not None:
            call.app.gone(call, now)
        self.monitor.watched_call_gone(call, now)
        self.dialer.gone(call)
        self.outbound.watch_gone(call, now)
        self.presence.release(call.id, now)
        self.out.append(self._record(call, now))

    def _record(self, call: "Call", now: float) -> CallEnded:
        notes = call.notes
        answered = call.answered_at
        disposition = notes.get("disposition")
        if disposition is None:
            if answered is not None:
                disposition = Disposition.ANSWERED
            elif call.final_status:
                disposition = disposition_for_status(call.final_status)
            elif notes.get("overflowed"):
                disposition = Disposition.OVERFLOWED  # left unanswered after its queue overflowed
            elif call.end_reason == "cancelled" or notes.get("queue") or notes.get("ivr"):
                disposition = Disposition.ABANDONED  # the caller gave up ringing, in the IVR or the queue
            else:
                disposition = Disposition.FAILED
        w = self.wall
        call.hold.close(now)   # a call hung up on hold: its hold lasted to the hang-up
        call.parts.end(now, call.hold, transferred=False)   # an agent's part still open ends with the call
        return CallEnded(
            call=call.id, caller=call.caller_number, callee=call.callee_number, disposition=disposition,
            arrived=w(call.created), answered=None if answered is None else w(answered), ended=w(now),
            reason=call.end_reason, queue=notes.get("queue", ""), agent=notes.get("agent", ""),
            ivr=notes.get("ivr", ""), hung_up_by=call.hung_up_by,
            recordings=tuple((f, w(s), w(e)) for f, s, e in call.recordings),
            survey_score=notes.get("survey_score"), variables=dict(call.variables), context=dict(call.context),
            quality=dict(call.quality), service=bool(notes.get("service")),
            queued=w(notes["queued_at"]) if notes.get("queued_at") is not None else None,
            talk_ended=w(notes["talk_ended"]) if notes.get("talk_ended") is not None else None,
            transfers=int(notes.get("transfers", 0)), direction=notes.get("direction", ""), trunk=notes.get("trunk", ""), did=notes.get("did", ""),
            external=notes.get("external", ""), hold_seconds=round(call.hold.seconds, 3), holds=call.hold.holds,
            parts=call.parts.finish(w))

    def blocked(self, caller: str, callee: str, now: float) -> None:
        """A call refused before it became a call (blacklisted caller) still gets its record."""
        t = self.wall(now)
        self.out.append(CallEnded(call=f"blocked-{caller}-{int(t * 1000)}", caller=caller, callee=callee,
                                  disposition=Disposition.BLOCKED, arrived=t, answered=None, ended=t,
                                  reason="caller blacklisted"))

    # ---------------------------------------------------------------------------- policies
    def should_record(self, call: "Call") -> bool:
        mode = self.config.media.record
        if mode == "all":
            return True
        if mode == "none":
            return False
        if call.notes.get("outbound"):
            return True   # click-to-dial, campaigns and callbacks are recorded like the hotline's calls
        numbers = [call.caller_number, call.callee_number]
        if call.answered is not None and call.answered.extension:
            numbers.append(call.answered.extension)  # an agent with record = true
        exts = (self.config.extension(n) for n in numbers)
        return any(e is not None and e.record for e in exts)

    # ------------------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        ds = [d for app in self.apps if (d := app.next_deadline()) is not None]
        return min(ds) if ds else None

    def on_timer(self, now: float) -> None:
        for app in self.apps:
            try:
                app.on_timer(now)
            except Exception:
                log.exception("error in the timers of %s", app.name)
