"""The reply to one completion request: each choice's text as its tokens arrive (stripped like the
evaluator's replies, cut at the first stop string), its log probabilities, and the bodies: one JSON
object, or SSE chunks with a final usage chunk (empty `choices`) when `stream_options.include_usage`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from tunewright.feedback.store import Exchange
from tunewright.records import Message
from tunewright.serve.completions import Server, error_kind
from tunewright.serve.engine import Prompt
from tunewright.serve.params import Generation
from tunewright.serve.sampling import Token
from tunewright.serve.scheduler import Job


@dataclass
class Choice:
    index: int
    job: Job
    text: str = ""
    finish_reason: str = "length"
    completion_tokens: int = 0
    tokens: list[Token] = field(default_factory=list)  # those that make the text (no stop token)
    error: str | None = None
    error_status: int = 500


@dataclass
class Reply:
    server: Server
    jobs: list[Job]
    prompt: Prompt
    generation: Generation
    reply_id: str
    kind: str
    turn: tuple[Message, ...]
    started: float
    choices: list[Choice] = field(init=False)

    def __post_init__(self) -> None:
        self.choices = [Choice(index, job) for index, job in enumerate(self.jobs)]
        self.tokenizer = self.server.engine.tokenizer_for(self.prompt.entry)

    async def wait(self) -> None:
        async def drain(choice: Choice) -> None:
            async for _ in self.deltas(choice):
                pass

        await asyncio.gather(*(drain(choice) for choice in self.choices))

    async def deltas(self, choice: Choice) -> AsyncIterator[tuple[str, list[Token]]]:
        """New text (and the tokens it came with) as tokens arrive. Leading and trailing whitespace, and
        text that may begin a stop string, are held back until something follows."""
        ids: list[int] = []
        sent, sent_tokens = "", 0
        stops = self.generation.stop
        try:
            while True:
                event = await choice.job.events.get()
                if event.error is not None:
                    choice.error, choice.error_status = event.error, event.status
                    break
                assert event.token is not None
                choice.completion_tokens += 1
                stopped = event.token.id in self.prompt.stop_ids
                if not stopped:
                    ids.append(event.token.id)
                    choice.tokens.append(event.token)
                text = str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip()
                cut = min((at for at in (text.find(stop) for stop in stops) if at >= 0), default=-1)
                last = event.last or cut >= 0
                if cut >= 0:
                    text, stopped = text[:cut].rstrip(), True
                if last:
                    choice.finish_reason = "stop" if stopped else "length"
                elif text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                else:
                    text = text[:len(text) - _held(text, stops)]
                if text.startswith(sent) and len(text) > len(sent):
                    yield text[len(sent):], choice.tokens[sent_tokens:]
                    sent, sent_tokens = text, len(choice.tokens)
                if last:
                    break
        finally:
            choice.job.cancelled = True  # stops generation when finished early or when the client left
        choice.text = sent
        if choice.error is None:
            await asyncio.to_thread(self._record, choice)

    async def sse(self) -> AsyncIterator[str]:
        choice = self.choices[0]  # streaming serves n = 1
        if self.kind == "chat":
            yield _event(self._chunk({"role": "assistant", "content": ""}, None, []))
        async for delta, tokens in self.deltas(choice):
            yield _event(self._chunk(delta, None, tokens))
        if choice.error:
            type_, param, code = error_kind(choice.error_status)
            yield _event({"error": {"message": choice.error, "type": type_, "param": param, "code": code}})
        else:
            yield _event(self._chunk(None, choice.finish_reason, []))
            if self.generation.include_usage:
                yield _event({**self._head("chat.completion.chunk" if self.kind == "chat" else "text_completion"),
                              "choices": [], "usage": self._usage()})
        yield "data: [DONE]\n\n"

    def body(self) -> dict[str, Any]:
        """The whole response, every choice."""
        choices = []
        for choice in self.choices:
            item: dict[str, Any] = {"index": choice.index, "finish_reason": choice.finish_reason,
                                    "logprobs": self._logprobs(choice.tokens)}
            if self.kind == "chat":
                item["message"] = {"role": "assistant", "content": choice.text}
            else:
                item["text"] = choice.text
            choices.append(item)
        kind = "chat.completion" if self.kind == "chat" else "text_completion"
        return {**self._head(kind), "choices": choices, "usage": self._usage()}

    def _chunk(self, delta: str | dict[str, str] | None, finish_reason: str | None,
               tokens: list[Token]) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish_reason,
                                  "logprobs": self._logprobs(tokens) if tokens else None}
        if self.kind == "chat":
            choice["delta"] = delta if isinstance(delta, dict) else ({"content": delta} if delta is not None else {})
            return {**self._head("chat.completion.chunk"), "choices": [choice]}
        choice["text"] = delta if isinstance(delta, str) else ""
        return {**self._head("text_completion"), "choices": [choice]}

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.reply_id, "object": kind, "created": int(time.time()), "model": self.prompt.model}

    def _usage(self) -> dict[str, int]:
        prompt_tokens = len(self.prompt.prompt_ids)
        completion = sum(choice.completion_tokens for choice in self.choices)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                "total_tokens": prompt_tokens + completion}

    def _logprobs(self, tokens: list[Token]) -> dict[str, Any] | None:
        """Chat: `{"content": [{token, logprob, bytes, top_logprobs}]}`; text: the legacy lists."""
        if not self.generation.logprobs:
            return None
        spell = self._spell
        if self.kind == "chat":
            return {"content": [{**spell(token.id, token.logprob),
                                 "top_logprobs": [spell(i, lp) for i, lp in token.top]} for token in tokens],
                    "refusal": None}
        offsets, at = [], 0
        for token in tokens:
            offsets.append(at)
            at += len(spell(token.id, None)["token"])
        return {"tokens": [spell(t.id, None)["token"] for t in tokens],
                "token_logprobs": [t.logprob for t in tokens],
                "top_logprobs": [{spell(i, None)["token"]: lp for i, lp in t.top} for t in tokens],
                "text_offset": offsets}

    def _spell(self, token_id: int, logprob: float | None) -> dict[str, Any]:
        text = str(self.tokenizer.decode([token_id]))
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def _record(self, choice: Choice) -> None:
        seconds = time.perf_counter() - self.started
        self.server.metrics.observe_completion(self.prompt.model, seconds, len(self.prompt.prompt_ids),
                                               choice.completion_tokens)
        if self.server.feedback is not None:
            self.server.feedback.log(Exchange(
                id=self.reply_id if choice.index == 0 else f"{self.reply_id}-{choice.index}",
                model=self.prompt.model, adapter=self.prompt.entry.name if self.prompt.entry else None,
                endpoint="chat" if self.kind == "chat" else "completions", messages=self.turn,
                response=choice.text, prompt_tokens=len(self.prompt.prompt_ids),
                completion_tokens=choice.completion_tokens, latency_ms=1000 * seconds,
                finish_reason=choice.finish_reason, user=self.generation.user))


def _held(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of `text` could be the start of a stop string."""
    return max((size for stop in stops for size in range(1, len(stop)) if text.endswith(stop[:size])), default=0)


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
