"""Which connections a set of NetworkPolicies allows, as the API defines it (pure functions).

The e2e suite installs two releases whose NetworkPolicies must let the frontend call the
backend; these functions answer that from the rendered objects, so CI checks the wiring
without a cluster (tests/e2e/test_releases.py), and the kind suite checks it on the wire.

Rules (networking.k8s.io/v1): a pod not selected by any policy of a direction's type is open
in that direction; a selected pod allows what any rule of any selecting policy allows. A peer
with only podSelector means pods of the policy's namespace; with only namespaceSelector,
every pod of the matching namespaces; with both, the matching pods there. ipBlock peers are
not evaluated (they never match a pod here). An empty `ports` list, or none, means any port.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Endpoint:
    """One side of a connection: a pod's labels, its namespace and that namespace's labels,
    and (for a destination) its named container ports."""

    labels: Mapping[str, str]
    namespace: str
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    port_names: Mapping[str, int] = field(default_factory=dict)

    def ns_labels(self) -> Mapping[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against labels; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = set(expression.get("values") or [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    pods = peer.get("podSelector")
    namespaces = peer.get("namespaceSelector")
    if pods is None and namespaces is None:
        return False  # an ipBlock
    if namespaces is None:
        in_namespace = other.namespace == policy_namespace
    else:
        in_namespace = selector_matches(namespaces, other.ns_labels())
    return in_namespace and (pods is None or selector_matches(pods, other.labels))


def port_matches(ports: Iterable[Mapping[str, Any]] | None, port: int, target: Endpoint) -> bool:
    """A TCP connection to `port` on `target` against a rule's ports."""
    listed = list(ports or [])
    if not listed:
        return True
    for entry in listed:
        if entry.get("protocol", "TCP") != "TCP":
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        number = target.port_names.get(wanted) if isinstance(wanted, str) else int(wanted)
        end = int(entry.get("endPort") or number or 0)
        if number is not None and number <= port <= end:
            return True
    return False


def _selecting(policies: Iterable[Manifest], pod: Endpoint, policy_type: str) -> list[Manifest]:
    found = []
    for policy in policies:
        spec = policy.get("spec") or {}
        namespace = policy["metadata"].get("namespace", pod.namespace)
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
        )
        if (
            namespace == pod.namespace
            and policy_type in types
            and selector_matches(spec.get("podSelector"), pod.labels)
        ):
            found.append(policy)
    return found


def allows(policies: Iterable[Manifest], source: Endpoint, target: Endpoint, port: int) -> bool:
    """Whether `source` may open a TCP connection to `port` of `target`: its egress and the
    target's ingress both allow it."""
    policies = list(policies)
    egress = _selecting(policies, source, "Egress")
    if egress and not any(
        (not rule.get("to") or any(
            peer_matches(peer, source.namespace, target) for peer in rule["to"]
        ))
        and port_matches(rule.get("ports"), port, target)
        for policy in egress
        for rule in policy["spec"].get("egress") or []
    ):  # fmt: skip
        return False
    ingress = _selecting(policies, target, "Ingress")
    return not ingress or any(
        (not rule.get("from") or any(
            peer_matches(peer, target.namespace, source) for peer in rule["from"]
        ))
        and port_matches(rule.get("ports"), port, target)
        for policy in ingress
        for rule in policy["spec"].get("ingress") or []
    )  # fmt: skip
