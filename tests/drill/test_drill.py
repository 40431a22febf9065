"""The rolling-update drill for real: Gunicorn replicas behind HAProxy, real signals.

A short drill must pass with zero failed requests out of at least 5,000, and the control
run (stock worker, no preStop, no shutdown delay) must show failures, or the drill could
not tell the two apart. Both together take well under three minutes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import require_tool
from tools.drill.haproxy import HAProxySettings, ServerSlot, render_config
from tools.testbed.support import REPO_ROOT

pytestmark = pytest.mark.drill

MIN_REQUESTS = 5000


def drill(tmp_path: Path, *args: str, timeout_s: float = 150) -> tuple[int, dict[str, Any]]:
    haproxy = require_tool("haproxy", "Debian: apt-get install haproxy")
    if not (REPO_ROOT / "service" / "gunicorn_conf.py").exists():
        pytest.fail("service/gunicorn_conf.py is missing: the drill runs the real service")
    out = tmp_path / "drill.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.drill", "local", "--haproxy", haproxy, "--json", str(out),
         "--max-duration", "120", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip
    print(proc.stdout, proc.stderr, sep="\n")  # shown by pytest when an assertion fails
    assert out.exists(), f"no result (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.returncode, json.loads(out.read_text())


def test_rolling_update_loses_no_request(tmp_path: Path) -> None:
    code, result = drill(
        tmp_path, "--rate", "200", "--duration", "26", "--min-requests", str(MIN_REQUESTS)
    )
    summary = result["summary"]
    assert summary["failed"] == 0, summary["non_2xx"] | summary["error_details"]
    assert summary["sent"] >= MIN_REQUESTS
    assert summary["latency"]["long"]["count"] > 0  # long tasks were part of the load
    assert code == 0, result["problems"]
    termination_grace = result["settings"]["prestop_s"] + result["settings"]["grace_s"] + 5
    for replica in result["replicas"]:
        assert replica["exit_code"] == 0, replica
        assert not replica["sigkill"], replica
        # out of rotation before SIGTERM, or while the worker still serves (shutdown delay)
        late_s = replica["rotation_out_at_s"] - replica["sigterm_at_s"]
        assert late_s < result["settings"]["shutdown_delay_s"], replica
        assert replica["exited_at_s"] - replica["deleted_at_s"] < termination_grace


def test_control_run_shows_failures(tmp_path: Path) -> None:
    code, result = drill(tmp_path, "--control", "--rate", "200", "--duration", "10")
    assert result["control"] is True
    assert result["summary"]["failed"] >= 1
    assert code == 0, result["problems"]  # a control run passes when requests failed


@pytest.mark.parametrize("mode", ["http", "tcp"])
def test_rendered_config_is_valid_for_haproxy(tmp_path: Path, mode: str) -> None:
    haproxy = require_tool("haproxy", "Debian: apt-get install haproxy")
    settings = HAProxySettings(
        frontend_port=18080,
        socket_path=tmp_path / "haproxy.sock",
        servers=(ServerSlot("r1", 18001, True), ServerSlot("r2", 18002, False)),
        mode="tcp" if mode == "tcp" else "http",
    )
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_config(settings))
    check = subprocess.run(
        [haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
