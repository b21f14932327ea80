"""The FastAPI app factory: routes, API-key check and OpenAI-style errors. No module-level state."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tunewright.records import Message
from tunewright.serve.engine import Engine
from tunewright.serve.schemas import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    ModelCard,
    ModelList,
    Usage,
    error_body,
)


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, error_body(message, type_, param, code)


def create_app(engine: Engine, api_keys: set[str], max_tokens_limit: int = 512) -> FastAPI:
    """An app serving `engine`; every route but /health needs `Authorization: Bearer <key>`."""
    if not api_keys:
        raise ValueError("at least one API key is required")
    app = FastAPI(title="tunewright", docs_url=None, redoc_url=None)
    created = int(time.time())

    def require_key(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(secrets.compare_digest(token, key) for key in api_keys):
            raise APIError(401, "missing or invalid API key; send 'Authorization: Bearer <key>'",
                           "authentication_error", code="invalid_api_key")

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"] if part != "body")
        return JSONResponse(error_body(f"{param}: {first['msg']}", "invalid_request_error", param), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(str(exc.detail), "invalid_request_error"), exc.status_code)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": engine.model_names}

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    def models() -> ModelList:
        cards = [ModelCard(id=engine.base_name, created=created)]
        cards += [ModelCard(id=name, created=created, parent=engine.base_name) for name in engine.adapters]
        return ModelList(data=cards)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    def chat_completions(body: ChatCompletionRequest) -> ChatCompletion:
        if body.model not in engine.model_names:
            raise APIError(404, f"model {body.model!r} not found; GET /v1/models lists them",
                           "invalid_request_error", "model", "model_not_found")
        if body.stream:
            raise APIError(400, "stream=true is not supported yet; send stream=false",
                           "invalid_request_error", "stream")
        max_tokens = body.max_tokens or max_tokens_limit
        if max_tokens > max_tokens_limit:
            raise APIError(400, f"max_tokens {max_tokens} is above this server's limit {max_tokens_limit}",
                           "invalid_request_error", "max_tokens")
        messages = [Message(m.role, m.content) for m in body.messages]
        reply = engine.complete(body.model, messages, max_tokens)
        return ChatCompletion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=body.model,
            choices=[ChatChoice(index=0, message=ChatMessage(role="assistant", content=reply.text),
                                finish_reason="stop" if reply.stopped else "length")],
            usage=Usage(prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                        total_tokens=reply.prompt_tokens + reply.completion_tokens),
        )

    return app
