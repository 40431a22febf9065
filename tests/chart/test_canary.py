"""canary.enabled: a Flagger Canary for the Deployment and MetricTemplates for the success
rate and the p99 latency over the app's own metrics. The chart's Service gives way to the one
Flagger owns, the metrics Service keeps selecting the primaries Flagger relabels, and every
query, with Flagger's template variables substituted as Flagger does, is checked and
evaluated by promtool on series shaped like ours."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import FULLNAME, render
from tests.support import require_tool

pytestmark = pytest.mark.chart

POSTGRES = {"secret": {"databaseUrl": "postgresql://u:p@db:5432/app"}}
POSTGRES_AUTH = {**POSTGRES, "auth": {"allowAnonymousWrites": True}}
# What Flagger puts in for its template variables (namespace, target, interval, variables.*).
FLAGGER_VARIABLES = {
    "{{ namespace }}": "default",
    "{{ target }}": FULLNAME,
    "{{ interval }}": "1m",
    "{{ variables.routes }}": "/api/.*",
}


def canary_objects(values: dict[str, Any] | None = None) -> dict[str, Any]:
    result = render({"canary": {"enabled": True}, **(values or {})})
    return {f"{obj['kind']}/{obj['metadata']['name']}": obj for obj in result.objects()}


def flagger_query(template: dict[str, Any]) -> str:
    query: str = template["spec"]["query"]
    for variable, value in FLAGGER_VARIABLES.items():
        query = query.replace(variable, value)
    assert "{{" not in query, query
    return query


def test_off_by_default() -> None:
    result = render()
    assert not {"Canary", "MetricTemplate"} & result.kinds()
    assert [s["metadata"]["name"] for s in result.find("Service")] == [FULLNAME]


def test_canary_from_values() -> None:
    analysis = {"interval": "30s", "threshold": 3, "stepWeight": 5, "maxWeight": 40}
    objects = canary_objects({"canary": {"enabled": True, "analysis": analysis}})
    canary = objects[f"Canary/{FULLNAME}"]
    assert canary["apiVersion"] == "flagger.app/v1beta1"
    spec = canary["spec"]
    assert spec["targetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert "autoscalerRef" not in spec and "provider" not in spec
    assert spec["service"] == {
        "name": FULLNAME,
        "port": 80,
        "portName": "http",
        "targetPort": "http",
    }
    assert {k: spec["analysis"][k] for k in analysis} == analysis
    metrics = {m["name"]: m for m in spec["analysis"]["metrics"]}
    assert metrics["success-rate"]["thresholdRange"] == {"min": 99}
    assert metrics["latency-p99"]["thresholdRange"] == {"max": 500}
    for name, metric in metrics.items():
        assert metric["templateRef"] == {"name": f"{FULLNAME}-{name}"}
        template = objects[f"MetricTemplate/{FULLNAME}-{name}"]
        assert template["apiVersion"] == "flagger.app/v1beta1"
        assert template["spec"]["provider"]["type"] == "prometheus"
        assert set(metric["templateVariables"]) == {"routes"}


def test_hpa_reference_and_provider() -> None:
    values = {
        **POSTGRES_AUTH,
        "autoscaling": {"enabled": True},
        "canary": {"enabled": True, "provider": "nginx"},
    }
    spec = canary_objects(values)[f"Canary/{FULLNAME}"]["spec"]
    assert spec["provider"] == "nginx"
    assert spec["autoscalerRef"] == {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "name": FULLNAME,
    }


def test_flagger_owns_the_service_and_the_metrics_service_selects_primaries() -> None:
    objects = canary_objects({"metrics": {"serviceMonitor": {"enabled": True}}})
    assert f"Service/{FULLNAME}" not in objects  # Flagger's: <name>, -primary, -canary
    selector = objects[f"Service/{FULLNAME}-metrics"]["spec"]["selector"]
    pod_labels = objects[f"Deployment/{FULLNAME}"]["spec"]["template"]["metadata"]["labels"]
    # Flagger rewrites app.kubernetes.io/name on the primaries; the selector does not use it.
    assert "app.kubernetes.io/name" not in selector
    assert selector.items() <= pod_labels.items()


def test_the_pdb_network_policy_and_spread_cover_the_primaries_too() -> None:
    """Flagger's primaries carry app.kubernetes.io/name=<name>-primary: a PDB, NetworkPolicy
    or spread constraint selecting by the name would leave them unprotected."""
    spread = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
    objects = canary_objects(
        {
            "networkPolicy": {"enabled": True},
            "podDisruptionBudget": {"enabled": True},
            "topologySpreadConstraints": [spread],
        }
    )
    pod = objects[f"Deployment/{FULLNAME}"]["spec"]["template"]
    primary_labels = {**pod["metadata"]["labels"], "app.kubernetes.io/name": "x-primary"}
    selectors = {
        "PodDisruptionBudget": objects[f"PodDisruptionBudget/{FULLNAME}"]["spec"]["selector"],
        "NetworkPolicy": objects[f"NetworkPolicy/{FULLNAME}"]["spec"]["podSelector"],
        "spread": pod["spec"]["topologySpreadConstraints"][0]["labelSelector"],
    }
    for what, selector in selectors.items():
        assert selector["matchLabels"].items() <= primary_labels.items(), what
        assert selector["matchLabels"].items() <= pod["metadata"]["labels"].items(), what


def promtool(tmp_path: Path, *args: str) -> None:
    binary = require_tool("promtool", "apt-get install prometheus")
    result = subprocess.run(
        [binary, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_queries_pass_promtool_and_judge_only_the_canary(tmp_path: Path) -> None:
    objects = canary_objects()
    rules = [
        {"record": f"canary:{name.replace('-', '_')}", "expr": flagger_query(obj)}
        for key, obj in objects.items()
        if key.startswith("MetricTemplate/")
        for name in [key.removeprefix(f"MetricTemplate/{FULLNAME}-")]
    ]
    assert len(rules) == 2
    (tmp_path / "rules.yaml").write_text(json.dumps({"groups": [{"name": "q", "rules": rules}]}))
    promtool(tmp_path, "check", "rules", "rules.yaml")

    def series(pod: str, route: str, status: str, per_minute: int, le_ms: int) -> list[Any]:
        labels = (
            f'namespace="default",pod="{pod}",http_request_method="GET",'
            f'http_route="{route}",http_response_status_code="{status}"'
        )
        name = "http_server_request_duration_seconds"
        out = [{"series": f"{name}_count{{{labels}}}", "values": f"0+{per_minute}x10"}]
        for le in ("0.1", "1.0", "+Inf"):
            below = le == "+Inf" or float(le) * 1000 >= le_ms
            out.append(
                {
                    "series": f'{name}_bucket{{{labels},le="{le}"}}',
                    "values": f"0+{per_minute if below else 0}x10",
                }
            )
        return out

    canary_pod = f"{FULLNAME}-7d9c8b6f5-x2k4q"
    primary_pod = f"{FULLNAME}-primary-5f6d7c8b9-abcde"
    inputs = [
        # The canary: 10 % of its API requests fail, all under 100 ms except the failures
        # (between 100 ms and 1 s); its health probes are not judged.
        *series(canary_pod, "/api/ping", "200", 90, 50),
        *series(canary_pod, "/api/ping", "500", 10, 800),
        *series(canary_pod, "/health/ready", "200", 900, 50),
        # A primary: failing and slow, but not the canary's business.
        *series(primary_pod, "/api/ping", "500", 100, 5000),
    ]
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": "canary:success_rate",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "canary:success_rate", "value": 90}],
                    },
                    {
                        # p99 lands in the (100 ms, 1 s] bucket: 100 + 900 * 0.9 = 910 ms.
                        "expr": "round(canary:latency_p99)",
                        "eval_time": "5m",
                        "exp_samples": [{"labels": "{}", "value": 910}],
                    },
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(json.dumps(tests))
    promtool(tmp_path, "test", "rules", "test.yaml")
