"""The OpenAPI document promises every answer a route can give, with the error shape's
schema: 422 with request_id (not FastAPI's HTTPValidationError), 401 and 413 on writes,
503 everywhere but the probes. tests/resilience/test_fuzz_openapi.py holds the real
server to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.health import Readiness
from service.api.responses import DrainBody, ErrorBody
from service.config import load_settings
from service.main import create_app
from service.request.errors import encode_error

READ_METHODS = {"get", "head", "options"}
ERROR_MODELS = {"ErrorBody", "ValidationErrorBody", "DrainBody", "Readiness"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    settings = load_settings({"DEMO_ROUTES": "true", "API_TOKENS": "t=alice"})
    return create_app(settings).openapi()


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]


def models(response: dict[str, Any]) -> set[str]:
    """The component names a response's JSON schema refers to (directly or in anyOf)."""
    body = response.get("content", {}).get("application/json", {}).get("schema", {})
    refs = [body.get("$ref"), *(option.get("$ref") for option in body.get("anyOf", []))]
    return {ref.rpartition("/")[2] for ref in refs if ref}


def test_the_document_lists_the_routes(schema: dict[str, Any]) -> None:
    paths = {path for _, path, _ in operations(schema)}
    assert {"/api/items", "/api/items/{item_id}", "/api/error", "/health/ready"} <= paths


def test_an_operation_with_input_documents_our_422(schema: dict[str, Any]) -> None:
    with_input = [
        (method, path, operation)
        for method, path, operation in operations(schema)
        if operation.get("parameters") or operation.get("requestBody")
    ]
    assert len(with_input) >= 5
    for method, path, operation in with_input:
        assert models(operation["responses"]["422"]) == {"ValidationErrorBody"}, (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_an_operation_without_input_documents_no_422(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        if not operation.get("parameters") and not operation.get("requestBody"):
            assert "422" not in operation["responses"], (method, path)


def test_a_write_under_api_documents_401_413_and_the_bearer_token(schema: dict[str, Any]) -> None:
    writes = [
        (method, path, operation)
        for method, path, operation in operations(schema)
        if path.startswith("/api/") and method not in READ_METHODS
    ]
    assert writes
    for method, path, operation in writes:
        responses = operation["responses"]
        for status in ("401", "413"):
            assert models(responses[status]) == {"ErrorBody"}, (method, path, status)
        assert operation["security"] == [{"HTTPBearer": []}], (method, path)
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_every_route_but_the_probes_documents_the_drains_503(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        if path.startswith("/health/"):
            continue
        assert "DrainBody" in models(operation["responses"]["503"]), (method, path)


def test_a_route_on_the_database_documents_its_503_too(schema: dict[str, Any]) -> None:
    for _, path, operation in operations(schema):
        if path.startswith("/api/items"):
            assert models(operation["responses"]["503"]) == {"DrainBody", "ErrorBody"}


def test_readiness_documents_its_own_body_for_200_and_503(schema: dict[str, Any]) -> None:
    responses = schema["paths"]["/health/ready"]["get"]["responses"]
    assert models(responses["200"]) == models(responses["503"]) == {"Readiness"}


def test_the_downstream_documents_502_and_504(schema: dict[str, Any]) -> None:
    responses = schema["paths"]["/api/downstream"]["get"]["responses"]
    assert models(responses["502"]) == models(responses["504"]) == {"ErrorBody"}


def test_every_documented_error_has_a_schema_with_request_id(schema: dict[str, Any]) -> None:
    components = schema["components"]["schemas"]
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            names = models(response)
            assert names and names <= ERROR_MODELS, (method, path, status)
            for name in names - {"Readiness"}:
                assert "request_id" in components[name]["required"], name


def test_the_models_read_the_bodies_the_server_sends(tmp_path: Path) -> None:
    DrainBody.model_validate_json(encode_error("draining", "req-1", retry_after=5))
    ErrorBody.model_validate_json(encode_error("database unavailable", None))
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path}/test.sqlite3"})
    with TestClient(create_app(settings)) as client:
        ready = client.get("/health/ready")
        missing = client.get("/api/items/999")
    assert Readiness.model_validate(ready.json()).status == "ready"
    assert ErrorBody.model_validate(missing.json()).detail == "item 999 not found"
