"""How the chart's NetworkPolicy applies to the admin surface, from the rendered chart.

/admin/shutdown is served by the same process, on the same container port, as the API.
A NetworkPolicy works at layer 3/4 (peers and ports), so with it on, exactly the peers
it admits to that port reach /admin/shutdown through the Service; nobody else does.
What keeps /admin/shutdown away from those admitted peers is ADMIN_TOKEN (unset: 404)."""

from __future__ import annotations

import base64

import pytest

from tests.chart.rendering import FULLNAME, render

pytestmark = pytest.mark.resilience
INGRESS_NAMESPACE = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}
}


def test_one_port_carries_the_api_and_the_admin_route() -> None:
    result = render({"networkPolicy": {"enabled": True}})
    (port,) = result.app_container()["ports"]
    assert port["name"] == "http"
    (service_port,) = result.one("Service")["spec"]["ports"]
    assert service_port["targetPort"] == "http"
    # The policy admits that one port: there is no separate admin port to leave out.
    policy = result.one("NetworkPolicy")["spec"]
    assert [rule["ports"] for rule in policy["ingress"]] == [[{"port": "http", "protocol": "TCP"}]]


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


def test_an_ingress_for_slash_also_routes_the_admin_path() -> None:
    """What a Prefix / Ingress exposes: /admin/shutdown too (the chart has no way to
    leave it out), so the ingress controller's namespace must be trusted with it."""
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
