"""Schemathesis against the service's own OpenAPI document, as deployed (demo routes off,
API tokens on): every operation, a few hundred generated requests each, all of
Schemathesis's checks (no 5xx, every status code documented, every body matching its
documented schema, invalid input refused, valid input accepted, a write refused without
its token).

One run, with a valid bearer token on every request: its writes reach the database (201
and its body checked), and its ignored_auth check sends each write again without the
token and with a wrong one, which must answer 401. An anonymous run would only add
writes that all answer the same 401."""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import require_tool
from tools.testbed.servers import PostgresServer, RedisServer, ServiceProcess

pytestmark = pytest.mark.resilience
EXAMPLES_PER_OPERATION = 250
API_TOKEN = "fuzz-api-token-0123456789"
# Mounted only with DEMO_ROUTES=true: absent from the document as deployed.
DEMO_PATHS = {"/api/slow", "/api/long-task", "/api/error"}


@pytest.fixture(scope="module")
def service(postgres: PostgresServer, redis_server: RedisServer) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        env={
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            # Set, to show the admin route stays out of the API's document even then.
            "ADMIN_TOKEN": "fuzz-admin-token-not-guessable-0123456789",
            "SLOW_REQUEST_MS": "100000",
            "DEMO_ROUTES": "false",
            "API_TOKENS": f"{API_TOKEN}=fuzzer",
        }
    )
    # /api/downstream calls the service itself: its 200 is generated and checked too.
    svc.env["DOWNSTREAM_URL"] = svc.url
    svc.start(wait="/health/ready")
    yield svc
    svc.stop()


# Measured: 70 to 235 s (the longest with both cores loaded by other suites, load 17).
@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing(service: ServiceProcess, tmp_path: Path) -> None:
    schemathesis = require_tool("schemathesis", "pip install -r requirements-dev.txt")
    schema = httpx.get(f"{service.url}/openapi.json").json()
    operations = [
        (method.upper(), path) for path, methods in schema["paths"].items() for method in methods
    ]
    # The admin route is served on the loopback admin listener only, never documented here.
    assert not [op for op in operations if op[1].startswith("/admin")], operations
    assert not DEMO_PATHS & {path for _, path in operations}, operations
    assert ("POST", "/api/items") in operations
    assert len(operations) >= 8, operations
    run = subprocess.run(
        [
            schemathesis,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {API_TOKEN}",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--seed",
            "20261126",
            "--request-timeout",
            "10",
            # One worker: on Python 3.11 the AST recursion counter is shared by all
            # threads, so Hypothesis parsing lambda sources in two worker threads at once
            # can fail with "SystemError: AST constructor recursion depth mismatch".
            "--workers",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=tmp_path,  # its report folder and Hypothesis database stay out of the repo
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 100 * len(operations), output[-2000:]

    records = service.records()
    statuses = Counter(r["status_code"] for r in records if r["message"] == "request_completed")
    # A 503 says the database failed (documented, but not expected here): say why.
    why = [r for r in records if r["message"] in ("database_unavailable", "downstream_unavailable")]
    assert not [s for s in statuses if s >= 500], (statuses, why[:5])
    assert not [r for r in records if r["message"] == "unhandled_exception"]
    assert "shutdown_started" not in {r["message"] for r in records}
    # Writes with the token were stored; the same writes without it were refused.
    assert statuses[201] and statuses[401], statuses
    print(
        f"\nschemathesis: {len(operations)} operations, {generated.group(1)} cases;"
        f" server answered {sum(statuses.values())} requests {dict(sorted(statuses.items()))}"
    )
