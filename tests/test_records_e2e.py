"""Call records are the switch's, not the HTTP API's: with ``[api] enabled = false`` a real call still
gets its record, with the disposition the SIP outcome says (SIPp phones, a real switch process)."""
from __future__ import annotations

import sqlite3
import time

import pytest

from .conftest import free_port, requires_sipp, sipp_ok
from .test_sipp_e2e import MD5_FIRST, _expect, caller, callee, finish, register

pytestmark = [pytest.mark.e2e, requires_sipp, pytest.mark.timeout(90)]


def records(sw) -> list[tuple]:
    path = sw.config_path.parent / "var" / "softswitch.db"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT caller, callee, disposition, answered_at IS NOT NULL FROM call_records "
                            "ORDER BY id").fetchall()
    finally:
        conn.close()


def test_without_the_api_calls_get_records_busy_answered_failed(switch_factory, tmp_path):
    sw = switch_factory(extra=MD5_FIRST + "[api]\nenabled = false\n")
    port = free_port()
    sipp_ok(register(sw, "1002", port, tmp_path), tmp_path)
    b = callee(sw, "callee_busy.xml", port, tmp_path)               # 1002 answers 486 Busy Here
    sw.wait_log(r"registered 1002 contact")
    sipp_ok(caller(sw, _expect(tmp_path, 486), "1001", "1002", tmp_path), tmp_path)
    finish(b, tmp_path)
    b = callee(sw, "callee.xml", port, tmp_path)                    # 1002 answers; the caller hangs up
    sipp_ok(caller(sw, "caller.xml", "1001", "1002", tmp_path), tmp_path)
    finish(b, tmp_path)
    sipp_ok(caller(sw, _expect(tmp_path, 404), "1001", "4444", tmp_path), tmp_path)
    deadline = time.monotonic() + 10
    while len(records(sw)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "api listening" not in sw.log()
    assert records(sw) == [("1001", "1002", "busy", 0), ("1001", "1002", "answered", 1),
                           ("1001", "4444", "failed", 0)]
