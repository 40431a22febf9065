"""kind e2e: the NetworkPolicies deny on the wire. A pod without the backend's client label
gets no answer from the backend (connect timeout) while the frontend answers it; and first,
a deny-all policy on a canary pod must stop a connection that worked without it: a cluster
that enforces no NetworkPolicy fails here, saying so, instead of passing every policy test."""

from __future__ import annotations

import contextlib
import secrets

import pytest
import yaml

from tests.e2e import netprobe
from tests.e2e.cluster import Cluster
from tests.e2e.releases import SERVICE_PORT
from tools.testbed.support import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
POLICY_SETTLE_S = 30  # a policy engine programs a new policy within this


def test_an_unlabelled_pod_gets_no_answer_from_the_backend_but_one_from_the_frontend(
    cluster: Cluster,
) -> None:
    s = cluster.settings
    cluster.wait_settled()
    cluster.wait_settled(name=s.backend_release, selector=s.backend_selector)
    suffix = secrets.token_hex(3)
    probe, canary, policy = f"e2e-probe-{suffix}", f"e2e-canary-{suffix}", f"e2e-deny-{suffix}"
    image = f"{s.image_repository}:{s.tag}"
    pods = [netprobe.probe_pod(probe, image), netprobe.canary_pod(canary, image)]

    def connect(host: str, port: int) -> str:
        done = cluster.kubectl("exec", probe, "--", *netprobe.connect_command(host, port))
        return netprobe.outcome(done.returncode, done.stdout, done.stderr)

    def until(host: str, port: int, want: bool) -> str:
        """Try until the connection does (want) or does not connect, or time is up."""
        seen = [""]

        def settled() -> bool:
            seen[0] = connect(host, port)
            return (seen[0] == "connected") == want

        with contextlib.suppress(AssertionError):  # what was seen last is the answer
            wait_for(settled, timeout_s=POLICY_SETTLE_S, interval_s=1, what=f"{host}:{port}")
        return seen[0]

    try:
        applied = cluster.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(pods))
        assert applied.returncode == 0, applied.stderr
        ready = cluster.kubectl(
            "wait", "--for=condition=Ready", f"pod/{probe}", f"pod/{canary}", "--timeout=180s",
            timeout_s=200,
        )  # fmt: skip
        assert ready.returncode == 0, ready.stderr
        ip = netprobe.canary_ip(cluster, canary)
        assert ip, f"pod {canary} has no IP"
        canary_open = until(ip, netprobe.CANARY_PORT, want=True)
        canary_denied = "not tried"
        if canary_open == "connected":
            denied = cluster.kubectl(
                "apply", "-f", "-", stdin=yaml.safe_dump(netprobe.deny_all(policy))
            )
            assert denied.returncode == 0, denied.stderr
            canary_denied = until(ip, netprobe.CANARY_PORT, want=False)
        frontend = connect(s.release, SERVICE_PORT)
        backend = connect(s.backend_release, SERVICE_PORT)
        problems = netprobe.verdict(canary_open, canary_denied, frontend, backend)
        assert not problems, "\n".join(problems)
    finally:
        cluster.kubectl("delete", "networkpolicy", policy, "--ignore-not-found", "--wait=false")
        cluster.kubectl("delete", "pod", probe, canary, "--ignore-not-found", "--wait=false")
