"""Mixed-adapter batching: many concurrent requests over three adapters and the base, each answered by
its own model, in shared batches, and every exchange in the feedback store; requests that arrive while
a batch runs join it and are answered as they would be alone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import openai

from tunewright.feedback.store import FeedbackStore
from tunewright.library import AdapterLibrary
from tunewright.records import Message
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine, Prompt
from tunewright.serve.scheduler import Scheduler

KEY = "test-key"
REPLIES = {"access": "[Intent: Account Access]", "fraud": "[Intent: Fraud Report]",
           "dispute": "[Intent: Transaction Dispute]"}
QUESTIONS = ["I cannot log in to the app", "Someone used my card abroad", "I was charged twice",
             "What are your opening hours", "My transfer did not arrive", "Please close my account"]
Running = Callable[[object], AbstractContextManager[str]]


def test_hundred_concurrent_requests_each_answered_by_its_own_adapter(
    tiny_model_dir: Path, adapter_library: Path, serve_app: Running, tmp_path: Path,
    solo_answers: dict[str, dict[str, str]],
) -> None:
    expected = solo_answers
    for name, reply in REPLIES.items():  # each adapter learned its own reply; the base did not
        assert set(expected[name].values()) == {reply}, name
    assert not set(expected["base"].values()) & set(REPLIES.values())
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library), max_loaded=3)
    store = FeedbackStore(tmp_path / "feedback.db")
    models = ["base", *REPLIES]
    jobs = [(models[i % 4], QUESTIONS[i % len(QUESTIONS)]) for i in range(100)]
    app = create_app(engine, {KEY}, Limits(max_tokens=12, max_batch=64, gather_ms=20), store)
    with serve_app(app) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)

        async def ask(model: str, question: str) -> str:
            response = await client.chat.completions.create(
                model=model, max_tokens=12, messages=[{"role": "user", "content": question}])
            return response.choices[0].message.content or ""

        async def ask_all() -> list[str]:
            return await asyncio.gather(*(ask(model, question) for model, question in jobs))

        answers = asyncio.run(ask_all())
        batches = app.state.server.scheduler.batches
    for (model, question), answer in zip(jobs, answers, strict=True):
        assert answer == expected[model][question], (model, question)
    assert batches < 50  # requests for different adapters shared batches
    assert store.count() == 100
    logged = store.exchanges()
    assert {row.adapter for row in logged} == {None, *REPLIES}
    assert all(row.response == expected[row.adapter or "base"][row.messages[-1].content] for row in logged)


def test_requests_join_a_running_batch_and_decode_as_alone(tiny_model_dir: Path, adapter_library: Path) -> None:
    """Through the scheduler: while a long request (300 tokens, no stop token) runs, requests for the
    adapters and the base arrive, join its batch between steps, and each gets the tokens it gets alone."""
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library), max_loaded=3)
    long = replace(engine.prompt("fraud", [Message("user", QUESTIONS[0])], 300), stop_ids=frozenset())
    later = [engine.prompt(model, [Message("user", q)], 12) for model, q in
             zip(["base", *REPLIES, "base"], QUESTIONS[1:], strict=False)]
    alone = [_alone(engine, prompt) for prompt in [long, *later]]

    async def serve() -> tuple[list[list[int]], int]:
        scheduler = Scheduler(engine, max_batch=8)
        scheduler.start()
        first = scheduler.submit([long])[0]
        opening = await first.events.get()  # the long request is running: what comes now must join it
        jobs = [first, *scheduler.submit(later)]
        assert opening.token is not None and not opening.last, opening.error
        tokens = [[opening.token.id]] + [[] for _ in later]
        for index, job in enumerate(jobs):
            while True:
                event = await job.events.get()
                assert event.token is not None, event.error
                tokens[index].append(event.token.id)
                if event.last:
                    break
        await scheduler.stop()
        return tokens, scheduler.joined

    tokens, joined = asyncio.run(serve())
    assert joined == len(later)
    assert tokens == alone


def _alone(engine: Engine, prompt: Prompt) -> list[int]:
    tokens: list[int] = []
    engine.run([prompt], lambda index, token, last: tokens.append(token.id) is None)
    return tokens
