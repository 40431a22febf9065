"""Health probes: live (process only), ready (the checks READINESS_REQUIRES names;
the others reported), startup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.api.dependencies import ResourcesDep
from service.request.context import PROBE_PREFIX
from service.telemetry.metrics import AppMetrics

# Each check has its own short timeout so a hung dependency cannot hang the probe
# (Kubernetes probes default to a 1 s timeout; keep the total under it).
CHECK_TIMEOUT_SECONDS = 0.8
# A check that belongs to another's requirement: `schema` (the database's revision, see
# service/data/schema.py) is required whenever READINESS_REQUIRES names `database`.
REQUIRED_WITH = {"schema": "database"}
CheckFn = Callable[[], Awaitable[float | dict[str, Any]]]

router = APIRouter(prefix=PROBE_PREFIX.rstrip("/"), tags=["health"])


async def run_check(
    check: CheckFn,
    name: str = "",
    metrics: AppMetrics | None = None,
) -> dict[str, Any]:
    """The check's result; with metrics, its duration (bounded by the timeout) and failure
    (reason timeout or error) are recorded under `name`."""
    started = time.perf_counter()
    result = await _run_check(check)
    if metrics is not None:
        failure = None
        if not result["healthy"]:
            failure = "timeout" if result["error"].startswith("timed out") else "error"
        metrics.observe_check(name, time.perf_counter() - started, failure)
    return result


async def _run_check(check: CheckFn) -> dict[str, Any]:
    # asyncio.wait, not wait_for: wait_for also waits for the cancelled check to finish,
    # and a check on a frozen PostgreSQL took ~2 s more to cancel (measured: the probe
    # answered after 2.8 s). The cancelled check ends on its own, bounded by the
    # database's and Redis's own timeouts.
    task = asyncio.ensure_future(check())
    done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT_SECONDS)
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        return {"healthy": False, "error": f"timed out after {CHECK_TIMEOUT_SECONDS}s"}
    exc = task.exception()
    if exc is not None:
        fields = getattr(exc, "fields", {})  # what a failing check has to say besides
        return {"healthy": False, "error": f"{type(exc).__name__}: {exc}"[:300], **fields}
    result = task.result()
    if isinstance(result, dict):  # a check reporting more than its latency (schema)
        return {"healthy": True, **result, "latency_ms": round(result["latency_ms"], 2)}
    return {"healthy": True, "latency_ms": round(result, 2)}


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned check's outcome, so asyncio does not log it as lost."""
    if not task.cancelled():
        task.exception()


@router.get("/live")
async def live() -> dict[str, str]:
    """No dependency checks: a database outage must not get pods restarted."""
    return {"status": "alive"}


@router.get("/startup")
async def startup() -> dict[str, str]:
    """Served only after the lifespan start-up finished."""
    return {"status": "started"}


@router.get("/ready", responses={503: {"description": "not ready"}})
async def ready(request: Request, resources: ResourcesDep) -> JSONResponse:
    """503 while draining or while a required check (READINESS_REQUIRES) fails; a check
    that is not required (Redis by default) is reported in `failing` but keeps it 200.
    `schema` (503 while the database is older than the code) comes with `database`."""
    if request.app.state.shutdown.is_draining:  # fail first, before anything else stops
        return JSONResponse({"status": "draining", "checks": {}}, status_code=503)
    metrics = request.app.state.metrics
    checks: dict[str, Any] = {"database": run_check(resources.database.ping, "database", metrics)}
    checks["schema"] = run_check(resources.database.schema.check, "schema", metrics)
    if resources.cache is not None:
        checks["redis"] = run_check(resources.cache.ping, "redis", metrics)
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    if resources.cache is None:
        results["redis"] = {"healthy": True, "detail": "not configured"}
    failing = [name for name, result in results.items() if not result["healthy"]]
    required = sorted(resources.settings.readiness_requires)
    body: dict[str, Any] = {"status": "ready", "required": required, "checks": results}
    if failing:
        body["failing"] = failing
    requires = resources.settings.readiness_requires
    if any(REQUIRED_WITH.get(name, name) in requires for name in failing):
        return JSONResponse({**body, "status": "not_ready"}, status_code=503)
    return JSONResponse(body)
