"""Users from verified bearer tokens (API_TOKENS / API_TOKENS_FILE), never from a
header the client could simply assert."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from service.api.dependencies import ResourcesDep
from service.request import context


def find_user(token: str, tokens: dict[str, str]) -> str | None:
    """Compare against every known token in constant time (no early exit on a match)."""
    found = None
    for known, user in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = user
    return found


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def current_user(request: Request, resources: ResourcesDep) -> str | None:
    """None for an anonymous request; 401 for a token that is not known. Async so the
    user_id it sets stays visible to the access log (a sync one runs in a thread)."""
    token = bearer_token(request)
    if token is None:
        return None
    user = find_user(token, resources.settings.api_tokens)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    context.user_id.set(user)
    return user


CurrentUser = Annotated[str | None, Depends(current_user)]
# Methods that read: open to anonymous clients. Every other method writes.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_PREFIX = "/api/"


async def require_user_to_write(request: Request) -> None:
    """An app-wide dependency (service/main.py), so it covers every route under /api,
    present and future: once API tokens are configured, a write without a valid bearer
    token answers 401 (an unknown token too: current_user)."""
    if request.method in READ_METHODS:
        return
    route_path = getattr(request.scope.get("route"), "path", "")
    if not route_path.startswith(API_PREFIX) or not request.app.state.settings.api_tokens:
        return
    if await current_user(request, request.app.state.resources) is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a bearer token is required to write",
            headers={"WWW-Authenticate": "Bearer"},
        )
