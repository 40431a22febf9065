"""FaultMiddleware: a bad release on demand, for canary drills (docs/canary.md).

FAULT_DELAY_MS is added to every /api/* request; then FAULT_ERROR_RATIO of them answer 500
in the one error shape without reaching the route. Added only when a fault is set and
DEMO_ROUTES=true (service/config.py), so the default path never runs this code. A faulted
request keeps its route template in the metrics and spans (http_route), as a real failure
of that route would."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.request.errors import send_error

FAULT_DETAIL = "injected fault (FAULT_ERROR_RATIO)"


class FaultMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        error_ratio: float,
        delay_ms: int,
        routes: Sequence[BaseRoute] = (),
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.app = app
        self.error_ratio = error_ratio
        self.delay_s = delay_ms / 1000
        self.routes = routes
        self.draw = draw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.error_ratio and self.draw() < self.error_ratio:
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)  # scope["route"]: the template in the metrics
                    break
            await send_error(send, 500, FAULT_DETAIL)
            return
        await self.app(scope, receive, send)
