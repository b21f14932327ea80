"""Mixed-adapter batching: many concurrent requests over three adapters and the base, each answered by
its own model, in shared batches, and every exchange in the feedback store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import openai

from tunewright.feedback.store import FeedbackStore
from tunewright.library import AdapterLibrary
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

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
