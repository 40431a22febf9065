"""The chart drill's reading of a rendered pod spec (tools/drill/chart/spec.py): what it
turns into `docker run` arguments, and what it refuses instead of leaving out quietly."""

from __future__ import annotations

import base64
import copy
import subprocess
from typing import Any

import pytest
import yaml

from tests.support import require_tool
from tools.drill.chart.drill import DRILL_VALUES, PRODUCTION_VALUES, TracedKind, trace_ids
from tools.drill.chart.spec import (
    PreStop,
    Unsupported,
    expand,
    memory_bytes,
    plan_from_documents,
    scaled,
)
from tools.testbed.support import REPO_ROOT


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def documents() -> list[dict[str, Any]]:
    container = {
        "name": "app",
        "image": "app:1",
        "args": ["--flag"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "envFrom": [
            {"configMapRef": {"name": "cm"}},
            {"secretRef": {"name": "opt", "optional": True}},
        ],
        "env": [
            {"name": "A", "value": "from-env"},
            {"name": "URL", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "url"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "none",
                                                              "optional": True}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "BOTH", "value": "$(A)-$(B)-$$(A)"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2,
                           "failureThreshold": 2},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "4"]}}},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }  # fmt: skip
    return [
        {"kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"A": "from-cm", "B": "b"}},
        {"kind": "Secret", "metadata": {"name": "sec"}, "data": {"url": b64("postgresql://x")}},
        {
            "kind": "Deployment",
            "metadata": {"name": "rel-app"},
            "spec": {
                "replicas": 4,
                "minReadySeconds": 3,
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "spec": {
                        "securityContext": {
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "runAsNonRoot": True,
                            "fsGroup": 10001,
                        },
                        "terminationGracePeriodSeconds": 45,
                        "containers": [container],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                    }
                },
            },
        },
    ]


def test_the_pod_spec_becomes_docker_run_arguments() -> None:
    plan = plan_from_documents(documents())
    assert plan.env["A"] == "from-env"  # env wins over envFrom
    assert plan.env["URL"] == "postgresql://x" and "TOKEN" not in plan.env
    assert plan.env["BOTH"] == "from-env-b-$(A)"
    assert (plan.replicas, plan.max_surge, plan.max_unavailable, plan.min_ready_s) == (4, 1, 1, 3)
    assert plan.prestop == PreStop(exec_command=("sleep", "4"))
    assert plan.readiness is not None and plan.readiness.port == 8000
    assert (plan.readiness.period_s, plan.readiness.failure_threshold) == (2, 2)
    assert plan.termination_grace_s == 45
    args = plan.docker_run_args("rel-app-b-1", "net")
    line = " ".join(args)
    for part in [
        "--name rel-app-b-1 --network net",
        "--user 10001:10001 --group-add 10001 --read-only",
        "--tmpfs /tmp:rw,nosuid,nodev,size=67108864",
        "--cap-drop ALL --security-opt no-new-privileges --cpus 0.5 --memory 268435456",
        "--env POD=rel-app-b-1",
    ]:
        assert part in line, line
    assert args[-2:] == ["app:1", "--flag"]  # args without command: the image's entrypoint


def test_a_command_replaces_the_entrypoint() -> None:
    docs = documents()
    docs[2]["spec"]["template"]["spec"]["containers"][0]["command"] = ["gunicorn", "-c", "x"]
    args = plan_from_documents(docs).docker_run_args("p", "n")
    assert args[args.index("--entrypoint") + 1] == "gunicorn"
    assert args[-4:] == ["app:1", "-c", "x", "--flag"]


def edited(path: list[str | int], value: Any) -> list[dict[str, Any]]:
    docs = copy.deepcopy(documents())
    target: Any = docs[2]["spec"]["template"]["spec"]["containers"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return docs


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["env", 1, "valueFrom", "secretKeyRef", "name"], "gone", "Secret 'gone' is referenced"),
        (["env", 1, "valueFrom", "secretKeyRef", "key"], "nokey", "key 'nokey' is not in Secret"),
        (["env", 3, "valueFrom"], {"fieldRef": {"fieldPath": "status.podIP"}}, "not reproduced"),
        (["envFrom", 0, "configMapRef", "name"], "nocm", "ConfigMap 'nocm'"),
        (["readinessProbe"], {"exec": {"command": ["true"]}}, "only httpGet probes"),
        (["readinessProbe", "httpGet", "port"], "metrics", "not a container port"),
        (["lifecycle", "preStop"], {"httpGet": {"path": "/x"}}, "only sleep and exec"),
    ],
)
def test_what_cannot_be_reproduced_fails_loudly(
    path: list[str | int], value: Any, message: str
) -> None:
    with pytest.raises(Unsupported, match=message):
        plan_from_documents(edited(path, value))


