"""FastAPI dependencies: the settings, one database session per request, and the API-key check."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session

from nlp_transfer.service.settings import ServiceSettings


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


def key_ok(settings: ServiceSettings, authorization: str | None) -> bool:
    """True when no key is required, or the header is `Bearer <key>` (constant-time compare)."""
    if not settings.key_required:
        return True
    expected = settings.api_key
    if expected is None or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected.encode())


def require_api_key(request: Request) -> None:
    """Per-route form of the check the app's middleware applies to every request (docs included)."""
    if not key_ok(get_settings(request), request.headers.get("authorization")):
        raise HTTPException(
            401,
            "missing or wrong API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
