"""The wallboard's "today" survives a restart (a real switch process, SIPp as the caller): the store holds
calls from earlier today (written through the store's API, as a first run's would be) and one of
yesterday; the switch starts and a customer calls the queue and hangs up while waiting (SIPp: a live
abandon on top of the stored calls); the switch restarts, and ``GET /api/wallboard`` and the wallboard
WebSocket's first message show the whole day — the stored calls and the one before the restart — as the
day's report does; yesterday's call is in neither."""
from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import pytest

from softswitch.wallboard.model import local_midnight
from store.crm import CallCentre
from store.db import Store

from .conftest import requires_sipp, sipp_ok, wait_for
from .e2e_configs import rtp_extra
from .test_api_support import Http, db_rows, start_api_switch
from .test_overload_e2e import caller_scenario, place_call

ws_client = pytest.importorskip("websockets.sync.client")

pytestmark = [pytest.mark.e2e, requires_sipp, pytest.mark.timeout(120)]


async def earlier_calls(path: Path, now: float) -> None:
    """Two support calls earlier today (answered in 5 s, talk 60 s of which 15 s on hold, wrap-up 10 s,
    transferred on by the agent; an abandon after 12 s) and one of yesterday (not today's)."""
    store = await Store.open(path)
    centre = CallCentre(store, clock=lambda: now)
    t = max(local_midnight(now) + 1, now - 900)
    await centre.add_call(call_ref="early-1", caller="13800138001", queue="support", agent="2001", arrived_at=t,
                          queued_at=t, answered_at=t + 5, talk_ended_at=t + 65, ended_at=t + 65, wrap_s=10,
                          transfers=1, hold_seconds=15, holds=1, disposition="answered")
    await centre.add_call(call_ref="early-2", caller="13800138002", queue="support", arrived_at=t + 1,
                          queued_at=t + 1, ended_at=t + 13, disposition="abandoned")
    y = local_midnight(now) - 3600
    await centre.add_call(call_ref="yesterday", caller="13800138003", queue="support", agent="2001", arrived_at=y,
                          queued_at=y, answered_at=y + 1, talk_ended_at=y + 31, ended_at=y + 31,
                          disposition="answered")
    await store.close()


def support(boss: Http) -> dict:
    status, snap = boss.get("/api/wallboard")
    assert status == 200, snap
    return next(q for q in snap["queues"] if q["queue"] == "support")


def test_todays_figures_include_the_calls_before_a_restart(switch_factory, tmp_path):
    (tmp_path / "var").mkdir()
    asyncio.run(earlier_calls(tmp_path / "var" / "softswitch.db", time.time()))
    extra = rtp_extra(both_digests=True)
    sw, anon = start_api_switch(switch_factory, extra=extra)
    sw.wait_log(r"wallboard: today's figures include 2 call\(s\) of 1 queue\(s\) before the start")
    boss = anon.login("boss")
    q = support(boss)
    assert (q["offered"], q["answered"], q["abandoned"], q["transferred"]) == (2, 1, 1, 1)
    # a customer calls the queue (nobody logged in: she waits with music) and hangs up after 1.5 s
    phone = place_call(sw, caller_scenario(tmp_path, 1500), "1001", "500", tmp_path)
    out, _ = phone.communicate(timeout=30)
    sipp_ok(subprocess.CompletedProcess(phone.args, phone.returncode, out, ""), tmp_path)
    wait_for(lambda: db_rows(sw, "SELECT disposition FROM call_records WHERE caller = '1001'") == [("abandoned",)],
             timeout=10)
    wait_for(lambda: support(boss)["abandoned"] == 2, timeout=5)      # live, on top of the seed
    assert support(boss)["offered"] == 3
    assert sw.stop() == 0

    sw, anon = start_api_switch(switch_factory, extra=extra)             # the restart
    sw.wait_log(r"wallboard: today's figures include 3 call\(s\) of 1 queue\(s\) before the start")
    boss = anon.login("boss")
    q = support(boss)
    # 1 answered within 20 s of 1 answered + 2 abandoned; ASA 5 s; AHT (60 connected + 10 wrap-up) / 1
    assert (q["offered"], q["answered"], q["abandoned"], q["transferred"]) == (3, 1, 2, 1)
    assert (q["service_level"], q["asa"], q["aht"]) == (33.3, 5.0, 70.0)
    with ws_client.connect(f"ws://127.0.0.1:{sw.api_port}/api/wallboard/ws",
                           additional_headers={"Authorization": f"Bearer {boss.token}"}, open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=10))
    [w] = [x for x in first["queues"] if x["queue"] == "support"]
    assert {k: w[k] for k in ("offered", "answered", "abandoned", "transferred", "service_level", "asa", "aht")} == {
        k: q[k] for k in ("offered", "answered", "abandoned", "transferred", "service_level", "asa", "aht")}
    day = local_midnight(time.time())
    status, rep = boss.get(f"/api/reports?since={int(day)}&until={int(day + 86400)}&period=day")
    assert status == 200, rep
    [r] = [x for x in rep["queues"] if x["queue"] == "support"]
    assert (r["offered"], r["answered"], r["abandoned"], r["transferred"]) == (3, 1, 2, 1)
    assert (round(r["service_level_pct"], 1), r["asa_s"], r["aht_s"]) == (q["service_level"], q["asa"], q["aht"])
