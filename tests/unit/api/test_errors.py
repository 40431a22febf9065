"""The exception handlers on a small app: every error answers in the one shape
{"detail", "request_id"}, dependency failures are a 503 with Retry-After, downstream
failures keep their 502/504, a 405 lists every method of the path, and a hidden admin path
answers 404 to every method."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from service.api.errors import add_error_handlers, json_error
from service.api.routes.admin import router as admin_router
from service.config import load_settings
from service.data.downstream import DownstreamTimeout, DownstreamUnavailable

ADMIN_TOKEN = "a" * 64


class Thing(BaseModel):
    name: str


def client(**env: str) -> TestClient:
    app = FastAPI()
    app.state.settings = load_settings(env)
    raised: dict[str, Exception] = {
        "sqlalchemy": OperationalError("SELECT 1", {}, Exception("connection refused")),
        "os": ConnectionRefusedError(111, "refused"),
        "timeout": TimeoutError(),
        "bad-gateway": DownstreamUnavailable("http://down/api/ping is unreachable"),
        "gateway-timeout": DownstreamTimeout("http://down/api/ping did not answer"),
        "teapot": HTTPException(418, "short and stout", headers={"X-Tea": "earl grey"}),
        "not-modified": HTTPException(304),
        "bug": RuntimeError("a bug"),
    }

    @app.get("/raise/{name}")
    async def raise_(name: str) -> None:
        raise raised[name]

    @app.get("/things")
    async def list_things() -> list[int]:
        return []

    @app.post("/things")
    async def add_thing(size: int) -> int:
        return size

    @app.delete("/things/{thing_id}")
    async def delete_thing(thing_id: int) -> None:
        return None

    app.include_router(admin_router)
    add_error_handlers(app)
    return TestClient(app, raise_server_exceptions=False)


def assert_error_shape(body: object) -> None:
    assert isinstance(body, dict) and set(body) == {"detail", "request_id"}


@pytest.mark.parametrize("name", ["sqlalchemy", "os", "timeout"])
def test_a_dependency_failure_is_a_503_with_retry_after(name: str) -> None:
    response = client().get(f"/raise/{name}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {"detail": "database unavailable, retry later", "request_id": None}


def test_a_dependency_failure_does_not_leak_its_message() -> None:
    assert "connection refused" not in client().get("/raise/sqlalchemy").text


@pytest.mark.parametrize(("name", "status"), [("bad-gateway", 502), ("gateway-timeout", 504)])
def test_downstream_failures_keep_their_status_in_the_error_shape(name: str, status: int) -> None:
    response = client().get(f"/raise/{name}")
    assert response.status_code == status
    assert_error_shape(response.json())
    assert response.headers["content-type"] == "application/json"


def test_an_http_exception_keeps_its_status_detail_and_headers() -> None:
    response = client().get("/raise/teapot")
    assert response.status_code == 418
    assert response.headers["x-tea"] == "earl grey"
    assert response.json() == {"detail": "short and stout", "request_id": None}


def test_a_304_has_no_body() -> None:
    response = client().get("/raise/not-modified")
    assert response.status_code == 304
    assert response.content == b""


def test_an_unknown_path_is_a_404_in_the_error_shape() -> None:
    response = client().get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found", "request_id": None}


def test_a_405_lists_every_method_the_path_takes() -> None:
    """Starlette would name only the first matching route's methods (GET)."""
    response = client().put("/things")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert_error_shape(response.json())


def test_a_405_on_a_path_with_a_parameter_lists_its_methods() -> None:
    response = client().get("/things/7")
    assert (response.status_code, response.headers["allow"]) == (405, "DELETE")


def test_a_validation_error_is_a_422_with_the_error_list() -> None:
    response = client().post("/things", params={"size": "big"})
    assert response.status_code == 422
    body = response.json()
    assert_error_shape(body)
    [error] = body["detail"]
    assert error["loc"] == ["query", "size"]


def test_an_unhandled_exception_is_a_json_500() -> None:
    response = client().get("/raise/bug")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error", "request_id": None}


def test_without_admin_token_the_admin_path_is_404_for_every_method() -> None:
    response = client().get("/admin/shutdown")  # the route takes POST only
    assert response.status_code == 404
    assert "allow" not in response.headers
    assert response.json() == {"detail": "Not Found", "request_id": None}


def test_off_the_admin_listener_the_admin_path_is_404_for_every_method() -> None:
    response = client(ADMIN_TOKEN=ADMIN_TOKEN, ADMIN_PORT="8001").get("/admin/shutdown")
    assert response.status_code == 404  # TestClient's requests come in on port 80


def test_on_the_admin_listener_a_wrong_method_is_a_plain_405() -> None:
    response = client(ADMIN_TOKEN=ADMIN_TOKEN, ADMIN_PORT="80").get("/admin/shutdown")
    assert (response.status_code, response.headers["allow"]) == (405, "POST")


def test_json_error_escapes_a_lone_surrogate_instead_of_failing() -> None:
    response = json_error(422, "bad \ud800 input", extra="\u00e9")
    body = bytes(response.body)
    assert body.isascii()
    assert json.loads(body) == {
        "detail": "bad \ud800 input",
        "request_id": None,
        "extra": "\u00e9",
    }
    assert response.media_type == "application/json"


def test_a_422_on_a_body_that_is_not_utf8_echoes_it_instead_of_failing() -> None:
    """A body that is not JSON is validated as raw bytes: the 422 echoes them in `input`."""
    app = FastAPI()

    @app.post("/things")
    async def add_thing(thing: Thing) -> str:
        return thing.name

    add_error_handlers(app)
    response = TestClient(app, raise_server_exceptions=False).post(
        "/things", content=b"\xff not utf-8", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == "\ufffd not utf-8"
