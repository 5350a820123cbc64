"""The sans-IO IVR session: one per call in the IVR. Events and the current time in, media actions out.

    s = IvrSession(flow, config, caller="+8613800000000", now=time.monotonic(), call_id=cid,
                   wall_offset=time.time() - time.monotonic())
    actions = s.start(now)
    actions = s.handle(DigitReceived("1"), now)      # also PlaybackFinished, TimerFired, SpeechResult, ...
    s.next_deadline()                                # when to send TimerFired (None = no timer)

``now`` is a monotonic clock (``time.monotonic()``): timers and durations only take differences of it.
Wall-clock time is ``now + wall_offset`` (seconds to add to ``now`` for Unix time; the owner keeps it
current) and is used only where the date matters: business hours and holidays, the voicemail file name
stamp and ``VoicemailLeft.time``. With the default ``wall_offset`` 0.0, ``now`` must be Unix time
(``time.time()``), as the tests pass it.

The session never sleeps, reads a clock or touches a file; the switch executes the actions
(``Play`` → ``MediaEngine.play``, ``ToQueue`` → ``acd.events.CallArrived``...). After a terminal action
(``ToQueue``, ``Transfer``, ``Hangup``) ``done`` is True and ``result`` tells how the call left.
"""
from __future__ import annotations

import datetime
import re
import zoneinfo
from typing import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from .actions import (
    Action, CallerFlagged, CollectDigits, Hangup, Log, Play, Say, SetLanguage, StartRecording, StartSpeech,
    StopPlayback, StopRecording, StopSpeech, SurveyResult, ToQueue, ToVoicemail, Transfer, VoicemailLeft,
)
from .asr import KeywordMatcher
from .config import (
    CollectNode, Flow, HangupNode, HoursNode, HoursRule, IvrConfig, LanguageNode, MenuNode, Node, PlayNode, QueueNode,
    SayNode, ScreenNode, SurveyNode, TransferNode, VoicemailNode,
)
from .events import CallerHungUp, DigitReceived, Event, PlaybackFinished, RecordingStopped, SpeechResult, TimerFired
from .prompts import prompt_file, say_digits

__all__ = ["IvrResult", "IvrSession", "is_open", "matches_list"]

_STOP_GRACE = 3.0  # seconds to wait for RecordingStopped after StopRecording before going on anyway


@dataclass
class IvrResult:
    """How the call left the IVR; ``path`` is the nodes visited (for reports and tests)."""

    outcome: str = ""  # "queue" | "transfer" | "hangup" | "caller-hung-up"
    reason: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    survey_score: int | None = None
    voicemail: VoicemailLeft | None = None
    path: list[str] = field(default_factory=list)


Screen = Callable[[str, list[str], list[str], float], tuple[bool, bool]]


def matches_list(number: str, patterns: list[str]) -> bool:
    """Exact numbers, or prefixes written "123*" (as [security] blacklist)."""
    for p in patterns:
        if p.endswith("*"):
            if number.startswith(p[:-1]):
                return True
        elif number == p:
            return True
    return False


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def describe_hours(rules: list[HoursRule]) -> str:
    """ "Mon-Fri 09:00-18:00, Sat 10:00-14:00" (for the log)."""
    def days(ds: frozenset[int]) -> str:
        runs: list[list[int]] = []
        for d in sorted(ds):
            if runs and d == runs[-1][-1] + 1:
                runs[-1].append(d)
            else:
                runs.append([d])
        return ",".join(_DAYS[r[0]] if len(r) == 1 else f"{_DAYS[r[0]]}-{_DAYS[r[-1]]}" for r in runs)

    def hm(m: int) -> str:
        return f"{m // 60:02d}:{m % 60:02d}"

    return ", ".join(f"{days(r.days)} {hm(r.start)}-{hm(r.end)}" for r in rules) or "never"


@lru_cache(maxsize=64)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name)


def is_open(node: HoursNode, config: IvrConfig, when: float) -> str:
    """"open", "closed" or "holiday" at Unix time ``when`` in the node's (or [ivr]'s) time zone."""
    local = datetime.datetime.fromtimestamp(when, _zone(node.timezone or config.timezone))
    if local.date() in node.holidays or local.date() in config.holidays:
        return "holiday"
    minute, day = local.hour * 60 + local.minute, local.weekday()
    for r in node.hours:
        if r.start < r.end:
            if day in r.days and r.start <= minute < r.end:
                return "open"
        elif (day in r.days and minute >= r.start) or ((day - 1) % 7 in r.days and minute < r.end):
            return "open"
    return "closed"