def test_volumes_other_than_emptydir_and_extra_containers_fail_loudly() -> None:
    docs = documents()
    docs[2]["spec"]["template"]["spec"]["volumes"] = [{"name": "tmp", "configMap": {"name": "c"}}]
    with pytest.raises(Unsupported, match="only emptyDir"):
        plan_from_documents(docs)
    docs = documents()
    pod = docs[2]["spec"]["template"]["spec"]
    pod["containers"].append({"name": "proxy", "image": "envoy"})
    with pytest.raises(Unsupported, match="only the app container"):
        plan_from_documents(docs)


def test_quantities_and_rolling_update_numbers() -> None:
    assert memory_bytes("128Mi") == 128 * 2**20 and memory_bytes("1G") == 10**9
    assert scaled("25%", 3, round_up=True, default="25%") == 1
    assert scaled("25%", 3, round_up=False, default="25%") == 0
    assert scaled(None, 10, round_up=True, default="25%") == 3
    assert scaled(2, 9, round_up=False, default="0") == 2
    assert expand("$(X)/$(Y)", {"X": "1"}) == "1/$(Y)"


def test_requests_carry_a_traceparent_derived_from_their_id() -> None:
    trace, span = trace_ids("chart-drill-7")
    assert len(trace) == 32 and len(span) == 16 and trace != trace_ids("chart-drill-8")[0]
    raw = TracedKind("fast", "GET", "/api/slow?ms=1", 10).render(7, "h:1", "chart-drill-7")
    assert f"traceparent: 00-{trace}-{span}-01\r\n".encode() in raw
    assert b"X-Request-ID: chart-drill-7\r\n" in raw


def test_the_charts_production_render_is_understood() -> None:
    """The real chart with production values and the drill's: three pods, a Secret-resolved
    DATABASE_URL, the preStop and the strategy the chart renders."""
    helm = require_tool("helm", "bash tools/install-helm.sh")
    done = subprocess.run(
        [helm, "template", "drill", str(REPO_ROOT / "deploy/helm/fastapi-app"),
         "-f", str(PRODUCTION_VALUES), "-f", str(DRILL_VALUES),
         "--set", "image.repository=fastapi-app", "--set", "image.tag=t", "--set", "image.digest="],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    plan = plan_from_documents(list(yaml.safe_load_all(done.stdout)))
    assert plan.image == "fastapi-app:t" and plan.replicas >= 2
    assert plan.env["DATABASE_URL"].startswith("postgresql://app:")
    assert plan.prestop.sleep_s > 0 and plan.max_unavailable == 0 and plan.max_surge >= 1
    assert plan.termination_grace_s >= plan.prestop.sleep_s + float(
        plan.env["GRACE_PERIOD_SECONDS"]
    )
    assert plan.read_only and plan.user == "10001:10001" and "ALL" in plan.cap_drop


class FakePod:
    def __init__(self, name: str, available: bool) -> None:
        self.name, self._available = name, available

    def available(self, now: float) -> bool:
        return self._available


def names(pods: list[Any]) -> list[str]:
    return [p.name for p in pods]


def test_old_pods_are_scaled_down_by_the_deployment_controllers_rule() -> None:
    from tools.drill.chart.drill import scale_down

    a = [FakePod(f"a{i}", True) for i in range(3)]

    def down(old: list[FakePod], new: list[FakePod], unavailable: int = 0) -> list[str]:
        return names(scale_down(old, new, 3, unavailable, 0.0))  # type: ignore[arg-type]

    # maxSurge 1, maxUnavailable 0: one old pod goes once the surge pod is available.
    assert down(a, [FakePod("b0", False)]) == []
    assert down(a, [FakePod("b0", True)]) == ["a0"]
    # An unhealthy old pod goes first when the budget allows (it costs no availability);
    # a new pod that is not available yet takes from that budget.
    sick = [FakePod("a0", False), *a[1:]]
    assert down(sick, [FakePod("b0", False)]) == []
    assert down(sick, [FakePod("b0", True), FakePod("b1", False)]) == ["a0"]
    assert down(sick, [FakePod("b0", True), FakePod("b1", True)]) == ["a0", "a1"]
    # maxUnavailable 1 lets one available old pod go before any new one is available.
    assert down(a, [], unavailable=1) == ["a0"]


def test_with_an_hpa_the_rollout_starts_from_its_min_replicas() -> None:
    """The chart leaves `replicas` out when an HPA owns the count: the drill rolls the
    fewest pods the HPA keeps, and says so."""
    docs = documents()
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"].pop("replicas", None)
    assert plan_from_documents(docs).replicas == 1  # the API server's default
    hpa = {
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "hpa"},
        "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": deployment["metadata"]["name"]},
            "minReplicas": 3,
        },
    }
    plan = plan_from_documents([*docs, hpa])
    assert plan.replicas == 3
    assert any("HPA" in note for note in plan.notes), plan.notes
