"""The NetworkPolicy reader (tests/e2e/netpol.py) on small policies whose answer the API
defines."""

from __future__ import annotations

from typing import Any

from tests.e2e.netpol import Endpoint, allows, selector_matches

NS = "shop"
APP = Endpoint({"app": "api"}, NS, port_names={"http": 8000})
CLIENT = Endpoint({"role": "client"}, NS)
STRANGER = Endpoint({"role": "other"}, NS)
ELSEWHERE = Endpoint({"role": "client"}, "ingress", {"team": "edge"})


def policy(spec: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def test_selectors() -> None:
    assert selector_matches({}, {"a": "b"}) and selector_matches(None, {})
    assert selector_matches({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"})
    assert not selector_matches({"matchLabels": {"a": "b"}}, {"a": "x"})
    expressions = {"matchExpressions": [{"key": "a", "operator": "In", "values": ["b", "c"]},
                                        {"key": "z", "operator": "DoesNotExist"}]}  # fmt: skip
    assert selector_matches(expressions, {"a": "c"})
    assert not selector_matches(expressions, {"a": "c", "z": "1"})
    assert selector_matches(
        {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}, {}
    )
    assert not selector_matches({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {})


def test_no_policy_allows_everything_and_ingress_rules_select_peers_and_ports() -> None:
    assert allows([], STRANGER, APP, 9999)
    only_clients = policy({
        "podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                     "ports": [{"port": "http", "protocol": "TCP"}]}],
    })  # fmt: skip
    assert allows([only_clients], CLIENT, APP, 8000)
    assert not allows([only_clients], CLIENT, APP, 9464)  # another port
    assert not allows([only_clients], STRANGER, APP, 8000)
    # A podSelector alone means pods of the policy's own namespace.
    assert not allows([only_clients], ELSEWHERE, APP, 8000)
    by_namespace = policy({
        "podSelector": {},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}],
    })  # fmt: skip
    assert allows([by_namespace], ELSEWHERE, APP, 8000)
    assert not allows([by_namespace], CLIENT, APP, 8000)
    deny_all = policy({"podSelector": {"matchLabels": {"app": "api"}}, "ingress": []})
    assert not allows([deny_all], CLIENT, APP, 8000)
    assert allows([deny_all], APP, CLIENT, 8000)  # it does not restrict egress


def test_egress_rules_need_a_matching_peer_and_port() -> None:
    db = Endpoint({"app": "postgres"}, NS)
    egress = policy({
        "podSelector": {"matchLabels": {"app": "api"}},
        "policyTypes": ["Egress"],
        "egress": [
            {"ports": [{"port": 53, "protocol": "UDP"}]},
            {"to": [{"podSelector": {"matchLabels": {"app": "postgres"}}}],
             "ports": [{"port": 5432, "protocol": "TCP"}]},
            {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]},
        ],
    })  # fmt: skip
    assert allows([egress], APP, db, 5432)
    assert not allows([egress], APP, db, 6379)
    assert not allows([egress], APP, CLIENT, 53)  # UDP only: a TCP connection is refused
    assert allows([egress], CLIENT, db, 6379)  # CLIENT is not selected
