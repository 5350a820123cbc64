"""Switch config snippets the end-to-end tests share (the ``extra`` text appended to a test switch's
config by ``switch_factory``), and the files those configs make the switch write. They were copied
into, or imported across, several tests/test_*_e2e.py files.

The fixtures that go with them (``phones``, ``sounds``, ``browser_page``) are in tests/conftest.py."""
from __future__ import annotations

from pathlib import Path

from tests.conftest import rtp_low

# the extensions of the ACD tests: agents' phones 1002/1003, caller 1001, supervisor 1004, VIP caller 1005
ACD_EXTS = {"1001": "secret-1001", "1002": "secret-1002", "1003": "secret-1003", "1004": "secret-1004",
            "1005": "secret-1005"}


def rtp_extra(both_digests: bool = False) -> str:
    """``[media]`` with a private RTP range for this test's switch (tests share the machine: see
    conftest.rtp_range). ``both_digests``: also MD5 beside SHA-256, as SIPp and some phones need; the
    ``[media]`` table is last, so a caller may append more of its keys."""
    lo = rtp_low()
    both = 'auth_algorithms = ["MD5", "SHA-256"]\n' if both_digests else ""
    return both + f'[media]\nrtp_ports = "{lo}-{lo + 99}"\n'


def media_extra(tmp: Path, record: str = "none") -> str:
    """Both digest algorithms, a private RTP range per test, recording ``record`` into tmp/recordings."""
    return rtp_extra(both_digests=True) + f'record = "{record}"\nrecordings_dir = "{tmp / "recordings"}"\n'


def support_agents(bob: bool = True, bob_pin: str = "") -> str:
    """The "support" skill and the agents of the ACD tests (inside an ``[acd]`` table): 2001 Alice at
    extension 1002 (level 5) and, unless ``bob`` is False, 2002 Bob at 1003 (level 9, with a PIN if given)."""
    text = '''[[acd.skills]]
name = "support"
[[acd.agents]]
id = "2001"
name = "Alice"
extension = "1002"
skills = { support = 5 }
'''
    if bob:
        text += '[[acd.agents]]\nid = "2002"\nname = "Bob"\nextension = "1003"\n' + (
            f'pin = "{bob_pin}"\n' if bob_pin else "") + "skills = { support = 9 }\n"
    return text


def acd_config(tmp: Path, sounds: Path, ring_time: int = 4, announce_agent: bool = True,
               whisper: bool = False) -> str:
    """Queue "support" on number 500; agents 2001 (ext 1002, level 5) and 2002 (ext 1003, level 9);
    caller 1005 is a VIP. Prompts come from var/prompts beside the config, as when no [ivr] is set."""
    (tmp / "var").mkdir(exist_ok=True)
    (tmp / "var" / "prompts").symlink_to(sounds, target_is_directory=True)
    return rtp_extra(both_digests=True) + f'''[acd]
queue_log = "{tmp / 'queue_log'}"
supervisors = ["1004"]
{support_agents()}[[acd.queues]]
name = "support"
skill = "support"
strategy = "longest-idle"
skill_level_first = true
ring_time = {ring_time}
wrapup_time = 1
announce_agent = {str(announce_agent).lower()}
whisper = {str(whisper).lower()}
[[acd.queues.priority_rules]]
numbers = ["1005"]
priority = 10
[[acd.dialplan]]
number = "500"
queue = "support"
'''


def queue_log(tmp: Path) -> list[list[str]]:
    """The queue_log lines ``acd_config`` makes the switch write (Asterisk's format), split on "|"."""
    path = tmp / "queue_log"
    return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []
