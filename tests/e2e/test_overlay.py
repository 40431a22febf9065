"""Fitting the rendered kustomize prod overlay to kind: only the image and the Secret change."""

from __future__ import annotations

import base64
import subprocess
from functools import cache
from typing import Any

import pytest
import yaml

from tests.e2e import overlay
from tests.e2e.settings import E2ESettings
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

SECRETS = {
    "DATABASE_URL": "postgresql://app:pw@postgres.data.svc:5432/app",
    "REDIS_URL": "redis://r:6379/0",
}


@cache
def rendered_prod() -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of the overlay the e2e suite installs (the real one)."""
    kubectl = require_tool("kubectl", "make venv")
    overlay_dir = E2ESettings.from_env({}).overlay
    done = subprocess.run(
        [kubectl, "kustomize", str(overlay_dir)], capture_output=True, text=True, check=False,
        cwd=REPO_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("fastapi-app", True),
        ("fastapi-app:e2e", True),
        ("registry.example.com/team/fastapi-app:0.1.0@sha256:" + "0" * 64, True),
        ("localhost:5000/fastapi-app", True),
        ("postgres:17-alpine", False),
        ("team/fastapi-app-worker:1", False),
    ],
)
def test_is_app_image(image: str, expected: bool) -> None:
    assert overlay.is_app_image(image) is expected


def test_adapt_the_prod_overlay_changes_only_image_and_secret() -> None:
    docs = list(rendered_prod())
    adapted = overlay.adapt(docs, image="fastapi-app:e2e", secrets=SECRETS)
    assert [d["kind"] for d in adapted] == [d["kind"] for d in docs]
    # The app and the migration Job run the app's image: both are replaced.
    containers = list(overlay.app_containers(adapted))
    assert [c["name"] for c in containers] == ["app", "migrate"]
    for container in containers:
        assert container["image"] == "fastapi-app:e2e" and container["imagePullPolicy"] == "Never"
    secret = overlay.first(adapted, "Secret")
    assert secret is not None
    values = overlay.decoded_secret(secret)
    assert {k: values[k] for k in SECRETS} == SECRETS
    original = overlay.first(docs, "Secret")
    assert original is not None and secret["metadata"] == original["metadata"]  # same hash name
    for before, after in zip(docs, adapted, strict=True):
        if before["kind"] not in {"Secret", "Deployment", "Job"}:
            assert before == after
    assert overlay.first(docs, "Deployment") != overlay.first(adapted, "Deployment")
    for original_container in overlay.app_containers(docs):
        assert original_container["image"].startswith("registry.example.com/")  # untouched


def test_where_the_overlay_expects_its_database_and_clients() -> None:
    docs = list(rendered_prod())
    (app_ns,) = overlay.namespaces(docs)
    assert app_ns == "fastapi-app"
    assert overlay.database_namespace(docs, default=app_ns) == "data"
    assert overlay.client_labels(docs) == {"fastapi-app-client": "true"}
    hpa = overlay.first(docs, "HorizontalPodAutoscaler")
    assert hpa is not None and hpa["spec"]["minReplicas"] >= 2


def test_without_network_policy_or_app_container() -> None:
    deployment = {
        "kind": "Deployment",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "fastapi-app"}]}}},
    }
    old = base64.b64encode(b"old").decode()
    secret = {
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"REDIS_URL": old, "OTHER": "eA=="},
    }
    adapted = overlay.adapt([deployment, secret], image="img:1", secrets={"REDIS_URL": "new"})
    assert adapted[1]["stringData"] == {"REDIS_URL": "new"} and adapted[1]["data"] == {
        "OTHER": "eA=="
    }
    assert overlay.database_namespace(adapted, default="ns") == "ns"
    assert overlay.client_labels(adapted) == {}
    with pytest.raises(ValueError, match="no container runs the fastapi-app image"):
        overlay.adapt([secret], image="img:1", secrets={})
