"""The dialler's edge service in a real (in-process) switch: a voicemail becomes a callback task of the queue
whose mailbox it is, persisted; the figures reach the event subscribers (the wallboard's hook)."""
from __future__ import annotations

import asyncio

from softswitch.config import parse_config
from softswitch.events import CampaignFigures, VoicemailLeft
from softswitch.transport import Server

from .callcentre_harness import ACD
from .conftest import free_port


def test_a_voicemail_becomes_a_persisted_callback_task_and_figures_are_published(tmp_path):
    port = free_port()
    acd = {**ACD, "queues": [{**ACD["queues"][0], "on_timeout": {"action": "voicemail", "mailbox": "support-vm"},  # type: ignore[index]
                              "max_wait": 60}]}
    config = parse_config({
        "sip": {"listen": [f"udp:127.0.0.1:{port}"], "domain": "callcenter.local"},
        "store": {"path": str(tmp_path / "s.db")},
        "extensions": [{"number": n, "password": f"pw-{n}-x"} for n in ("1001", "1002", "1003", "1004")],
        "media": {"enabled": False}, "api": {"enabled": False}, "metrics": {"enabled": False},
        "acd": acd, "outbound": {"caller_id": "4008001234", "tick": 0.05},
    }, "test", tmp_path)

    async def run():
        server = Server(config)
        await server.start()
        seen: list = []
        server.subscribers.add(lambda e: seen.append(e) if isinstance(e, CampaignFigures) else None)
        try:
            server._execute([VoicemailLeft("c-1", "13800138000", str(tmp_path / "vm" / "m1.wav"), 12.0,
                                           callback_number="139 0013 8001", mailbox="support-vm", at=1.0)])
            for _ in range(100):
                if server.outbound.tasks():
                    break
                await asyncio.sleep(0.05)
            [task] = server.outbound.tasks()
            assert (task["queue"], task["number"], task["kind"], task["audio"]) == ("support", "13900138001",
                                                                                 "voicemail", True)
            assert server.outbound.audio(task["id"]).endswith("m1.wav")
            await server.store.writer.flush()
            rows = await server.store.fetchall("SELECT kind, queue, number, audio, state FROM outbound_contacts")
            assert rows == [("voicemail", "support", "13900138001", str(tmp_path / "vm" / "m1.wav"), "waiting")]
            for _ in range(60):
                if seen:
                    break
                await asyncio.sleep(0.05)
            assert any(e.campaign == "callbacks" and e.figures["remaining"] == 1 for e in seen)
        finally:
            await server.stop()

    asyncio.run(run())


def test_campaign_contacts_generated_from_the_stores_work_orders(tmp_path):
    """source = closed_work_orders: a follow-up per closed order (once); work_order_due: a reminder the day
    before an open order's due time."""
    import time

    from store.crm import CallCentre
    from store.db import Store
    from store.outbound import work_order_contacts

    async def run():
        store = await Store.open(tmp_path / "s.db")
        centre = CallCentre(store)
        li = await centre.create_customer(name="Li", phones=["13800138000"])
        wang = await centre.create_customer(name="Wang", phones=["13900139000"])
        closed = await centre.create_order(kind="repair", customer_id=li.id, created_by="2001", summary="kettle")
        for st in ("assigned", "in_progress", "resolved", "closed"):
            await centre.set_status(closed.id, st, actor="2001")
        now = time.time()
        due = await centre.create_order(kind="appointment", customer_id=wang.id, created_by="2001",
                                        due_at=now + 30 * 3600)
        await centre.create_order(kind="repair", customer_id=wang.id, created_by="2001")   # open, no due: none
        follow = await store.read_sync(lambda c: work_order_contacts(c, "closed_work_orders", now - 3600, now))
        remind = await store.read_sync(lambda c: work_order_contacts(c, "work_order_due", 0, now))
        later = await store.read_sync(lambda c: work_order_contacts(c, "closed_work_orders", now + 1, now))
        await centre.close()
        await store.close()
        return closed, due, follow, remind, later, now

    closed, due, follow, remind, later, now = asyncio.run(run())
    assert [(f["key"], f["number"], f["name"], f["data"]["summary"]) for f in follow] == [
        (f"wo-{closed.id}", "13800138000", "Li", "kettle")]
    [r] = remind
    assert (r["key"], r["number"]) == (f"wo-{due.id}", "13900139000")
    assert abs(r["due"] - (due.due_at - 86400)) < 1                          # the day before
    assert later == []                                                       # closed before `since`: not again
