"""One bounded load run with wrk, and the server's CPU time and memory read from /proc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

WRK_SCRIPT = Path(__file__).with_name("wrk_summary.lua")
WRK_PACED_SCRIPT = Path(__file__).with_name("wrk_paced.lua")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# wrk stops itself after --duration; this kills it if it ever does not.
WRK_KILL_MARGIN_S = 20
# A request slower than this counts as a timeout error in wrk's summary.
WRK_TIMEOUT_S = 5


class LoadError(Exception):
    """wrk could not run or printed no summary."""


@dataclass
class LoadResult:
    requests: int
    duration_s: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    # Server CPU (master + workers, user + system) per request: steadier than
    # requests/s on a shared machine, because time stolen by other processes is not in it.
    cpu_us_per_request: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    url: str,
    duration_s: float,
    connections: int,
    server_pid: int | None = None,
    threads: int = 1,
    delay_ms: float | None = None,
) -> LoadResult:
    """wrk against url for duration_s with a fixed number of connections; only
    127.0.0.1 is ever targeted. delay_ms: each connection waits this long between its
    requests (a paced load, bench/wrk_paced.lua) instead of sending flat out."""
    if not url.startswith("http://127.0.0.1:"):
        raise LoadError(f"refusing to load anything but 127.0.0.1: {url}")
    binary = wrk_binary()
    if binary is None:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    command = [
        binary,
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(duration_s))}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        f"--script={WRK_SCRIPT if delay_ms is None else WRK_PACED_SCRIPT}",
        url,
    ]
    cpu_before = process_tree_cpu_s(server_pid) if server_pid else None
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration_s + WRK_KILL_MARGIN_S,
            env=None if delay_ms is None else {**os.environ, "BENCH_DELAY_MS": f"{delay_ms:.3f}"},
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError(f"wrk did not stop within {duration_s + WRK_KILL_MARGIN_S} s") from exc
    cpu_after = process_tree_cpu_s(server_pid) if server_pid else None
    summary = _summary(completed.stdout)
    if summary is None:
        raise LoadError(
            f"wrk printed no summary: {completed.stdout[-500:]}{completed.stderr[-500:]}"
        )
    requests = int(summary["requests"])
    duration = summary["duration_us"] / 1e6
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and requests:
        cpu_us = round((cpu_after - cpu_before) * 1e6 / requests, 1)
    return LoadResult(
        requests=requests,
        duration_s=round(duration, 3),
        requests_per_s=round(requests / duration, 1) if duration else 0.0,
        p50_ms=summary["p50_us"] / 1000,
        p90_ms=summary["p90_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        max_ms=summary["max_us"] / 1000,
        errors=sum(int(v) for k, v in summary.items() if k.startswith("errors_")),
        cpu_us_per_request=cpu_us,
    )


def _summary(stdout: str) -> dict[str, Any] | None:
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    return None


def children(pid: int) -> list[int]:
    """Direct children of pid (Gunicorn's workers when pid is the master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat.rpartition(")")[2].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree_cpu_s(pid: int) -> float:
    return process_cpu_s(pid) + sum(process_cpu_s(child) for child in children(pid))


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM) in MiB."""
    return _status_mib(pid, "VmHWM:")


def rss_mib(pid: int) -> float | None:
    """The process's resident set size now (VmRSS) in MiB."""
    return _status_mib(pid, "VmRSS:")


def _status_mib(pid: int, field: str) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None
