"""Bad values fail `helm template` (and so `helm install`) with a message naming the value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import render_error, template

pytestmark = pytest.mark.chart

SCHEMA = "values don't meet the specifications of the schema(s)"
# A database for the cases that run more than one pod (the chart refuses SQLite there).
DB = {"databaseUrl": "postgresql://u:p@db:5432/app"}

CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "misspelt probe key",
        {"readinessProbe": {"periodSecond": 3}},
        [SCHEMA, "/readinessProbe", "additional properties 'periodSecond' not allowed"],
    ),
    ("unknown top-level key", {"replicas": 3}, ["additional properties 'replicas' not allowed"]),
    (
        "unknown shutdown key",
        {"shutdown": {"graceSeconds": 30}},
        ["/shutdown", "additional properties 'graceSeconds' not allowed"],
    ),
    (
        "negative grace",
        {"shutdown": {"gracePeriodSeconds": -1}},
        ["/shutdown/gracePeriodSeconds", "minimum"],
    ),
    ("negative preStop", {"shutdown": {"preStopSeconds": -5}}, ["/shutdown/preStopSeconds"]),
    (
        "no cleanup budget (the app refuses SHUTDOWN_CLEANUP_SECONDS below 1)",
        {"shutdown": {"cleanupSeconds": 0}},
        ["/shutdown/cleanupSeconds", "minimum"],
    ),
    (
        "cleanup budget above the app's 300 s",
        {"shutdown": {"cleanupSeconds": 301}},
        ["/shutdown/cleanupSeconds", "maximum"],
    ),
    (
        "string for a number",
        {"shutdown": {"gracePeriodSeconds": "thirty"}},
        ["/shutdown/gracePeriodSeconds", "got string, want integer"],
    ),
    (
        "quoted number",
        {"readinessProbe": {"periodSeconds": "2"}},
        ["/readinessProbe/periodSeconds", "got string, want integer"],
    ),
    ("fraction of a second", {"shutdown": {"preStopSeconds": 2.5}}, ["/shutdown/preStopSeconds"]),
    (
        "override of T that is not a number",
        {"terminationGracePeriodSeconds": "45s"},
        ["/terminationGracePeriodSeconds"],
    ),
    ("bad preStop form", {"shutdown": {"preStopAction": "sleep"}}, ["/shutdown/preStopAction"]),
    ("bad log level", {"config": {"logLevel": "verbose"}}, ["/config/logLevel"]),
    ("bad pull policy", {"image": {"pullPolicy": "always"}}, ["/image/pullPolicy"]),
    ("bad digest", {"image": {"digest": "latest"}}, ["/image/digest"]),
    ("privileged port", {"containerPort": 80}, ["/containerPort", "minimum"]),
    (
        "probe path without slash",
        {"livenessProbe": {"path": "health/live"}},
        ["/livenessProbe/path"],
    ),
    ("env var without a name", {"extraEnv": [{"value": "x"}]}, ["/extraEnv/0", "name"]),
    ("bad percentage", {"rollout": {"maxSurge": "lots"}}, ["/rollout/maxSurge"]),
    (
        "T below P + G + C + margin",
        {"terminationGracePeriodSeconds": 44},
        [
            "terminationGracePeriodSeconds (44) is below shutdown.preStopSeconds + "
            "shutdown.gracePeriodSeconds + shutdown.cleanupSeconds + 5 s margin = "
            "5 + 30 + 5 + 5 = 45",
            "set terminationGracePeriodSeconds to at least 45",
        ],
    ),
    (
        "drain delay longer than the drain",
        {"shutdown": {"gracePeriodSeconds": 10, "delaySeconds": 11}},
        ["shutdown.delaySeconds (11) exceeds shutdown.gracePeriodSeconds (10)"],
    ),
    (
        "extraEnv overriding a chart variable",
        {"extraEnv": [{"name": "DATABASE_URL", "value": "sqlite:///x"}]},
        ["extraEnv sets DATABASE_URL", "use the values key"],
    ),
    (
        "existing and inline secret",
        {"secret": {"existingSecret": "creds", "adminToken": "x"}},
        ["secret.existingSecret is set together with inline"],
    ),
    (
        "rollout that cannot progress",
        {"rollout": {"maxSurge": 0, "maxUnavailable": "0%"}},
        ["rollout.maxSurge and rollout.maxUnavailable are both 0"],
    ),
    (
        "progress deadline below minReadySeconds",
        {"rollout": {"minReadySeconds": 60, "progressDeadlineSeconds": 30}},
        ["rollout.progressDeadlineSeconds (30) must be greater than rollout.minReadySeconds (60)"],
    ),
    (
        "PDB that blocks drains",
        {"replicaCount": 3, "secret": DB, "podDisruptionBudget": {"minAvailable": 3}},
        ["podDisruptionBudget.minAvailable (3) leaves no pod of 3 evictable", "at most 2"],
    ),
    (
        "PDB of 100%",
        {"replicaCount": 2, "secret": DB, "podDisruptionBudget": {"minAvailable": "100%"}},
        ["would block node drains"],
    ),
    (
        "PDB minAvailable percentage rounded up to every pod",
        {"replicaCount": 3, "secret": DB, "podDisruptionBudget": {"minAvailable": "90%"}},
        [
            "podDisruptionBudget.minAvailable (90%) leaves no pod of 3 evictable "
            "(Kubernetes rounds 90% of 3 pods up to 3), which would block node drains"
        ],
    ),
    (
        "PDB minAvailable percentage at the HPA's minReplicas",
        {
            "secret": DB,
            "autoscaling": {"enabled": True, "minReplicas": 2},
            "podDisruptionBudget": {"minAvailable": "51%"},
        },
        ["(Kubernetes rounds 51% of 2 pods up to 2)"],
    ),
    (
        "PDB with maxUnavailable 0",
        {"replicaCount": 2, "secret": DB, "podDisruptionBudget": {"maxUnavailable": 0}},
        ["podDisruptionBudget.maxUnavailable is 0", "which would block node drains"],
    ),
    (
        "PDB of one pod with minAvailable 1",
        {"podDisruptionBudget": {"minAvailable": 1}},
        ["podDisruptionBudget.minAvailable (1) leaves no pod of 1 evictable", "maxUnavailable"],
    ),
    (
        "PDB with the HPA at minReplicas 1 and minAvailable 100%",
        {
            "secret": DB,
            "autoscaling": {"enabled": True, "minReplicas": 1},
            "podDisruptionBudget": {"minAvailable": "100%"},
        },
        ["(Kubernetes rounds 100% of 1 pods up to 1)", "which would block node drains"],
    ),
    (
        "PDB with maxUnavailable 0%",
        {"replicaCount": 4, "secret": DB, "podDisruptionBudget": {"maxUnavailable": "0%"}},
        ["podDisruptionBudget.maxUnavailable is 0%", "use 1 or more"],
    ),
    (
        "two pods without DATABASE_URL",
        {"replicaCount": 2},
        [
            "DATABASE_URL is not set but the release runs more than one pod (replicaCount 2)",
            "secret.databaseUrl",
            "secret.databaseUrlFrom",
            "secret.existingSecret",
            "database.allowEmbeddedSqlite",
        ],
    ),
    (
        "the HPA without DATABASE_URL, even from one pod",
        {"autoscaling": {"enabled": True, "minReplicas": 1}},
        ["DATABASE_URL is not set but the release runs more than one pod (autoscaling.enabled"],
    ),
    (
        "one pod without DATABASE_URL and without the SQLite opt-in",
        {"database": {"allowEmbeddedSqlite": False}},
        [
            "DATABASE_URL is not set and database.allowEmbeddedSqlite is false",
            "set database.allowEmbeddedSqlite to true",
        ],
    ),
    (
        "PostgreSQL without API tokens",
        {"secret": {"databaseUrl": "postgresql://u:p@db:5432/app"}},
        [
            "DATABASE_URL names a database that is not SQLite but no API tokens are set",
            "secret.apiTokens",
            "secret.apiTokensFrom",
            "set auth.allowAnonymousWrites to true",
        ],
    ),
    (
        "an operator's database Secret without API tokens",
        {"replicaCount": 2, "secret": {"databaseUrlFrom": {"name": "orders-db-app", "key": "uri"}}},
        ["no API tokens are set", "auth.allowAnonymousWrites"],
    ),
    (
        "extraEnv switching the demo routes on",
        {"extraEnv": [{"name": "DEMO_ROUTES", "value": "true"}]},
        ["extraEnv sets DEMO_ROUTES"],
    ),
    (
        "demo routes switch not a boolean",
        {"demoRoutes": {"enabled": "yes"}},
        ["/demoRoutes/enabled"],
    ),
    (
        "a Secret reference and an inline value for one variable",
        {"secret": {"redisUrl": "redis://r:6379/0", "redisUrlFrom": {"name": "r", "key": "url"}}},
        ["secret.redisUrlFrom and secret.redisUrl are both set"],
    ),
    (
        "a Secret reference without its key",
        {"secret": {"databaseUrlFrom": {"name": "db-app"}}},
        ["/secret/databaseUrlFrom", "key"],
    ),
    (
        "readiness timeout within the app's check timeout",
        {"readinessProbe": {"timeoutSeconds": 1}},
        [
            "readinessProbe.timeoutSeconds (1) leaves less than 1 s over the app's per-check "
            "timeout (0.8 s)",
            "set it to 2 or more",
        ],
    ),
    (
        "readiness requiring Redis without REDIS_URL",
        {"readiness": {"requires": "database,redis"}},
        ["readiness.requires (database,redis) names redis but REDIS_URL is not set"],
    ),
    ("unknown readiness dependency", {"readiness": {"requires": "kafka"}}, ["/readiness/requires"]),
    (
        "podLabels replacing a selector label",
        {"podLabels": {"app.kubernetes.io/instance": "other"}},
        ["podLabels sets app.kubernetes.io/instance to other, a selector label of the chart"],
    ),
    (
        "commonLabels replacing a selector label",
        {"commonLabels": {"app.kubernetes.io/name": "x"}},
        ["commonLabels sets app.kubernetes.io/name to x"],
    ),
    (
        "nodePort on a ClusterIP Service",
        {"service": {"nodePort": 30080}},
        ["service.nodePort (30080) needs service.type NodePort or LoadBalancer"],
    ),
    (
        "externalTrafficPolicy on a ClusterIP Service",
        {"service": {"externalTrafficPolicy": "Local"}},
        ["service.externalTrafficPolicy (Local) needs service.type NodePort or LoadBalancer"],
    ),
    (
        "source ranges on a NodePort Service",
        {"service": {"type": "NodePort", "loadBalancerSourceRanges": ["10.0.0.0/8"]}},
        ["service.loadBalancerSourceRanges needs service.type LoadBalancer (it is NodePort)"],
    ),
    ("node port out of range", {"service": {"nodePort": 80}}, ["/service/nodePort"]),
    (
        "HTTPRoute without a Gateway",
        {"httpRoute": {"enabled": True}},
        ["httpRoute.enabled needs at least one entry in httpRoute.parentRefs"],
    ),
    ("sidecar without an image", {"sidecars": [{"name": "proxy"}]}, ["/sidecars/0"]),
    (
        "native sidecar in sidecars",
        {"sidecars": [{"name": "proxy", "image": "p:1", "restartPolicy": "Always"}]},
        ["/sidecars/0"],
    ),
    (
        "HPA min above max",
        {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}},
        ["autoscaling.minReplicas (5) is above autoscaling.maxReplicas (3)"],
    ),
    (
        "HPA without a target",
        {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}},
        ["autoscaling.enabled needs autoscaling.targetCPUUtilizationPercentage"],
    ),
    ("ingress without hosts", {"ingress": {"enabled": True}}, ["ingress.enabled needs"]),
    (
        "ingress host without paths",
        {"ingress": {"enabled": True, "hosts": [{"host": "a.example", "paths": []}]}},
        ["/ingress/hosts/0/paths"],
    ),
]


@pytest.mark.parametrize(("values", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_values_fail_with_a_message(values: dict[str, Any], fragments: list[str]) -> None:
    message = render_error(values)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_removing_a_shutdown_number_is_refused() -> None:
    """`--set shutdown.gracePeriodSeconds=null` deletes the key: the schema requires it."""
    message = render_error(args=["--set", "shutdown.gracePeriodSeconds=null"])
    assert "/shutdown" in message and "gracePeriodSeconds" in message


def test_set_string_for_a_number_is_refused() -> None:
    message = render_error(args=["--set-string", "shutdown.preStopSeconds=5"])
    assert "/shutdown/preStopSeconds" in message and "got string, want integer" in message


def test_every_broken_rule_is_reported_in_one_failure() -> None:
    """fastapi-app.validateValues fails once with the message of each broken rule, so a user
    fixes them all in one round instead of one per `helm install`."""
    message = render_error(
        {
            "terminationGracePeriodSeconds": 20,
            "shutdown": {"gracePeriodSeconds": 10, "delaySeconds": 11},
            "rollout": {"maxSurge": 0, "maxUnavailable": 0},
        }
    )
    assert message.count("VALUES VALIDATION:") == 1, message
    for fragment in (
        "terminationGracePeriodSeconds (20) is below",
        "shutdown.delaySeconds (11) exceeds shutdown.gracePeriodSeconds (10)",
        "rollout.maxSurge and rollout.maxUnavailable are both 0",
    ):
        assert fragment in message, f"{fragment!r} not in: {message}"


def test_each_rule_message_stands_on_its_own_line() -> None:
    result = template(
        {"shutdown": {"gracePeriodSeconds": 10, "delaySeconds": 11}, "ingress": {"enabled": True}}
    )
    assert not result.ok
    lines = result.stderr.splitlines()
    assert any(line.startswith("shutdown.delaySeconds (11) exceeds") for line in lines)
    assert any(line.startswith("ingress.enabled needs at least one entry") for line in lines)


@pytest.mark.parametrize("kube_version", ["1.28.0", "1.29.9"])
def test_a_forced_native_sleep_before_1_30_fails(kube_version: str) -> None:
    """shutdown.preStopAction=sleepAction is refused where the kubelet has no sleep action
    (rather than silently rendering exec: the user asked for the image-independent form)."""
    message = render_error(
        {"shutdown": {"preStopAction": "sleepAction"}}, kube_version=kube_version
    )
    assert "shutdown.preStopAction is sleepAction, which needs Kubernetes 1.30 or later" in message
    assert f"(this cluster: v{kube_version})" in message
    assert "use auto (exec sleep below 1.30) or exec" in message


def test_a_native_sidecar_before_1_29_fails() -> None:
    values = {"initContainers": [{"name": "shipper", "image": "s:1", "restartPolicy": "Always"}]}
    message = render_error(values, kube_version="1.28.0")
    assert "initContainers: shipper has restartPolicy Always (a native sidecar)" in message
    assert "needs Kubernetes 1.29 or later" in message
