"""API keys: every route but /health needs `Authorization: Bearer <key>` with one of the app's API keys,
and /v1/admin/* one of its admin keys (admin routes are closed when there are none)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import Request

from tunewright.serve.completions import APIError


@dataclass(frozen=True)
class Keys:
    api: frozenset[str]
    admin: frozenset[str]


def _check(request: Request, keys: frozenset[str], what: str) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in keys):
        raise APIError(401, f"missing or invalid {what}; send 'Authorization: Bearer <key>'",
                       "authentication_error", code="invalid_api_key")


def require_api_key(request: Request) -> None:
    """A FastAPI dependency: the request carries one of the app's API keys."""
    _check(request, request.app.state.keys.api, "API key")


def require_admin_key(request: Request) -> None:
    """A FastAPI dependency: the request carries one of the app's admin keys."""
    _check(request, request.app.state.keys.admin, "admin key")
