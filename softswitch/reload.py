"""Changes without a restart: a new ``config.toml`` applied to the running switch, for new calls.

``apply_config(core, new, now)`` is sans-IO: it swaps the tables call control reads (extensions,
agents, skills, queues and the dialplan, IVR flows and numbers, caller lists, feature codes,
supervisors; trunks and anything else through ``core.reloaders``) and returns what changed. Calls in
progress keep what they hold: a bridged call has no table to look up, an IVR session keeps its flow
(``ivr.IvrSession`` holds its own), a queued call moves to the new ACD engine with its place, its
timers and its agent (``acd.reconfigure``). The next call — and the next routing decision for a
waiting one — follows the new rules.

The edge (``Server.reload``, on ``SIGHUP`` or ``POST /api/admin/reload``) reads and validates the file
first: a config with an error is refused with the same file/key/reason message as at start
(``base.schema.ConfigError``) and nothing changes. Settings that need new sockets or a new store
(listen addresses, RTP ports, the database, the API listener) are reported as needing a restart.

A module with a table of its own registers ``core.reloaders.append(fn)``; ``fn(old, new, now)`` is
called after the built-in tables are swapped. It only swaps: whether a config is valid is the
config schema's to say (``softswitch.config``), before anything is applied.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("softswitch.reload")

Reloader = Callable[[Any, Any, float], None]   # (old config, new config, now)

# (what, dotted path into Config) of settings that only a restart applies
RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("SIP listen addresses", "sip.listen"),
    ("SIP advertised address", "sip.advertised_address"),
    ("SIP domain/realm", "sip.realm"),
    ("SIP transaction timers", "sip.t1_ms"),
    ("TLS certificate", "sip.tls"),
    ("media (addresses, RTP ports, codecs, workers)", "media"),
    ("store", "store"),
    ("API listener", "api.listen"),
    ("API on/off", "api.enabled"),
    ("API secret", "api.secret"),
    ("metrics listener", "metrics.listen"),
    ("log format", "log.format"),
    ("IVR speech model", "ivr.asr"),
    ("outbound campaigns and callbacks (the dialler loads them at start)", "outbound"),
    ("overload control on/off (it changes how the SIP socket is read)", "overload.enabled"),
)


@dataclass(frozen=True)
class ReloadResult:
    """What a reload did: ``ok`` False with ``error`` (file: key: reason) when refused."""
    ok: bool
    error: str = ""
    changed: tuple[str, ...] = ()          # sections whose new values are in force for new calls
    restart_needed: tuple[str, ...] = ()   # changed settings that take effect at the next start
    agents_added: tuple[str, ...] = ()
    agents_removed: tuple[str, ...] = ()
    queues_changed: tuple[str, ...] = ()
    actions: list = field(default_factory=list, compare=False)   # (core outbox; the edge executes them)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("actions")
        return d

    def summary(self) -> str:
        if not self.ok:
            return f"configuration refused, the running one is kept: {self.error}"
        parts = [f"changed: {', '.join(self.changed) or 'nothing'}"]
        if self.agents_added:
            parts.append(f"agents added: {', '.join(self.agents_added)}")
        if self.agents_removed:
            parts.append(f"agents removed: {', '.join(self.agents_removed)}")
        if self.queues_changed:
            parts.append(f"queues changed: {', '.join(self.queues_changed)}")
        if self.restart_needed:
            parts.append(f"need a restart: {', '.join(self.restart_needed)}")
        return "configuration reloaded; " + "; ".join(parts)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj


def diff(old: Any, new: Any) -> tuple[list[str], list[str]]:
    """(top-level sections that differ, restart-only settings that differ)."""
    sections = [f.name for f in dataclasses.fields(new) if f.name not in ("source",) and not f.name.startswith("_")
                and getattr(old, f.name, None) != getattr(new, f.name)]
    restart = [what for what, path in RESTART_ONLY if _get(old, path) != _get(new, path)]
    return sections, restart


def apply_config(core: Any, new: Any, now: float) -> ReloadResult:
    """Swap ``core``'s tables to ``new`` (a validated ``Config``) for new calls; sans-IO."""
    from acd.reconfigure import reconfigured
    from ivr.runtime import Ivr

    from .screening import CallerLists

    old = core.config
    sections, restart = diff(old, new)
    router = core.router
    queue = router.queue

    # the ACD: a new engine carrying the live state (acd.reconfigure)
    old_acd = queue.acd
    acd, acd_actions = reconfigured(old_acd, new.acd, now)
    old_agents = {a.id for a in old.acd.agents}
    new_agents = {a.id for a in new.acd.agents}
    old_queues = {q.name: q for q in old.acd.queues}
    queues_changed = tuple(q.name for q in new.acd.queues if old_queues.get(q.name) != q)
    queues_changed += tuple(n for n in old_queues if n not in {q.name for q in new.acd.queues})

    # every holder of the config sees the new one
    core.config = new
    core.registrar.config, core.registrar.sip = new, new.sip
    router.config = new
    for app in router.apps:
        app.config = new
    queue.acd = acd
    queue.queue_log = Path(new.acd.queue_log) if new.acd.queue_log else None

    # IVR: a new runtime for new calls; sessions in progress hold their own flow
    ivr_app = router.ivr
    if new.ivr != old.ivr:
        prev = ivr_app.ivr
        ivr_app.ivr_config = new.ivr
        if new.ivr is None:
            ivr_app.ivr = None
        else:
            ivr = Ivr(new.ivr, wall_offset=prev.wall_offset if prev is not None else router.wall_offset)
            if prev is not None:
                ivr.screen = prev.screen
                ivr.speech = ivr.speech and prev.speech  # the speech worker starts only at start
            ivr_app.ivr = ivr
    sounds = router.sounds
    if new.ivr is not None:
        sounds.sounds_dir = Path(new.ivr.sounds_dir)   # prompts not preloaded load on first use
        sounds.language = new.ivr.default_language
        sounds.languages = set(new.ivr.languages)

    # caller lists from the config (the store's entries stay)
    fresh = CallerLists.from_config(new)
    lists = core.lists
    lists._refuse, lists._block, lists._warn = fresh._refuse, fresh._block, fresh._warn

    # trunks, dial rules, numbering: a new table for new calls (calls out keep their trunk)
    trunks_changed = any(getattr(old, k, None) != getattr(new, k, None) for k in ("trunks", "dial_rules", "numbering"))
    if trunks_changed:  # the router's table, and registrations/keep-alives of changed trunks (afresh)
        core.set_trunks(new, now)
    if trunks_changed or old.security != new.security:   # ban policy and exemptions (carriers); bans in force stay
        from .security import BanPolicy, BanTracker
        from .trunks.table import TrunkTable
        sec = new.security
        nets = tuple(TrunkTable.from_config(new).identifier.addresses())
        bans = BanTracker(BanPolicy(max_failures=sec.max_auth_failures, window=float(sec.failure_window),
                                    ban_time=float(sec.ban_time), exempt=tuple(sec.ban_exempt) + nets),
                          core.bans.max_addresses)
        bans._entries = core.bans._entries
        core.bans = bans

    for fn in list(getattr(core, "reloaders", ())):
        try:
            fn(old, new, now)
        except Exception:
            log.exception("reload hook %s failed", getattr(fn, "__qualname__", fn))

    # agents whose phone is not registered are skipped by the new engine too
    for a in new.acd.agents:
        if a.id not in old_agents:
            queue.registration(a.extension, bool(core.registrar.lookup(a.extension, now)), now)
    queue.execute(acd_actions, now)
    return ReloadResult(ok=True, changed=tuple(sections), restart_needed=tuple(restart),
                        agents_added=tuple(sorted(new_agents - old_agents)),
                        agents_removed=tuple(sorted(old_agents - new_agents)), queues_changed=queues_changed)
