"""The FastAPI app factory: routes, API keys, body-size limit, OpenAI-style errors, metrics, feedback and
admin routes. Everything an app needs is built inside `create_app`; nothing lives at module level."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tunewright.errors import ModelError
from tunewright.feedback.store import FeedbackStore
from tunewright.library import base_fingerprint, read_adapter_dir
from tunewright.modeling import resolve_base_model
from tunewright.records import Message
from tunewright.serve.adapter_check import verify_adapter
from tunewright.serve.api_docs import METRICS_ROUTE, MODELS_ROUTE, REGISTER_ROUTE, completion_route, errors
from tunewright.serve.body_limit import BodyLimit
from tunewright.serve.completions import APIError, Limits, Server, complete
from tunewright.serve.engine import Engine, check_servable
from tunewright.serve.metrics import Metrics
from tunewright.serve.scheduler import Scheduler
from tunewright.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    ModelCard,
    ModelList,
    RegisterAdapter,
    error_body,
)


def create_app(engine: Engine, api_keys: set[str], limits: Limits | None = None,
               feedback: FeedbackStore | None = None, admin_keys: set[str] | None = None,
               mixed: bool = True) -> FastAPI:
    """An app serving `engine`. Every route but /health needs `Authorization: Bearer <key>` with one of
    `api_keys`; /v1/admin/* needs one of `admin_keys` (admin routes are off without them)."""
    if not api_keys:
        raise ValueError("at least one API key is required")
    limits = limits or Limits()
    scheduler = Scheduler(engine, limits.max_batch, limits.gather_ms, limits.max_queue, mixed)
    server = Server(engine, scheduler, limits, Metrics(lambda: scheduler.depth), feedback)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        yield
        await scheduler.stop()

    app = FastAPI(title="tunewright", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server

    def keyed(keys: set[str], what: str) -> Callable[[Request], None]:
        def check(request: Request) -> None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in keys):
                raise APIError(401, f"missing or invalid {what}; send 'Authorization: Bearer <key>'",
                               "authentication_error", code="invalid_api_key")
        return check

    def _unregister(name: str) -> None:
        engine.unload(name)
        engine.library.remove(name)  # requests still queued for it then fail alone, with a 404

    require_key = Depends(keyed(api_keys, "API key"))
    require_admin = Depends(keyed(admin_keys or set(), "admin key"))

    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes, error=error_body(
        f"request body above this server's limit of {limits.max_body_bytes} bytes", "invalid_request_error",
        code="body_too_large"))

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        # label by route template ("/v1/admin/adapters/{name}") so label values stay few
        route = getattr(request.scope.get("route"), "path", None)
        if route is None:
            route = request.url.path if request.url.path in {r.path for r in app.routes} else "unmatched"  # type: ignore[attr-defined]
        server.metrics.observe_request(route, response.status_code)
        return response

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.type, exc.param, exc.code), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"] if part != "body")
        return JSONResponse(error_body(f"{param}: {first['msg']}", "invalid_request_error", param), 422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body(f"internal error: {type(exc).__name__}", "server_error"), 500)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)

    @app.get("/openapi.json", dependencies=[require_key], include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/health")
    def health() -> dict[str, object]:
        return {"status": "ok", "queue_depth": scheduler.depth}

    @app.get("/metrics", dependencies=[require_key], **METRICS_ROUTE)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=[require_key], **MODELS_ROUTE)
    def models() -> ModelList:
        cards = [ModelCard(id=engine.base_name, created=created)]
        cards += [ModelCard(id=entry.name, created=created, parent=engine.base_name, metadata=entry.card())
                  for entry in engine.library.entries()]
        return ModelList(data=cards)

    @app.post("/v1/chat/completions", dependencies=[require_key], **completion_route("chat", limits))
    async def chat_completions(body: ChatCompletionRequest) -> Response:
        messages = [Message(m.role, m.content) for m in body.messages]
        return await complete(server, "chat", body.model, messages, None, body.max_tokens, body.stream)

    @app.post("/v1/completions", dependencies=[require_key], **completion_route("text", limits))
    async def completions(body: CompletionRequest) -> Response:
        return await complete(server, "text", body.model, [], body.prompt, body.max_tokens, body.stream)

    @app.post("/v1/feedback", dependencies=[require_key], responses=errors(400, 401, 404, 413, 422))
    async def add_feedback(body: FeedbackRequest) -> dict[str, object]:
        if feedback is None:
            raise APIError(400, "this server keeps no feedback store; start it with --feedback-db FILE")
        if not await asyncio.to_thread(feedback.add_feedback, body.response_id, body.rating, body.correction):
            raise APIError(404, f"no response with id {body.response_id!r}", param="response_id")
        return {"object": "feedback", "response_id": body.response_id, "status": "recorded"}

    @app.post("/v1/admin/adapters", dependencies=[require_admin], status_code=201, **REGISTER_ROUTE)
    async def register(body: RegisterAdapter) -> ModelCard:
        try:
            entry = await asyncio.to_thread(_register, engine, body.name, Path(body.path))
        except ModelError as exc:
            raise APIError(400, str(exc), param="name" if "name" in str(exc) else "path") from None
        return ModelCard(id=entry, created=int(time.time()), parent=engine.base_name)

    @app.delete("/v1/admin/adapters/{name}", dependencies=[require_admin], responses=errors(401, 404))
    async def unregister(name: str) -> dict[str, object]:
        if name == engine.base_name or name not in engine.library:
            raise APIError(404, f"adapter {name!r} is not registered", param="name", code="model_not_found")
        await scheduler.call(_unregister, name)  # on the engine's thread, between batches
        return {"id": name, "object": "model", "deleted": True}

    return app


def _register(engine: Engine, name: str, source: Path) -> str:
    """Add an adapter to the served library after checking it was trained on this server's base."""
    if name == engine.base_name or name in engine.library:
        raise ModelError(f"adapter name {name!r} is taken; unregister it first or pick another name")
    if not source.is_absolute():
        raise ModelError(f"path {str(source)!r} is relative; give the adapter's absolute path on the server")
    entry = read_adapter_dir(source, name)
    fingerprint = base_fingerprint(resolve_base_model(entry.base_model)) if entry.base_model else None
    if fingerprint is None:
        raise ModelError(f"{source}: the adapter names no base model (tunewright-adapter.json base_model)")
    check_servable(replace(entry, base_fingerprint=fingerprint), engine.fingerprint)
    engine.library.add(source, name, fingerprint,
                       verify=lambda folder: verify_adapter(engine.base_dir, engine.base_shapes, folder))
    return name
