"""The command line: options, the per-replica line, the JSON report and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.drill.cli import EXIT_FAIL, EXIT_PASS, build_parser, load_config, render_replica, report
from tools.drill.replica import ReplicaReport
from tools.drill.results import RequestResult, summarize


def test_load_options() -> None:
    args = build_parser().parse_args(
        ["load", "--url", "http://127.0.0.1:30080", "--rate", "50", "--rollout", "true"]
    )
    config = load_config(args, args.url)
    assert (config.port, config.rate, config.duration_s) == (30080, 50, 60)
    assert args.rollout == "true"


def test_local_defaults_match_the_timeline() -> None:
    args = build_parser().parse_args(["local"])
    assert (args.replicas, args.prestop_seconds, args.shutdown_delay_seconds) == (3, 3.0, 1.0)
    lags = args.endpoint_lag_seconds
    assert min(lags) < args.prestop_seconds < max(lags)  # one replica gets late requests...
    assert max(lags) < args.prestop_seconds + args.shutdown_delay_seconds  # ...still served
    assert not args.control


@pytest.mark.parametrize("bad", ["", "a,b", "1,-1"])
def test_endpoint_lags_must_be_seconds(bad: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "--endpoint-lag-seconds", bad])
    assert build_parser().parse_args(
        ["local", "--endpoint-lag-seconds", "0.5"]
    ).endpoint_lag_seconds == (0.5,)


def test_render_replica() -> None:
    line = render_replica(
        ReplicaReport(
            name="r1",
            port=1,
            replaced_by="r4",
            deleted_at_s=5.0,
            rotation_out_at_s=6.0,
            sigterm_at_s=8.0,
            exited_at_s=9.25,
            exit_after_sigterm_s=1.25,
            exit_code=0,
        )
    )
    assert line == (
        "  r1 -> r4: deleted t=5.0s, out of rotation t=6.0s, SIGTERM t=8.0s, "
        "exited t=9.2s (1.25 s after SIGTERM), exit code 0"
    )
    assert render_replica(ReplicaReport("r2", 1, exit_code=-9, sigkill=True)).endswith(
        "exit code -9 after SIGKILL"
    )


def test_report_writes_json_and_returns_the_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = [RequestResult(i, "fast", i / 10, 0.01, status=200) for i in range(3)]
    summary = summarize(ok, duration_s=0.3, target_rate=10)
    out = tmp_path / "drill.json"
    assert report("t", summary, [], replicas=[ReplicaReport("r1", 1)], json_path=out) == EXIT_PASS
    data = json.loads(out.read_text())
    assert data["passed"] is True
    assert data["summary"]["sent"] == 3
    assert data["replicas"][0]["name"] == "r1"
    assert report("t", summary, ["r1 exited with code 1"]) == EXIT_FAIL
    printed = capsys.readouterr().out
    assert "PROBLEM: r1 exited with code 1" in printed
    assert "== FAIL: 0 failed of 3" in printed
