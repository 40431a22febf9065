"""LeanOTLPSpanExporter: the stock OTLP/HTTP span exporter with encode_spans in place
of the upstream encoder.

It relies on private members of the pinned opentelemetry-exporter-otlp-proto-http
(tests/unit/telemetry/test_otlp_exporter.py fails when an upgrade changes them), and
LEAN_OTLP_EXPORTER=false falls back to the stock OTLPSpanExporter at run time."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.http._common import (
    RequestPayloadTooLargeError,
    _is_request_too_large,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from service.telemetry.otlp_encoding import encode_spans

_sdk_log = logging.getLogger(__name__)
# The upstream release whose OTLPSpanExporter.export this mirrors, and the SHA-256 of that
# method's source: the unit tests fail when an upgrade changes either, so whoever bumps
# the pin re-reads export() and the private members used below before updating them.
UPSTREAM_VERSION = "1.45.2"
UPSTREAM_EXPORT_SHA256 = "0968825cd72fb0bde91a72f0607e4e71d622816a087107f6a7053d679aa02f8e"


def span_exporter(lean: bool = True) -> SpanExporter:
    """The OTLP/HTTP span exporter: ours (lean), or the stock one (LEAN_OTLP_EXPORTER=false)."""
    return LeanOTLPSpanExporter() if lean else OTLPSpanExporter()


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
