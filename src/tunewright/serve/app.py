"""The FastAPI app factory: wires one `Server` (engine, scheduler, limits, metrics, feedback store), the
API keys, the body-size limit, OpenAI-style errors and the routes of `routes.py` into an app. Nothing
lives at module level but the handlers it registers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tunewright.feedback.store import FeedbackStore
from tunewright.serve.auth import Keys
from tunewright.serve.body_limit import BodyLimit
from tunewright.serve.completions import APIError, Limits, Server
from tunewright.serve.engine import Engine
from tunewright.serve.metrics import Metrics
from tunewright.serve.routes import router
from tunewright.serve.scheduler import Scheduler
from tunewright.serve.schemas import error_body


def create_app(engine: Engine, api_keys: set[str], limits: Limits | None = None,
               feedback: FeedbackStore | None = None, admin_keys: set[str] | None = None,
               mixed: bool = True) -> FastAPI:
    """An app serving `engine`. Every route but /health needs `Authorization: Bearer <key>` with one of
    `api_keys`; /v1/admin/* needs one of `admin_keys` (admin routes are off without them)."""
    if not api_keys:
        raise ValueError("at least one API key is required")
    limits = limits or Limits()
    scheduler = Scheduler(engine, limits.max_batch, limits.gather_ms, limits.max_queue, mixed)
    server = Server(engine, scheduler, limits, Metrics(lambda: scheduler.depth, engine.prefix_stats), feedback)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    app = FastAPI(title="tunewright", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server
    app.state.keys = Keys(frozenset(api_keys), frozenset(admin_keys or ()))
    app.state.created = int(time.time())
    # A body above the limit is refused (413) while it arrives, before auth or any route reads it,
    # whether or not it declares its length; counting is added last, so it is outermost and counts that too.
    app.add_middleware(BodyLimit, max_bytes=server.limits.max_body_bytes, error=error_body(
        f"request body above this server's limit of {server.limits.max_body_bytes} bytes", "invalid_request_error",
        code="body_too_large"))
    app.middleware("http")(count_responses)
    app.add_exception_handler(APIError, api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, unexpected)
    app.include_router(router)
    return app


async def count_responses(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Count every response by route and status."""
    server: Server = request.app.state.server
    response = await call_next(request)
    # label by route template ("/v1/admin/adapters/{name}") so label values stay few
    route = getattr(request.scope.get("route"), "path", None)
    if route is None:
        paths = {getattr(r, "path", None) for r in router.routes}
        route = request.url.path if request.url.path in paths else "unmatched"
    server.metrics.observe_request(route, response.status_code)
    return response


async def api_error(request: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code), exc.status)


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    param = ".".join(str(part) for part in first["loc"] if part != "body")
    return JSONResponse(error_body(f"{param}: {first['msg']}", "invalid_request_error", param), 422)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error"), 500)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)
