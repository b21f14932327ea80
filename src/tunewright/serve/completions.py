"""One completion from request to answer: checks and limits, a place in the scheduler's queue for each
of its `n` choices, the reply as JSON or as SSE chunks ending in `data: [DONE]`, and the exchange logged
with its response id. Replies are built in replies.py."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from tunewright.errors import ModelError
from tunewright.feedback.store import FeedbackStore
from tunewright.library import PROMPT_LEARNING
from tunewright.records import Message
from tunewright.serve.engine import Engine, Prompt, UnknownModel
from tunewright.serve.metrics import Metrics
from tunewright.serve.response_format import ResponseFormat, ResponseFormatError, copy_span_format
from tunewright.serve.scheduler import QueueFull, Scheduler

if TYPE_CHECKING:
    from tunewright.serve.params import Generation


class APIError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    max_prompt_tokens: int = 2048
    max_tokens: int = 512
    max_queue: int = 256
    max_batch: int = 32
    gather_ms: float = 5.0


@dataclass
class Server:
    """What the routes share; built by the app factory, one per app."""

    engine: Engine
    scheduler: Scheduler
    limits: Limits
    metrics: Metrics
    feedback: FeedbackStore | None


async def complete(server: Server, kind: str, model: str, messages: Sequence[Message], raw: str | None,
                   generation: Generation) -> Response:
    """`kind` is "chat" or "text"; `raw` is the prompt of a text completion."""
    from tunewright.serve.replies import Reply

    budget = generation.max_tokens or server.limits.max_tokens
    if budget > server.limits.max_tokens:
        raise APIError(400, f"max_tokens {budget} is above this server's limit {server.limits.max_tokens}",
                       param="max_tokens")
    try:
        prompt = await asyncio.to_thread(server.engine.prompt, model, messages, budget, raw)
    except UnknownModel as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None
    except ModelError as exc:
        raise APIError(400, str(exc), param="model", code="model_not_servable") from None
    if not prompt.prompt_ids:
        raise APIError(400, "the prompt is empty; send at least one token of text", param="prompt",
                       code="empty_prompt")
    if len(prompt.prompt_ids) > server.limits.max_prompt_tokens:
        raise APIError(400, f"the prompt is {len(prompt.prompt_ids)} tokens; this server's limit is "
                            f"{server.limits.max_prompt_tokens}", param="messages" if raw is None else "prompt",
                       code="context_length_exceeded")
    def choices() -> list[Prompt]:  # a schema compiles into a grammar here: off the event loop
        found = copy_span_format(generation.response_format, prompt.entry, messages)
        return [_choice_prompt(server.engine, prompt, generation, found, index, raw is None)
                for index in range(generation.n)]

    prompts = await asyncio.to_thread(choices)
    try:
        jobs = server.scheduler.submit(prompts)
    except QueueFull as exc:
        raise APIError(429, str(exc), "rate_limit_error", code="queue_full") from None
    reply_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
    turn = (Message("user", raw),) if raw is not None else tuple(messages)
    reply = Reply(server, jobs, prompt, generation, reply_id, kind, turn, time.perf_counter())
    if generation.stream:
        return StreamingResponse(reply.sse(), media_type="text/event-stream")
    await reply.wait()
    failed = next((choice for choice in reply.choices if choice.error), None)
    if failed is not None:
        assert failed.error is not None
        raise APIError(failed.error_status, failed.error, *error_kind(failed.error_status))
    return JSONResponse(reply.body())


def _choice_prompt(engine: Engine, prompt: Prompt, generation: Generation, found: ResponseFormat | None,
                   index: int, chat: bool) -> Prompt:
    """The prompt of one choice: its sampling (seed + index) and its own constraint objects: the response
    format's (`found`: asked for, or the adapter's copy spans; else the adapter's output schema) for a
    chat answer, else a labelled adapter's label set.
    Prompt- and prefix-tuned adapters decode greedily and unconstrained on their own path."""
    sampling = generation.choice_sampling(index)
    entry = prompt.entry
    if entry is not None and entry.peft_type in PROMPT_LEARNING:
        asked = generation.response_format is not None and generation.response_format.type != "text"
        if asked or not sampling.plain_greedy:
            raise APIError(400, f"model {prompt.model!r} ({entry.method}) decodes greedily only; leave out "
                                "temperature, penalties, logit_bias, logprobs and response_format",
                           param="response_format" if asked else "temperature", code="unsupported_parameter")
        return replace(prompt, sampling=sampling)
    try:
        formats = engine.format_processors(prompt, found) if chat else ()
    except ResponseFormatError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    labels = engine.label_processors(prompt) if chat and not formats else ()
    return replace(prompt, sampling=sampling, processors=(*labels, *formats))


def error_kind(status: int) -> tuple[str, str | None, str | None]:
    """OpenAI error type, param and code for a request that failed in its batch."""
    if status == 404:
        return "invalid_request_error", "model", "model_not_found"
    if status < 500:
        return "invalid_request_error", "model", "model_not_servable"
    return "server_error", None, None
