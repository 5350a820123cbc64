"""Call control for the call centre: queue calls, agent offers and feature codes, between the B2BUA
(SIP dialogs) and the ACD (``acd.Acd``, the routing brain) and the media engine.

A call to a queue number is answered by the switch itself: the caller hears hold music (and position
announcements) from its media endpoint while the ACD picks an agent. Each ``RingAgent`` becomes a new
outgoing leg to the agent's registered phone(s) carrying the switch's own SDP offer; when the agent
answers, the ACD says ``Connect`` and the two endpoints are bridged (after the agent's work number is
announced to the caller, and the queue name whispered to the agent, when the queue asks for it).

Feature codes (``*11*2001`` login, ``*12`` logout, ``*13`` not ready, ``*14`` ready) dialled from a
phone are answered, confirmed with a tone (two short beeps: done; one low tone: refused) and hung up.

Everything here is sans-IO like the B2BUA: handlers return actions (``Send``, ``WriteQueueLog``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from acd import actions as acd_actions
from acd import events as acd_events
from acd.engine import Acd
from acd.featurecodes import parse_feature_code

from .sip.dialog import new_tag
from .sip.message import Request, Response, make_response
from .sip.transaction import Peer, ServerTransaction

if TYPE_CHECKING:
    from .b2bua import B2BUA, Call, Leg

log = logging.getLogger("softswitch.queues")


@dataclass
class Notify:
    """An event for the outside (the agent desk's screen pop, the wallboard): delivered by the edge to
    whoever subscribed (``softswitch.control``)."""
    event: dict


@dataclass
class WriteQueueLog:
    """Append one line to the queue_log file (Asterisk format); the asyncio edge does the I/O."""
    path: Path
    line: str


def _tone(parts: list[tuple[float, float]]) -> np.ndarray:
    """(frequency Hz or 0 for a pause, seconds) pieces as 8 kHz samples at int16 scale."""
    out = []
    for freq, secs in parts:
        t = np.arange(int(secs * 8000)) / 8000
        out.append(np.zeros_like(t) if freq == 0 else 9000 * np.sin(2 * np.pi * freq * t) * np.minimum(1, t * 200))
    return np.concatenate(out).astype(np.float32)


CONFIRM_TONE = [(1000, 0.12), (0, 0.08), (1000, 0.12), (0, 0.3)]
# Supervisor codes, dialled with the agent's id (*21*2001): listen (hears both), whisper (heard by the
# agent only), barge (a 3-way call). Only [acd] supervisors may use them.
MONITOR_CODES = {"*21": "listen", "*22": "whisper", "*23": "barge"}
REFUSE_TONE = [(400, 0.6), (0, 0.3)]


class QueueCalls:
    def __init__(self, b2bua: "B2BUA", config: Any):
        self.b2bua = b2bua
        self.config = config
        self.acd = Acd(config.acd)
        acd_cfg = config.acd
        self.queue_log = Path(acd_cfg.queue_log) if acd_cfg.queue_log else None
        ivr = config.ivr
        self.sounds_dir = Path(ivr.sounds_dir) if ivr is not None else config.source.parent / "var" / "prompts"
        self.language = ivr.default_language if ivr is not None else "en"
        self.calls: dict[str, "Call"] = {}        # ACD call id (= B2BUA call id) -> call
        self.busy: dict[str, int] = {}            # extension -> non-ACD calls it is in

    # ------------------------------------------------------------------------------ routing
    def queue_for(self, number: str) -> str | None:
        return self.acd.queue_for_number(number)

    def is_feature_code(self, number: str) -> bool:
        return number.startswith("*") and (parse_feature_code(number, self.config.acd.feature_codes) is not None
                                           or _monitor_code(number) is not None)

    def next_deadline(self) -> float | None:
        return self.acd.next_deadline()

    def on_timer(self, now: float) -> list:
        if (d := self.acd.next_deadline()) is not None and d <= now:
            return self._execute(self.acd.on_timer(now), now)
        return []

    def feed(self, event: Any, now: float) -> list:
        try:
            acts = self.acd.handle(event, now)
        except ValueError as e:  # an unknown agent or queue id from an API call
            log.warning("ACD refused %s: %s", type(event).__name__, e)
            return []
        return self._execute(acts, now)

    # --------------------------------------------------------------------- phone busy state
    def phone_busy(self, number: str, now: float) -> list:
        """A non-ACD call involves this extension: the ACD must not offer it a queue call."""
        self.busy[number] = self.busy.get(number, 0) + 1
        return self.feed(acd_events.PhoneBusy(number), now) if self.busy[number] == 1 else []

    def phone_free(self, number: str, now: float) -> list:
        n = self.busy.get(number, 0) - 1
        if n > 0:
            self.busy[number] = n
            return []
        self.busy.pop(number, None)
        return self.feed(acd_events.PhoneFree(number), now)

    # ------------------------------------------------------------------------ incoming calls
    def on_queue_invite(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, number: str,
                        queue: str, now: float) -> list:
        b = self.b2bua
        call, actions = b.answer_locally(req, peer, tx, caller, number, now, kind=f"queue {queue}")
        if call is None:
            return actions
        call.queue = queue
        self.calls[call.acd_id] = call
        log.info("call %s: %s entered queue %s", call.id, caller, queue)
        return actions + self.feed(acd_events.CallArrived(call.acd_id, queue, caller), now)

    def on_monitor(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, number: str,
                   now: float) -> list:
        """A supervisor joins an agent's call: listen, whisper to the agent, or barge in."""
        mode, agent_id = _monitor_code(number)  # type: ignore[misc]
        b = self.b2bua
        target = next((c for c in b.calls.values() if c.connected and c.answered is not None
                       and c.answered.agent_id == agent_id and c.state == "answered"), None)
        if caller not in self.config.acd.supervisors or target is None or b.media is None or target.bridge is None:
            why = "not a supervisor" if caller not in self.config.acd.supervisors else f"agent {agent_id} is not on a call"
            log.info("monitor %s from %s refused: %s", number, caller, why)
            return b._respond(tx, make_response(req, 403 if why == "not a supervisor" else 480, why.capitalize(),
                                                to_tag=new_tag()), now)
        call, actions = b.answer_locally(req, peer, tx, caller, number, now, kind=f"{mode} {agent_id}")
        if call is None:
            return actions
        call.service = True
        call.state = "answered"
        b.media.join(target.bridge, call.caller.media, mode,
                     whisper_to=target.answered.media if mode == "whisper" else ())
        target.monitors.append(call)
        log.info("call %s: supervisor %s %s agent %s (call %s)", call.id, caller, mode + "s" if mode != "barge" else
                 "barges in on", agent_id, target.id)
        return actions

    def set_monitor_mode(self, call: "Call", mode: str) -> None:
        """Switch a supervisor's monitoring call between listen, whisper and barge (the desk's buttons)."""
        b = self.b2bua
        target = next((c for c in b.calls.values() if call in c.monitors), None)
        if target is None or target.bridge is None:
            raise KeyError(call.id)
        b.media.set_mode(target.bridge, call.caller.media, mode,
                         whisper_to=target.answered.media if mode == "whisper" else ())

    def on_feature_code(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, number: str,
                        now: float) -> list:
        if _monitor_code(number) is not None:
            return self.on_monitor(req, peer, tx, caller, number, now)
        acts = self.acd.handle(acd_events.FeatureCodeDialled(caller, number), now)
        reply = next((a for a in acts if isinstance(a, acd_actions.FeatureCodeReply)), None)
        ok = bool(reply and reply.ok)
        log.info("feature code %s from %s: %s (%s)", number, caller, "ok" if ok else "refused",
                 reply.message if reply else "no reply")
        b = self.b2bua
        call, actions = b.answer_locally(req, peer, tx, caller, number, now, kind="feature code")
        if call is not None:
            call.service = True
            if b.media is not None and call.caller.media is not None:
                name = "<confirm>" if ok else "<refuse>"
                snd = b.media.bank.sounds.get(name) or b.media.bank.add(name, _tone(CONFIRM_TONE if ok else REFUSE_TONE))
                call.prompt_id = b.media.play(call.caller.media, snd)
                call.after_prompt = "hangup"
            else:
                actions += b.hangup(call, now, "feature code done")
        return actions + self._execute(acts, now)

    # ----------------------------------------------------------------------- agent legs
    def on_agent_response(self, resp: Response, leg: "Leg", now: float) -> list:
        """A response to the INVITE that offers a queue call to an agent's phone."""
        b = self.b2bua
        call = leg.call
        status = resp.status
        if status < 200:
            return []
        if status < 300:
            actions, first = b.confirm_callee_leg(leg, resp, now)
            if not first:  # a 2xx retransmission: our ACK again, nothing else
                return actions
            if call.state == "ended" or leg.withdrawn:
                actions += b.bye_leg(leg, now)
                b.detach(leg)
                return actions
            leg.answered_offer = True
            return actions + self.feed(acd_events.OfferAnswered(call.acd_id, leg.agent_id, leg.invite.call_id), now)
        leg.state = "terminated"
        b.detach(leg)
        if leg.withdrawn or call.state == "ended":
            return []
        others = [l for l in call.callees if l.agent_id == leg.agent_id and l.state in ("calling", "early")]
        if others:
            return []
        log.info("call %s: agent %s at %s did not take the call (%d)", call.id, leg.agent_id, leg.extension, status)
        return self.feed(acd_events.OfferRejected(call.acd_id, leg.agent_id), now)

    def on_caller_gone(self, call: "Call", now: float, by_agent: bool) -> list:
        """The queue call ended (caller or agent hung up, or the switch ended it)."""
        self.calls.pop(call.acd_id, None)
        if call.service:
            return []
        # (agent phones still ringing were cancelled by B2BUA._end, like every call's ringing legs)
        if call.connected:
            return self.feed(acd_events.CallEnded(call.acd_id, by_agent=by_agent), now)
        return self.feed(acd_events.CallAbandoned(call.acd_id), now)

    def agent_left(self, call: "Call", now: float) -> list:
        """The agent hung up but the caller stays (survey): the ACD's part of the call is over."""
        b = self.b2bua
        agent = call.answered
        if call.recording is not None and b.media is not None:
            b.media.stop_recording(call.recording)
            call.recording = None
        if agent is not None:
            b.detach(agent)
        if b.media is not None and call.caller.media is not None:
            b.media.leave(call.caller.media)
        self.calls.pop(call.acd_id, None)
        call.connected, call.queue, call.media_partner = False, None, None
        log.info("call %s: agent %s hung up; caller stays for the survey", call.id, agent.agent_id if agent else "-")
        return self.feed(acd_events.CallEnded(call.acd_id, by_agent=True), now)

    def on_playback_finished(self, leg: "Leg", playback: int, now: float) -> list:
        call = leg.call
        # playback ids count per endpoint: match the leg as well as the id
        if leg is call.answered and leg is not call.caller and playback == call.agent_prompt_id:
            call.agent_prompt_id = None
            return self._maybe_bridge(call, now)
        if leg is not call.caller or playback != call.prompt_id:
            return []
        call.prompt_id = None
        what, call.after_prompt = call.after_prompt, None
        if what == "hangup":
            return self.b2bua.hangup(call, now, "prompt played")
        if what == "bridge":
            return self._maybe_bridge(call, now)
        if what == "music" and call.caller.media is not None:
            self.b2bua.media.play_music(call.caller.media)
        return []

    # ---------------------------------------------------------------------- ACD decisions
    def _execute(self, acts: list, now: float) -> list:
        out: list = []
        for a in acts:
            try:
                out += self._do(a, now)
            except Exception:  # one failed decision must not lose the others
                log.exception("error executing %s", a)
        return out

    def _do(self, a: Any, now: float) -> list:
        b = self.b2bua
        if isinstance(a, acd_actions.QueueLogLine):
            return [WriteQueueLog(self.queue_log, a.line)] if self.queue_log else []
        if isinstance(a, acd_actions.AgentStateChanged):
            log.info("agent %s is %s%s", a.agent_id, a.state, f" ({a.reason})" if a.reason else "")
            return [Notify({"type": "agent_state", "agent": a.agent_id, "state": a.state, "reason": a.reason})]
        if isinstance(a, acd_actions.FeatureCodeReply):
            return []  # answered by on_feature_code
        call = self.calls.get(getattr(a, "call_id", ""))
        if call is None:
            return []
        ep = call.caller.media
        if isinstance(a, acd_actions.StartMusic):
            if ep is not None and call.prompt_id is None:
                b.media.play_music(ep)
            return []
        if isinstance(a, acd_actions.Announce):
            files = self._prompt_files(_queue_announcement(self.language, a.position, a.expected_wait))
            if ep is not None and files:
                call.prompt_id = b.media.play(ep, self.sequence(files))
                call.after_prompt = "music"
            return []
        if isinstance(a, acd_actions.RingAgent):
            log.info("call %s: queue %s offers the call to agent %s at %s", call.id, a.queue, a.agent_id, a.extension)
            legs, actions = b.ring_extension(call, a.extension, now, agent_id=a.agent_id,
                                             display=f"{a.queue}: {a.caller or 'anonymous'}")
            if not legs:
                return actions + self.feed(acd_events.OfferRejected(call.acd_id, a.agent_id), now)
            return actions + [Notify({"type": "offer", "agent": a.agent_id, "call": call.id, "caller": call.caller_number,
                                      "queue": a.queue, "variables": dict(call.ivr_variables),
                                      "context": dict(call.context)})]
        if isinstance(a, acd_actions.CancelRing):
            actions: list = []
            for leg in call.callees:
                if leg.agent_id == a.agent_id and leg.state != "terminated":
                    leg.withdrawn = True
                    if leg.state in ("calling", "early"):
                        actions += b.cancel_leg(leg, now)
                    else:
                        actions += b.bye_leg(leg, now)
                        b.detach(leg)
            return actions
        if isinstance(a, acd_actions.Connect):
            return self._connect(call, a, now)
        if isinstance(a, acd_actions.Overflow):
            log.info("call %s: overflow from queue %s to %s", call.id, a.from_queue, a.to_queue)
            call.queue = a.to_queue
            return []
        if isinstance(a, (acd_actions.HangupWithPrompt, acd_actions.SendToVoicemail)):
            prompt = a.prompt if isinstance(a, acd_actions.HangupWithPrompt) else "goodbye"
            log.info("call %s: %s", call.id, f"to voicemail {a.mailbox}: not wired yet, hanging up"
                     if isinstance(a, acd_actions.SendToVoicemail) else f"hang up with prompt {prompt}")
            files = self._prompt_files([prompt])
            if ep is not None and files:
                call.prompt_id = b.media.play(ep, self.sequence(files))
                call.after_prompt = "hangup"
                return []
            return b.hangup(call, now, "queue gave up")
        return []

    def _connect(self, call: "Call", a: acd_actions.Connect, now: float) -> list:
        b = self.b2bua
        agent_leg = next((l for l in call.callees if l.agent_id == a.agent_id and l.answered_offer
                          and l.state == "confirmed"), None)
        if agent_leg is None:
            return []
        actions: list = []
        for leg in call.callees:  # ring-all: the other phones stop ringing
            if leg is not agent_leg and leg.state in ("calling", "early"):
                leg.withdrawn = True
                actions += b.cancel_leg(leg, now)
        call.answered = agent_leg
        call.connected = True
        call.state = "answered"
        call.answered_at = now
        b.media.stop_music(call.caller.media)
        b.media.stop_playback(call.caller.media)
        call.prompt_id = call.agent_prompt_id = None
        log.info("call %s: %s connected to agent %s at %s", call.id, call.caller_number, a.agent_id, a.extension)
        actions.append(Notify({"type": "connected", "agent": a.agent_id, "call": call.id,
                               "caller": call.caller_number, "queue": call.queue}))
        if a.announce_agent:
            files = self._prompt_files(_agent_announcement(self.language, a.announce_agent))
            if files:
                call.prompt_id = b.media.play(call.caller.media, self.sequence(files))
                call.after_prompt = "bridge"
        if a.whisper:
            files = self._prompt_files([f"queue-{a.whisper}"])
            if files:
                call.agent_prompt_id = b.media.play(agent_leg.media, self.sequence(files))
        return actions + self._maybe_bridge(call, now)

    def _maybe_bridge(self, call: "Call", now: float) -> list:
        if call.prompt_id is None and call.agent_prompt_id is None and call.answered is not None:
            self.b2bua.bridge_answered(call)
        return []

    # -------------------------------------------------------------------------- prompts
    def _prompt_files(self, names: list[str]) -> list[str]:
        files = [self.sounds_dir / self.language / f"{n}.wav" for n in names]
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            log.warning("prompt(s) missing, not played: %s (run: softswitch prompts build)", ", ".join(missing[:3]))
            return []
        return [str(f) for f in files]

    def sequence(self, files: list[str]) -> Any:
        bank = self.b2bua.media.bank
        name = "seq:" + "|".join(files)
        snd = bank.sounds.get(name)
        if snd is None:
            parts = [bank.pcm[x.offset:x.offset + x.length] for x in (bank.load(f) for f in files)]
            snd = bank.add(name, np.concatenate(parts))
        return snd


def _queue_announcement(lang: str, position: int | None, wait: int | None) -> list[str]:
    from ivr.prompts import queue_announcement
    return queue_announcement(lang, position, None if wait is None else max(1, round(wait / 60)))


def _agent_announcement(lang: str, agent_id: str) -> list[str]:
    from ivr.prompts import agent_announcement
    return agent_announcement(lang, agent_id)



def _monitor_code(number: str) -> tuple[str, str] | None:
    """``*21*2001`` → ("listen", "2001")."""
    for code, mode in MONITOR_CODES.items():
        if number.startswith(code):
            rest = number[len(code):].lstrip("*").rstrip("#")
            if rest.isdigit():
                return mode, rest
    return None
