"""kind e2e: two releases in one trace. One request with a traceparent through the NodePort
to the frontend's /api/downstream reaches the backend release (its DOWNSTREAM_URL) through
both NetworkPolicies, and both releases' pods log the same trace id."""

from __future__ import annotations

import secrets

import httpx
import pytest

from tests.e2e import logs
from tests.e2e.cluster import Cluster
from tools.testbed.support import wait_for

pytestmark = pytest.mark.e2e
REPLICAS = 3


def records(cluster: Cluster, selector: str) -> list[logs.Record]:
    found: list[logs.Record] = []
    for pod in cluster.pod_names(selector=selector):
        found += logs.parse_log(cluster.log(pod)).records
    return found


def test_one_trace_through_two_releases(cluster: Cluster) -> None:
    s = cluster.settings
    cluster.wait_settled(REPLICAS)
    cluster.wait_settled(name=s.backend_release, selector=s.backend_selector)
    trace_id = secrets.token_hex(16)
    request_id = f"e2e-downstream-{secrets.token_hex(4)}"
    headers = {
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "X-Request-ID": request_id,
    }
    response = httpx.get(f"{s.url}/api/downstream", headers=headers, timeout=15)
    # 502 would be the frontend's egress or the backend's ingress refusing the call.
    assert response.status_code == 200, response.text
    assert response.json()["downstream_status"] == 200, response.json()

    problems: list[str] = []

    def both_logged() -> bool:
        front, back = records(cluster, s.selector), records(cluster, s.backend_selector)
        problems[:] = logs.trace_problems(front, back, trace_id, request_id)
        return not problems

    try:
        wait_for(both_logged, timeout_s=30, interval_s=1, what=f"trace {trace_id} in both logs")
    except AssertionError:
        raise AssertionError("\n".join(problems)) from None
