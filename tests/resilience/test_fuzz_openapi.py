"""Schemathesis against the service's own OpenAPI document: every operation, a few
hundred generated requests each, all of Schemathesis's checks (no 5xx, responses and
status codes as documented, invalid input refused, valid input accepted)."""

from __future__ import annotations

import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.resilience.harness import json_lines
from tests.support import require_tool
from tools.testbed.servers import PostgresServer, RedisServer, ServiceProcess
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.resilience
EXAMPLES_PER_OPERATION = 250
# Raises on purpose to demonstrate the JSON 500 (tests/integration covers it).
EXCLUDED = "^/api/error$"


@pytest.fixture(scope="module")
def service(postgres: PostgresServer, redis_server: RedisServer) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(
        env={
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            # Set, to show the admin route stays out of the API's document even then.
            "ADMIN_TOKEN": "fuzz-admin-token-not-guessable",
            "SLOW_REQUEST_MS": "100000",
        }
    ).start(wait="/health/ready")
    yield svc
    svc.stop()


def test_schemathesis_finds_nothing(service: ServiceProcess, tmp_path: Path) -> None:
    schemathesis = require_tool("schemathesis", "pip install -r requirements-dev.txt")
    schema = httpx.get(f"{service.url}/openapi.json").json()
    operations = [
        (method.upper(), path)
        for path, methods in schema["paths"].items()
        for method in methods
        if not re.match(EXCLUDED, path)
    ]
    # The admin route is served on the loopback admin listener only, never documented here.
    assert not [op for op in operations if op[1].startswith("/admin")], operations
    assert len(operations) >= 8, operations
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.resilience.schemathesis_hooks",
        "PYTHONPATH": str(REPO_ROOT),
    }
    run = subprocess.run(
        [
            schemathesis,
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "all",
            "--exclude-path-regex",
            EXCLUDED,
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
        timeout=240,
        env=env,
        cwd=tmp_path,  # its report folder and Hypothesis database stay out of the repo
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) >= 100 * len(operations), output[-2000:]

    records = json_lines(service)
    statuses = Counter(r["status_code"] for r in records if r["message"] == "request_completed")
    assert not [s for s in statuses if s >= 500], statuses
    assert not [r for r in records if r["message"] == "unhandled_exception"]
    assert "shutdown_started" not in {r["message"] for r in records}
    print(
        f"\nschemathesis: {len(operations)} operations, {generated.group(1)} cases;"
        f" server answered {sum(statuses.values())} requests {dict(sorted(statuses.items()))}"
    )
