"""The desk out of the box: ``softswitch users add|passwd|remove|list`` edit the config's [[api.users]]
blocks (checked, atomic, the rest of the file untouched), and a switch without users makes up a one-time
``admin`` password, printed to its log, that logs in to the desk."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from softswitch.api.users_cli import add_user_block, remove_user_block, set_password
from softswitch.config import load_config

from .conftest import ROOT, start_switch


def users(config, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softswitch.cli", "users", *args, "--config", str(config)],
                          capture_output=True, text=True, input=stdin, cwd=config.parent,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)


@pytest.fixture
def shipped(tmp_path):
    """The shipped config.toml in a directory of its own (its prompt texts beside it)."""
    (tmp_path / "prompts").symlink_to(ROOT / "prompts", target_is_directory=True)
    cfg = tmp_path / "config.toml"
    cfg.write_text((ROOT / "config.toml").read_text())
    os.chmod(cfg, 0o640)
    return cfg


def test_users_add_passwd_remove_list_on_the_shipped_config(shipped):
    from softswitch.api.auth import check_password
    original = shipped.read_text()
    r = users(shipped, "add", "2001")
    assert r.returncode == 0, r.stderr
    password = re.search(r"user 2001 \(agent\) added to \S+; password: (\S+)", r.stdout)[1]
    r = users(shipped, "add", "boss", "--role", "supervisor")
    assert r.returncode == 0, r.stderr
    text = shipped.read_text()
    assert text.startswith(original) and oct(shipped.stat().st_mode & 0o777) == "0o640"  # appended, mode kept
    cfg = load_config(shipped)
    by_id = {u.id: u for u in cfg.api.users}
    assert set(by_id) == {"2001", "boss"} and by_id["boss"].role == "supervisor"
    assert check_password(password, by_id["2001"].password_hash) and password not in text
    assert users(shipped, "list").stdout.splitlines() == ["2001\tagent\thashed password",
                                                         "boss\tsupervisor\thashed password"]
    # a duplicate is refused and changes nothing
    r = users(shipped, "add", "2001")
    assert r.returncode == 1 and "already a user" in r.stderr and shipped.read_text() == text
    r = users(shipped, "passwd", "2001", "--password-stdin", stdin="correct horse battery\n")
    assert r.returncode == 0, r.stderr
    assert check_password("correct horse battery", {u.id: u for u in load_config(shipped).api.users}
                          ["2001"].password_hash)
    assert users(shipped, "remove", "boss").returncode == 0
    assert users(shipped, "remove", "2001").returncode == 0
    assert shipped.read_text() == original
    assert users(shipped, "remove", "2001").returncode == 1


def test_block_editing_keeps_everything_else():
    text = '[sip]\nx = 1\n\n[[api.users]]\nid = "a"\npassword = "plain-pw"\n# about b\n[[api.users]]\nid = "b"\n' \
           'role = "supervisor"\npassword_hash = "h"\n\n[[extensions]]\nnumber = "1001"\n'
    assert remove_user_block(text, "a") == ('[sip]\nx = 1\n# about b\n[[api.users]]\nid = "b"\nrole = "supervisor"\n'
                                            'password_hash = "h"\n\n[[extensions]]\nnumber = "1001"\n')
    assert 'id = "a"\npassword_hash = "new"\n# about b' in set_password(text, "a", "new")
    assert add_user_block("[sip]\n", 'q"x', "agent", "h") == '[sip]\n\n[[api.users]]\nid = "q\\"x"\npassword_hash = "h"\n'
    with pytest.raises(KeyError):
        set_password(text, "zz", "h")


@pytest.mark.e2e
def test_without_users_the_log_gives_a_one_time_admin_password(tmp_path):
    pytest.importorskip("aiohttp")
    from .test_api_support import Http
    sw = start_switch(tmp_path, {"1001": "secret-1001"})
    try:
        m = sw.wait_log(r"log in to the desk http://127\.0\.0\.1:(\d+)/desk as admin with the one-time password (\S+) ")
        port, password = int(m[1]), m[2]
        status, body = Http(port).post("/api/session", {"user": "admin", "password": password})
        assert status == 200 and body["role"] == "admin", body   # an admin: it may reload the config too
        assert Http(port, body["token"]).get("/api/me")[1]["user"] == "admin"
        assert Http(port).post("/api/session", {"user": "admin", "password": "guess"})[0] == 401
    finally:
        assert sw.stop() == 0
    r = users(sw.config_path, "add", "boss", "--role", "supervisor")
    password = re.search(r"password: (\S+)", r.stdout)[1]
    sw = start_switch(tmp_path, {"1001": "secret-1001"}, port=sw.port, config_text=sw.config_path.read_text())
    try:
        port = int(sw.wait_log(r"api listening on http://127\.0\.0\.1:(\d+) \(1 user\(s\)\)")[1])
        assert "one-time password" not in sw.log()
        status, body = Http(port).post("/api/session", {"user": "boss", "password": password})
        assert status == 200 and body["role"] == "supervisor"
        assert Http(port).post("/api/session", {"user": "admin", "password": "x" * 16})[0] == 401
    finally:
        assert sw.stop() == 0
