"""Prompt texts and names: ``prompts/<lang>/prompts.toml`` (name = "text", or ``{ tone = Hz, ms = length }``
for a generated tone), a recorded ``prompts/<lang>/<name>.wav`` beside it overriding the text, and the
rules that turn numbers into lists of prompt names in each language.

One TOML file per language keeps a translator's whole job on one screen; the built WAVs live elsewhere
(``[ivr] sounds_dir``), as ``<sounds_dir>/<lang>/<name>.wav``.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LANGUAGES", "PromptText", "agent_announcement", "available_prompts", "load_prompt_texts", "prompt_file",
    "queue_announcement", "say_digits", "say_number",
]

LANGUAGES = ("en", "zh", "yue")  # English, Mandarin, Cantonese
TEXT_FILE = "prompts.toml"


@dataclass(frozen=True)
class PromptText:
    """What to render for one prompt: speech (``text``) or a sine tone (``tone_hz`` for ``tone_ms``)."""

    name: str
    text: str = ""
    tone_hz: int = 0
    tone_ms: int = 0


def load_prompt_texts(prompts_dir: Path, lang: str) -> dict[str, PromptText]:
    """The prompts.toml of one language ({} if absent); ValueError with the file name if malformed."""
    path = Path(prompts_dir) / lang / TEXT_FILE
    if not path.exists():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: {e}") from None
    out: dict[str, PromptText] = {}
    for name, v in raw.items():
        if isinstance(v, str) and v.strip():
            out[name] = PromptText(name, text=v.strip())
        elif isinstance(v, dict) and set(v) <= {"tone", "ms"} and isinstance(v.get("tone"), int):
            out[name] = PromptText(name, tone_hz=v["tone"], tone_ms=int(v.get("ms", 400)))
        else:
            raise ValueError(f'{path}: {name}: expected "text" or {{ tone = Hz, ms = length }}')
    return out


def available_prompts(prompts_dir: Path, lang: str) -> set[str]:
    """Names that exist in a language: a text entry or a recorded WAV."""
    d = Path(prompts_dir) / lang
    names = set(load_prompt_texts(prompts_dir, lang))
    if d.is_dir():
        names |= {p.stem for p in d.glob("*.wav")}
    return names


def prompt_file(sounds_dir: Path | str, lang: str, name: str) -> str:
    """Where ``softswitch prompts build`` puts a prompt."""
    return f"{sounds_dir}/{lang}/{name}.wav"


# ---------------------------------------------------------------------------------------- numbers

def say_digits(lang: str, digits: str) -> list[str]:
    """Digit by digit (work numbers, customer numbers): "1021" -> digit_1 digit_0 digit_2 digit_1.
    The same in every language; non-digits are skipped. ``lang`` is kept for languages that may need
    a different rule later."""
    return [f"digit_{c}" for c in digits if c.isdigit()]


def say_number(lang: str, n: int) -> list[str]:
    """A count (queue position, minutes) as words: en "twenty one" = num_20 digit_1; zh/yue
    "二十一" = digit_2 num_10 digit_1, "十五" = num_10 digit_5, "一百零五" = digit_1 num_100 digit_0 digit_5.
    Above 999 it falls back to digits."""
    n = int(n)
    if n < 0 or n > 999:
        return say_digits(lang, str(abs(n)))
    if lang == "en":
        return _en(n)
    return _zh(n)


def _en(n: int) -> list[str]:
    if n < 10:
        return [f"digit_{n}"]
    out: list[str] = []
    if n >= 100:
        out += [f"digit_{n // 100}", "num_100"]
        n %= 100
        if n == 0:
            return out
    if n < 10:
        return out + [f"digit_{n}"]
    if n < 20:
        return out + [f"num_{n}"]
    out.append(f"num_{n // 10 * 10}")
    return out + ([f"digit_{n % 10}"] if n % 10 else [])


def _zh(n: int) -> list[str]:
    if n < 10:
        return [f"digit_{n}"]
    out: list[str] = []
    hundreds, tens, ones = n // 100, n // 10 % 10, n % 10
    if hundreds:
        out += [f"digit_{hundreds}", "num_100"]
        if tens == 0 and ones == 0:
            return out
        if tens == 0:
            return out + ["digit_0", f"digit_{ones}"]
    if tens:
        if tens > 1 or hundreds:
            out.append(f"digit_{tens}")
        out.append("num_10")
    if ones:
        out.append(f"digit_{ones}")
    return out


def queue_announcement(lang: str, position: int | None, wait_minutes: int | None) -> list[str]:
    """For the ACD's ``Announce``: "you are number 3 in the queue; expected wait 5 minutes"."""
    out: list[str] = []
    if position is not None:
        out += ["you-are-number", *say_number(lang, position), "in-the-queue"]
    if wait_minutes is not None:
        out += ["expected-wait", *say_number(lang, max(1, wait_minutes)), "minutes"]
    return out


def agent_announcement(lang: str, agent_id: str) -> list[str]:
    """For the ACD's ``Connect.announce_agent``: "agent 1 0 2 1 is serving you"."""
    return ["agent", *say_digits(lang, agent_id), "is-serving-you"]


NUMBER_PROMPTS = {  # what say_number may use, per language: config checks and tests rely on it
    "en": [f"digit_{i}" for i in range(10)] + [f"num_{i}" for i in range(10, 20)]
    + [f"num_{i}" for i in range(20, 100, 10)] + ["num_100"],
    "zh": [f"digit_{i}" for i in range(10)] + ["num_10", "num_100"],
    "yue": [f"digit_{i}" for i in range(10)] + ["num_10", "num_100"],
}
