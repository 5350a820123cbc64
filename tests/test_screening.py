"""One caller-list service: [security] blacklist refuses at SIP level; [ivr] lists and the store's block
and warning lists (the nuisance callers agents maintain) are what the IVR's screen node acts on."""
from __future__ import annotations

from typing import Any

from softswitch.events import CallEnded
from softswitch.screening import CallerLists

from .callcentre_harness import ack_caller, responses, sdp
from .test_call_records import IVR, boot, ended


def test_lists_match_numbers_and_prefixes_and_expire():
    lists = CallerLists(refuse=["666"], block=["0900*"], warn=["13800138000"])
    lists.set_store_entries(block=[("+861390000*", None), ("+8613700000000", 100.0)], warn=[("+86155*", None)])
    lists.normalise = lambda n: "+86" + n.lstrip("0") if not n.startswith("+") else n
    assert lists.check("666", 0).refused and not lists.check("6666", 0).refused
    assert lists.check("09001234", 0).blocked and not lists.check("0800", 0).blocked
    assert lists.check("13900001111", 0).blocked                     # store prefix, after normalising
    assert lists.check("13700000000", 99.0).blocked and not lists.check("13700000000", 100.0).blocked  # expired
    assert lists.check("13800138000", 0).warned and lists.check("15512345678", 0).warned
    assert lists.check("2001", 0, block=["2001"]).blocked             # a screen node's own list
    assert lists.check("2001", 0) == lists.check("2002", 0) and not lists.check("2001", 0).blocked


_IVR: dict[str, Any] = IVR  # a nested literal, typed too narrowly by inference to be spread again
SCREENED = {**_IVR, "flows": {**_IVR["flows"], "main": {"start": "screen", "nodes": {
    "screen": {"type": "screen", "next": "menu"}, **_IVR["flows"]["main"]["nodes"]}}}}


def test_the_ivr_refuses_a_caller_on_the_stores_block_list(tmp_path):
    core, net, ph = boot(media={"enabled": True}, acd={"skills": [{"name": "s"}],
                                                        "queues": [{"name": "support", "skill": "s"}]},
                         ivr={**SCREENED, "sounds_dir": str(tmp_path)})
    core.lists.set_store_entries(block=[("1001", None)], warn=[])
    _, out = ph["1001"].invite("4000", body=sdp(4000, "10.0.0.1"))
    ack_caller(ph["1001"], [m for m in responses(out) if m.status == 200][0])
    net.advance(1)
    [rec] = ended(net)
    assert rec.reason == "IVR: blacklisted" and rec.caller == "1001"
    _, out = ph["1002"].invite("4000", body=sdp(4000, "10.0.0.2"))  # not on the list: into the menu
    ack_caller(ph["1002"], [m for m in responses(out) if m.status == 200][0])
    net.advance(1)
    assert len([e for e in net.events if isinstance(e, CallEnded)]) == 1
    assert core.router.ivr.calls
