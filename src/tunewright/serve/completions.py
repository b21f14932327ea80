"""One completion from request to answer: checks and limits, a place in the scheduler's queue, the reply
as JSON or as SSE chunks ending in `data: [DONE]`, and the exchange logged with its response id."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from tunewright.errors import ModelError
from tunewright.feedback.store import Exchange, FeedbackStore
from tunewright.records import Message
from tunewright.serve.engine import Engine, Prompt, UnknownModel
from tunewright.serve.metrics import Metrics
from tunewright.serve.response_format import ResponseFormat, ResponseFormatError
from tunewright.serve.scheduler import Job, QueueFull, Scheduler


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
                   max_tokens: int | None, stream: bool, response_format: ResponseFormat | None = None) -> Response:
    """`kind` is "chat" or "text"; `raw` is the prompt of a text completion."""
    budget = max_tokens or server.limits.max_tokens
    if budget > server.limits.max_tokens:
        raise APIError(400, f"max_tokens {budget} is above this server's limit {server.limits.max_tokens}",
                       param="max_tokens")
    prompt = await _prompt(server, model, messages, budget, raw, response_format)
    if not prompt.prompt_ids:
        raise APIError(400, "the prompt is empty; send at least one token of text", param="prompt",
                       code="empty_prompt")
    if len(prompt.prompt_ids) > server.limits.max_prompt_tokens:
        raise APIError(400, f"the prompt is {len(prompt.prompt_ids)} tokens; this server's limit is "
                            f"{server.limits.max_prompt_tokens}", param="messages" if raw is None else "prompt",
                       code="context_length_exceeded")
    try:
        job = server.scheduler.submit(prompt)
    except QueueFull as exc:
        raise APIError(429, str(exc), "rate_limit_error", code="queue_full") from None
    reply_id = f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex}"
    turn = (Message("user", raw),) if raw is not None else tuple(messages)
    run = _Run(server, job, prompt, reply_id, kind, turn, time.perf_counter())
    if stream:
        return StreamingResponse(run.sse(), media_type="text/event-stream")
    async for _ in run.deltas():
        pass
    if run.error:
        raise APIError(run.error_status, run.error, *_error_kind(run.error_status))
    return JSONResponse(run.body(run.text, run.finish_reason, final=True))


async def _prompt(server: Server, model: str, messages: Sequence[Message], budget: int, raw: str | None,
                  response_format: ResponseFormat | None) -> Prompt:
    try:
        return await asyncio.to_thread(server.engine.prompt, model, messages, budget, raw, response_format)
    except ResponseFormatError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    except UnknownModel as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None
    except ModelError as exc:
        raise APIError(400, str(exc), param="model", code="model_not_servable") from None


@dataclass
class _Run:
    server: Server
    job: Job
    prompt: Prompt
    reply_id: str
    kind: str
    turn: tuple[Message, ...]
    started: float
    text: str = ""
    finish_reason: str = "length"
    completion_tokens: int = 0
    error: str | None = None
    error_status: int = 500

    async def deltas(self) -> AsyncIterator[str]:
        """New text as tokens arrive. Like the evaluator's replies, the text is stripped: leading and
        trailing whitespace is held back until something follows it."""
        tokenizer = self.server.engine.tokenizer_for(self.prompt.entry)
        ids: list[int] = []
        sent = ""
        try:
            while True:
                event = await self.job.events.get()
                if event.error is not None:
                    self.error, self.error_status = event.error, event.status
                    break
                assert event.token is not None
                self.completion_tokens += 1
                stopped = event.token in self.prompt.stop_ids
                if not stopped:
                    ids.append(event.token)
                text = str(tokenizer.decode(ids, skip_special_tokens=True)).strip()
                if event.last:
                    self.finish_reason = "stop" if stopped else "length"
                elif text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                if text.startswith(sent) and len(text) > len(sent):
                    yield text[len(sent):]
                    sent = text
                if event.last:
                    break
        finally:
            self.job.cancelled = True  # no-op when finished; stops generation when the client left
        self.text = sent
        if self.error is None:
            await asyncio.to_thread(self._record)

    async def sse(self) -> AsyncIterator[str]:
        if self.kind == "chat":
            yield _event(self.body(None, None, final=False, role=True))
        async for delta in self.deltas():
            yield _event(self.body(delta, None, final=False))
        if self.error:
            type_, param, code = _error_kind(self.error_status)
            yield _event({"error": {"message": self.error, "type": type_, "param": param, "code": code}})
        else:
            yield _event(self.body(None, self.finish_reason, final=True))
        yield "data: [DONE]\n\n"

    def body(self, text: str | None, finish_reason: str | None, final: bool, role: bool = False) -> dict[str, Any]:
        """A whole response (`final` without streaming) or one streamed chunk."""
        stream_chunk = not (final and text is not None)
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason}
        if self.kind == "text":
            choice["text"] = text or ""
        elif stream_chunk:
            choice["delta"] = {"role": "assistant", "content": ""} if role else (
                {"content": text} if text is not None else {})
        else:
            choice["message"] = {"role": "assistant", "content": text}
        body: dict[str, Any] = {
            "id": self.reply_id, "created": int(time.time()), "model": self.prompt.model, "choices": [choice],
            "object": ("chat.completion.chunk" if stream_chunk else "chat.completion") if self.kind == "chat"
            else "text_completion",
        }
        if final:
            prompt_tokens = len(self.prompt.prompt_ids)
            body["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": self.completion_tokens,
                             "total_tokens": prompt_tokens + self.completion_tokens}
        return body

    def _record(self) -> None:
        seconds = time.perf_counter() - self.started
        self.server.metrics.observe_completion(self.prompt.model, seconds, len(self.prompt.prompt_ids),
                                               self.completion_tokens)
        if self.server.feedback is not None:
            self.server.feedback.log(Exchange(
                id=self.reply_id, model=self.prompt.model,
                adapter=self.prompt.entry.name if self.prompt.entry else None,
                endpoint="chat" if self.kind == "chat" else "completions", messages=self.turn,
                response=self.text, prompt_tokens=len(self.prompt.prompt_ids),
                completion_tokens=self.completion_tokens, latency_ms=1000 * seconds,
                finish_reason=self.finish_reason))


def _error_kind(status: int) -> tuple[str, str | None, str | None]:
    """OpenAI error type, param and code for a request that failed in its batch."""
    if status == 404:
        return "invalid_request_error", "model", "model_not_found"
    if status < 500:
        return "invalid_request_error", "model", "model_not_servable"
    return "server_error", None, None


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
