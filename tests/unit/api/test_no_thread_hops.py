"""Every endpoint and dependency is `async def`: FastAPI runs a plain `def` one in its
thread pool, a thread hop per request. get_resources was one, on every items request:
the hop was about a fifth of /api/items/{id}'s server CPU with OBSERVABILITY=off (642
against 799 us per request, the real server side by side, CHANGELOG). A sync function
that must block belongs in an explicit run_in_threadpool, with a comment saying why."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from service.config import load_settings
from service.main import create_app

# Every route the app can have: demo routes, admin on its own port, API tokens set.
EVERY_ROUTE = {"DEMO_ROUTES": "true", "API_TOKENS": "t=alice", "ADMIN_TOKEN": "a" * 32}


def callables(dependant: Dependant, where: str) -> Iterator[tuple[str, Any]]:
    if dependant.call is not None:
        yield where, dependant.call
    for sub in dependant.dependencies:
        yield from callables(sub, f"{where} -> {getattr(sub.call, '__qualname__', sub.call)}")


def api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The app's routes, into included routers: FastAPI 0.165 keeps an included router
    whole, as its (private) _IncludedRouter's `original_router`; earlier releases copy
    its routes into the app. If that attribute moves, the check below sees no routes and
    test_the_check_sees_every_route_and_dependency says so."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def every_callable() -> Iterator[tuple[str, Any]]:
    app = create_app(load_settings(EVERY_ROUTE))
    for depends in app.router.dependencies:  # the app-wide ones
        yield "the app", depends.dependency
    for route in api_routes(app.routes):
        yield from callables(route.dependant, f"{sorted(route.methods or ())} {route.path}")


def runs_on_the_loop(call: Any) -> bool:
    """A coroutine or async generator function, or an object whose __call__ is one (a
    security scheme such as HTTPBearer)."""
    if not inspect.isfunction(call) and not inspect.ismethod(call):
        call = type(call).__call__  # the method itself, to ask whether it is async
    return inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)


def sync_callables() -> list[str]:
    return [
        f"{where}: {getattr(call, '__qualname__', type(call).__name__)}"
        for where, call in every_callable()
        if not runs_on_the_loop(call)
    ]


def test_no_endpoint_or_dependency_runs_in_the_thread_pool() -> None:
    assert sync_callables() == [], (
        "FastAPI runs these in its thread pool (a thread hop per request): make them "
        "async def, or move the blocking part into run_in_threadpool"
    )


def test_the_check_sees_every_route_and_dependency() -> None:
    """The walk reaches the routes this check exists for, with their dependencies."""
    seen = {getattr(call, "__qualname__", type(call).__name__) for _, call in every_callable()}
    assert {
        "get_item",
        "get_resources",
        "current_user",
        "require_user_to_write",
        "ready",
        "shutdown",
        "HTTPBearer",
    } <= seen


def test_a_sync_dependency_is_found() -> None:
    def blocking() -> None: ...

    async def coroutine() -> None: ...

    assert not runs_on_the_loop(blocking)
    assert runs_on_the_loop(coroutine)
