"""Health probes: live (process only), ready (the checks READINESS_REQUIRES names;
the others reported), startup.

/health/ready is reachable by whoever reaches the port: a failing check says only a short
code there (`timeout`, `connection_refused`, `unreachable`, `schema_behind`, `error`); the
exception's text (hosts, ports, driver messages) goes to one log line, written when a
check starts failing or its code changes, again every LOG_REPEAT_SECONDS while it keeps
failing (not once per probe), and a line when it recovers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.api.dependencies import ResourcesDep
from service.data.schema import SchemaBehind
from service.request.context import PROBE_PREFIX
from service.telemetry.logs import get_logger
from service.telemetry.metrics import AppMetrics

# Each check has its own short timeout so a hung dependency cannot hang the probe
# (Kubernetes probes default to a 1 s timeout; keep the total under it).
CHECK_TIMEOUT_SECONDS = 0.8
# A check that belongs to another's requirement: `schema` (the database's revision, see
# service/data/schema.py) is required whenever READINESS_REQUIRES names `database`.
REQUIRED_WITH = {"schema": "database"}
CheckFn = Callable[[], Awaitable[float | dict[str, Any]]]
# A check that keeps failing with the same code is logged again after this long.
LOG_REPEAT_SECONDS = 60.0

log = get_logger("service.health")

router = APIRouter(prefix=PROBE_PREFIX.rstrip("/"), tags=["health"])


async def run_check(
    check: CheckFn,
    name: str = "",
    metrics: AppMetrics | None = None,
) -> dict[str, Any]:
    """The check's result; with metrics, its duration (bounded by the timeout) and failure
    (reason timeout or error) are recorded under `name`. A failure's text is logged
    (failure_log), its code answered."""
    started = time.perf_counter()
    result, reason = await _run_check(check)
    failure_log.record(name, result.get("error"), reason)
    if metrics is not None:
        failure = None
        if not result["healthy"]:
            failure = "timeout" if result["error"] == "timeout" else "error"
        metrics.observe_check(name, time.perf_counter() - started, failure)
    return result


async def _run_check(check: CheckFn) -> tuple[dict[str, Any], str]:
    """(the check's result for the body, the failure's full text for the log or "")."""
    # asyncio.wait, not wait_for: wait_for also waits for the cancelled check to finish,
    # and a check on a frozen PostgreSQL took ~2 s more to cancel (measured: the probe
    # answered after 2.8 s). The cancelled check ends on its own, bounded by the
    # database's and Redis's own timeouts.
    task = asyncio.ensure_future(check())
    done, _ = await asyncio.wait({task}, timeout=CHECK_TIMEOUT_SECONDS)
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        return {"healthy": False, "error": "timeout"}, f"timed out after {CHECK_TIMEOUT_SECONDS}s"
    exc = task.exception()
    if exc is not None:
        fields = getattr(exc, "fields", {})  # what a failing check has to say besides
        why = f"{type(exc).__name__}: {exc}"[:500]
        return {"healthy": False, "error": failure_code(exc), **fields}, why
    result = task.result()
    if isinstance(result, dict):  # a check reporting more than its latency (schema)
        return {"healthy": True, **result, "latency_ms": round(result["latency_ms"], 2)}, ""
    return {"healthy": True, "latency_ms": round(result, 2)}, ""


def failure_code(exc: BaseException) -> str:
    """A failed check's code for the body, from the exception and what it wraps (redis-py
    raises its ConnectionError from the OSError; asyncpg the OSError itself)."""
    if isinstance(exc, SchemaBehind):
        return "schema_behind"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    # By name: the builtin's, redis-py's and SQLAlchemy's pool TimeoutError share none.
    if any(type(e).__name__ == "TimeoutError" or isinstance(e, TimeoutError) for e in chain):
        return "timeout"
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection_refused"
    if any(isinstance(e, OSError) or type(e).__name__ == "ConnectionError" for e in chain):
        return "unreachable"  # reset, no route, name not resolved
    return "error"


class FailureLog:
    """One log line per failing check when it starts failing or its code changes, again
    every LOG_REPEAT_SECONDS while it keeps failing; one when it recovers. Per worker."""

    def __init__(self) -> None:
        self.failing: dict[str, tuple[str, float]] = {}  # check -> (code, logged at)

    def record(self, name: str, code: str | None, why: str) -> None:
        now = time.monotonic()
        last = self.failing.get(name)
        if code is None:  # healthy
            if last is not None:
                del self.failing[name]
                log.info("readiness_check_recovered", check=name)
            return
        if last is not None and last[0] == code and now - last[1] < LOG_REPEAT_SECONDS:
            return
        self.failing[name] = (code, now)
        log.warning("readiness_check_failed", check=name, reason=code, error=why)


failure_log = FailureLog()


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


class Check(BaseModel):
    """One check in /health/ready (the schema check adds its revisions)."""

    healthy: bool
    latency_ms: float | None = None
    error: str | None = Field(
        None,
        description="A failing check's short code: timeout, connection_refused, unreachable,"
        " schema_behind or error.",
    )
    detail: str | None = None


class Readiness(BaseModel):
    """/health/ready's body, 200 or 503 (`required` and `failing` absent while draining)."""

    status: Literal["ready", "not_ready", "draining"]
    required: list[str] = []
    checks: dict[str, Check]
    failing: list[str] = Field([], description="Failing checks; absent when none.")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "draining, or a required check fails"}},
)
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
