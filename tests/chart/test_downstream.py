"""Two releases in one trace (issue 19): DOWNSTREAM_URL and its timeout in the ConfigMap, the
egress rule toward the downstream's pods, and the backend's policy admitting the frontend."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import FULLNAME, render, render_error
from tests.e2e.netpol import Endpoint, allows

pytestmark = pytest.mark.chart

NS = "default"
BACKEND = {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "api"}}}


def test_downstream_url_and_timeout_are_in_the_config_map() -> None:
    assert "DOWNSTREAM_URL" not in render().config()
    assert "DOWNSTREAM_TIMEOUT_SECONDS" not in render().config()
    config = render(
        {"config": {"downstreamUrl": "http://api-fastapi-app:80", "downstreamTimeoutSeconds": 2.5}}
    ).config()
    assert config["DOWNSTREAM_URL"] == "http://api-fastapi-app:80"
    assert config["DOWNSTREAM_TIMEOUT_SECONDS"] == "2.5"
    whole = render({"config": {"downstreamUrl": "http://b:80", "downstreamTimeoutSeconds": 3}})
    assert whole.config()["DOWNSTREAM_TIMEOUT_SECONDS"] == "3"

    # A change of the downstream rolls the pods (checksum of the ConfigMap's data).
    def checksum(values: dict[str, Any]) -> str:
        meta = render(values).one("Deployment")["spec"]["template"]["metadata"]
        return str(meta["annotations"]["checksum/config"])

    assert checksum({}) != checksum({"config": {"downstreamUrl": "http://b:80"}})


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"config": {"downstreamUrl": "backend:80"}}, "/config/downstreamUrl"),
        ({"config": {"downstreamTimeoutSeconds": 0}}, "/config/downstreamTimeoutSeconds"),
        ({"config": {"downstreamTimeoutSeconds": 301}}, "/config/downstreamTimeoutSeconds"),
        ({"networkPolicy": {"downstream": {"port": 0}}}, "/networkPolicy/downstream/port"),
        (
            {"networkPolicy": {"downstream": {"peers": [BACKEND]}}},
            "networkPolicy.downstream.peers is set but config.downstreamUrl is empty",
        ),
        (
            {
                "extraEnv": [{"name": "DOWNSTREAM_URL", "value": "http://x"}],
                "config": {"downstreamUrl": "http://b:80"},
            },
            "extraEnv sets DOWNSTREAM_URL",
        ),
    ],
    ids=["no scheme", "zero timeout", "timeout too long", "port 0", "peers alone", "extraEnv"],
)
def test_bad_downstream_values_fail(values: dict[str, Any], needle: str) -> None:
    assert needle in render_error(values)


def test_the_egress_rule_toward_the_downstream() -> None:
    values: dict[str, Any] = {
        "config": {"downstreamUrl": "http://api-fastapi-app:80"},
        "networkPolicy": {
            "enabled": True,
            "restrictEgress": True,
            "downstream": {"peers": [BACKEND], "port": 8080},
        },
    }
    result = render(values)
    policies = {p["metadata"]["name"]: p for p in result.find("NetworkPolicy")}
    egress = policies[FULLNAME]["spec"]["egress"]
    assert egress[-1] == {"to": [BACKEND], "ports": [{"port": 8080, "protocol": "TCP"}]}
    # The migration Job calls no downstream.
    assert all(r.get("to") != [BACKEND] for r in policies.get(f"{FULLNAME}-migrate", {}).get(
        "spec", {}).get("egress", []))  # fmt: skip
    # Without restrictEgress there are no egress rules at all (egress is open).
    open_egress = render(
        {**values, "networkPolicy": {**values["networkPolicy"], "restrictEgress": False}}
    )
    assert "egress" not in open_egress.one("NetworkPolicy")["spec"]


def pod_labels(values: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = render(values).one("Deployment")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def test_the_readme_pair_lets_the_frontend_call_the_backend_and_nobody_else() -> None:
    """The pair the chart README shows, web calling api through both NetworkPolicies (one
    release name here, so the two are told apart by nameOverride: demo-api and demo-web)."""
    ingress_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "edge"}}}
    api_pods = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "api"}}}
    backend_values: dict[str, Any] = {
        "nameOverride": "api",
        "networkPolicy": {"enabled": True, "allowedFrom": [ingress_peer], "restrictEgress": True},
    }
    frontend_values: dict[str, Any] = {
        "nameOverride": "web",
        "config": {"downstreamUrl": "http://demo-api:80"},
        "podLabels": {"demo-api-client": "true"},
        "networkPolicy": {
            "enabled": True,
            "restrictEgress": True,
            "downstream": {"peers": [api_pods], "port": 8000},
        },
    }
    backend, frontend = render(backend_values), render(frontend_values)
    policies = backend.find("NetworkPolicy") + frontend.find("NetworkPolicy")
    ports = {p["name"]: p["containerPort"] for p in backend.app_container()["ports"]}
    backend_pod = Endpoint(pod_labels(backend_values), NS, port_names=ports)
    frontend_pod = Endpoint(pod_labels(frontend_values), NS)
    assert allows(policies, frontend_pod, backend_pod, 8000)
    assert not allows(policies, frontend_pod, backend_pod, 9464)  # not the metrics port
    assert not allows(policies, Endpoint({"app": "other"}, NS), backend_pod, 8000)
    # Without the client label the backend refuses the frontend; without the egress rule the
    # frontend cannot leave.
    unlabelled = Endpoint(pod_labels({**frontend_values, "podLabels": {}}), NS)
    assert not allows(policies, unlabelled, backend_pod, 8000)
    policy = {**frontend_values["networkPolicy"], "downstream": {"peers": [], "port": 8000}}
    no_rule = {**frontend_values, "networkPolicy": policy}
    alone = backend.find("NetworkPolicy") + render(no_rule).find("NetworkPolicy")
    assert not allows(alone, frontend_pod, backend_pod, 8000)
