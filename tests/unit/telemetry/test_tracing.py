"""Tracing set-up: when spans are exported (an OTLP endpoint, and not
OTEL_TRACES_EXPORTER=none), the resource's service name and version, and one provider per
process. The global provider is left alone: set_tracer_provider is recorded instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from service.telemetry import tracing
from service.telemetry.tracing import otlp_endpoint_configured, setup_tracing

OTEL_VARIABLES = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[TracerProvider]]:
    """A process without a provider yet and without OTEL_* variables; what would become
    the global provider is recorded."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracing, "_provider", None)
    providers: list[TracerProvider] = []
    monkeypatch.setattr(trace, "set_tracer_provider", providers.append)
    yield providers
    for provider in providers:
        provider.shutdown()


@pytest.mark.parametrize(
    ("env", "exporting"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
                "OTEL_TRACES_EXPORTER": " None ",
            },
            False,
        ),
    ],
)
def test_otlp_endpoint_configured(
    env: dict[str, str],
    exporting: bool,
    registered: list[TracerProvider],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert otlp_endpoint_configured() is exporting


def test_the_resource_names_the_service_and_its_version(registered: list[TracerProvider]) -> None:
    provider = setup_tracing("api", service_version="1.2.3")
    assert registered == [provider]
    attributes = provider.resource.attributes
    assert (attributes["service.name"], attributes["service.version"]) == ("api", "1.2.3")


def test_otel_variables_win_over_the_settings(
    registered: list[TracerProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-otel")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=9.9,team=x")
    attributes = setup_tracing("api", service_version="1.2.3").resource.attributes
    assert attributes["service.name"] == "from-otel"
    assert attributes["service.version"] == "9.9"


def test_setup_is_once_per_process(registered: list[TracerProvider]) -> None:
    first = setup_tracing("api")
    assert setup_tracing("other", service_version="2") is first
    assert registered == [first]
