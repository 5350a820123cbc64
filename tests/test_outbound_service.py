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
