"""Call control for the IVR: a dialled IVR number is answered by the switch and walked through its flow
(``ivr.IvrSession``), with prompts played and digits detected by the media engine.

The session is sans-IO and so is this glue: DTMF events, finished prompts and timers go in as IVR
events, and the session's actions become media operations (play, record), SIP operations (hang up,
transfer to an extension) or a hand-over to the ACD (``ToQueue`` → ``acd.events.CallArrived``).
Voicemail is recorded by the media engine into ``[ivr] voicemail_dir`` and listed in its index.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from acd import events as acd_events
from ivr import actions as ia
from ivr import events as ie
from ivr.runtime import Ivr
from ivr.voicemail_index import add_message

from .sip.message import Request, Response
from .sip.transaction import Peer, ServerTransaction

if TYPE_CHECKING:
    from .b2bua import B2BUA, Call, Leg

log = logging.getLogger("softswitch.ivr")

SILENCE_RMS = 330.0  # int16 scale: about -40 dBFS, below any voice, above line hiss


@dataclass
class SaveVoicemail:
    """Append a left message to the voicemail index (fsynced); the asyncio edge does the I/O."""
    voicemail_dir: Path
    message: ia.VoicemailLeft

    def run(self) -> None:
        add_message(self.voicemail_dir, self.message)


class IvrCalls:
    def __init__(self, b2bua: "B2BUA", config: Any):
        self.b2bua = b2bua
        self.config = config.ivr
        self.ivr = Ivr(config.ivr) if config.ivr is not None else None
        self.sessions: dict[str, Any] = {}   # call id -> IvrSession

    def flow_for(self, number: str) -> str | None:
        return self.config.numbers.get(number) if self.config is not None else None

    def next_deadline(self) -> float | None:
        ds = [d for s in self.sessions.values() if (d := s.next_deadline()) is not None]
        return min(ds) if ds else None

    def on_timer(self, now: float) -> list:
        out: list = []
        for call_id, s in list(self.sessions.items()):
            d = s.next_deadline()
            if d is not None and d <= now:
                out += self._feed(call_id, ie.TimerFired(), now)
        return out

    # ------------------------------------------------------------------------------- calls
    def on_invite(self, req: Request, peer: Peer, tx: ServerTransaction, caller: str, number: str, flow: str,
                  now: float) -> list:
        b = self.b2bua
        call, actions = b.answer_locally(req, peer, tx, caller, number, now, kind=f"ivr {flow}")
        if call is None:
            return actions
        call.ivr = flow
        session = self.ivr.session(number, caller, now, call.id)  # type: ignore[union-attr]
        self.sessions[call.id] = session
        log.info("call %s: %s entered IVR flow %s", call.id, caller, flow)
        return actions + self._run(call, session.start(now), now)

    def start_flow(self, call: "Call", flow: str, now: float) -> list:
        """Put an answered caller into an IVR flow (the survey after the agent hangs up)."""
        call.ivr = flow
        session = self.ivr.session(flow, call.caller_number, now, call.id)  # type: ignore[union-attr]
        self.sessions[call.id] = session
        log.info("call %s: %s enters IVR flow %s", call.id, call.caller_number, flow)
        return self._run(call, session.start(now), now)

    def on_audio(self, leg: "Leg", samples: Any, now: float) -> list:
        """200 ms of what the caller says, while a menu listens for its keywords. (vosk runs here, on
        the event loop: about 10-30 ms of CPU per chunk; many simultaneous speech menus would want a
        worker process.)"""
        call = leg.call
        if leg is not call.caller:
            return []
        out: list = []
        if call.ivr_recording is not None and call.vm_silence > 0:
            out += self._silence_check(call, samples, now)
        rec = getattr(call, "recognizer", None)
        if rec is None:
            return out
        text = rec.feed(samples.astype("int16"))
        if not text:
            return []
        log.info("call %s: speech heard: %s", call.id, text)
        return out + self._feed(call.id, ie.SpeechResult(text), now)

    def _silence_check(self, call: "Call", samples: Any, now: float) -> list:
        """Voicemail ends after ``silence`` seconds below about -40 dBFS (the caller stopped talking
        but did not press # or hang up)."""
        import numpy as np
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if len(samples) else 0.0
        call.vm_silent_for = call.vm_silent_for + len(samples) / 8000 if rms < SILENCE_RMS else 0.0
        if call.vm_silent_for < call.vm_silence:
            return []
        media = self.b2bua.media
        media.stop_recording(call.ivr_recording)
        call.ivr_recording = None
        if getattr(call, "recognizer", None) is None:
            media.listen(call.caller.media, False)
        duration = now - call.ivr_recording_started
        log.info("call %s: voicemail ended by %.0f s of silence", call.id, call.vm_silent_for)
        return self._feed(call.id, ie.RecordingStopped("silence", duration), now)

    def on_digit(self, leg: "Leg", digit: str, now: float) -> list:
        if leg is not leg.call.caller:
            return []
        return self._feed(leg.call.id, ie.DigitReceived(digit), now)

    def on_playback_finished(self, leg: "Leg", playback: int, now: float) -> list:
        call = leg.call
        if leg is not call.caller:  # playback ids count per endpoint: only the caller's prompts are the IVR's
            return []
        ivr_id = call.ivr_plays.pop(playback, None)
        if ivr_id is None:
            return []
        return self._feed(call.id, ie.PlaybackFinished(ivr_id), now)

    def on_caller_gone(self, call: "Call", now: float) -> list:
        if call.id not in self.sessions:
            return []
        out = self._feed(call.id, ie.CallerHungUp(), now)
        self.sessions.pop(call.id, None)
        return out

    def on_transfer_response(self, resp: Response, leg: "Leg", now: float) -> list:
        """The extension an IVR ``Transfer`` rang answered or refused."""
        b = self.b2bua
        call = leg.call
        if resp.status < 200:
            return []
        if resp.status < 300:
            actions, first = b.confirm_callee_leg(leg, resp, now)
            if not first:  # a 2xx retransmission: our ACK again, nothing else
                return actions
            if call.state == "ended" or call.answered is not None:
                actions += b.bye_leg(leg, now)
                b.detach(leg)
                return actions
            call.answered = leg
            call.state = "answered"
            call.answered_at = now
            b.media.stop_playback(call.caller.media)
            b.media.stop_music(call.caller.media)
            b.bridge_answered(call)
            log.info("call %s: IVR transfer to %s answered", call.id, leg.extension)
            return actions
        leg.state = "terminated"
        b.detach(leg)
        if call.state != "ended" and all(l.state == "terminated" for l in call.callees) and call.answered is None:
            log.info("call %s: IVR transfer to %s failed (%d)", call.id, leg.extension, resp.status)
            return b.hangup(call, now, f"transfer failed {resp.status}")
        return []

    # ----------------------------------------------------------------------- the session
    def _feed(self, call_id: str, event: Any, now: float) -> list:
        s = self.sessions.get(call_id)
        call = self.b2bua.calls.get(call_id)
        if s is None or call is None:
            return []
        try:
            acts = s.handle(event, now)
        except Exception:
            log.exception("IVR session of call %s failed on %s", call_id, type(event).__name__)
            self.sessions.pop(call_id, None)
            return self.b2bua.hangup(call, now, "IVR error") if call.state != "ended" else []
        return self._run(call, acts, now)

    def _run(self, call: "Call", acts: list, now: float) -> list:
        out: list = []
        for a in acts:
            try:
                out += self._do(call, a, now)
            except Exception:
                log.exception("call %s: error executing IVR action %s", call.id, a)
        s = self.sessions.get(call.id)
        if s is not None and s.done:
            self.sessions.pop(call.id, None)
        return out

    def _do(self, call: "Call", a: Any, now: float) -> list:
        b = self.b2bua
        media = b.media
        ep = call.caller.media
        if isinstance(a, ia.Play):
            if ep is None or call.state == "ended":
                return []
            missing = [f for f in a.prompt_files if not Path(f).exists()]
            if missing:
                log.warning("call %s: prompt(s) missing: %s (run: softswitch prompts build)", call.id,
                            ", ".join(missing[:3]))
                return self._feed_later(call, a.id, now)
            pid = media.play(ep, b.queues.sequence(a.prompt_files))
            call.ivr_plays = {pid: a.id}  # one prompt at a time: a new Play replaces the old
            return []
        if isinstance(a, ia.StopPlayback):
            if ep is not None:
                media.stop_playback(ep)
            call.ivr_plays = {}
            return []
        if isinstance(a, ia.StartRecording):
            path = Path(self.config.voicemail_dir) / a.path  # the recorder creates its folder
            call.ivr_recording = media.start_recording(call.id, left=ep, right=[], name=str(path),
                                                       parties={"left": call.caller_number, "right": ""})
            call.ivr_recording_started = now
            call.vm_silence, call.vm_silent_for = a.silence, 0.0
            if a.silence > 0:
                media.listen(ep, True)  # 200 ms chunks for the silence check
            log.info("call %s: recording voicemail to %s", call.id, path)
            return []
        if isinstance(a, ia.StopRecording):
            rec = call.ivr_recording
            if rec is not None:
                media.stop_recording(rec)
                call.ivr_recording = None
                if getattr(call, "recognizer", None) is None and ep is not None:
                    media.listen(ep, False)
                duration = now - call.ivr_recording_started
                return self._feed(call.id, ie.RecordingStopped("stopped", duration), now)
            return []
        if isinstance(a, ia.VoicemailLeft):
            log.info("call %s: voicemail from %s, callback %s, %.1fs: %s", call.id, a.caller,
                     a.callback_number or "-", a.duration, a.file)
            from dataclasses import asdict
            from .queues import Notify
            return [SaveVoicemail(Path(self.config.voicemail_dir), a),
                    Notify({"type": "voicemail", "call": call.id, **asdict(a)})]  # the API files it in the store
        if isinstance(a, ia.ToQueue):
            q = b.queues
            call.queue = a.queue
            call.ivr_variables = dict(a.variables)
            call.ivr_plays = {}
            q.calls[call.acd_id] = call
            media.stop_playback(ep)
            log.info("call %s: IVR hands %s to queue %s (priority %d)", call.id, call.caller_number, a.queue,
                     a.priority)
            return q.feed(acd_events.CallArrived(call.acd_id, a.queue, call.caller_number, a.priority), now)
        if isinstance(a, ia.Transfer):
            legs, actions = b.ring_extension(call, a.extension, now)
            log.info("call %s: IVR transfers %s to %s (%d phone(s))", call.id, call.caller_number, a.extension,
                     len(legs))
            if not legs:
                return actions + b.hangup(call, now, f"transfer target {a.extension} not registered")
            b.ring_transfer(call, a.extension, now)
            return actions
        if isinstance(a, ia.Hangup):
            log.info("call %s: IVR hangs up (%s)", call.id, a.reason)
            return b.hangup(call, now, f"IVR: {a.reason}")
        if isinstance(a, ia.SurveyResult):
            call.survey_score = a.score
            log.info("call %s: survey score %d", call.id, a.score)
            return []
        if isinstance(a, ia.Log):
            log.log(logging.getLevelName(a.level.upper()) if isinstance(a.level, str) else logging.INFO,
                    "call %s: %s", call.id, a.message)
            return []
        if isinstance(a, (ia.SetLanguage, ia.CallerFlagged, ia.ToVoicemail, ia.CollectDigits)):
            log.info("call %s: IVR %s", call.id, a)
            return []
        if isinstance(a, ia.StartSpeech):
            if self.ivr is None or not self.ivr.speech or ep is None:
                return []
            call.recognizer = self.ivr.recognizer(a.keywords)
            media.listen(ep, True)
            return []
        if isinstance(a, ia.StopSpeech):
            if ep is not None:
                media.listen(ep, False)
            call.recognizer = None
            return []
        return []

    def _feed_later(self, call: "Call", ivr_play_id: int, now: float) -> list:
        """A prompt that cannot play counts as played, so the flow still moves on."""
        return self._feed(call.id, ie.PlaybackFinished(ivr_play_id), now)
