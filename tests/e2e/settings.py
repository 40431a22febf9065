"""What the e2e suite runs against, from the environment make/e2e.mk passes to pytest.

Every name has a default that matches make/e2e.mk, so `pytest -m e2e tests/e2e` also works
by hand against a cluster that `make e2e E2E_KEEP=1` left behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.support import REPO_ROOT

E2E_DIR = Path(__file__).resolve().parent
VALUES_FILE = E2E_DIR / "values-e2e.yaml"
KIND_CONFIG = E2E_DIR / "kind-config.yaml"
BACKING_MANIFEST = E2E_DIR / "manifests" / "backing-services.yaml"
DEFAULT_CLUSTER = "fastapi-app-e2e"
DEFAULT_NODE_PORT = 30080  # kind-config.yaml maps it to the same port on 127.0.0.1
TRUE_WORDS = {"1", "true", "yes"}


def _tool(
    env: Mapping[str, str], name: str, variable: str, fallbacks: tuple[Path, ...], root: Path
) -> str:
    """The command for a tool: a relative path (make passes .venv/bin/kubectl) is made
    absolute, so it also runs from the drill's rollout shell; a bare name stays on PATH."""
    value = env.get(variable)
    if value:
        return str(root / value) if os.sep in value and not os.path.isabs(value) else value
    for candidate in fallbacks:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return name


@dataclass(frozen=True)
class E2ESettings:
    cluster: str  # kind cluster name
    context: str  # kubeconfig context the suite may touch (never any other)
    namespace: str
    release: str  # helm release, also the objects' name (fullnameOverride)
    backend_release: str  # the second release, the frontend's DOWNSTREAM_URL
    url: str  # the Service's NodePort as seen from this machine
    kubectl: str
    helm: str
    docker: str  # reads a kind node's clock (`docker exec <node> date`)
    chart: Path
    image_repository: str
    tag: str  # the image tag installed by make e2e
    next_tag: str  # the same image under a second tag, for the image-change drill
    artifacts: Path  # drill reports and timing tables land here
    overlay: Path  # kustomize overlay installed by the kustomize test
    drill_rate: float  # requests per second of the rollout drills
    required: bool  # make e2e: a missing cluster fails instead of skipping

    @property
    def selector(self) -> str:
        """Labels of the release's app pods (the helm test pod does not carry the name)."""
        return f"app.kubernetes.io/name=fastapi-app,app.kubernetes.io/instance={self.release}"

    @property
    def backend_selector(self) -> str:
        return (
            f"app.kubernetes.io/name=fastapi-app,app.kubernetes.io/instance={self.backend_release}"
        )

    @property
    def migration_job(self) -> str:
        """The migration Job of the release (the chart's <fullname>-migrate)."""
        return f"{self.release}-migrate"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, root: Path = REPO_ROOT) -> E2ESettings:
        env = os.environ if env is None else env
        cluster = env.get("KIND_CLUSTER") or DEFAULT_CLUSTER
        port = int(env.get("E2E_NODE_PORT") or DEFAULT_NODE_PORT)

        def path(variable: str, default: str) -> Path:
            value = Path(env.get(variable) or default)
            return value if value.is_absolute() else root / value

        kubectl_fallbacks = (root / ".tools/bin/kubectl", root / ".venv/bin/kubectl")
        return cls(
            cluster=cluster,
            context=env.get("E2E_CONTEXT") or f"kind-{cluster}",
            namespace=env.get("E2E_NAMESPACE") or "fastapi-app-e2e",
            release=env.get("E2E_RELEASE") or "fastapi-app",
            backend_release=env.get("E2E_BACKEND_RELEASE") or "fastapi-app-backend",
            url=(env.get("E2E_URL") or f"http://127.0.0.1:{port}").rstrip("/"),
            # make e2e-kubectl's (the cluster's version) before the venv's (newer).
            kubectl=_tool(env, "kubectl", "E2E_KUBECTL", kubectl_fallbacks, root),
            helm=_tool(env, "helm", "E2E_HELM", (root / ".tools/bin/helm",), root),
            docker=_tool(env, "docker", "E2E_DOCKER", (), root),
            chart=path("E2E_CHART", "deploy/helm/fastapi-app"),
            image_repository=env.get("E2E_IMAGE_REPO") or "fastapi-app",
            tag=env.get("E2E_TAG") or "e2e",
            next_tag=env.get("E2E_TAG_NEXT") or "e2e-next",
            artifacts=path("E2E_ARTIFACTS", "var/e2e"),
            overlay=path("E2E_OVERLAY", "deploy/kustomize/overlays/prod"),
            drill_rate=float(env.get("E2E_DRILL_RATE") or 40),
            required=(env.get("E2E_REQUIRED") or "").lower() in TRUE_WORDS,
        )
