from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.testbed.support import REPO_ROOT


def conf(env: dict[str, str]) -> dict[str, object]:
    """Load service.gunicorn_conf in a fresh interpreter with exactly this environment."""
    code = (
        "import json, service.gunicorn_conf as c; print(json.dumps({k: getattr(c, k) for k in "
        "['bind', 'workers', 'worker_class', 'graceful_timeout', 'control_socket_disable', "
        "'forwarded_allow_ips', 'keepalive', 'timeout']}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], **env},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_settings_drive_gunicorn() -> None:
    loaded = conf({"PORT": "9001", "WEB_CONCURRENCY": "3", "GRACE_PERIOD_SECONDS": "12"})
    assert loaded["bind"] == ["0.0.0.0:9001"]  # no admin listener without ADMIN_TOKEN
    assert loaded["workers"] == 3
    assert loaded["worker_class"] == "service.server.worker.GracefulUvicornWorker"
    # G + cleanup budget (SHUTDOWN_CLEANUP_SECONDS, 5) + margin (2): Gunicorn's SIGKILL
    # comes after the cleanup.
    assert loaded["graceful_timeout"] == 19
    longer = conf({"GRACE_PERIOD_SECONDS": "12", "SHUTDOWN_CLEANUP_SECONDS": "8.5"})
    assert longer["graceful_timeout"] == 12 + 9 + 2
    assert loaded["control_socket_disable"] is True


def test_admin_listener_only_on_loopback_and_only_with_a_token() -> None:
    loaded = conf({"PORT": "9001", "ADMIN_TOKEN": "t" * 32, "ADMIN_PORT": "9002"})
    assert loaded["bind"] == ["0.0.0.0:9001", "127.0.0.1:9002"]


def test_bad_setting_exits_with_one_json_line() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import service.gunicorn_conf"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "GRACE_PERIOD_SECONDS": "soon"},
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "GRACE_PERIOD_SECONDS" in json.loads(line)["error"]


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_cpu_limit(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    from service.gunicorn_conf import cgroup_cpu_limit

    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)
    assert cgroup_cpu_limit(tmp_path) == expected
