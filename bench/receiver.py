"""The local OTLP/HTTP receiver the benchmark exports to: the test suite's real receiver
(it decodes every request with opentelemetry-proto), counting spans instead of keeping
them, so a long run does not pile millions of spans up in memory."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tools.testbed.otlp_receiver import OtlpReceiver


class CountingReceiver(OtlpReceiver):
    def __init__(self) -> None:
        super().__init__()
        # Keep connections open between exports, as a collector does (the test
        # receiver answers HTTP/1.0 and makes the exporter reconnect every time).
        handler = self.server.RequestHandlerClass
        assert isinstance(handler, type) and issubclass(handler, BaseHTTPRequestHandler)
        handler.protocol_version = "HTTP/1.1"
        self.span_count = 0
        self.export_requests = 0

    def _store(self, request: ExportTraceServiceRequest) -> None:
        spans = sum(
            len(scope_spans.spans)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
        )
        with self.lock:
            self.span_count += spans
            self.export_requests += 1

    def counts(self) -> tuple[int, int]:
        with self.lock:
            return self.span_count, self.export_requests
