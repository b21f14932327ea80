"""A request's parameters as the engine takes them, and the refusals: every OpenAI parameter is
honoured here or answered with a 400 naming it. `response_format` is parsed here
(serve/response_format.py); the engine turns it into each choice's grammar processor."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

from tunewright.records import Message
from tunewright.serve.completions import APIError
from tunewright.serve.response_format import ResponseFormat, ResponseFormatError, parse_response_format
from tunewright.serve.sampling import Sampling
from tunewright.serve.schemas import ChatCompletionRequest, CompletionRequest, unsupported

ROLES: dict[str, Literal["system", "user", "assistant"]] = {
    "system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass(frozen=True)
class Generation:
    """What a request asks of generation, beyond its prompt."""

    max_tokens: int | None
    sampling: Sampling  # with its seed; choice i of `n` draws with seed + i
    stop: tuple[str, ...]
    n: int
    logprobs: bool
    stream: bool
    include_usage: bool
    user: str | None
    response_format: ResponseFormat | None = None

    def choice_sampling(self, index: int) -> Sampling:
        from dataclasses import replace

        return replace(self.sampling, seed=self.sampling.seed + index)


def refuse(param: str, why: str) -> APIError:
    return APIError(400, f"{param}: {why}", param=param, code="unsupported_parameter")


def generation(body: ChatCompletionRequest | CompletionRequest) -> Generation:
    """The request's generation parameters; a 400 for any it sends that this server does not implement."""
    refused = unsupported(body)
    if refused:
        raise refuse(refused[0], "not supported by this server; leave it out (README: serving)")
    max_tokens = body.max_tokens
    if isinstance(body, ChatCompletionRequest) and body.max_completion_tokens is not None:
        if max_tokens is not None and max_tokens != body.max_completion_tokens:
            raise refuse("max_completion_tokens", f"{body.max_completion_tokens} disagrees with max_tokens "
                                                  f"{max_tokens}; send one of them")
        max_tokens = body.max_completion_tokens
    if body.n > 1 and body.stream:
        raise refuse("n", "n > 1 is served without streaming only; drop stream or send n = 1")
    if isinstance(body, ChatCompletionRequest):
        top = body.top_logprobs if body.logprobs else None
        if body.top_logprobs is not None and not body.logprobs:
            raise refuse("top_logprobs", "needs logprobs: true")
        logprobs = body.logprobs
    else:
        top, logprobs = body.logprobs, body.logprobs is not None
    sampling = Sampling(
        temperature=_temperature(body.temperature), top_p=1.0 if body.top_p is None else body.top_p,
        top_k=body.top_k or 0, seed=secrets.randbits(62) if body.seed is None else body.seed,
        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
        logit_bias=_logit_bias(body.logit_bias), top_logprobs=(top or 0) if logprobs else None)
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    options = body.stream_options
    if options is not None and not body.stream:
        raise refuse("stream_options", "only with stream: true")
    try:
        response_format = parse_response_format(body.response_format) if isinstance(body, ChatCompletionRequest) \
            else None
    except ResponseFormatError as exc:
        raise APIError(400, str(exc), param=exc.param) from None
    return Generation(max_tokens, sampling, stop, body.n, logprobs, body.stream,
                      bool(options and options.include_usage), body.user, response_format)


def _temperature(requested: float | None) -> float:
    """Below 1e-5 (as vLLM does) sampling is decoding greedily: its limit as the temperature falls, and
    logits divided by a smaller one overflow to inf."""
    return 0.0 if requested is None or requested < 1e-5 else requested


def _logit_bias(bias: dict[str, float] | None) -> tuple[tuple[int, float], ...]:
    pairs = []
    for key, value in (bias or {}).items():
        if not key.isdigit():
            raise refuse("logit_bias", f"key {key!r} is not a token id; keys are token ids as strings")
        pairs.append((int(key), float(value)))
    return tuple(pairs)


def chat_messages(body: ChatCompletionRequest) -> list[Message]:
    """The conversation as records: text parts joined, `developer` read as `system`; tool turns,
    tool calls and non-text parts refused."""
    messages = []
    for index, message in enumerate(body.messages):
        where = f"messages[{index}]"
        if message.role not in ROLES:
            raise refuse(f"{where}.role", f"role {message.role!r} is not supported (tools are not served); "
                                          f"use {', '.join(ROLES)}")
        if message.name is not None:
            raise refuse(f"{where}.name", "participant names are not passed to the model; leave name out")
        if message.content is None and message.role != "assistant":
            raise refuse(f"{where}.content", "is null; only an assistant turn may have no content")
        parts = message.content if isinstance(message.content, list) else None
        for part_index, part in enumerate(parts or []):
            if part.type != "text" or part.text is None:
                raise refuse(f"{where}.content[{part_index}].type",
                             f"content part type {part.type!r} is not supported; send text parts")
        text = "".join(part.text or "" for part in parts) if parts is not None else (message.content or "")
        assert isinstance(text, str)
        messages.append(Message(ROLES[message.role], text))
    return messages
