"""`make drill-chart` in CI: the chart's rendered pods (production values) rolled on Docker
under load through HAProxy lose no request, get no SIGKILL, exit 0 and log JSON lines with
the trace ids sent; the control (preStop 0, endpoint lag above the shutdown delay) must
see failed requests. On the stand-in images; about a minute and a half each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.container.conftest import BaseImages
from tests.drill.deps import ensure_matplotlib
from tests.support import require_tool
from tools.testbed.support import REPO_ROOT

pytestmark = [pytest.mark.container, pytest.mark.drill, pytest.mark.timeout(900)]
RATE = 50
MIN_REQUESTS = 1500  # the rollout keeps the load going for more than 40 s


def chart_drill(
    tmp_path: Path, image: str, images: BaseImages, *args: str
) -> tuple[int, dict[str, Any], str]:
    ensure_matplotlib()
    command = [
        sys.executable, "-m", "tools.drill.chart", "--image", image,
        "--helm", require_tool("helm", "bash tools/install-helm.sh"),
        "--docker", require_tool("docker"),
        "--haproxy", require_tool("haproxy", "Debian: apt-get install haproxy"),
        "--postgres-image", images.postgres, "--redis-image", images.redis,
        "--rate", str(RATE), "--duration", "20", "--json", str(tmp_path / "report.json"), *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=800, check=False
    )
    out = done.stdout + done.stderr
    print(out)  # the figures, shown by pytest -s and on failure
    assert (tmp_path / "report.json").exists(), out[-3000:]
    return done.returncode, json.loads((tmp_path / "report.json").read_text()), out


def test_the_charts_rollout_on_docker_loses_no_request(
    tmp_path: Path, app_image: str, base_images: BaseImages
) -> None:
    code, report, out = chart_drill(tmp_path, app_image, base_images, "--min-requests",
                                    str(MIN_REQUESTS))  # fmt: skip
    summary = report["summary"]
    assert summary["failed"] == 0, summary["non_2xx"] | summary["error_details"]
    assert code == 0, report["problems"]
    assert summary["sent"] >= MIN_REQUESTS and summary["latency"]["long"]["count"] > 0
    plan = report["pod_plan"]
    assert plan["prestop"]["sleep_s"] > 0 and plan["read_only"] and plan["cap_drop"] == ["ALL"]
    assert len(report["replicas"]) == plan["replicas"] >= 2
    for pod in report["replicas"]:
        assert pod["exit_code"] == 0 and not pod["sigkill"], pod
        # out of rotation (endpoint lag) before SIGTERM (preStop): what preStop is for
        assert pod["rotation_out_at_s"] < pod["sigterm_at_s"], pod
    assert report["log_lines"] > 0 and report["traced_requests"] > 0
    assert "access lines with the trace id sent" in out
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_control_without_prestop_loses_requests(
    tmp_path: Path, app_image: str, base_images: BaseImages
) -> None:
    code, report, _ = chart_drill(tmp_path, app_image, base_images, "--control")
    assert report["control"] is True and report["pod_plan"]["prestop"]["sleep_s"] == 0
    assert report["summary"]["failed"] >= 1
    assert code == 0, report["problems"]  # a control passes when requests failed
