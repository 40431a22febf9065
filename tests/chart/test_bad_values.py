"""Bad values fail `helm template` (and so `helm install`) with a message naming the value."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.rendering import render_error, template

pytestmark = pytest.mark.chart

SCHEMA = "values don't meet the specifications of the schema(s)"

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
        "cleanup below the app's budget + Gunicorn's margin",
        {"shutdown": {"cleanupSeconds": 6}},
        ["/shutdown/cleanupSeconds", "minimum"],
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
        "T below P + G + C",
        {"terminationGracePeriodSeconds": 20},
        [
            "terminationGracePeriodSeconds (20) is below shutdown.preStopSeconds + "
            "shutdown.gracePeriodSeconds + shutdown.cleanupSeconds = 5 + 30 + 10 = 45",
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
        {"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 3}},
        ["podDisruptionBudget.minAvailable (3) leaves no pod of 3 evictable"],
    ),
    (
        "PDB of 100%",
        {"podDisruptionBudget": {"minAvailable": "100%"}},
        ["would block node drains"],
    ),
    (
        "PDB with maxUnavailable 0",
        {"podDisruptionBudget": {"maxUnavailable": 0}},
        ["podDisruptionBudget.maxUnavailable is 0"],
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
