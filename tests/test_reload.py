"""A config reload applied to the sans-IO core (``softswitch.reload``), with a fake clock: new extensions
register, the config's lists and IVR flows apply to the next call while an IVR caller already in a flow
finishes it, reload hooks run, and settings that need new sockets are reported as needing a restart."""
from __future__ import annotations

from typing import Any

from softswitch.config import parse_config
from softswitch.core import SwitchCore
from softswitch.sip.transaction import Peer

from .callcentre_harness import ack_caller, responses, sdp
from .core_harness import DOMAIN, Phone
from .test_call_records import boot, ended
from .test_screening import SCREENED

EXTS = {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x"}


def config_of(core: SwitchCore, extensions: dict[str, str] | None = None, **sections: Any):
    """A config like the harness's (``make_core``) with ``sections`` replaced."""
    exts = extensions or EXTS
    data: dict = {
        "sip": {"listen": ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"], "domain": DOMAIN},
        "store": {"path": "var/test.db"},
        "extensions": [{"number": n, "password": p, "name": f"Ext {n}"} for n, p in exts.items()],
        "media": {"enabled": True},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_config(data)


ACD = {"skills": [{"name": "s"}], "queues": [{"name": "support", "skill": "s"}]}


def test_a_new_extension_registers_and_a_new_config_blacklist_refuses_the_next_call(tmp_path):
    core, net, ph = boot(media={"enabled": True})
    newbie = Phone(net, "1005", "pw-1005-x", Peer("udp", "10.0.0.5", 5060))
    assert newbie.register().status in (401, 403)
    seen: list = []
    core.reloaders.append(lambda old, new, now: seen.append((len(old.extensions), len(new.extensions))))
    result = core.reload(config_of(core, {**EXTS, "1005": "pw-1005-x"}, security={"blacklist": ["1003"]}), net.now)
    assert result.ok and "extensions" in result.changed and "security" in result.changed and not result.restart_needed
    assert seen == [(4, 5)]                                       # the hook for modules' own tables
    assert newbie.register().status == 200
    p = ph["1003"]
    out = p.send(p.msg("INVITE", f"sip:1002@{DOMAIN}", to=f"<sip:1002@{DOMAIN}>", body=sdp(4000, "10.0.0.3")))
    assert [(r.status, r.reason) for r in responses(out)] == [(403, "Caller Blacklisted")]


def test_a_new_ivr_flow_serves_the_next_call_while_a_caller_in_the_old_flow_finishes_it(tmp_path):
    ivr = {**SCREENED, "sounds_dir": str(tmp_path)}
    core, net, ph = boot(media={"enabled": True}, acd=ACD, ivr=ivr)
    core.lists.set_store_entries(block=[("1001", None)], warn=[])
    # 1002 (not blocked) passes the old flow's screen node and waits in its menu during the reload
    _, out = ph["1002"].invite("4000", body=sdp(4000, "10.0.0.2"))
    ack_caller(ph["1002"], [m for m in responses(out) if m.status == 200][0])
    net.advance(1)
    unscreened = {**ivr, "flows": {**ivr["flows"], "main": {"start": "menu", "nodes": {
        k: v for k, v in SCREENED["flows"]["main"]["nodes"].items() if k != "screen"}}}}
    result = core.reload(config_of(core, acd=ACD, ivr=unscreened), net.now)
    assert result.ok and result.changed == ("ivr",), result
    _, out = ph["1001"].invite("4000", body=sdp(4000, "10.0.0.1"))    # blocked in the store: no screen now
    ack_caller(ph["1001"], [m for m in responses(out) if m.status == 200][0])
    net.advance(1)
    assert ended(net) == [], [e.reason for e in ended(net)]
    assert core.lists.check("1001", 0).blocked                         # the store's entries survive a reload
    sessions = {ic.call.caller_number: ic.session for ic in core.router.ivr.calls.values()}
    assert set(sessions) == {"1001", "1002"}
    assert "screen" in sessions["1002"].flow.nodes and "screen" not in sessions["1001"].flow.nodes


def test_settings_that_need_new_sockets_are_reported_not_applied():
    core, net, _ = boot(media={"enabled": True})
    new = config_of(core, sip={"listen": ["udp:127.0.0.1:5070"], "domain": DOMAIN})
    result = core.reload(new, net.now)
    assert result.ok and "SIP listen addresses" in result.restart_needed
    assert "need a restart: SIP listen addresses" in result.summary()
