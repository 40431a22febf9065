"""The extension points platforms use (bitnami's names): extra volumes, mounts and envFrom,
init containers and sidecars (native and classic), common labels and annotations, the
Gateway API HTTPRoute, Service options; and the small fixes of issue 16 (test pod identity
and scheduling, label precedence)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.chart.rendering import CHART_DIR, FULLNAME, RELEASE, render

pytestmark = pytest.mark.chart

SELECTOR = {"app.kubernetes.io/name": "fastapi-app", "app.kubernetes.io/instance": RELEASE}
EXTENSIONS = CHART_DIR / "ci/production-extensions-values.yaml"


def test_extra_volumes_and_mounts() -> None:
    values: dict[str, list[dict[str, Any]]] = {
        "extraVolumes": [{"name": "ca", "configMap": {"name": "corporate-ca"}}],
        "extraVolumeMounts": [{"name": "ca", "mountPath": "/etc/ssl/corp", "readOnly": True}],
    }
    result = render(values)
    assert result.pod_spec()["volumes"][1:] == values["extraVolumes"]
    mounts = result.app_container()["volumeMounts"]
    assert mounts == [{"name": "tmp", "mountPath": "/tmp"}, *values["extraVolumeMounts"]]


def test_init_containers_and_sidecars() -> None:
    init = {"name": "migrate", "image": "m:1", "command": ["true"]}
    native = {"name": "shipper", "image": "s:1", "restartPolicy": "Always"}
    sidecar = {
        "name": "proxy",
        "image": "p:1",
        "lifecycle": {"preStop": {"sleep": {"seconds": 35}}},
    }
    pod = render({"initContainers": [init, native], "sidecars": [sidecar]}).pod_spec()
    assert pod["initContainers"] == [init, native]
    assert [c["name"] for c in pod["containers"]] == ["app", "proxy"]
    assert pod["containers"][1] == sidecar
    assert "initContainers" not in render().pod_spec()


def test_common_labels_and_annotations_reach_every_object() -> None:
    result = render(
        {
            "commonLabels": {"team": "orders", "app.kubernetes.io/component": "mine"},
            "commonAnnotations": {"owner": "orders@example.com"},
            "service": {"annotations": {"owner": "svc-owner"}},
        }
    )
    for obj in result.objects():
        labels = obj["metadata"]["labels"]
        assert labels["team"] == "orders", obj["kind"]
        annotations = obj["metadata"]["annotations"]
        expected_owner = "svc-owner" if obj["kind"] == "Service" else "orders@example.com"
        assert annotations["owner"] == expected_owner, obj["kind"]
    # The chart's own labels win over commonLabels.
    assert result.one("Deployment")["metadata"]["labels"]["app.kubernetes.io/component"] == "api"
    pod_labels = result.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["team"] == "orders"
    assert result.one("Deployment")["spec"]["selector"]["matchLabels"] == SELECTOR


def test_pod_labels_never_duplicate_or_change_the_charts() -> None:
    result = render({"podLabels": {"tier": "api", "app.kubernetes.io/component": "other"}})
    text = result.stdout
    # One key once: YAML with a duplicate key is invalid for the API server.
    template = result.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert template["tier"] == "api"
    assert template["app.kubernetes.io/component"] == "api"
    assert text.count("app.kubernetes.io/component: other") == 0
    # A selector label with its own value is harmless and accepted.
    same = render({"podLabels": {"app.kubernetes.io/instance": RELEASE}})
    assert (
        same.one("Deployment")["spec"]["template"]["metadata"]["labels"].items() >= SELECTOR.items()
    )


def test_service_options_render_only_for_types_that_take_them() -> None:
    plain = render().one("Service")["spec"]
    assert "externalTrafficPolicy" not in plain and "loadBalancerSourceRanges" not in plain
    assert "nodePort" not in plain["ports"][0]
    node_port = render(
        {"service": {"type": "NodePort", "nodePort": 30080, "externalTrafficPolicy": "Local"}}
    ).one("Service")["spec"]
    assert node_port["type"] == "NodePort"
    assert node_port["ports"][0]["nodePort"] == 30080
    assert node_port["externalTrafficPolicy"] == "Local"
    balancer = render(
        {"service": {"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]}}
    ).one("Service")["spec"]
    assert balancer["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert "nodePort" not in balancer["ports"][0]


def test_http_route_sends_each_rule_to_the_service() -> None:
    assert render().find("HTTPRoute") == []
    values: dict[str, Any] = {
        "httpRoute": {
            "enabled": True,
            "annotations": {"a": "b"},
            "parentRefs": [{"name": "gw", "namespace": "infra", "sectionName": "https"}],
            "hostnames": ["api.example.com"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]},
                {
                    "matches": [{"path": {"type": "Exact", "value": "/health/ready"}}],
                    "filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}}],
                    "timeouts": {"request": "10s"},
                },
            ],
        }
    }
    route = render(values).one("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["metadata"]["annotations"]["a"] == "b"
    spec = route["spec"]
    assert spec["parentRefs"] == values["httpRoute"]["parentRefs"]
    assert spec["hostnames"] == ["api.example.com"]
    backend = [{"name": FULLNAME, "port": 80}]
    assert spec["rules"][0] == {
        "matches": values["httpRoute"]["rules"][0]["matches"],
        "backendRefs": backend,
    }
    assert spec["rules"][1]["filters"] == values["httpRoute"]["rules"][1]["filters"]
    assert spec["rules"][1]["timeouts"] == {"request": "10s"}
    assert spec["rules"][1]["backendRefs"] == backend


def test_helm_test_pod_runs_without_the_apps_identity_where_the_app_may_run() -> None:
    values = {
        "serviceAccount": {
            "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/app"}
        },
        "nodeSelector": {"pool": "web"},
        "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
    }
    pod = render(values).one("Pod")["spec"]
    # The namespace's default ServiceAccount (no cloud identity), no token.
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"pool": "web"}
    assert pod["tolerations"] == values["tolerations"]


def test_every_extension_point_is_on_in_the_extensions_ci_file() -> None:
    """ci/production-extensions-values.yaml is the one checkov and kubernetes-validate scan with
    everything on: keep it that way as extension points are added."""
    values = yaml.safe_load(EXTENSIONS.read_text())
    for key in (
        "commonLabels",
        "commonAnnotations",
        "extraEnvFrom",
        "extraVolumes",
        "extraVolumeMounts",
        "initContainers",
        "sidecars",
        "topologySpreadConstraints",
    ):
        assert values[key], key
    assert values["httpRoute"]["enabled"] is True
    assert values["service"]["type"] == "LoadBalancer"
    assert values["service"]["nodePort"] and values["service"]["loadBalancerSourceRanges"]
    assert values["service"]["externalTrafficPolicy"] == "Local"
    result = render(files=[EXTENSIONS])
    assert {"HTTPRoute", "Deployment", "PodDisruptionBudget"} <= result.kinds()
    # The classic sidecar outlives the app's preStop and drain (P + G).
    shutdown = values["shutdown"]
    (proxy,) = [c for c in result.pod_spec()["containers"] if c["name"] == "proxy"]
    assert int(proxy["lifecycle"]["preStop"]["exec"]["command"][1]) >= (
        shutdown["preStopSeconds"] + shutdown["gracePeriodSeconds"]
    )
