"""The master's /metrics listener: its directory, both exposition formats, clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from service.server import metrics_listener
from service.telemetry.metrics import BuildInfo
from tools.testbed.support import free_port

REPO = Path(__file__).resolve().parents[3]


def test_default_directory_is_per_api_port() -> None:
    assert metrics_listener.default_directory(8000) != metrics_listener.default_directory(8001)
    assert metrics_listener.default_directory(8000).name == "fastapi-app-metrics-8000"


def test_prepare_removes_only_metric_files_and_exports_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(metrics_listener.MULTIPROC_ENV, raising=False)
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "keep.txt").write_text("not ours")
    # prepare() also switches prometheus_client's value class: run it in a fresh process.
    code = f"""
        import os
        from pathlib import Path
        from prometheus_client import values
        from service.server import metrics_listener
        assert not values.ValueClass._multiprocess
        metrics_listener.prepare(Path({str(tmp_path)!r}))
        assert values.ValueClass._multiprocess
        print(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_remove_keeps_a_directory_it_does_not_own(tmp_path: Path) -> None:
    owned, given = tmp_path / "owned", tmp_path / "given"
    for folder in (owned, given):
        folder.mkdir()
        (folder / "histogram_1.db").write_bytes(b"x")
    metrics_listener.remove(owned, owned=True)
    metrics_listener.remove(given, owned=False)
    assert not owned.exists()
    assert given.exists() and not any(given.iterdir())


def test_serves_text_and_openmetrics_on_request(tmp_path: Path) -> None:
    port = free_port()
    server = metrics_listener.start(port, BuildInfo("my-api", "2.0.0", "f00"), tmp_path)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        text = httpx.get(url, timeout=5)
        assert text.status_code == 200
        assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert 'my_api_build_info{revision="f00",version="2.0.0"} 1.0' in text.text
        accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
        om = httpx.get(url, headers={"Accept": accept}, timeout=5)
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        assert om.text.rstrip().endswith("# EOF")
        assert "# TYPE my_api_build_info gauge" in om.text
    finally:
        server.shutdown()
        server.server_close()


def test_a_busy_port_is_an_error(tmp_path: Path) -> None:
    port = free_port()
    server = metrics_listener.start(port, BuildInfo("api", "1", "x"), tmp_path)
    try:
        with pytest.raises(OSError):
            metrics_listener.start(port, BuildInfo("api", "1", "x"), tmp_path)
    finally:
        server.shutdown()
        server.server_close()
