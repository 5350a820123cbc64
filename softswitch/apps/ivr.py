"""IVR calls: a dialled IVR number is answered by the switch and walked through its flow.

The flow session (``ivr.IvrSession``) is sans-IO and so is this application: DTMF, finished prompts,
speech results and timers go in as IVR events; the session's actions become commands (play, record,
hang up), hand-overs (``ToQueue`` to the queue application, ``Transfer`` to an extension) or work for
the edge (speech recognition in a worker, the voicemail index). A left voicemail is an event
(``events.VoicemailLeft``) that the records service puts in the store at once.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ivr import actions as ia
from ivr import events as ie
from ivr.runtime import Ivr

from .. import events as ev
from .. import legs as L
from ..states import move
from ..timers import Timers
from .base import Application, Host

if TYPE_CHECKING:
    from ..call import Call

log = logging.getLogger("softswitch.ivr")

SILENCE_RMS = 330.0  # int16 scale: about -40 dBFS, below any voice, above line hiss


class IvrPhase(str, Enum):
    MENU = "menu"                # prompts, digits, speech
    RECORDING = "recording"      # a voicemail is being recorded
    DONE = "done"                # the flow ended or handed the call over


PHASES = {
    IvrPhase.MENU: frozenset({IvrPhase.RECORDING, IvrPhase.DONE}),
    IvrPhase.RECORDING: frozenset({IvrPhase.MENU, IvrPhase.DONE}),
    IvrPhase.DONE: frozenset(),
}


@dataclass(eq=False)
class IvrCall:
    call: "Call"
    session: Any                                   # ivr.engine.IvrSession
    flow: str
    phase: IvrPhase = IvrPhase.MENU
    plays: dict[int, int] = field(default_factory=dict)   # media playback id -> IVR Play id
    recording_started: float = 0.0
    silence: float = 0.0                           # seconds of silence that end a voicemail (0 = off)
    silent_for: float = 0.0
    speech: bool = False                           # a menu listens for spoken keywords
    say: int = 0                                   # the IVR Say waiting for its runtime speech (softswitch.tts)

    def move(self, new: IvrPhase) -> None:
        self.phase = move(self.phase, new, PHASES, f"IVR of call {self.call.id}")


class IvrApp(Application):
    name = "ivr"

    def __init__(self, router: Host) -> None:
        super().__init__(router)
        self.ivr_config = self.config.ivr
        self.ivr = Ivr(self.ivr_config) if self.ivr_config is not None else None
        self.sounds = router.sounds
        self.calls: dict[str, IvrCall] = {}
        self._timers: Timers[str] = Timers()

    def serves(self, number: str) -> bool:
        return self.ivr_config is not None and number in self.ivr_config.numbers

    def has_flow(self, flow: str) -> bool:
        return bool(flow) and self.ivr is not None and flow in self.ivr_config.flows

    # ------------------------------------------------------------------------------- calls
    def on_incoming(self, call: "Call", number: str, now: float) -> None:
        if self.do(L.AnswerLocally(call), now):
            self._start(call, number, self.ivr_config.numbers[number], now, "entered")

    def take(self, call: "Call", number: str, now: float) -> None:
        """A call handed over: the survey flow after the agent hung up, or a transfer to an IVR number."""
        self.do(L.Music(call.caller, False), now)
        flow = self.ivr_config.numbers.get(number, number)
        self._start(call, number, flow, now, "enters")

    def _start(self, call: "Call", number: str, flow: str, now: float, verb: str) -> None:
        assert self.ivr is not None
        session = self.ivr.session(number, call.caller_number, now, call.id)
        if call.variables.get("outbound"):   # a campaign's contact: its data for the flow's say nodes
            session.variables.update({str(k): str(v) for k, v in call.variables.items()
                                      if isinstance(v, (str, int, float)) and not isinstance(v, bool)})
        ic = self.calls[call.id] = IvrCall(call, session, flow)
        call.notes["ivr"] = flow
        log.info("call %s: %s %s IVR flow %s", call.id, call.caller_number, verb, flow)
        self._run(ic, session.start(now), now)

    def release(self, call: "Call", now: float, target: str = "") -> None:
        ic = self.calls.pop(call.id, None)
        if ic is not None:
            self._quiet(ic, now)

    def gone(self, call: "Call", now: float) -> None:
        ic = self.calls.get(call.id)
        if ic is None:
            return
        self._feed(ic, ie.CallerHungUp(), now)  # a voicemail being recorded is still delivered
        self.calls.pop(call.id, None)
        if ic.speech:
            self.router.out.append(ev.SpeechStop(call.id))

    def _quiet(self, ic: IvrCall, now: float) -> None:
        """Nothing of the IVR goes on for this call (it moves on to a queue, an extension...)."""
        caller = ic.call.caller
        self.do(L.StopPlayback(caller), now)
        ic.plays = {}
        if ic.speech:
            ic.speech = False
            self.router.out.append(ev.SpeechStop(ic.call.id))
        self.do(L.Listen(caller, False), now)
        if ic.phase is not IvrPhase.DONE:
            ic.move(IvrPhase.DONE)

    # --------------------------------------------------------------------------- events
    def handle(self, event: L.LegEvent, now: float) -> None:
        ic = self.calls.get(event.call.id)
        if ic is None or event.leg is not event.call.caller:
            super().handle(event, now)
            return
        if isinstance(event, L.DigitReceived):
            self._feed(ic, ie.DigitReceived(event.digit), now)
        elif isinstance(event, L.PlaybackFinished):
            ivr_id = ic.plays.pop(event.playback, None)
            if ivr_id is not None:
                self._feed(ic, ie.PlaybackFinished(ivr_id), now)
        elif isinstance(event, L.AudioReceived):
            self._audio(ic, event.samples, now)
        else:
            super().handle(event, now)

    def spoken(self, call_id: str, say_id: int, file: str | None, now: float) -> None:
        """Runtime speech for a ``Say`` is ready (``file``), or there is nothing to say (None): play it, or
        let the flow go on."""
        ic = self.calls.get(call_id)
        if ic is None or ic.say != say_id:
            return   # the caller moved on (or left) meanwhile
        ic.say = 0
        pid = None
        if file and ic.call.live:
            pid = self.do(L.Play(ic.call.caller, self.sounds.sequence([file])), now)
        if pid is None:
            self._feed(ic, ie.PlaybackFinished(say_id), now)
        else:
            ic.plays = {pid: say_id}

    def speech_heard(self, call_id: str, text: str, now: float) -> None:
        """A result of the edge's speech worker."""
        ic = self.calls.get(call_id)
        if ic is not None and ic.speech:
            log.info("call %s: speech heard: %s", call_id, text)
            self._feed(ic, ie.SpeechResult(text), now)

    def _audio(self, ic: IvrCall, samples: Any, now: float) -> None:
        """200 ms of what the caller says: the voicemail's silence check, and the speech worker."""
        if ic.speech:
            self.router.out.append(ev.SpeechAudio(ic.call.id, samples.astype("int16")))
        if ic.phase is not IvrPhase.RECORDING or ic.silence <= 0:
            return
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
        ic.silent_for = ic.silent_for + len(samples) / 8000 if rms < SILENCE_RMS else 0.0
        if ic.silent_for >= ic.silence:
            log.info("call %s: voicemail ended by %.0f s of silence", ic.call.id, ic.silent_for)
            self._stop_recording(ic, "silence", now)

    def _stop_recording(self, ic: IvrCall, why: str, now: float) -> None:
        if ic.phase is not IvrPhase.RECORDING:
            return
        self.do(L.Record(ic.call, False), now)
        ic.move(IvrPhase.MENU)
        if not ic.speech:
            self.do(L.Listen(ic.call.caller, False), now)
        self._feed(ic, ie.RecordingStopped(why, now - ic.recording_started), now)

    # ------------------------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        ds = [d for ic in self.calls.values() if (d := ic.session.next_deadline()) is not None]
        return min(ds) if ds else None

    def on_timer(self, now: float) -> None:
        for ic in list(self.calls.values()):
            d = ic.session.next_deadline()
            if d is not None and d <= now:
                self._feed(ic, ie.TimerFired(), now)

    # ----------------------------------------------------------------------- the session
    def _feed(self, ic: IvrCall, event: Any, now: float) -> None:
        call = ic.call
        try:
            acts = ic.session.handle(event, now)
        except Exception:
            log.exception("IVR session of call %s failed on %s", call.id, type(event).__name__)
            self.calls.pop(call.id, None)
            self.do(L.Hangup(call, "IVR error"), now)
            return
        self._run(ic, acts, now)

    def _run(self, ic: IvrCall, acts: list, now: float) -> None:
        for a in acts:
            try:
                self._do(ic, a, now)
            except Exception:
                log.exception("call %s: error executing IVR action %s", ic.call.id, a)
        if ic.session.done and self.calls.get(ic.call.id) is ic and ic.call.app is self:
            self.calls.pop(ic.call.id, None)

    def _do(self, ic: IvrCall, a: Any, now: float) -> None:
        call = ic.call
        caller = call.caller
        live = call.live
        if isinstance(a, ia.Play):
            if not live:
                return
            files = [f for f in a.prompt_files if self.sounds.exists(f)]
            if len(files) < len(a.prompt_files):
                log.warning("call %s: prompt(s) missing: %s (run: softswitch prompts build)", call.id,
                            ", ".join(sorted(set(a.prompt_files) - set(files))[:3]))
                self._feed(ic, ie.PlaybackFinished(a.id), now)  # counts as played: the flow moves on
                return
            pid = self.do(L.Play(caller, self.sounds.sequence(a.prompt_files)), now)
            ic.plays = {pid: a.id} if pid is not None else {}  # one prompt at a time: a new Play replaces the old
        elif isinstance(a, ia.Say):
            if not live:
                return
            self.do(L.StopPlayback(caller), now)
            ic.plays, ic.say = {}, a.id
            self.router.out.append(ev.SpeakRequest(call.id, a.id, a.text, a.lookup, a.value, a.language))
        elif isinstance(a, ia.StopPlayback):
            self.do(L.StopPlayback(caller), now)
            ic.plays, ic.say = {}, 0
        elif isinstance(a, ia.StartRecording):
            if not live:
                return
            path = Path(self.ivr_config.voicemail_dir) / a.path  # the recorder creates its folder
            self.do(L.Record(call, True, file=str(path)), now)
            ic.move(IvrPhase.RECORDING)
            ic.recording_started = now
            ic.silence, ic.silent_for = a.silence, 0.0
            if a.silence > 0:
                self.do(L.Listen(caller, True), now)  # 200 ms chunks for the silence check
            log.info("call %s: recording voicemail to %s", call.id, path)
        elif isinstance(a, ia.StopRecording):
            self._stop_recording(ic, "stopped", now)
        elif isinstance(a, ia.VoicemailLeft):
            log.info("call %s: voicemail from %s, callback %s, %.1fs: %s", call.id, a.caller,
                     a.callback_number or "-", a.duration, a.file)
            call.notes["disposition"] = ev.Disposition.VOICEMAIL
            vm_dir = Path(self.ivr_config.voicemail_dir)
            self.router.out.append(ev.SaveVoicemailIndex(vm_dir, a))
            self.router.out.append(ev.VoicemailLeft(call.id, a.caller, str(vm_dir / a.file), a.duration,
                                                    a.callback_number, a.mailbox, a.time))
        elif isinstance(a, ia.ToQueue):
            call.variables.update(a.variables)
            log.info("call %s: IVR hands %s to queue %s (priority %d)", call.id, call.caller_number, a.queue,
                     a.priority)
            self.calls.pop(call.id, None)
            self._quiet(ic, now)
            queue = self.router.queue
            call.app = queue
            queue.enqueue(call, a.queue, now, a.priority, skill=a.skill)
        elif isinstance(a, ia.Transfer):
            log.info("call %s: IVR transfers %s to %s", call.id, call.caller_number, a.extension)
            self.calls.pop(call.id, None)
            self._quiet(ic, now)
            self.do(L.Music(caller), now)
            call.callee_number = a.extension
            self.router.hand_over(call, self.router.extension, a.extension, now)
        elif isinstance(a, ia.Hangup):
            log.info("call %s: IVR hangs up (%s)", call.id, a.reason)
            self.do(L.Hangup(call, f"IVR: {a.reason}"), now)
        elif isinstance(a, ia.SurveyResult):
            call.notes["survey_score"] = a.score
            log.info("call %s: survey score %d", call.id, a.score)
        elif isinstance(a, ia.Log):
            log.log(logging.getLevelName(a.level.upper()) if isinstance(a.level, str) else logging.INFO,
                    "call %s: %s", call.id, a.message)
        elif isinstance(a, ia.StartSpeech):
            if self.ivr is None or not self.ivr.speech or not live:
                return
            ic.speech = True
            self.router.out.append(ev.SpeechStart(call.id, tuple(a.keywords)))
            self.do(L.Listen(caller, True), now)
        elif isinstance(a, ia.StopSpeech):
            if ic.speech:
                ic.speech = False
                self.router.out.append(ev.SpeechStop(call.id))
            if ic.phase is not IvrPhase.RECORDING:
                self.do(L.Listen(caller, False), now)
        elif isinstance(a, ia.SetLanguage):  # travels with the call: the queue's prompts and routing use it
            call.variables["language"] = a.language
            log.info("call %s: IVR %s", call.id, a)
        elif isinstance(a, (ia.CallerFlagged, ia.ToVoicemail, ia.CollectDigits)):
            log.info("call %s: IVR %s", call.id, a)


def voicemail_dict(a: ia.VoicemailLeft) -> dict:
    return asdict(a)
