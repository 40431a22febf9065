"""Users only from verified bearer tokens: the Authorization header's parsing, the
constant-time lookup, and current_user's anonymous / known / unknown answers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import HTTPException, Request

from service.api.auth import bearer_token, current_user, find_user
from service.api.dependencies import Resources
from service.request import context

TOKENS = {"tok-alice": "alice", "tok-bob": "bob"}


def request(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def resources() -> Resources:
    return cast(Resources, SimpleNamespace(settings=SimpleNamespace(api_tokens=TOKENS)))


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer tok-alice", "tok-alice"),
        ("bearer tok-alice", "tok-alice"),  # the scheme is case-insensitive
        ("BEARER  tok-alice ", "tok-alice"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("Basic dG9rLWFsaWNlOg==", None),
        ("tok-alice", None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(request(header)) == token


def test_find_user_knows_only_exact_tokens() -> None:
    assert find_user("tok-bob", TOKENS) == "bob"
    assert find_user("tok-bo", TOKENS) is None
    assert find_user("TOK-BOB", TOKENS) is None
    assert find_user("", TOKENS) is None
    assert find_user("tok-bob", {}) is None


def run_current_user(authorization: str | None) -> tuple[Any, str | None]:
    async def scenario() -> tuple[Any, str | None]:
        user = await current_user(request(authorization), resources())
        return user, context.user_id.get()  # same task: what the access log will see

    return asyncio.run(scenario())


def test_an_anonymous_request_has_no_user() -> None:
    assert run_current_user(None) == (None, None)


def test_a_known_token_sets_the_user_for_the_log_lines() -> None:
    assert run_current_user("Bearer tok-alice") == ("alice", "alice")


def test_an_unknown_token_is_a_401_with_the_bearer_challenge() -> None:
    with pytest.raises(HTTPException) as refused:
        run_current_user("Bearer forged")
    assert refused.value.status_code == 401
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}
