"""VIP priority from the store (issue 12, item 10): a caller whose number belongs to a VIP customer, or who
types the customer number of one, queues at the customer's vip_level; digits the store does not know as a
VIP customer's give nothing. Through the sans-IO core (fake clock, IVR digits, the ACD) with the VIP table
loaded from a real store, as the edge does at start."""
from __future__ import annotations

import asyncio
from pathlib import Path

from ivr.config import CollectNode, QueueNode
from media.engine import DtmfReceived
from softswitch.config import load_config
from softswitch.vip import VipTable
from store.crm import CallCentre
from store.db import Store
from store.numbers import NumberPlan

from .callcentre_harness import ACD, Net, Phone, ack_caller, login, make_core, reqs_to, responses, sdp
from .core_harness import Peer

ROOT = Path(__file__).resolve().parents[1]
EXTS = {"1001": "pw-1001-x", "1002": "pw-1002-x", "1003": "pw-1003-x", "1004": "pw-1004-x", "1005": "pw-1005-x"}
IVR = {
    "default_language": "en", "languages": ["en"], "prompts_dir": str(ROOT / "prompts"),
    "numbers": {"4000": "main"},
    "flows": {"main": {"start": "customer-number", "nodes": {
        "customer-number": {"type": "collect", "prompts": ["enter-customer-number"], "variable": "customer_number",
                            "min_length": 4, "max_length": 10, "next": "q", "fallback": "q"},
        "q": {"type": "queue", "queue": "support", "prompts": ["please-hold"]}}}},
}


def store_run(tmp_path, script) -> None:
    async def main():
        store = await Store.open(tmp_path / "cc.db")
        centre = CallCentre(store, plan=NumberPlan(country_code="49"))
        try:
            await script(centre)
        finally:
            await centre.close()
            await store.close()

    asyncio.run(main())


async def customers(centre: CallCentre) -> dict[str, int]:
    vera = await centre.create_customer(name="Vera", phones=["1004"], vip_level=7)
    carl = await centre.create_customer(name="Carl", phones=["030 5550 123"], vip_level=4)
    norm = await centre.create_customer(name="Norm", phones=["1005"], vip_level=0)
    return {"vera": vera.id or 0, "carl": carl.id or 0, "norm": norm.id or 0}


def test_the_table_knows_vip_numbers_and_customer_numbers_only(tmp_path):
    async def script(centre: CallCentre):
        ids = await customers(centre)
        table = VipTable(centre.normalise)
        assert await table.load(centre)
        assert table.priority("1004", {}) == 7                           # the caller's own number
        assert table.priority("+49 30 5550123", {}) == 4                 # normalised as the store does
        assert table.priority("1005", {}) == 0                           # a customer, but not a VIP
        assert table.priority("1001", {"customer_number": f"{ids['carl']:04d}"}) == 4   # typed: a VIP's number
        assert table.priority("1001", {"customer_number": "123456"}) == 0             # unknown to the store
        assert table.priority("1001", {"customer_number": f"{ids['norm']:04d}"}) == 0  # known, not a VIP
        assert table.priority("1004", {"customer_number": f"{ids['carl']:04d}"}) == 7  # the higher of both
        assert table.priority("anonymous", {"customer_number": "12ab"}) == 0
        assert table.priority("", {"customer_number": "9" * 40}) == 0
        await centre.update_customer(ids["carl"], vip_level=0)          # demoted: the next load drops him
        await table.load(centre)
        assert table.priority("1001", {"customer_number": f"{ids['carl']:04d}"}) == 0

        class Broken:
            async def vip_levels(self):
                raise RuntimeError("store gone")

        assert not await table.load(Broken())                           # a failed reload keeps the table
        assert table.priority("1004", {}) == 7

    store_run(tmp_path, script)


def test_the_table_reloads_every_interval_until_stopped(tmp_path):
    async def script(centre: CallCentre):
        ids = await customers(centre)
        table = VipTable(centre.normalise)
        await table.start(centre, every=0.01)
        await centre.update_customer(ids["norm"], vip_level=2)
        for _ in range(500):
            if table.priority("1005", {}):
                break
            await asyncio.sleep(0.01)
        assert table.priority("1005", {}) == 2
        table.stop()

    store_run(tmp_path, script)


def test_priority_comes_from_the_store_never_from_typed_digits(tmp_path):
    """Three callers queue while no agent is free: one types a customer number the store does not know,
    one calls from a VIP customer's number, one types a VIP customer's number. The ACD ranks them by the
    store's vip_level; the unknown number gets none and is served last."""
    async def script(centre: CallCentre):
        ids = await customers(centre)
        core = make_core(EXTS, media={"enabled": True}, acd=ACD, ivr=IVR)
        table = VipTable(centre.normalise)
        await table.load(centre)
        core.router.queue.priority_of = table.priority                  # what the edge does at start
        net = Net(core)
        phones = {n: Phone(net, n, p, Peer("udp", f"10.0.0.{i + 1}", 5060)) for i, (n, p) in enumerate(EXTS.items())}
        for ph in phones.values():
            assert ph.register().status == 200

        def dial(user: str, number: str):
            ph = phones[user]
            _, out = ph.invite(number, body=sdp(4000, ph.peer.host))
            ack_caller(ph, [m for m in responses(out) if m.status == 200][0])
            return next(c for c in core.b2bua.calls.values() if c.caller_number == user)

        def typed(call, digits: str) -> None:
            for d in digits:
                net._run(core.on_media_events([DtmfReceived(call.caller.media, d, "rfc4733", 100)], net.now))
                net.advance(0.2)

        queue = core.router.queue
        unknown = dial("1001", "4000")
        typed(unknown, "123456#")                                       # not a customer number the store knows
        net.advance(1)
        dial("1004", "500")                                             # a VIP customer's phone, straight to 500
        net.advance(1)
        typer = dial("1003", "4000")
        typed(typer, f"{ids['carl']:04d}#")                             # Carl's customer number: a VIP's
        net.advance(1)
        prio = {qc.call.caller_number: queue.acd.calls[acd_id].priority for acd_id, qc in queue.calls.items()}
        assert prio == {"1001": 0, "1004": 7, "1003": 4}
        assert unknown.variables["customer_number"] == "123456"

        login(core, net, "2001")                                        # the agent (1002) is offered Vera first
        offers = reqs_to(net.sent, phones["1002"].peer, "INVITE")
        assert len(offers) == 1 and "1004" in offers[0].headers.get("From")

    store_run(tmp_path, script)


def test_the_shipped_ivr_gives_typed_digits_no_priority():
    """config.toml: the customer-number prompt leads to a queue node without a priority of its own."""
    config = load_config(ROOT / "config.toml")
    assert config.ivr is not None
    nodes = config.ivr.flows["main"].nodes
    collect = nodes["customer-number"]
    assert isinstance(collect, CollectNode) and collect.variable == "customer_number"
    target = nodes[collect.next]
    assert isinstance(target, QueueNode) and (target.queue, target.priority) == ("support", 0)
