"""What the live API schema (`/openapi.json`, behind the API key) says beyond the request bodies: every
error status a route can answer, in the OpenAI error shape, the replies of the completion routes (JSON
or server-sent events) and this server's limits, and that /metrics is Prometheus text."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from tunewright.serve.completions import Limits
from tunewright.serve.schemas import ModelCard, ModelList

WHY = {
    400: "Bad request: a parameter this server does not implement (named in `param`, code "
         "`unsupported_parameter`), a parameter out of range (max_tokens above the limit, a prompt over the "
         "token limit, an empty prompt) or a model that cannot be served here.",
    401: "Missing or wrong `Authorization: Bearer <key>`.",
    404: "No such model (or response id, for feedback); GET /v1/models lists the models.",
    413: "The request body is above the server's size limit.",
    422: "The body does not match the schema (wrong types are never coerced).",
    429: "Too many requests in flight; retry shortly.",
    500: "Generation failed for this request (other requests are unaffected).",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody, "description": WHY[status]} for status in statuses}


def limits_text(limits: Limits) -> str:
    return (f"max_tokens defaults to, and may not exceed, {limits.max_tokens}; prompts may hold at most "
            f"{limits.max_prompt_tokens} tokens; bodies at most {limits.max_body_bytes} bytes. "
            "With `stream: true` the reply is server-sent events ending in `data: [DONE]`.")


def completion_route(kind: str) -> dict[str, Any]:
    """FastAPI route arguments for /v1/chat/completions (`kind` "chat") or /v1/completions; the description
    names the default limits until `with_limits` puts in the running server's."""
    reply = "a chat.completion object" if kind == "chat" else "a text_completion object"
    return {
        "description": limits_text(Limits()),
        "responses": {200: {"description": f"{reply} (JSON), or server-sent events with `stream: true`",
                            "content": {"application/json": {}, "text/event-stream": {}}},
                      **errors(400, 401, 404, 413, 422, 429, 500)},
    }


def with_limits(schema: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The app's schema with the completion routes describing this server's own limits."""
    schema = copy.deepcopy(schema)
    for path in ("/v1/chat/completions", "/v1/completions"):
        schema["paths"][path]["post"]["description"] = limits_text(limits)
    return schema


METRICS_ROUTE: dict[str, Any] = {
    "description": "Prometheus text exposition format (not JSON).",
    "responses": {200: {"content": {"text/plain": {}}, "description": "Prometheus metrics"}, **errors(401)},
}
MODELS_ROUTE: dict[str, Any] = {"response_model": ModelList, "responses": errors(401)}
REGISTER_ROUTE: dict[str, Any] = {"response_model": ModelCard, "responses": errors(400, 401, 413, 422)}
