"""The HTTP routes: health, metrics, models, chat and text completions, feedback, and the admin routes
that register and remove adapters. Each takes the app's `Server` as a dependency."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from starlette.responses import Response

from tunewright.errors import ModelError
from tunewright.library import base_fingerprint, read_adapter_dir
from tunewright.modeling import resolve_base_model
from tunewright.records import Message
from tunewright.serve.adapter_check import verify_adapter
from tunewright.serve.api_docs import METRICS_ROUTE, MODELS_ROUTE, REGISTER_ROUTE, completion_route, errors, with_limits
from tunewright.serve.auth import require_admin_key, require_api_key
from tunewright.serve.completions import APIError, Server, complete
from tunewright.serve.engine import Engine, check_servable
from tunewright.serve.response_format import ResponseFormatError, parse_response_format
from tunewright.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    FeedbackRequest,
    ModelCard,
    ModelList,
    RegisterAdapter,
)

router = APIRouter()
keyed = [Depends(require_api_key)]
admin = [Depends(require_admin_key)]


def get_server(request: Request) -> Server:
    server: Server = request.app.state.server
    return server


ServerDep = Depends(get_server)


@router.get("/openapi.json", dependencies=keyed, include_in_schema=False)
def openapi(request: Request, server: Server = ServerDep) -> dict[str, Any]:
    return with_limits(request.app.openapi(), server.limits)


@router.get("/health")
def health(server: Server = ServerDep) -> dict[str, object]:
    return {"status": "ok", "queue_depth": server.scheduler.depth}


@router.get("/metrics", dependencies=keyed, **METRICS_ROUTE)
def metrics(server: Server = ServerDep) -> PlainTextResponse:
    return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4")


@router.get("/v1/models", dependencies=keyed, **MODELS_ROUTE)
def models(request: Request, server: Server = ServerDep) -> ModelList:
    engine, created = server.engine, request.app.state.created
    cards = [ModelCard(id=engine.base_name, created=created)]
    cards += [ModelCard(id=entry.name, created=created, parent=engine.base_name, metadata=entry.card())
              for entry in engine.library.entries()]
    return ModelList(data=cards)


@router.post("/v1/chat/completions", dependencies=keyed, **completion_route("chat"))
async def chat_completions(body: ChatCompletionRequest, server: Server = ServerDep) -> Response:
    messages = [Message(m.role, m.content) for m in body.messages]
    try:
        response_format = parse_response_format((body.model_extra or {}).get("response_format"))
    except ResponseFormatError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    return await complete(server, "chat", body.model, messages, None, body.max_tokens, body.stream, response_format)


@router.post("/v1/completions", dependencies=keyed, **completion_route("text"))
async def completions(body: CompletionRequest, server: Server = ServerDep) -> Response:
    return await complete(server, "text", body.model, [], body.prompt, body.max_tokens, body.stream)


@router.post("/v1/feedback", dependencies=keyed, responses=errors(400, 401, 404, 413, 422))
async def add_feedback(body: FeedbackRequest, server: Server = ServerDep) -> dict[str, object]:
    feedback = server.feedback
    if feedback is None:
        raise APIError(400, "this server keeps no feedback store; start it with --feedback-db FILE")
    if not await asyncio.to_thread(feedback.add_feedback, body.response_id, body.rating, body.correction):
        raise APIError(404, f"no response with id {body.response_id!r}", param="response_id")
    return {"object": "feedback", "response_id": body.response_id, "status": "recorded"}


@router.post("/v1/admin/adapters", dependencies=admin, status_code=201, **REGISTER_ROUTE)
async def register(body: RegisterAdapter, server: Server = ServerDep) -> ModelCard:
    engine = server.engine
    try:
        entry = await asyncio.to_thread(register_adapter, engine, body.name, Path(body.path))
    except ModelError as exc:
        raise APIError(400, str(exc), param="name" if "name" in str(exc) else "path") from None
    return ModelCard(id=entry, created=int(time.time()), parent=engine.base_name)


@router.delete("/v1/admin/adapters/{name}", dependencies=admin, responses=errors(401, 404))
async def unregister(name: str, server: Server = ServerDep) -> dict[str, object]:
    engine = server.engine
    if name == engine.base_name or name not in engine.library:
        raise APIError(404, f"adapter {name!r} is not registered", param="name", code="model_not_found")
    await server.scheduler.call(partial(unregister_adapter, engine), name)  # on the engine's thread, between batches
    return {"id": name, "object": "model", "deleted": True}


def unregister_adapter(engine: Engine, name: str) -> None:
    engine.unload(name)
    engine.library.remove(name)  # requests still queued for it then fail alone, with a 404


def register_adapter(engine: Engine, name: str, source: Path) -> str:
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
