"""A restart is invisible to phones and agents, and a switch that cannot start says so and exits.

- The key file beside the database (``store.keyfile``): created 0600 once, the same key after.
- Restart (real pjsua2 phones, the HTTP API): phones registered, agents logged in (one ready, one not
  ready at another phone than her own), a desk session open; SIGTERM, start again on the same ports and
  database; every phone's next re-registration is accepted without a 403, the agents are as they were,
  the session token still works.
- A second instance on the same ports, or with the API port taken, exits non-zero within 5 s with one
  clear line, nothing left running.
"""
from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store.keyfile import derive, load_or_create

from .conftest import DOMAIN, ROOT, free_port, start_switch


def test_key_file_is_created_0600_once_and_read_after(tmp_path):
    path = tmp_path / "softswitch.key"
    key = load_or_create(path)
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create(path) == key
    assert derive(key, "sip-nonce") != derive(key, "api-session") != key
    path.write_text("not a key\n")
    with pytest.raises(ValueError, match="not a key file"):
        load_or_create(path)


# ------------------------------------------------------------------------------- failure to start

def _second_instance(config: Path, timeout: float = 60.0) -> tuple[int, str, float]:
    """Run ``softswitch run`` on ``config`` until it exits; its exit code, its log and how long it took
    from its "cannot start" line to its exit (starting up to that line is not part of the promptness
    asked for, and takes seconds on a busy machine: Python, numpy and the config load). ``timeout``
    bounds the whole run (a process that hangs)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=config.parent)
    stderr = proc.stderr
    assert stderr is not None
    lines: list[str] = []
    failed_at: float | None = None

    def read() -> None:
        nonlocal failed_at
        for line in stderr:
            if failed_at is None and "cannot start" in line:
                failed_at = time.monotonic()
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise AssertionError(f"the second instance did not exit within {timeout} s:\n{''.join(lines)[-3000:]}") \
            from None
    exited = time.monotonic()
    reader.join(5)
    stderr.close()
    err = "".join(lines)
    assert failed_at is not None, f"no 'cannot start' line:\n{err[-3000:]}"
    return proc.returncode, err, exited - failed_at


@pytest.mark.e2e
def test_a_second_instance_on_the_same_ports_exits_at_once(switch_factory, tmp_path):
    sw = switch_factory()
    rc, err, took = _second_instance(sw.config_path)  # the same config: same ports, same database
    assert rc == 1, err
    assert re.search(rf"ERROR softswitch: cannot start: cannot listen on udp:127\.0\.0\.1:{sw.port}: .*"
                     r"another softswitch running\?", err), err
    assert "Traceback" not in err and err.rstrip().endswith("stopped"), err
    assert took < 5.0
    # the first one is unharmed
    sw.wait_log("softswitch running")
    assert "cannot start" not in sw.log()


@pytest.mark.e2e
def test_the_api_port_taken_is_a_failure_to_start(switch_factory, tmp_path):
    api_port = free_port()
    sw = switch_factory(extra=f'[api]\nlisten = "127.0.0.1:{api_port}"\n')
    sw.wait_log(rf"api listening on http://127\.0\.0\.1:{api_port}")
    other = tmp_path / "other"
    other.mkdir()
    text = sw.config_path.read_text().replace(f"127.0.0.1:{sw.port}", f"127.0.0.1:{free_port()}")
    (other / "config.toml").write_text(text)
    rc, err, took = _second_instance(other / "config.toml")
    assert rc == 1 and took < 5.0, err
    assert f"cannot start: api cannot listen on 127.0.0.1:{api_port}" in err, err
    assert "Traceback" not in err


@pytest.mark.e2e
def test_ctrl_c_while_starting_exits_without_a_traceback(tmp_path):
    """SIGINT at once (imports, loading the config), and once the store is open (the switch starting)."""
    import signal
    (tmp_path / "config.toml").write_text(
        f'[sip]\nlisten = ["udp:127.0.0.1:{free_port()}"]\ndomain = "{DOMAIN}"\n[api]\nlisten = "127.0.0.1:0"\n'
        '[store]\npath = "var/softswitch.db"\n[[extensions]]\nnumber = "1001"\npassword = "secret-1001"\n')
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    for wait_for_line in ("", "opened;"):
        proc = subprocess.Popen([sys.executable, "-m", "softswitch.cli", "run", "--config", "config.toml"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
        assert proc.stderr is not None
        err = ""
        while wait_for_line and wait_for_line not in err:
            line = proc.stderr.readline()
            assert line, err
            err += line
        proc.send_signal(signal.SIGINT)
        try:
            err += proc.communicate(timeout=5)[1]
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"no exit within 5 s of Ctrl-C:\n{err + proc.communicate()[1]}") from None
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        # -2: before the interpreter set up its handlers; 130: while loading; 1: interrupted while starting
        assert proc.returncode in (-signal.SIGINT, 130, 1, 0), (proc.returncode, err)
        if proc.returncode in (0, 1):
            assert err.rstrip().endswith("stopped"), err


# ------------------------------------------------------------------------------------- restart

REFRESH = 12  # seconds: the phones' registration interval (they refresh ~5 s before it ends)


def _restart_config(port: int, api_port: int) -> str:
    from .test_api_support import api_config
    return (f'[sip]\nlisten = ["udp:127.0.0.1:{port}", "tcp:127.0.0.1:{port}"]\ndomain = "{DOMAIN}"\n'
            f'min_expires = 10\n[store]\npath = "var/softswitch.db"\n[media]\nenabled = false\n'
            + "".join(f'[[extensions]]\nnumber = "{n}"\npassword = "secret-{n}"\n' for n in ("1001", "1002", "1003"))
            + api_config(api_port).replace("[acd]\n", '[acd]\nqueue_log = "var/queue_log"\n', 1))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_restart_loses_nothing(tmp_path):
    pytest.importorskip("pjsua2")
    pytest.importorskip("aiohttp")
    from tests.phones import Phones

    from .test_api_support import Http

    port, api_port = free_port(), free_port()
    exts = {n: f"secret-{n}" for n in ("1001", "1002", "1003")}
    text = _restart_config(port, api_port)
    sw = start_switch(tmp_path, exts, port=port, config_text=text)
    pool = Phones(log_dir=tmp_path)
    try:
        phones = {}
        for n in exts:
            phones[n] = pool(f"p{n}")
            reg = phones[n].register(n, exts[n], DOMAIN, f"sip:{sw.addr}", expires=REFRESH)
            assert reg["code"] == 200, reg
        api = Http(api_port)
        boss = api.login("boss")
        # 2001 ready at her own phone; 2002 not ready (lunch) at 1001, not at her own 1003 (hot-desking)
        assert boss.post("/api/agents/2001/state", {"action": "login"})[1]["state"] == "ready"
        assert boss.post("/api/agents/2002/state", {"action": "login", "extension": "1001"})[1]["state"] == "ready"
        body = boss.post("/api/agents/2002/state", {"action": "not_ready", "reason": "lunch"})[1]
        assert body["state"] == "not-ready"
        before = {a["id"]: (a["state"], a["reason"], a["extension"]) for a in boss.get("/api/agents")[1]}
        assert before == {"2001": ("ready", "", "1002"), "2002": ("not-ready", "lunch", "1001")}
        sw.wait_log(r"agent 2002 is not-ready")
        for p in phones.values():
            p.clear_events()

        assert sw.stop() == 0
        first_log = sw.log()
        sw = start_switch(tmp_path, exts, port=port, config_text=text)  # same ports, same database
        restarted = time.monotonic()
        log = sw.log()
        assert "3 registration(s) restored" in log and "secret key created" not in log
        assert re.search(r"2 agent\(s\) logged in again as they were: ", log), log

        # within one registration interval each phone refreshes, and is accepted: no 403, no new challenge
        for n, p in phones.items():
            reg = p.wait_event("reg_state", timeout=REFRESH + 5)
            assert reg["code"] == 200 and reg["active"], (n, reg)
        assert time.monotonic() - restarted < REFRESH + 5
        sw.wait_log(r"refreshed 1001 contact")
        log = sw.log()
        assert "authentication failed" not in log and " 403 " not in log, log[-3000:]

        # the desk session goes on; the agents are as they were
        assert boss.get("/api/me")[1]["user"] == "boss"
        after = {a["id"]: (a["state"], a["reason"], a["extension"]) for a in boss.get("/api/agents")[1]}
        assert after == before
        # their history was not broken by the restart: the states go on, no new rows
        hist = boss.get("/api/agents/2002/history")[1]
        assert [h["state"] for h in hist] == ["ready", "not-ready"] and hist[-1]["ended_at"] is None
        logins = [l for l in (tmp_path / "var" / "queue_log").read_text().splitlines() if "|AGENTLOGIN|" in l]
        assert len(logins) == 2, logins  # the agents' sessions go on: no second login line
        errors = [e for p in phones.values() for e in p.history if e["event"] == "error"]
        assert not errors, errors
        assert "Traceback" not in first_log + sw.log()
    finally:
        pool.close()
        assert sw.stop() == 0
