"""How the chart keeps the admin surface out of the Service's reach, from the rendered chart.

/admin/shutdown answers only on the app's loopback admin listener (127.0.0.1:ADMIN_PORT,
see service/config.py); the API port, the only container port, answers 404 for it. The
Service, an Ingress and the NetworkPolicy all carry that one API port, so nothing that
crosses the Service reaches the admin route; `kubectl port-forward` to ADMIN_PORT does."""

from __future__ import annotations

import base64

import pytest

from tests.chart.rendering import FULLNAME, render

pytestmark = pytest.mark.resilience
INGRESS_NAMESPACE = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}
}


def test_only_the_api_port_is_exposed() -> None:
    result = render({"networkPolicy": {"enabled": True}})
    ports = {port["name"] for port in result.app_container()["ports"]}
    assert ports == {"http", "metrics"}  # the admin listener is on loopback, never a port
    (service_port,) = result.one("Service")["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    # The policy admits the API port only: metrics only from the Prometheus namespace named.
    policy = result.one("NetworkPolicy")["spec"]
    assert [rule["ports"] for rule in policy["ingress"]] == [[{"port": "http", "protocol": "TCP"}]]
    scraped = render({"networkPolicy": {"enabled": True, "prometheusNamespace": "monitoring"}})
    rules = scraped.one("NetworkPolicy")["spec"]["ingress"]
    [metrics_rule] = [rule for rule in rules if rule["ports"][0]["port"] == "metrics"]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    [peer] = metrics_rule["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}


def test_policy_limits_who_reaches_the_service_port() -> None:
    # Without allowedFrom the rule has no `from`: every pod in the cluster is admitted.
    open_rule = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]
    assert "from" not in open_rule["ingress"][0]
    # With allowedFrom, only those peers and pods labelled <fullname>-client are.
    fenced = render({"networkPolicy": {"enabled": True, "allowedFrom": [INGRESS_NAMESPACE]}})
    rule = fenced.one("NetworkPolicy")["spec"]["ingress"][0]
    client = {"podSelector": {"matchLabels": {f"{FULLNAME}-client": "true"}}}
    assert rule["from"] == [INGRESS_NAMESPACE, client]
    assert (
        fenced.one("NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
        == (fenced.one("Deployment")["spec"]["selector"]["matchLabels"])
    )


def test_admin_route_is_off_unless_a_token_is_given() -> None:
    default = render()
    assert all("ADMIN_TOKEN" not in (s.get("data") or {}) for s in default.find("Secret"))
    assert "ADMIN_TOKEN" not in {e["name"] for e in default.app_container().get("env", [])}
    assert "ADMIN_TOKEN" not in default.env()
    result = render({"secret": {"adminToken": "t0ken"}})
    assert base64.b64decode(result.one("Secret")["data"]["ADMIN_TOKEN"]) == b"t0ken"
    (env,) = [e for e in result.app_container()["env"] if e["name"] == "ADMIN_TOKEN"]
    assert env["valueFrom"]["secretKeyRef"]["key"] == "ADMIN_TOKEN"


def test_an_ingress_for_slash_routes_to_the_api_port_only() -> None:
    """A Prefix / Ingress forwards /admin/shutdown too, but to the API port, which answers
    404 for it (tests/resilience/test_admin.py)."""
    ingress = render(
        {
            "ingress": {
                "enabled": True,
                "hosts": [
                    {"host": "api.example.com", "paths": [{"path": "/", "pathType": "Prefix"}]}
                ],
            }
        }
    ).one("Ingress")
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert "/admin/shutdown".startswith(path["path"]) and path["pathType"] == "Prefix"
    assert path["backend"]["service"]["port"] == {"name": "http"}