_SAFE = re.compile(r"[^A-Za-z0-9+_-]")


class _Blank(dict[str, str]):
    """Variables for a say node's text: one the call does not have is said as nothing."""

    def __missing__(self, key: str) -> str:
        return ""


class IvrSession:
    """One caller walking one flow. Not thread-safe; one task owns it. ``wall_offset``: seconds to add to
    ``now`` for Unix time (see the module docstring); the owner may update the attribute."""

    def __init__(self, flow: Flow, config: IvrConfig, caller: str, now: float, call_id: str = "",
                 speech: bool = False, wall_offset: float = 0.0, screen: Screen | None = None):
        """``screen(caller, node_block, node_warn, wall) -> (blocked, warned)``: the switch's caller lists
        (default: the IVR config's lists and the node's own)."""
        self.flow = flow
        self.screen: Screen = screen or self._config_lists
        self.config = config
        self.caller = caller
        self.call_id = call_id
        self.speech = speech  # the switch has a recogniser: menus with keywords also listen
        self.wall_offset = wall_offset
        self.language = flow.language or config.default_language
        self.variables: dict[str, str] = {}
        self.result = IvrResult(variables=self.variables)
        self.done = False
        self.created = now  # the session's clock (monotonic), like every other time kept here
        self.node: Node = flow.nodes[flow.start]
        self._phase = ""
        self._playing: int | None = None
        self._play_seq = 0
        self._deadline: float | None = None
        self._tries = 0
        self._digits = ""
        self._steps = 0
        self._listening = False
        self._matchers: dict[str, KeywordMatcher] = {}
        self._rec_path = ""
        self._rec_start = 0.0
        self._rec_duration = 0.0
        self._final: Action | None = None  # the terminal action after a closing prompt
        self._final_outcome = ""
        self._after = ""  # node after a closing prompt ("" = hang up)

    # ------------------------------------------------------------------ public API
    def start(self, now: float) -> list[Action]:
        out: list[Action] = []
        self._goto(self.flow.start, now, out)
        return out

    def next_deadline(self) -> float | None:
        return None if self.done else self._deadline

    def _config_lists(self, caller: str, block: list[str], warn: list[str], wall: float) -> tuple[bool, bool]:
        return (matches_list(caller, self.config.blacklist + block),
                matches_list(caller, self.config.warning_list + warn))

    def handle(self, event: Event, now: float) -> list[Action]:
        out: list[Action] = []
        if self.done:
            return out
        self._steps = 0
        if isinstance(event, CallerHungUp):
            self._hung_up(now, out)
        elif isinstance(event, PlaybackFinished):
            if event.id == self._playing:
                self._playing = None
                self._on_played(now, out)
        elif isinstance(event, TimerFired):
            if self._deadline is not None and now >= self._deadline - 1e-6:
                self._deadline = None
                self._on_timer(now, out)
        elif isinstance(event, DigitReceived):
            self._on_digit(event.digit, now, out)
        elif isinstance(event, SpeechResult):
            self._on_speech(event.text, now, out)
        elif isinstance(event, RecordingStopped):
            if self._phase in ("recording", "stopping"):
                dur = event.duration if event.duration is not None else now - self._rec_start
                self._recorded(dur, now, out)
        return out

    # ------------------------------------------------------------------ helpers
    def _files(self, names: list[str]) -> list[str]:
        files: list[str] = []
        for n in names:
            lang, _, n = n.rpartition(":")  # "yue:lang-yue": that language whatever the caller's
            lang = lang or self.language
            if n.startswith("$"):  # a variable, spoken digit by digit
                names_ = say_digits(lang, self.variables.get(n[1:], ""))
            else:
                names_ = [n]
            files += [prompt_file(self.config.sounds_dir, lang, x) for x in names_]
        return files

    def _play(self, names: list[str], barge_in: bool, out: list[Action]) -> bool:
        """Start a prompt; False if there is nothing to play (the caller goes on at once)."""
        files = self._files([n for n in names if n])
        if not files:
            return False
        self._play_seq += 1
        self._playing = self._play_seq
        out.append(Play(files, barge_in, self._play_seq))
        return True

    def _stop_play(self, out: list[Action]) -> None:
        if self._playing is not None:
            out.append(StopPlayback(self._playing))
            self._playing = None

    def _goto(self, name: str, now: float, out: list[Action]) -> None:
        """Enter nodes until one waits for the caller (or the call leaves the IVR)."""
        while name and not self.done:
            self._steps += 1
            if self._steps > self.config.max_steps:
                out.append(Log("warning", f"ivr flow {self.flow.name}: {self._steps - 1} nodes without waiting for "
                                          f"the caller (a loop?) at {name}; hanging up"))
                self._end(Hangup("loop"), "hangup", out)
                return
            self._leave(out)
            self.node = self.flow.nodes[name]
            self.result.path.append(name)
            self._phase, self._deadline, self._tries, self._digits = "", None, 0, ""
            name = getattr(self, f"_enter_{self.node.type}")(self.node, now, out)

    def _leave(self, out: list[Action]) -> None:
        self._stop_play(out)
        if self._listening:
            out.append(StopSpeech())
            self._listening = False

    def _end(self, action: Action | None, outcome: str, out: list[Action]) -> None:
        self._leave(out)
        if action is not None:
            out.append(action)
        self.done = True
        self._deadline = None
        self.result.outcome = outcome
        if isinstance(action, Hangup):
            self.result.reason = action.reason

    def _close(self, prompts: list[str], action: Action, outcome: str, now: float, out: list[Action]) -> None:
        """Play the closing prompts, then the terminal action."""
        if self._play(prompts, False, out):
            self._phase, self._final, self._final_outcome = "closing", action, outcome
        else:
            self._end(action, outcome, out)

    def _then(self, prompts: list[str], after: str, now: float, out: list[Action]) -> str | None:
        """Play prompts, then go to ``after`` (or hang up if "")."""
        if self._play(prompts, False, out):
            self._phase, self._after = "then", after
            return None
        if after:
            return after
        self._end(Hangup("normal"), "hangup", out)
        return None

    def _why(self, out: list[Action], what: str) -> None:
        """Why the call goes where it goes (INFO, with the call id in the switch's log)."""
        out.append(Log("info", f"ivr {self.flow.name}.{self.node.name}: {what}"))

    def _queue_variables(self) -> dict[str, str]:
        v = dict(self.variables)
        v["language"] = self.language
        if "warning" in self.result.flags:
            v["warning"] = "1"
        return v

    # ------------------------------------------------------------------ node entry
    def _enter_play(self, node: PlayNode, now: float, out: list[Action]) -> str | None:
        if self._play(node.prompts, node.barge_in, out):
            self._phase = "play"
            return None
        return node.next

    def _enter_say(self, node: SayNode, now: float, out: list[Action]) -> str | None:
        """Runtime speech: the switch renders and plays it, then ``PlaybackFinished`` moves on."""
        text = node.text.format_map(_Blank(self.variables)) if node.text else ""
        value = self.variables.get(node.variable, "") if node.variable else ""
        self._play_seq += 1
        self._playing = self._play_seq
        out.append(Say(text, node.lookup, value, self.language, self._play_seq))
        self._phase = "play"
        return None

    def _enter_menu(self, node: MenuNode, now: float, out: list[Action]) -> str | None:
        if self.speech and node.keywords:
            words = sorted({w for ws in node.keywords.values() for w in ws})
            out.append(StartSpeech(words, self.language))
            self._listening = True
        self._ask(node.prompts, now, out)
        return None

    def _enter_survey(self, node: SurveyNode, now: float, out: list[Action]) -> str | None:
        self._ask(node.prompts, now, out)
        return None

    def _enter_collect(self, node: CollectNode, now: float, out: list[Action]) -> str | None:
        out.append(CollectDigits(node.max_length, node.terminator, node.first_timeout))
        self._ask(node.prompts, now, out)
        return None

    def _enter_language(self, node: LanguageNode, now: float, out: list[Action]) -> str | None:
        if node.language != self.language:
            self.language = node.language
            out.append(SetLanguage(node.language))
        return node.next

    def _enter_hours(self, node: HoursNode, now: float, out: list[Action]) -> str | None:
        wall = now + self.wall_offset
        state = is_open(node, self.config, wall)
        if state == "open":
            target = node.open
        else:
            target = node.holiday or node.closed if state == "holiday" else node.closed
        zone = node.timezone or self.config.timezone
        local = datetime.datetime.fromtimestamp(wall, _zone(zone))
        self._why(out, f"{state} at {local:%a %Y-%m-%d %H:%M} {zone} (open {describe_hours(node.hours)}) "
                       f"-> {target}")
        return target

    def _enter_queue(self, node: QueueNode, now: float, out: list[Action]) -> str | None:
        self._close(node.prompts, ToQueue(node.queue, node.priority, node.skill, self._queue_variables()), "queue",
                    now, out)
        return None

    def _enter_transfer(self, node: TransferNode, now: float, out: list[Action]) -> str | None:
        self._close(node.prompts, Transfer(node.extension), "transfer", now, out)
        return None

    def _enter_hangup(self, node: HangupNode, now: float, out: list[Action]) -> str | None:
        self._close(node.prompts, Hangup(node.reason), "hangup", now, out)
        return None

    def _enter_screen(self, node: ScreenNode, now: float, out: list[Action]) -> str | None:
        blocked, warned = self.screen(self.caller, node.blacklist, node.warning_list, now + self.wall_offset)
        if blocked:
            self._why(out, f"caller {self.caller} is blacklisted; refused")
            self.result.flags.add("blacklisted")
            self._close([node.refusal], Hangup("blacklisted"), "hangup", now, out)
            return None
        if warned:
            self.result.flags.add("warning")
            out.append(CallerFlagged("warning", self.caller))
            self._why(out, f"caller {self.caller} is on the warning list; flagged -> {node.next}")
        return node.next

    def _enter_voicemail(self, node: VoicemailNode, now: float, out: list[Action]) -> str | None:
        out.append(ToVoicemail(node.mailbox))
        if self._play([node.greeting], True, out):
            self._phase = "greeting"
        else:
            self._beep(node, now, out)
        return None

    # ------------------------------------------------------------------ asking (menu, collect, survey)
    def _ask(self, prompts: list[str], now: float, out: list[Action], before: str = "") -> None:
        self._digits = ""
        if self._play([before, *prompts], True, out):
            self._phase = "prompt"
        else:
            self._listen(now)

    def _listen(self, now: float) -> None:
        self._phase = "listen"
        node = self.node
        timeout = node.first_timeout if isinstance(node, CollectNode) else node.timeout  # type: ignore[attr-defined]
        self._deadline = now + timeout

    def _retry(self, why: str, now: float, out: list[Action], detail: str = "") -> None:
        """A failed try (``why`` "invalid" or "timeout"; ``detail`` says what came): ask again, or the fallback
        when tries are used up."""
        node = self.node
        self._stop_play(out)
        self._tries += 1
        what = detail or why
        if why == "timeout" and not detail:
            timeout = node.first_timeout if isinstance(node, CollectNode) else node.timeout  # type: ignore[attr-defined]
            what = f"no input within {timeout:g} s"
        if self._tries > node.retries:  # type: ignore[attr-defined]
            target = node.next if isinstance(node, SurveyNode) else node.fallback  # type: ignore[attr-defined]
            self._why(out, f"no valid input after {self._tries} tries ({why}: {what}) -> {target or 'hang up'}")
            if isinstance(node, SurveyNode):
                self._goto(self._then([], node.next, now, out) or "", now, out)
            else:
                self._goto(node.fallback, now, out)  # type: ignore[attr-defined]
            return
        before = node.invalid_prompt if why == "invalid" else node.timeout_prompt  # type: ignore[attr-defined]
        self._deadline = None
        self._ask(node.prompts, now, out, before)  # type: ignore[attr-defined]
        self._why(out, f"{what}; asking again (try {self._tries + 1} of "
                       f"{node.retries + 1})")  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ events
    def _on_played(self, now: float, out: list[Action]) -> None:
        node, phase = self.node, self._phase
        if phase == "play":
            self._goto(node.next, now, out)  # type: ignore[attr-defined]
        elif phase == "prompt":
            self._listen(now)
        elif phase == "closing":
            self._end(self._final, self._final_outcome, out)
        elif phase == "then":
            if self._after:
                self._goto(self._after, now, out)
            else:
                self._end(Hangup("normal"), "hangup", out)
        elif phase == "greeting":
            self._beep(node, now, out)  # type: ignore[arg-type]
        elif phase == "beep":
            self._record(node, now, out)  # type: ignore[arg-type]
        elif phase == "callback-prompt":
            self._phase = "callback"
            self._deadline = now + node.callback_timeout  # type: ignore[attr-defined]

    def _on_timer(self, now: float, out: list[Action]) -> None:
        node, phase = self.node, self._phase
        if phase == "listen":
            if isinstance(node, MenuNode) and node.no_input:
                self._why(out, f"no input within {node.timeout:g} s -> {node.no_input}")
                self._goto(node.no_input, now, out)
            elif isinstance(node, CollectNode) and self._digits:
                self._collected(now, out)
            else:
                self._retry("timeout", now, out)
        elif phase == "recording":
            out.append(StopRecording(self._rec_path))
            self._phase = "stopping"
            self._deadline = now + _STOP_GRACE
        elif phase == "stopping":  # the edge never confirmed: go on with our own measure
            self._recorded(min(now - self._rec_start, node.max_length), now, out)  # type: ignore[attr-defined]
        elif phase == "callback":
            self._voicemail_done(now, out)

    def _on_digit(self, d: str, now: float, out: list[Action]) -> None:
        node, phase = self.node, self._phase
        if phase == "play":
            if node.barge_in:  # type: ignore[attr-defined]
                self._goto(node.next, now, out)  # type: ignore[attr-defined]
            return
        if phase in ("prompt", "listen"):
            self._stop_play(out)
            self._phase, self._deadline = "listen", None
            if isinstance(node, MenuNode):
                self._choose(node, d, now, out)
            elif isinstance(node, SurveyNode):
                self._rate(node, d, now, out)
            elif isinstance(node, CollectNode):
                self._collect_digit(node, d, now, out)
        elif phase == "greeting":
            self._stop_play(out)
            self._beep(node, now, out)  # type: ignore[arg-type]
        elif phase == "recording" and d == "#":
            out.append(StopRecording(self._rec_path))
            self._phase = "stopping"
            self._deadline = now + _STOP_GRACE
        elif phase in ("callback-prompt", "callback"):
            self._stop_play(out)
            self._phase = "callback"
            if d == "#":
                self._voicemail_done(now, out)
            elif d.isdigit():
                self._digits += d
                if len(self._digits) >= node.callback_max_length:  # type: ignore[attr-defined]
                    self._voicemail_done(now, out)
                else:
                    self._deadline = now + node.callback_timeout  # type: ignore[attr-defined]

    def _on_speech(self, text: str, now: float, out: list[Action]) -> None:
        node = self.node
        if (not isinstance(node, MenuNode) or self._phase not in ("prompt", "listen") or not node.keywords
                or not text.strip()):
            return
        m = self._matchers.get(node.name)
        if m is None:
            m = self._matchers[node.name] = KeywordMatcher(node.keywords)
        choice = m.match(text)
        out.append(Log("debug", f"ivr {self.flow.name}.{node.name}: heard {text!r} -> {choice}"))
        if choice is None:
            self._retry("invalid", now, out, f"heard {text!r}: no keyword of the menu")
            return
        self._on_digit(choice, now, out)

    def _choose(self, node: MenuNode, d: str, now: float, out: list[Action]) -> None:
        target = node.choices.get(d)
        if target is None:
            self._retry("invalid", now, out, f"invalid key {d} (keys: {''.join(sorted(node.choices))})")
            return
        self._why(out, f"key {d} -> {target}")
        if node.variable:
            self.variables[node.variable] = d
        self._goto(target, now, out)

    def _rate(self, node: SurveyNode, d: str, now: float, out: list[Action]) -> None:
        if d not in "12345" or len(d) != 1:
            self._retry("invalid", now, out, f"invalid key {d} (a score 1-5)")
            return
        score = int(d)
        self.result.survey_score = score
        self.variables["survey_score"] = d
        out.append(SurveyResult(score, self.flow.name, node.name))
        self._goto(self._then([node.thanks_prompt], node.next, now, out) or "", now, out)

    def _collect_digit(self, node: CollectNode, d: str, now: float, out: list[Action]) -> None:
        if node.terminator and d == node.terminator:
            self._collected(now, out)
        elif not d.isdigit():
            self._retry("invalid", now, out, f"invalid key {d} (digits only)")
        else:
            self._digits += d
            if len(self._digits) >= node.max_length:
                self._collected(now, out)
            else:
                self._deadline = now + node.inter_digit_timeout

    def _collected(self, now: float, out: list[Action]) -> None:
        node: CollectNode = self.node  # type: ignore[assignment]
        if not node.min_length <= len(self._digits) <= node.max_length:
            self._retry("invalid", now, out, f"{len(self._digits)} digit(s), {node.min_length}-{node.max_length} "
                                             "wanted")
            return
        self.variables[node.variable] = self._digits  # not logged: account numbers, PINs
        self._why(out, f"{len(self._digits)} digit(s) into {node.variable} -> {node.next}")
        self._goto(node.next, now, out)

    # ------------------------------------------------------------------ voicemail
    def _beep(self, node: VoicemailNode, now: float, out: list[Action]) -> None:
        if self._play([node.beep], False, out):
            self._phase = "beep"
        else:
            self._record(node, now, out)

    def _record(self, node: VoicemailNode, now: float, out: list[Action]) -> None:
        wall = now + self.wall_offset
        stamp = datetime.datetime.fromtimestamp(wall, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        tail = _SAFE.sub("_", self.call_id)[:40] or str(int(wall * 1000) % 100000)
        self._rec_path = f"{node.mailbox}/{stamp}-{_SAFE.sub('_', self.caller)[:32] or 'unknown'}-{tail}.wav"
        self._rec_start = now
        out.append(StartRecording(self._rec_path, node.max_length, node.silence))
        self._phase = "recording"
        self._deadline = now + node.max_length

    def _recorded(self, duration: float, now: float, out: list[Action]) -> None:
        node: VoicemailNode = self.node  # type: ignore[assignment]
        self._rec_duration = max(0.0, duration)
        self._deadline = None
        if self._rec_duration < node.min_length:
            out.append(Log("info", f"ivr: voicemail for {node.mailbox} from {self.caller} dropped "
                                   f"({self._rec_duration:.1f} s)"))
            self._phase = ""
            self._goto(self._then([], node.next, now, out) or "", now, out)
            return
        if not node.ask_callback:
            self._voicemail_done(now, out)
            return
        self._digits = ""
        out.append(CollectDigits(node.callback_max_length, "#", node.callback_timeout))
        if self._play([node.callback_prompt], True, out):
            self._phase = "callback-prompt"
        else:
            self._phase = "callback"
            self._deadline = now + node.callback_timeout

    def _left(self) -> VoicemailLeft:
        node: VoicemailNode = self.node  # type: ignore[assignment]
        vm = VoicemailLeft(self._rec_path, node.mailbox, self._digits, self.caller, round(self._rec_duration, 2),
                           self._rec_start + self.wall_offset)  # stored and listed by date: wall clock
        self.result.voicemail = vm
        return vm

    def _voicemail_done(self, now: float, out: list[Action]) -> None:
        node: VoicemailNode = self.node  # type: ignore[assignment]
        self._stop_play(out)
        self._deadline = None
        out.append(self._left())
        self._phase = ""
        self._goto(self._then([node.thanks_prompt], node.next, now, out) or "", now, out)

    def _hung_up(self, now: float, out: list[Action]) -> None:
        """Nothing more reaches the caller; a message being recorded is still delivered."""
        node = self.node
        if isinstance(node, VoicemailNode) and self._phase in ("recording", "stopping", "callback-prompt", "callback"):
            if self._phase == "recording":
                out.append(StopRecording(self._rec_path))
            if self._phase in ("recording", "stopping"):
                self._rec_duration = now - self._rec_start
                self._digits = ""
            if self._rec_duration >= node.min_length:
                out.append(self._left())
        self._playing = None
        self._listening = False
        self._end(None, "caller-hung-up", out)
