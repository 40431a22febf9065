"""A child span per SQL statement and Redis command, under the request's span, with the
semantic-convention attributes and never a parameter value; none outside a trace."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from service.telemetry import dependency_spans
from service.telemetry.dependency_spans import RedisSpan, instrument_engine, summarize

SECRET = "s3cret-value"


@pytest.fixture
def spans(
    sdk: tuple[TracerProvider, InMemorySpanExporter], monkeypatch: pytest.MonkeyPatch
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider, _ = sdk
    monkeypatch.setattr(dependency_spans, "_tracer", provider.get_tracer("service.dependencies"))
    return sdk


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT items.id, items.name FROM items WHERE items.id = $1", ("SELECT", "items")),
        ('INSERT INTO "items" (name) VALUES ($1) RETURNING id', ("INSERT", "items")),
        ("update items set name = ? where id = ?", ("UPDATE", "items")),
        ("SELECT 1", ("SELECT", None)),
        ("  WITH x AS (SELECT 1) SELECT * FROM x", ("WITH", "x")),
    ],
)
def test_summary_is_operation_and_collection(statement: str, expected: tuple[str, str]) -> None:
    assert summarize(statement) == expected


def test_a_span_per_statement_under_the_request_and_none_outside(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    async def run() -> None:
        engine = create_async_engine("sqlite+aiosqlite:///:memory:")
        instrument_engine(engine.sync_engine)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))  # no request: no span
            with provider.get_tracer("t").start_as_current_span("request"):
                await conn.execute(text("CREATE TABLE items (id integer, name text)"))
                await conn.execute(text("INSERT INTO items VALUES (1, :name)"), {"name": SECRET})
                await conn.execute(text("SELECT name FROM items WHERE name = :n"), {"n": SECRET})
                with pytest.raises(Exception, match="no such table"):
                    await conn.execute(text("SELECT * FROM missing"))
        await engine.dispose()

    asyncio.run(run())
    finished = {span.name: span for span in exporter.get_finished_spans()}
    request = finished.pop("request")
    assert set(finished) == {"CREATE items", "INSERT items", "SELECT items", "SELECT missing"}
    for span in finished.values():
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert span.attributes is not None and span.attributes["db.system.name"] == "sqlite"
        assert SECRET not in str(dict(span.attributes))
    select = finished["SELECT items"].attributes
    assert select == {
        "db.system.name": "sqlite",
        "db.operation.name": "SELECT",
        "db.query.summary": "SELECT items",
        "db.collection.name": "items",
    }
    failed = finished["SELECT missing"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "OperationalError"


def test_redis_span_records_an_escaping_error_and_nothing_outside_a_trace(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    server = {"server.address": "redis", "server.port": 6379}
    with RedisSpan("GET", server) as outside:
        assert not outside.is_recording()
    with provider.get_tracer("t").start_as_current_span("request"):
        with RedisSpan("GET", server):
            pass
        with pytest.raises(ConnectionError), RedisSpan("SET", server):
            raise ConnectionError("refused")
    get, set_, _ = exporter.get_finished_spans()
    assert get.name == "GET" and get.attributes == {
        "db.system.name": "redis",
        "db.operation.name": "GET",
        **server,
    }
    assert set_.status.status_code is StatusCode.ERROR
    assert set_.attributes is not None and set_.attributes["error.type"] == "ConnectionError"
