"""Issue 25 item 6: /health/ready tells whoever reaches the port which check fails and a
short code, never the error's text (hosts, ports, driver messages); that text goes to one
log line per failing check, not one per probe. Real Gunicorn; PostgreSQL refused (a port
nothing listens on), Redis hanging (a listener whose accept queue is full)."""

from __future__ import annotations

import httpx
import pytest

from tools.testbed.servers import ServiceProcess
from tools.testbed.support import free_port, unaccepting_port

pytestmark = [pytest.mark.integration, pytest.mark.security]
PASSWORD = "dbPW-s3cr3t-888"
PROBES = 5


def test_the_readiness_body_carries_codes_and_the_log_the_reasons() -> None:
    database_port = free_port()
    with unaccepting_port() as redis_port:
        service = ServiceProcess(
            env={
                "DATABASE_URL": f"postgresql://app:{PASSWORD}@127.0.0.1:{database_port}/app",
                "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "WEB_CONCURRENCY": "1",
            }
        ).start()
        try:
            answers = [httpx.get(f"{service.url}/health/ready", timeout=5) for _ in range(PROBES)]
            records = service.records()
        finally:
            service.stop()
    for response in answers:
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["failing"] == ["database", "schema", "redis"], body
        assert body["checks"] == {
            "database": {"healthy": False, "error": "connection_refused"},
            "schema": {"healthy": False, "error": "connection_refused"},
            "redis": {"healthy": False, "error": "timeout"},
        }
        for leak in ("127.0.0.1", str(database_port), str(redis_port), PASSWORD, "Error"):
            assert leak not in response.text, leak
    # One line per failing check for the five probes, with the text the body leaves out.
    failed = {r["check"]: r for r in records if r["message"] == "readiness_check_failed"}
    lines = [r for r in records if r["message"] == "readiness_check_failed"]
    assert len(lines) == len(failed) == 3, lines
    assert failed["database"]["reason"] == "connection_refused"
    assert "Connection refused" in failed["database"]["error"], failed
    assert failed["redis"] == {**failed["redis"], "reason": "timeout", "level": "warning"}
    assert all(PASSWORD not in str(record) for record in records)
