"""The IVR: sans-IO call flows (``engine.IvrSession``), their config (``config.parse_ivr_config``), prompts
(``prompts``, ``prompts_build``), speech input (``asr``) and a voicemail index."""
from .actions import *  # noqa: F401,F403
from .config import IVR, IvrConfig, parse_ivr_config  # noqa: F401
from .engine import IvrResult, IvrSession  # noqa: F401
from .events import *  # noqa: F401,F403
from .prompts import agent_announcement, queue_announcement, say_digits, say_number  # noqa: F401
from .runtime import Ivr  # noqa: F401
