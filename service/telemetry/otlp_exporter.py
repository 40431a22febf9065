"""LeanOTLPSpanExporter: the stock OTLP/HTTP span exporter with encode_spans in place
of the upstream encoder, posting through upstream's urllib3 transport where requests
would add nothing (post_transport).

It relies on private members of the pinned opentelemetry-exporter-otlp-proto-http
(tests/unit/telemetry/test_otlp_exporter.py fails when an upgrade changes them), and
LEAN_OTLP_EXPORTER=false falls back to the stock OTLPSpanExporter at run time."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from urllib.parse import urlsplit
from urllib.request import getproxies

from opentelemetry.exporter.http.transport import _load_http_transport_factory
from opentelemetry.exporter.http.transport._base import BaseHTTPTransport
from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from requests.utils import get_netrc_auth  # requests: the stock transport's library

from service.telemetry.otlp_encoding import encode_spans

_sdk_log = logging.getLogger(__name__)
# The upstream release whose OTLPSpanExporter.export this mirrors, and the SHA-256 of that
# method's source: the unit tests fail when an upgrade changes either, so whoever bumps
# the pin re-reads export() and the private members used below before updating them.
UPSTREAM_VERSION = "1.45.2"
UPSTREAM_EXPORT_SHA256 = "0968825cd72fb0bde91a72f0607e4e71d622816a087107f6a7053d679aa02f8e"


# Where a requests Session for the exporter comes from, when one is configured.
CREDENTIAL_PROVIDERS = (
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_TRACES_CREDENTIAL_PROVIDER",
)


def span_exporter(lean: bool = True) -> SpanExporter:
    """The OTLP/HTTP span exporter: ours (lean), or the stock one (LEAN_OTLP_EXPORTER=false)."""
    if not lean:
        return OTLPSpanExporter()
    exporter = LeanOTLPSpanExporter()
    transport = post_transport(exporter._endpoint)
    if transport is None:
        return exporter
    exporter.shutdown()  # type: ignore[no-untyped-call]  # only its idle requests Session
    return LeanOTLPSpanExporter(_transport=transport)


def post_transport(endpoint: str) -> BaseHTTPTransport | None:
    """Upstream's urllib3 transport for a plain-HTTP endpoint (an in-cluster collector),
    else None: the exporter's default, requests.

    requests runs its session machinery (environment proxies, netrc, cookies, hooks) on
    every post; urllib3 costs half as much CPU per post, which the export thread takes
    from the event loop (`make bench`, docs/observability-cost.md). Upstream proposed it
    as the default transport (open-telemetry/opentelemetry-python#5169). requests stays
    wherever it does more: https (its certifi CA bundle and REQUESTS_CA_BUNDLE), a proxy
    variable for the endpoint's scheme, a netrc entry for its host, a credential
    provider's Session."""
    if urlsplit(endpoint).scheme != "http":
        return None
    if any(os.environ.get(name) for name in CREDENTIAL_PROVIDERS):
        return None
    proxies = getproxies()  # what requests reads: *_proxy variables, any case
    if "http" in proxies or "all" in proxies:
        return None
    if get_netrc_auth(endpoint):
        return None
    return _load_http_transport_factory("urllib3")(verify=True, cert=None)


class LeanOTLPSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP exporter (endpoint, headers, compression, timeout, retries, size
    limit: all its own) with encode_spans in place of the upstream encoder. The
    body of export() follows the upstream one (UPSTREAM_VERSION) line for line but for
    the encoding."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            _sdk_log.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                serialized = encode_spans(spans)
            except Exception as error:
                _sdk_log.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if _is_request_too_large(serialized, self._max_request_size):
                _sdk_log.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size "
                    "%d bytes.",
                    len(serialized),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized span request size {len(serialized)} bytes exceeds "
                    f"max_request_size {self._max_request_size} bytes."
                )
                return SpanExportResult.FAILURE
            exported = self._client.export(serialized)
            if not exported.success:
                result.error = exported.error
                if exported.status_code is not None:
                    result.error_attrs = {"http.response.status_code": exported.status_code}
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS
