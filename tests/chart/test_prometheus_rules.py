"""The chart's alerts, evaluated by Prometheus' own rule tester (`promtool test rules`) on
input series shaped like the app's metrics: each alert fires when it should, and only then."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.rendering import FULLNAME, render
from tests.support import require_tool

pytestmark = pytest.mark.chart

CRDS = ("--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
SERIES = f'job="{FULLNAME}-metrics",namespace="default"'
BUCKETS = ("0.005", "0.1", "0.5", "1.0", "2.5", "+Inf")


def rule_groups(values: dict[str, Any]) -> list[dict[str, Any]]:
    rule = render({"metrics": {"prometheusRule": {"enabled": True, **values}}}, args=CRDS)
    groups: list[dict[str, Any]] = rule.one("PrometheusRule")["spec"]["groups"]
    return groups


def duration_series(route: str, status: str, per_minute: int, slow: bool) -> list[dict[str, str]]:
    """Counters growing by per_minute each minute for 20 minutes; slow requests land in the
    2.5 s bucket, fast ones in the 5 ms one."""
    labels = (
        f'{SERIES},http_request_method="GET",http_route="{route}",'
        f'http_response_status_code="{status}"'
    )
    name = "http_server_request_duration_seconds"
    series = [{"series": f"{name}_count{{{labels}}}", "values": f"0+{per_minute}x20"}]
    for le in BUCKETS:
        below = le in ("2.5", "+Inf") if slow else True
        series.append(
            {
                "series": f'{name}_bucket{{{labels},le="{le}"}}',
                "values": f"0+{per_minute if below else 0}x20",
            }
        )
    return series


def promtool_test(
    tmp_path: Path, groups: list[dict[str, Any]], tests: list[dict[str, Any]]
) -> None:
    promtool = require_tool("promtool", "apt-get install prometheus")
    (tmp_path / "rules.yaml").write_text(json.dumps({"groups": groups}))  # JSON is YAML
    (tmp_path / "test.yaml").write_text(
        json.dumps({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    result = subprocess.run(
        [promtool, "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def firing(
    alert: str, at: str, labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    expected = {"exp_labels": labels, "exp_annotations": annotations}
    return {"eval_time": at, "alertname": alert, "exp_alerts": [expected]}


def silent(alert: str, at: str) -> dict[str, Any]:
    return {"eval_time": at, "alertname": alert, "exp_alerts": []}


def test_error_ratio_alert(tmp_path: Path) -> None:
    groups = rule_groups({"errorRatio": 0.05, "for": "5m"})
    # 10 % of the requests answer 5xx: fires once the ratio held for 5 minutes.
    bad = duration_series("/api/items/{item_id}", "500", 6, slow=False)
    good = duration_series("/api/items/{item_id}", "200", 54, slow=False)
    # 2 % only: no alert.
    fine = [
        *duration_series("/api/ping", "503", 1, slow=False),
        *duration_series("/api/ping", "200", 49, slow=False),
    ]
    severity = {"severity": "critical"}
    promtool_test(
        tmp_path,
        groups,
        [
            {
                "interval": "1m",
                "input_series": bad + good,
                "alert_rule_test": [
                    silent("FastapiAppHighErrorRatio", "5m"),
                    firing(
                        "FastapiAppHighErrorRatio",
                        "12m",
                        severity,
                        {
                            "summary": f"{FULLNAME}: more than 0.05 of requests answer 5xx",
                            "description": "10% of the requests answered 5xx over the last "
                            "5 minutes.",
                        },
                    ),
                ],
            },
            {
                "interval": "1m",
                "input_series": fine,
                "alert_rule_test": [silent("FastapiAppHighErrorRatio", "15m")],
            },
        ],
    )


def test_latency_alert(tmp_path: Path) -> None:
    groups = rule_groups({"latencyP99Seconds": 1, "for": "5m"})
    slow = duration_series("/api/slow", "200", 60, slow=True)  # every request ~2.5 s
    fast = duration_series("/api/ping", "200", 60, slow=False)
    promtool_test(
        tmp_path,
        groups,
        [
            {
                "interval": "1m",
                "input_series": slow,
                "alert_rule_test": [
                    silent("FastapiAppHighLatencyP99", "4m"),
                    firing(
                        "FastapiAppHighLatencyP99",
                        "12m",
                        {"severity": "warning"},
                        {
                            "summary": f"{FULLNAME}: p99 request duration above 1s",
                            # All in the (1, 2.5] bucket: p99 interpolated at 2.485 s.
                            "description": "The p99 request duration was 2.485s over the last "
                            "5 minutes.",
                        },
                    ),
                ],
            },
            {
                "interval": "1m",
                "input_series": fast,
                "alert_rule_test": [silent("FastapiAppHighLatencyP99", "15m")],
            },
        ],
    )


def test_cut_requests_alert(tmp_path: Path) -> None:
    groups = rule_groups({})
    cut = f"http_server_cut_requests_total{{{SERIES}}}"
    other = 'http_server_cut_requests_total{job="other-metrics",namespace="default"}'
    promtool_test(
        tmp_path,
        groups,
        [
            {
                "interval": "1m",
                # Nothing cut for 10 minutes, then 2 requests cut at once.
                "input_series": [
                    {"series": cut, "values": "0x10 2x20"},
                    {"series": other, "values": "0+5x30"},  # another release: not ours
                ],
                "alert_rule_test": [
                    silent("FastapiAppRequestsCutByGracePeriod", "9m"),
                    firing(
                        "FastapiAppRequestsCutByGracePeriod",
                        "12m",
                        {"severity": "warning"},
                        {
                            "summary": f"{FULLNAME}: requests were cut by the grace period",
                            "description": "Requests were still running when a pod's drain ran "
                            "out (shutdown.gracePeriodSeconds) in the last 10 minutes: raise the "
                            "grace period or shorten those requests.",
                        },
                    ),
                    silent("FastapiAppRequestsCutByGracePeriod", "25m"),
                ],
            }
        ],
    )


FAST_BURN = "FastapiAppErrorBudgetFastBurn"
SLOW_BURN = "FastapiAppErrorBudgetSlowBurn"
SLO_LABELS = {"job": f"{FULLNAME}-metrics", "namespace": "default", "slo": "availability"}


def requests_series(errors: str, successes: str) -> list[dict[str, str]]:
    """Request counters of this release (promtool's expanding notation, one sample a minute)
    answering 500 and 200; another release's requests, all failing, are never counted."""
    name = "http_server_request_duration_seconds_count"
    labels = f'{SERIES},http_request_method="GET",http_route="/api/ping"'
    other = 'job="other-metrics",namespace="default",http_route="/api/ping"'
    return [
        {"series": f'{name}{{{labels},http_response_status_code="500"}}', "values": errors},
        {"series": f'{name}{{{labels},http_response_status_code="200"}}', "values": successes},
        {"series": f'{name}{{{other},http_response_status_code="500"}}', "values": "0+100x400"},
    ]


def burn(alert: str, at: str, ratio: str, severity: str) -> dict[str, Any]:
    factor, long, short, spent = (
        ("14.4", "1h", "5m", "2%") if alert == FAST_BURN else ("6", "6h", "30m", "5%")
    )
    return firing(
        alert,
        at,
        {**SLO_LABELS, "severity": severity},
        {
            "summary": f"{FULLNAME}: the error budget of the 0.999 availability SLO burns "
            f"{factor}x too fast",
            "description": f"{ratio} of the requests answered 5xx over the last {long} (and "
            f"still over {short}): at this rate {spent} of a 30-day error budget goes in {long}.",
        },
    )


def test_slo_burn_rate_alerts(tmp_path: Path) -> None:
    """SLO 99.9 %: the budget is 0.1 % of requests. The fast alert needs 1.44 % over 1h and 5m,
    the slow one 0.6 % over 6h and 30m."""
    groups = rule_groups({"slo": {"availability": 0.999}})
    record = "namespace_job:http_server_request_errors:ratio_rate"
    assert [rule.get("record") for rule in groups[1]["rules"][:4]] == [
        f"{record}{window}" for window in ("5m", "30m", "1h", "6h")
    ]
    promtool_test(
        tmp_path,
        groups,
        [
            {
                # Fast burn: 10 % fail for 30 minutes, then none. Both alerts fire; the fast
                # one stops 5 minutes after the errors (its short window), though the 1h
                # ratio is still far above its threshold.
                "interval": "1m",
                "input_series": requests_series("0+100x30 3000+0x60", "0+900x90"),
                "alert_rule_test": [
                    burn(FAST_BURN, "10m", "10%", "critical"),
                    burn(SLOW_BURN, "10m", "10%", "warning"),
                    silent(FAST_BURN, "40m"),
                ],
                "promql_expr_test": [
                    {
                        "expr": f"{record}1h",
                        "eval_time": "40m",
                        "exp_samples": [
                            {
                                "labels": f'{record}1h{{job="{FULLNAME}-metrics",'
                                'namespace="default"}',
                                "value": 3000 / (3000 + 900 * 40),  # 7.7 %
                            }
                        ],
                    }
                ],
            },
            {
                # Slow burn: 1 % fail for 6 hours (10x the budget): only the slow alert.
                "interval": "1m",
                "input_series": requests_series("0+10x400", "0+990x400"),
                "alert_rule_test": [
                    silent(FAST_BURN, "6h"),
                    burn(SLOW_BURN, "6h", "1%", "warning"),
                ],
            },
            {
                # Healthy: 0.05 % fail (half the budget): neither alert, ever.
                "interval": "1m",
                "input_series": requests_series("0+1x400", "0+1999x400"),
                "alert_rule_test": [
                    silent(FAST_BURN, "10m"),
                    silent(SLOW_BURN, "10m"),
                    silent(FAST_BURN, "6h"),
                    silent(SLOW_BURN, "6h"),
                ],
            },
        ],
    )
