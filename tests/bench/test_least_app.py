"""The least variant's export (bench/least_app.py): its span tuples reach a real OTLP
receiver as the spans full exports, server and client kinds, the client span under the
server's, 512 spans at most per post."""

from __future__ import annotations

from bench.least_app import BATCH, SpanPoster
from bench.receiver import CountingReceiver
from tools.testbed.otlp_receiver import OtlpReceiver

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C


def test_server_and_client_spans_decode_as_full_exports_them() -> None:
    with OtlpReceiver() as receiver:
        poster = SpanPoster(receiver.endpoint, "bench-least")
        server_attributes = {"http.request.method": "GET", "http.response.status_code": 200}
        poster.server_spans.append((TRACE_ID, 5, None, "GET /x", 1, 2, server_attributes, 0))
        client_attributes = {"db.system.name": "redis", "server.port": 6379}
        poster.client_spans.append((TRACE_ID, 6, 5, "GET", 1, 2, client_attributes, 0))
        poster.flush()
        spans = {span["name"]: span for span in receiver.spans_for(f"{TRACE_ID:032x}")}
    assert set(spans) == {"GET /x", "GET"}
    server, client = spans["GET /x"], spans["GET"]
    assert (server["kind"], client["kind"]) == (2, 3)  # SPAN_KIND_SERVER, SPAN_KIND_CLIENT
    assert server["parent_span_id"] == "" and client["parent_span_id"] == f"{5:016x}"
    assert server["attributes"]["http.response.status_code"].int_value == 200
    assert client["attributes"]["server.port"].int_value == 6379
    assert server["resource"] == {"service.name": "bench-least"}


def test_a_post_carries_one_batch_at_most() -> None:
    receiver = CountingReceiver()
    with receiver:
        poster = SpanPoster(receiver.endpoint, "bench-least")
        for span_id in range(1, 2 * BATCH + 2):
            poster.server_spans.append((TRACE_ID, span_id, None, "GET", 1, 2, {}, 0))
        poster.flush()
        assert receiver.counts() == (2 * BATCH + 1, 3)
    assert not poster.server_spans
