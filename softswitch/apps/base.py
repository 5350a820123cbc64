"""What every call application implements, and the default reactions most of them share."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from .. import legs as L

if TYPE_CHECKING:
    from ..call import Call


class Host(Protocol):
    """What applications use of call control (``softswitch.router.Router``): the B2BUA, the config,
    shared services, the outbox, the other applications they hand calls to."""
    b2bua: Any
    config: Any
    out: list
    sounds: Any                     # apps.sounds.Sounds
    presence: Any                   # softswitch.presence.Presence
    queue: Any                      # apps.queue.QueueApp
    ivr: Any                        # apps.ivr.IvrApp
    extension: Any                  # apps.extension.ExtensionApp
    monitor: Any                    # apps.monitor.MonitorApp
    external: Any                   # apps.external.ExternalApp: calls to external numbers
    dialer: Any                     # trunks.dialer.Dialer: external numbers through dial rules and trunks
    trunks: Any                     # trunks.table.TrunkTable: trunks, dial rules, numbering (swapped by reload)
    outbound: Any                   # apps.outbound.OutboundApp
    originator: Any                 # apps.originate.OriginateApp

    def wall(self, t: float) -> float: ...
    def route(self, number: str) -> "Application": ...
    def hand_over(self, call: "Call", app: "Application", number: str, now: float) -> None: ...
    def agent_answered(self, call: "Call", extension: str, now: float) -> None: ...


class Application:
    """Base of the call applications. The router calls:

    - ``on_incoming(call, number, now)``: a new INVITE for a number this application serves; it must
      ring, answer (``AnswerLocally``) or reject the call;
    - ``take(call, number, now)``: an existing call is handed over (blind transfer, IVR → queue,
      queue → survey); the caller leg is already answered by the switch;
    - ``release(call, now, target)``: the call leaves this application for another (transfer);
    - ``handle(event, now)``: leg events of its calls (``softswitch.legs``);
    - ``gone(call, now)``: the call ended: drop its state.

    What a call record needs from an application (its queue, agent, IVR flow, a disposition that the
    defaults cannot tell, such as ``voicemail``) goes into ``call.notes``.
    """

    name = "application"

    def __init__(self, router: Host):
        self.router = router
        self.b2bua = router.b2bua
        self.config = router.config

    def do(self, cmd: Any, now: float) -> Any:
        return self.b2bua.do(cmd, now)

    # --------------------------------------------------------------------------- interface
    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        self.do(L.Reject(call, 404), now)

    def take(self, call: "Call", number: str, now: float) -> None:
        self.do(L.Hangup(call, f"{self.name} cannot take a transferred call"), now)

    def release(self, call: "Call", now: float, target: str = "") -> None:
        self.gone(call, now)

    def handle(self, event: L.LegEvent, now: float) -> None:
        if isinstance(event, L.LegHungUp):
            self.hung_up(event.leg, now)

    def gone(self, call: "Call", now: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def on_timer(self, now: float) -> None:
        pass

    # ---------------------------------------------------------------------------- defaults
    def hung_up(self, leg: Any, now: float) -> None:
        """A party hung up: the call is over for everyone."""
        call = leg.call
        who = "caller" if leg is call.caller else "callee"
        call.hung_up_by = who
        self.do(L.Hangup(call, f"{who} hung up"), now)
