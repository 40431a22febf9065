"""The client for another service (DOWNSTREAM_URL): one httpx.AsyncClient per worker,
opened and closed by the lifespan, bounded by timeouts and by the answer's size, so a
downstream that is down, slow or too talkative costs a JSON 502/504 and never a hang.

What our client gets:
- 502 "downstream unavailable": refused, reset, not connected within the connect timeout
  (a downstream that is down, or whose backlog is full, is down: the README's promise),
  an answer that breaks HTTP, or one larger than DOWNSTREAM_MAX_BODY_BYTES;
- 504 "downstream timed out": connected, but no answer within DOWNSTREAM_TIMEOUT_SECONDS,
  or no pooled connection free within the pool timeout (every connection is held by a
  call the downstream is slow to answer: it is slow, not down).
The detail (URL, exception) goes to the log line only; the URL never carries credentials
(service/config.py refuses them).

Every call carries the trace on: a CLIENT span (HTTP semantic conventions), the W3C
`traceparent`/`tracestate` injected through the configured propagators, the incoming
X-Request-ID, and of the caller's `baggage` only the keys BAGGAGE_ALLOWED_KEYS names
(baggage comes from the client unchecked: it is not ours to hand on)."""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind

from service.request import context
from service.telemetry.dependency_spans import mark_failed

# Not connected after this long: the downstream is down (502), as when refused.
CONNECT_TIMEOUT_SECONDS = 1.0
# The pool is bounded: a burst waits this long for a free connection, then gets a 504.
POOL_TIMEOUT_SECONDS = 1.0
MAX_CONNECTIONS = 20
CLOSE_TIMEOUT_SECONDS = 1.0
MAX_BODY_BYTES = 1_048_576  # DOWNSTREAM_MAX_BODY_BYTES' default
_tracer = trace.get_tracer("service.downstream")


class DownstreamError(Exception):
    """The downstream could not answer. status_code and detail are what our client gets
    (fixed texts); the message, for the log line, says why."""

    status_code = 502
    detail = "downstream unavailable"


class DownstreamUnavailable(DownstreamError):
    """Refused, reset, not connected in time, or a broken answer: 502 Bad Gateway."""


class DownstreamTooLarge(DownstreamUnavailable):
    """An answer larger than the limit: 502, its body not read further."""

    detail = "downstream answer too large"


class DownstreamTimeout(DownstreamError):
    """Connected but no answer in time, or no free pooled connection: 504."""

    status_code = 504
    detail = "downstream timed out"


class DownstreamClient:
    def __init__(
        self,
        base_url: str,
        read_timeout_seconds: float,
        max_body_bytes: int = MAX_BODY_BYTES,
        baggage_keys: frozenset[str] = frozenset(),
    ) -> None:
        self.read_timeout_seconds = read_timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.baggage_keys = baggage_keys
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
            # Uncompressed answers only: the size bound counts what is held in memory, and
            # a small gzip chunk could expand far past it before it is counted.
            headers={"accept-encoding": "identity"},
        )

    def _outgoing_context(self) -> Context:
        """The current context (its span: the parent downstream) with only the allowed
        baggage entries."""
        outgoing = baggage.clear()
        for key, value in baggage.get_all().items():
            if key in self.baggage_keys:
                outgoing = baggage.set_baggage(key, value, outgoing)
        return outgoing

    async def get(self, path: str) -> httpx.Response:
        """GET base_url + path under a CLIENT span; the answer read whole (bounded);
        DownstreamError when it cannot answer."""
        request = self.client.build_request("GET", path)
        url = request.url  # what is sent: base_url's path joined with `path`
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
            # The client span is current: it is the downstream's parent.
            propagate.inject(request.headers, context=self._outgoing_context())
            request_id = context.request_id.get()
            if request_id is not None:
                request.headers["x-request-id"] = request_id
            try:
                response = await self.client.send(request, stream=True)
                try:
                    content = await self._read(response)
                finally:
                    await response.aclose()
            except DownstreamTooLarge as exc:
                mark_failed(span, exc)
                raise DownstreamTooLarge(_why(url, exc)) from None
            except httpx.ConnectTimeout as exc:  # a TimeoutException, but the 502 of "down"
                mark_failed(span, exc)
                raise DownstreamUnavailable(_why(url, exc)) from exc
            except httpx.TimeoutException as exc:  # read, write or pool
                mark_failed(span, exc)
                raise DownstreamTimeout(_why(url, exc)) from exc
            except httpx.HTTPError as exc:
                mark_failed(span, exc)
                raise DownstreamUnavailable(_why(url, exc)) from exc
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_attribute("error.type", str(response.status_code))
                span.set_status(trace.StatusCode.ERROR)
            # The answer, read: its content-type kept for .text's charset; its encoding
            # headers not (the content is already decoded).
            content_type = response.headers.get("content-type")
            return httpx.Response(
                response.status_code,
                headers={"content-type": content_type} if content_type else None,
                content=content,
                request=request,
            )

    async def _read(self, response: httpx.Response) -> bytes:
        """The decoded body, streamed, up to max_body_bytes; DownstreamTooLarge beyond."""
        limit = self.max_body_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise DownstreamTooLarge(f"content-length {declared} over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise DownstreamTooLarge(f"answer over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        await asyncio.wait_for(self.client.aclose(), CLOSE_TIMEOUT_SECONDS)


def _why(url: httpx.URL, exc: Exception) -> str:
    """The log line's reason: which call, which exception (httpx's message names no secret;
    the URL has no userinfo)."""
    message = str(exc)
    return f"GET {url}: {type(exc).__name__}" + (f": {message}" if message else "")
