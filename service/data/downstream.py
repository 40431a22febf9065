"""The client for another service (DOWNSTREAM_URL): one httpx.AsyncClient per worker,
opened and closed by the lifespan, bounded by timeouts, so a downstream that is down or
slow costs a JSON 502/504 and never a hang.

Every call carries the trace on: a CLIENT span (HTTP semantic conventions), the W3C
`traceparent`/`tracestate` (and `baggage` when set) injected through the configured
propagators, and the incoming X-Request-ID, so the downstream's logs and spans join the
caller's trace."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from service.request import context
from service.telemetry.dependency_spans import mark_failed

# A refused or unroutable connection fails after this long: the downstream is down (502).
CONNECT_TIMEOUT_SECONDS = 1.0
# The pool is bounded: a burst waits this long for a free connection, then gets a 504.
POOL_TIMEOUT_SECONDS = 1.0
MAX_CONNECTIONS = 20
CLOSE_TIMEOUT_SECONDS = 1.0
_tracer = trace.get_tracer("service.downstream")


class DownstreamError(Exception):
    """The downstream could not answer; status_code is what our client gets."""

    status_code = 502


class DownstreamUnavailable(DownstreamError):
    """Connection refused, reset or not possible: 502 Bad Gateway."""


class DownstreamTimeout(DownstreamError):
    """No connection or no answer within the timeouts: 504 Gateway Timeout."""

    status_code = 504


class DownstreamClient:
    def __init__(self, base_url: str, read_timeout_seconds: float) -> None:
        self.read_timeout_seconds = read_timeout_seconds
        self.client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                read_timeout_seconds,
                connect=CONNECT_TIMEOUT_SECONDS,
                pool=POOL_TIMEOUT_SECONDS,
            ),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=10),
            # Our X-Request-ID and trace headers go on; the environment's proxies do not
            # silently reroute a call meant for a cluster-local Service.
            trust_env=False,
        )

    async def get(self, path: str) -> httpx.Response:
        """GET base_url + path under a CLIENT span; DownstreamError when it cannot answer."""
        url = self.client.base_url.join(path)
        attributes: dict[str, str | int] = {
            "http.request.method": "GET",
            "url.full": str(url),
            "server.address": url.host,
            "server.port": url.port or (443 if url.scheme == "https" else 80),
        }
        with _tracer.start_as_current_span(
            "GET",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            headers: dict[str, str] = {}
            propagate.inject(headers)  # the client span is current: it is the parent
            request_id = context.request_id.get()
            if request_id is not None:
                headers["x-request-id"] = request_id
            try:
                response = await self.client.get(path, headers=headers)
            except httpx.TimeoutException as exc:
                mark_failed(span, exc)
                raise DownstreamTimeout(
                    f"{url} did not answer in time ({type(exc).__name__})"
                ) from exc
            except httpx.HTTPError as exc:
                mark_failed(span, exc)
                raise DownstreamUnavailable(f"{url} is unreachable ({type(exc).__name__})") from exc
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(trace.StatusCode.ERROR)
            return response

    async def close(self) -> None:
        await asyncio.wait_for(self.client.aclose(), CLOSE_TIMEOUT_SECONDS)
