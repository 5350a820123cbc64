"""``softswitch prompts build``: render ``prompts/<lang>/prompts.toml`` to 8 kHz mono WAVs.

Speech comes from pyttsx3 (its espeak-ng driver; run in a child process so a stuck audio driver cannot
hang the build, and so its chatter stays out of our output); if pyttsx3 is missing or fails, ``espeak-ng
-v <voice> -w file`` is called directly. Tones are generated; a recorded ``<name>.wav`` beside the text
file is converted and used instead.

A manifest (``<out>/manifest.json``) keeps a hash of what produced each file (text + voice, the tone, or
the recording's bytes): a rebuild renders only prompts whose hash changed, and removes outputs whose
prompt was deleted.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .prompts import LANGUAGES, PromptText, load_prompt_texts

__all__ = ["BuildReport", "VOICES", "build_prompts", "main"]

VOICES = {"en": "en-us", "zh": "cmn", "yue": "yue"}
RATE = 8000
MANIFEST = "manifest.json"
ENGINES = ("auto", "pyttsx3", "espeak-ng")


@dataclass
class BuildReport:
    built: list[str] = field(default_factory=list)  # "lang/name"
    cached: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # built from a recorded WAV
    removed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    engine: str = ""  # the speech engine that rendered the texts ("pyttsx3", "espeak-ng", "" = none needed)
    seconds: float = 0.0
    render_seconds: dict[str, float] = field(default_factory=dict)  # per rendered speech prompt (batch average)

    def summary(self) -> str:
        return (f"{len(self.built)} built ({len(self.recorded)} from recordings), {len(self.cached)} unchanged, "
                f"{len(self.removed)} removed, {len(self.failed)} failed"
                + (f"; speech by {self.engine}" if self.engine else "") + f"; {self.seconds:.1f} s")


def _hash(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()[:32]


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """int16 PCM, 8 kHz mono, written to a temporary name and renamed (never a half file in use)."""
    import soundfile as sf
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.wav")
    sf.write(str(tmp), np.clip(np.round(samples), -32768, 32767).astype(np.int16), RATE, subtype="PCM_16")
    os.replace(tmp, path)


def _to_8k(src: Path) -> np.ndarray:
    from media.playback import load_audio
    return load_audio(src)


def tone(hz: int, ms: int, level: float = 0.3) -> np.ndarray:
    """A sine beep with 10 ms ramps (no click)."""
    n = int(RATE * ms / 1000)
    t = np.arange(n) / RATE
    x = np.sin(2 * np.pi * hz * t) * 32767 * level
    ramp = min(n // 2, RATE // 100)
    env = np.ones(n)
    env[:ramp] = np.linspace(0, 1, ramp)
    env[n - ramp:] = np.linspace(1, 0, ramp)
    return x * env


# --------------------------------------------------------------------------------- speech engines

def _espeak(jobs: list[tuple[str, str, str]]) -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found (apt-get install -y espeak-ng)")
    for text, voice, path in jobs:
        r = subprocess.run([exe, "-v", voice, "-w", path], input=text.encode(), capture_output=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"espeak-ng -v {voice}: {r.stderr.decode(errors='replace').strip()}")


def _pyttsx3(jobs: list[tuple[str, str, str]], timeout: float = 300) -> None:
    """Run the jobs in a child process (``--worker``); RuntimeError if it fails or leaves files missing."""
    r = subprocess.run([sys.executable, "-m", "ivr.prompts_build", "--worker"], input=json.dumps(jobs).encode(),
                       capture_output=True, timeout=timeout, cwd=str(Path(__file__).resolve().parents[1]))
    missing = [p for _, _, p in jobs if not Path(p).exists() or Path(p).stat().st_size <= 44]
    if r.returncode != 0 or missing:
        err = r.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"pyttsx3: {err[-1] if err else f'{len(missing)} file(s) not written'}")


def _worker() -> int:
    """Child side of ``_pyttsx3``: one engine for all jobs, the voice changed once per language."""
    import pyttsx3
    jobs = json.loads(sys.stdin.buffer.read())
    engine = pyttsx3.init()
    ids = [v.id for v in engine.getProperty("voices")]
    current = None
    for text, voice, path in jobs:
        if voice != current:
            vid = next((i for i in ids if i.lower() == voice or i.lower().endswith("/" + voice)), None)
            if vid is None:
                print(f"no pyttsx3 voice {voice!r}", file=sys.stderr)
                return 2
            engine.setProperty("voice", vid)
            current = voice
        engine.save_to_file(text, path)
        engine.runAndWait()  # one per file: the espeak driver keeps only the last file of a batch
    return 0


def _pyttsx3_available() -> bool:
    try:
        import pyttsx3  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------- build

def build_prompts(prompts_dir: Path | str, out_dir: Path | str, languages: list[str] | tuple[str, ...] = LANGUAGES,
                  engine: str = "auto", force: bool = False) -> BuildReport:
    """Bring ``out_dir/<lang>/<name>.wav`` up to date with the texts and recordings in ``prompts_dir``."""
    t0 = time.perf_counter()
    prompts_dir, out_dir = Path(prompts_dir), Path(out_dir)
    report = BuildReport()
    out_dir.mkdir(parents=True, exist_ok=True)
    mpath = out_dir / MANIFEST
    try:
        manifest: dict[str, dict[str, Any]] = json.loads(mpath.read_text()) if mpath.exists() and not force else {}
    except json.JSONDecodeError:
        manifest = {}
    speech: list[tuple[str, str, str, str]] = []  # key, text, voice, hash
    for lang in languages:
        voice = VOICES.get(lang, lang)
        texts: dict[str, PromptText] = load_prompt_texts(prompts_dir, lang)
        recorded = {p.stem: p for p in (prompts_dir / lang).glob("*.wav")} if (prompts_dir / lang).is_dir() else {}
        names = set(texts) | set(recorded)
        for old in [k for k in manifest if k.startswith(f"{lang}/") and k.split("/", 1)[1] not in names]:
            (out_dir / f"{old}.wav").unlink(missing_ok=True)
            del manifest[old]
            report.removed.append(old)
        for name in sorted(names):
            key, dst = f"{lang}/{name}", out_dir / lang / f"{name}.wav"
            if name in recorded:
                h = _hash("recorded", recorded[name].read_bytes())
            elif texts[name].tone_hz:
                h = _hash("tone", str(texts[name].tone_hz), str(texts[name].tone_ms))
            else:
                h = _hash("speech", voice, texts[name].text)
            if manifest.get(key, {}).get("hash") == h and dst.exists():
                report.cached.append(key)
                continue
            try:
                if name in recorded:
                    _write_wav(dst, _to_8k(recorded[name]))
                    report.recorded.append(key)
                elif texts[name].tone_hz:
                    _write_wav(dst, tone(texts[name].tone_hz, texts[name].tone_ms))
                else:
                    speech.append((key, texts[name].text, voice, h))
                    continue
            except Exception as e:  # a bad recording must not stop the other prompts
                report.failed.append((key, str(e)))
                continue
            manifest[key] = {"hash": h, "source": "recorded" if name in recorded else "tone"}
            report.built.append(key)
    if speech:
        _render(speech, out_dir, engine, manifest, report)
    mpath.write_text(json.dumps(dict(sorted(manifest.items())), indent=1, ensure_ascii=False) + "\n")
    report.seconds = time.perf_counter() - t0
    return report


def _render(speech: list[tuple[str, str, str, str]], out_dir: Path, engine: str, manifest: dict[str, dict[str, Any]],
            report: BuildReport) -> None:
    with tempfile.TemporaryDirectory(prefix="prompts-") as tmp:
        jobs = [(text, voice, str(Path(tmp) / f"{i}.wav")) for i, (_, text, voice, _) in enumerate(speech)]
        order = ["pyttsx3", "espeak-ng"] if engine == "auto" else [engine]
        if engine == "auto" and not _pyttsx3_available():
            order = ["espeak-ng"]
        errors = []
        for eng in order:
            t = time.perf_counter()
            try:
                (_pyttsx3 if eng == "pyttsx3" else _espeak)(jobs)
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                errors.append(str(e))
                continue
            report.engine = eng
            per = (time.perf_counter() - t) / len(jobs)
            break
        else:
            report.failed += [(key, "; ".join(errors)) for key, *_ in speech]
            return
        for (key, text, voice, h), (_, _, path) in zip(speech, jobs):
            try:
                samples = _to_8k(Path(path))
                if len(samples) < RATE // 20:
                    raise RuntimeError("rendered less than 50 ms of audio")
                _write_wav(out_dir / f"{key}.wav", samples)
            except Exception as e:
                report.failed.append((key, str(e)))
                continue
            manifest[key] = {"hash": h, "source": report.engine, "voice": voice, "text": text}
            report.built.append(key)
            report.render_seconds[key] = per


# --------------------------------------------------------------------------------- CLI

def _from_config(path: str) -> tuple[Path, Path, list[str]]:
    """prompts_dir, sounds_dir and languages of a config file's [ivr] (only these keys are read here;
    ``check-config`` validates the rest)."""
    p = Path(path)
    ivr = tomllib.loads(p.read_text(encoding="utf-8")).get("ivr", {})
    base = p.absolute().parent
    return (base / ivr.get("prompts_dir", "prompts"), base / ivr.get("sounds_dir", "var/prompts"),
            list(ivr.get("languages", LANGUAGES)))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        return _worker()
    if argv[:1] == ["build"]:
        argv = argv[1:]
    ap = argparse.ArgumentParser(prog="softswitch prompts build", description="Render IVR prompt texts to 8 kHz WAV.")
    ap.add_argument("--config", "-c", help="take prompts_dir, sounds_dir and languages from this config's [ivr]")
    ap.add_argument("--prompts", help="prompt texts folder (default: prompts)")
    ap.add_argument("--out", help="output folder (default: var/prompts)")
    ap.add_argument("--lang", help="comma-separated languages (default: en,zh,yue)")
    ap.add_argument("--engine", choices=ENGINES, default="auto")
    ap.add_argument("--force", action="store_true", help="rebuild everything")
    a = ap.parse_args(argv)
    prompts, out, langs = Path("prompts"), Path("var/prompts"), list(LANGUAGES)
    if a.config:
        try:
            prompts, out, langs = _from_config(a.config)
        except (OSError, tomllib.TOMLDecodeError) as e:
            print(f"softswitch: {a.config}: {e}", file=sys.stderr)
            return 2
    prompts = Path(a.prompts) if a.prompts else prompts
    out = Path(a.out) if a.out else out
    langs = a.lang.split(",") if a.lang else langs
    try:
        report = build_prompts(prompts, out, langs, a.engine, a.force)
    except ValueError as e:  # malformed prompts.toml
        print(f"softswitch: {e}", file=sys.stderr)
        return 2
    for key, err in report.failed:
        print(f"FAILED {key}: {err}", file=sys.stderr)
    print(f"prompts {prompts} -> {out}: {report.summary()}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
