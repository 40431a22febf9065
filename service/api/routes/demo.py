"""GET /api/ping (always mounted), and the demo routes for probing latency, long
requests and error logging: mounted only with DEMO_ROUTES=true (service/main.py)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query

from service.api.responses import DRAINING, INVALID, error_response

ping_router = APIRouter(prefix="/api", tags=["demo"], responses=DRAINING)
router = APIRouter(prefix="/api", tags=["demo"], responses=DRAINING)


@ping_router.get("/ping")
async def ping() -> dict[str, str]:
    return {"ping": "pong"}


@router.get("/slow", responses=INVALID)
async def slow(ms: int = Query(0, ge=0, le=60_000)) -> dict[str, int]:
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms}


@router.get("/long-task", responses=INVALID)
async def long_task(seconds: float = Query(5.0, ge=0, le=600)) -> dict[str, float]:
    """A request that outlives a SIGTERM: shutdown must let it finish."""
    await asyncio.sleep(seconds)
    return {"slept_seconds": seconds}


@router.get("/error", responses={500: error_response("always: it raises on purpose")})
async def error() -> None:
    """Raises on purpose, to show the unhandled_exception log line and the JSON 500."""
    raise RuntimeError("demo failure requested by /api/error")
