"""The two releases `make e2e` installs (tests/e2e/releases.py), rendered with the real chart:
one trace can cross them. The frontend's DOWNSTREAM_URL names the backend's Service, and the
NetworkPolicies of both let the frontend's pods (and nothing else) reach the backend's, and
every pod that needs it (the apps and both migration Jobs) reach PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from functools import cache
from typing import Any

import yaml

from tests.e2e import releases
from tests.e2e.netpol import Endpoint, allows
from tests.e2e.settings import VALUES_FILE, E2ESettings
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

NS = "fastapi-app-e2e"
SETTINGS = E2ESettings.from_env({"E2E_NAMESPACE": NS})
Manifest = dict[str, Any]


@cache
def render(which: str) -> tuple[Manifest, ...]:
    """One release as make e2e-install installs it (its values file, then its --set flags)."""
    helm = require_tool("helm", "bash tools/install-helm.sh")
    values = releases.backend_values if which == "backend" else releases.frontend_values
    release = SETTINGS.backend_release if which == "backend" else SETTINGS.release
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as handle:
        yaml.safe_dump(values(SETTINGS), handle)
        handle.flush()
        done = subprocess.run(
            [helm, "template", release, str(REPO_ROOT / "deploy/helm/fastapi-app"),
             "--namespace", NS, "-f", str(VALUES_FILE), "-f", handle.name,
             "--set", f"fullnameOverride={release}", "--kube-version", "1.34.0"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def one(docs: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def pod(docs: tuple[Manifest, ...], kind: str, name: str) -> Endpoint:
    template = one(docs, kind, name)["spec"]["template"]
    ports = {
        p["name"]: p["containerPort"]
        for c in template["spec"]["containers"]
        for p in c.get("ports") or []
        if "name" in p
    }
    return Endpoint(template["metadata"]["labels"], NS, port_names=ports)


def policies() -> list[Manifest]:
    return [d for w in ("backend", "frontend") for d in render(w) if d["kind"] == "NetworkPolicy"]


def test_the_frontend_calls_the_backends_service() -> None:
    front, back = render("frontend"), render("backend")
    config = one(front, "ConfigMap", SETTINGS.release)["data"]
    service = one(back, "Service", SETTINGS.backend_release)
    port = service["spec"]["ports"][0]["port"]
    assert config["DOWNSTREAM_URL"] == f"http://{SETTINGS.backend_release}:{port}"
    assert service["spec"]["type"] == "ClusterIP"
    assert one(front, "Service", SETTINGS.release)["spec"]["type"] == "NodePort"
    assert "DOWNSTREAM_URL" not in one(back, "ConfigMap", SETTINGS.backend_release)["data"]


def test_both_network_policies_let_the_frontend_and_only_it_through() -> None:
    front, back = render("frontend"), render("backend")
    frontend = pod(front, "Deployment", SETTINGS.release)
    backend = pod(back, "Deployment", SETTINGS.backend_release)
    rules = policies()
    assert len(rules) == 4  # each release's own and its migration Job's
    assert allows(rules, frontend, backend, releases.APP_PORT)
    stranger = Endpoint({"app.kubernetes.io/name": "something-else"}, NS)
    assert not allows(rules, stranger, backend, releases.APP_PORT)
    # The frontend's egress is closed but for what it needs.
    assert not allows(rules, frontend, stranger, 443)
    # The NodePort, the helm test and the drill's pod proxy reach the frontend from anywhere.
    assert allows(rules, stranger, frontend, releases.APP_PORT)


def test_every_pod_that_needs_the_database_reaches_it() -> None:
    postgres = Endpoint({"app.kubernetes.io/name": "postgres"}, NS)
    redis = Endpoint({"app.kubernetes.io/name": "redis"}, NS)
    front, back = render("frontend"), render("backend")
    rules = policies()
    for docs, release in ((front, SETTINGS.release), (back, SETTINGS.backend_release)):
        app = pod(docs, "Deployment", release)
        job = pod(docs, "Job", f"{release}-migrate")
        assert allows(rules, app, postgres, 5432) and allows(rules, app, redis, 6379), release
        assert allows(rules, job, postgres, 5432), release
        assert not allows(rules, job, redis, 80), release


def test_the_module_prints_the_values_make_installs() -> None:
    for which in ("backend", "frontend"):
        done = subprocess.run(
            [sys.executable, "-m", "tests.e2e.releases", which], cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        expected = releases.backend_values if which == "backend" else releases.frontend_values
        assert yaml.safe_load(done.stdout) == expected(E2ESettings.from_env({}))
    bad = subprocess.run(
        [sys.executable, "-m", "tests.e2e.releases"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "Usage" in bad.stderr
