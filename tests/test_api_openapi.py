"""The OpenAPI document: valid OpenAPI 3 (openapi-spec-validator), the served copy equal to
docs/openapi.json, and schemathesis fuzzing the main endpoints of the real switch through it (no
server errors, only documented status codes and content types, responses matching their schemas)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")

from .conftest import ROOT  # noqa: E402
from .test_api_support import start_api_switch  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def test_document_is_valid_openapi_and_docs_copy_is_current():
    validator = pytest.importorskip("openapi_spec_validator")
    from softswitch.api.spec import spec
    doc = spec()
    validator.validate(doc)
    on_disk = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert on_disk == json.loads(json.dumps(doc)), \
        "docs/openapi.json is stale: python -m softswitch.api.spec > docs/openapi.json"
    # every operation has a handler
    from softswitch.api.app import ApiServer
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert hasattr(ApiServer, "op_" + op["operationId"]), (method, path)


@pytest.mark.e2e
def test_served_document_validates(switch_factory):
    validator = pytest.importorskip("openapi_spec_validator")
    sw, anon = start_api_switch(switch_factory)
    status, doc = anon.get("/openapi.json")
    assert status == 200
    validator.validate(doc)


def _schemathesis() -> str:
    exe = Path(sys.executable).parent / "schemathesis"
    if exe.exists():
        return str(exe)
    found = shutil.which("schemathesis")
    if not found:
        pytest.skip("schemathesis not installed (bin/setup --test installs it)")
    return found


@pytest.mark.e2e
@pytest.mark.slow
def test_schemathesis_against_the_running_switch(switch_factory, tmp_path):
    st = _schemathesis()
    sw, anon = start_api_switch(switch_factory)
    boss = anon.login("boss")
    # some data to reach past the 404s: a customer, an order, agent logged in
    cid = boss.post("/api/customers", {"name": "Fuzz Target", "phones": ["0301112222"]})[1]["id"]
    boss.post("/api/orders", {"kind": "repair", "customer_id": cid, "summary": "x"})
    cmd = [st, "run", f"http://127.0.0.1:{sw.api_port}/openapi.json", "-H", f"Authorization: Bearer {boss.token}",
           # one worker: with two, Hypothesis in both threads builds lambdas' descriptions with ast.parse at
           # once, and CPython 3.11's AST constructor is not thread-safe ("SystemError: AST constructor
           # recursion depth mismatch", CPython gh-106905; seen under CPU load)
           "-n", "8", "--seed", "20240501", "--generation-database", "none", "--no-color", "-w", "1",
           "--phases", "coverage,fuzzing", "--request-timeout", "10",
           "-c", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
           # logging out would end the fuzzer's session; hanging up / transferring there is no call to;
           # the admin's config reload is not the supervisor's (403 only; tested in test_reload_e2e)
           "--exclude-path-regex", "/api/session$|/hangup$|/transfer$|/api/admin/"]
    # (12 s on an idle machine, a minute at load average 7 on two cores: the deadline leaves room for that)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                       env=dict(os.environ, SCHEMATHESIS_TELEMETRY="false", NO_COLOR="1"))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert " passed" in out and "failed" not in out.split("SUMMARY")[-1].lower(), out[-3000:]
    # fuzzing changed nothing it should not: the switch is healthy and logged no server error
    assert boss.get("/api/me")[0] == 200
    assert "internal error" not in sw.log() and "Traceback" not in sw.log()
