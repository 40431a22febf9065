"""A throwaway Prometheus server (Debian's `prometheus` package) scraping given targets."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tools.testbed.support import MissingPrerequisite, free_port, wait_for


class PrometheusServer:
    def __init__(self, targets: list[str], scrape_interval_s: int = 1) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise MissingPrerequisite("prometheus (apt-get install prometheus)")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        interval = f"{scrape_interval_s}s"
        config = {
            "global": {"scrape_interval": interval, "scrape_timeout": interval},
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": targets}]}],
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        self.process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=(self.dir / "prometheus.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, 60, what="Prometheus to be ready")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError((self.dir / "prometheus.log").read_text(errors="replace"))
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def value(self, promql: str) -> float | None:
        """The single value of an instant query, or None when it has no result."""
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def range_values(self, promql: str, start: float, end: float) -> list[float]:
        response = httpx.get(
            f"{self.url}/api/v1/query_range",
            params={"query": promql, "start": start, "end": end, "step": "1s"},
            timeout=10,
        )
        response.raise_for_status()
        result = response.json()["data"]["result"]
        return [float(v) for _, v in result[0]["values"]] if result else []

    def wait_for_scrape_after(self, wall_s: float, timeout_s: float = 30) -> None:
        """Until the app's target has a sample taken after wall_s (Unix seconds)."""
        wait_for(
            lambda: (self.value('max(timestamp(up{job="app"}))') or 0) > wall_s,
            timeout_s,
            what=f"a scrape after {wall_s}",
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for_value(
    prometheus: PrometheusServer, promql: str, expected: float, timeout_s: float = 30
) -> None:
    """Until the query answers exactly `expected`; the failure names the last value."""
    seen: list[float | None] = [None]

    def reached() -> bool:
        seen[0] = prometheus.value(promql)
        return seen[0] == expected

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reached():
            return
        time.sleep(0.25)
    raise AssertionError(f"{promql} is {seen[0]} after {timeout_s}s, expected {expected}")
