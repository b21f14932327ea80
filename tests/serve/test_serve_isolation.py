"""One bad request never hurts another: a poisoned request in a batch of good ones fails alone, an empty
prompt is a 400, and a forward pass that raises leaves no peft per-row hooks behind."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import openai
import pytest

from tunewright.library import AdapterLibrary
from tunewright.records import Message
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.decode import Row, decode_rows
from tunewright.serve.engine import Engine

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
Running = Callable[[object], AbstractContextManager[str]]
REPLIES = {"access": "[Intent: Account Access]", "fraud": "[Intent: Fraud Report]",
           "dispute": "[Intent: Transaction Dispute]"}
QUESTIONS = ["I cannot log in to the app", "Someone used my card abroad", "I was charged twice",
             "What are your opening hours", "My transfer did not arrive", "Please close my account"]


def poisoned_library(adapter_library: Path, root: Path) -> Path:
    """The three good adapters plus `broken`: a copy of one whose config claims another rank (as a
    hand-edited or half-copied library entry would)."""
    library = root / "library"
    shutil.copytree(adapter_library, library)
    shutil.copytree(library / "access", library / "broken")
    config = json.loads((library / "broken" / "adapter_config.json").read_text())
    (library / "broken" / "adapter_config.json").write_text(json.dumps({**config, "r": 4}))
    return library


def test_poisoned_request_among_twenty_good_ones_fails_alone(
    tiny_model_dir: Path, adapter_library: Path, serve_app: Running, tmp_path: Path,
    solo_answers: dict[str, dict[str, str]],
) -> None:
    expected = solo_answers
    engine = Engine("base", tiny_model_dir, AdapterLibrary(poisoned_library(adapter_library, tmp_path)),
                    max_loaded=4)
    models = ["base", *REPLIES]
    good = [(models[i % 4], QUESTIONS[i % len(QUESTIONS)]) for i in range(20)]
    jobs = [*good[:10], ("broken", QUESTIONS[0]), *good[10:]]
    app = create_app(engine, {KEY}, Limits(max_tokens=12, max_batch=64, gather_ms=300))
    with serve_app(app) as url:
        async def ask(client: openai.AsyncOpenAI, model: str, question: str) -> str | Exception:
            try:
                response = await client.chat.completions.create(
                    model=model, max_tokens=12, messages=[{"role": "user", "content": question}])
            except openai.APIStatusError as exc:
                return exc
            return response.choices[0].message.content or ""

        async def ask_all() -> list[str | Exception]:
            client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=120)
            return await asyncio.gather(*(ask(client, model, question) for model, question in jobs))

        answers = asyncio.run(ask_all())
        scheduler = app.state.server.scheduler
        assert scheduler.isolated >= 1  # the poison really shared a batch with good requests
        again = asyncio.run(ask_all())  # and nothing of it is left behind for later batches
    for round_ in (answers, again):
        errors = [a for a in round_ if isinstance(a, Exception)]
        assert len(errors) == 1 and isinstance(errors[0], openai.BadRequestError)
        assert "rank" in str(errors[0]) and errors[0].body["code"] == "model_not_servable"  # type: ignore[index]
        served = [a for (model, _), a in zip(jobs, round_, strict=True) if model != "broken"]
        assert served == [expected[model][question] for model, question in good]


def test_empty_prompt_is_a_400_and_the_batch_path_keeps_working(
    tiny_model_dir: Path, adapter_library: Path, serve_app: Running
) -> None:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library))
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=12, gather_ms=50))) as url:
        for model in ("access", "base"):
            empty = httpx.post(f"{url}/v1/completions", headers=AUTH,
                               json={"model": model, "prompt": "", "max_tokens": 4})
            assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_prompt"

        async def ask_all() -> list[int]:
            async with httpx.AsyncClient(timeout=60) as http:
                replies = await asyncio.gather(*(http.post(
                    f"{url}/v1/chat/completions", headers=AUTH,
                    json={"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
                    for model in ("base", "access", "fraud", "dispute", "access", "base")))
            return [reply.status_code for reply in replies]

        assert asyncio.run(ask_all()) == [200] * 6


def row_hooks(engine: Engine) -> int:
    assert engine.pool.lora_model is not None
    return sum(1 for module in engine.pool.lora_model.modules() for hook in module._forward_pre_hooks.values()
               if getattr(getattr(hook, "func", None), "__name__", "") == "_adapter_names_pre_forward_hook")


def test_a_forward_that_raises_leaves_no_per_row_hooks(tiny_model_dir: Path, adapter_library: Path) -> None:
    engine = Engine("base", tiny_model_dir, AdapterLibrary(adapter_library), stack_lora=False)
    prompts = [engine.prompt(name, [Message("user", QUESTIONS[0])], 6) for name in ("base", "access", "fraud")]
    before: list[list[int]] = [[], [], []]
    engine.run(prompts, lambda i, token, last: before[i].append(token) is None)
    assert engine.pool.lora_model is not None and row_hooks(engine) == 0
    names = [engine.loaded[name].peft_name for name in ("access", "fraud")]
    with pytest.raises(RuntimeError):  # a batch of one empty row cannot be decoded
        decode_rows(engine.pool.lora_model, [Row([], 4, frozenset(), names[0])], engine.pad_id,
                    lambda i, token, last: True, per_row_adapters=True)
    assert row_hooks(engine) == 0
    after: list[list[int]] = [[], [], []]
    engine.run(prompts, lambda i, token, last: after[i].append(token) is None)
    assert after == before
