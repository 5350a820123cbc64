"""Runtime speech: text made at call time (a work order's status, an appointment time) rendered with the same
espeak-ng voices as the prompts (``ivr.prompts_build``), 8 kHz mono WAV, cached on disk by voice and text.

``SpeechCache.render`` is blocking (espeak-ng runs as a child process, ~50-300 ms): the switch calls it in
a worker thread (``softswitch.tts``), never on the event loop. A text spoken before costs a file lookup; the
cache keeps at most ``max_files`` files (the least recently used go first).
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path

from .prompts_build import VOICES, _espeak, _to_8k, _write_wav

__all__ = ["ORDER_STATUS", "SpeechCache", "order_status_text"]

# what the self-service lookup says, per language (work order statuses of store.crm)
ORDER_STATUS = {
    "en": {"found": "Work order {id} is {status}.", "due": " It is due on {due}.",
           "missing": "Sorry, we found no work order number {id}.",
           "open": "open", "assigned": "assigned to an engineer", "in_progress": "in progress",
           "resolved": "resolved", "closed": "closed"},
    "zh": {"found": "工单{id}的状态是：{status}。", "due": "预计{due}完成。", "missing": "对不起，没有找到工单{id}。",
           "open": "已受理", "assigned": "已派工", "in_progress": "处理中", "resolved": "已解决", "closed": "已完结"},
    "yue": {"found": "工單{id}嘅狀態係：{status}。", "due": "預計{due}完成。", "missing": "對唔住，搵唔到工單{id}。",
            "open": "已受理", "assigned": "已派工", "in_progress": "處理緊", "resolved": "已解決", "closed": "已完結"},
}


def order_status_text(language: str, order_id: str, status: str | None, due: str = "") -> str:
    """The sentence for a work order lookup (``status`` None: not found)."""
    t = ORDER_STATUS.get(language) or ORDER_STATUS["en"]
    digits = " ".join(order_id) if language == "en" else order_id   # "4 7 1 1": read as digits
    if status is None:
        return t["missing"].format(id=digits)
    text = t["found"].format(id=digits, status=t.get(status, status))
    return text + (t["due"].format(due=due) if due else "")


class SpeechCache:
    def __init__(self, directory: Path | str, max_files: int = 5000):
        self.directory = Path(directory)
        self.max_files = max_files
        self.hits = 0
        self.renders = 0
        self._lock = threading.Lock()

    def path_for(self, text: str, language: str) -> Path:
        voice = VOICES.get(language, language)
        key = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()[:32]
        return self.directory / language / f"{key}.wav"

    def render(self, text: str, language: str) -> Path:
        """The WAV of ``text`` in ``language`` (rendered now, or from the cache). Raises RuntimeError if
        espeak-ng fails or is missing."""
        path = self.path_for(text, language)
        if path.is_file():
            self.hits += 1
            os.utime(path)   # recently used: kept longest
            return path
        with self._lock:
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, raw = tempfile.mkstemp(suffix=".wav", dir=path.parent)
                os.close(fd)
                try:
                    _espeak([(text, VOICES.get(language, language), raw)])
                    _write_wav(path, _to_8k(Path(raw)))
                finally:
                    Path(raw).unlink(missing_ok=True)
                self.renders += 1
                if self.renders % 100 == 0:
                    self._trim()
        return path

    def _trim(self) -> None:
        files = sorted(self.directory.rglob("*.wav"), key=lambda p: p.stat().st_mtime)
        for p in files[: max(0, len(files) - self.max_files)]:
            p.unlink(missing_ok=True)

    @staticmethod
    def day(t: float, language: str) -> str:
        """A due date as speech (local time of the switch)."""
        lt = time.localtime(t)
        if language == "en":
            return time.strftime("%B %d", lt)
        return f"{lt.tm_mon}月{lt.tm_mday}日"
