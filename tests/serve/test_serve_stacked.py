"""Grouped LoRA (all loaded adapters in two batched matmuls per layer, each row multiplied through its own) gives
the same tokens as each adapter running alone, and as peft's per-row path, in one mixed batch, and so do
rows that join a running batch between its steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, write_json
from tunewright.serve.engine import Engine, Prompt
from tunewright.serve.sampling import GREEDY, Token

QUESTIONS = ["I cannot log in", "Someone used my card", "I was charged twice", "Close my account", "hello"]


@pytest.fixture(scope="module")
def random_library(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three plain LoRA adapters with random A and B (each moves the output), ranks 4, 8 and 2."""
    root = tmp_path_factory.mktemp("random-lora")
    library = AdapterLibrary(root / "library")
    tokenizer = load_tokenizer(tiny_model_dir)
    for seed, rank in enumerate((4, 8, 2)):
        torch.manual_seed(seed)
        config = LoraConfig(r=rank, lora_alpha=4 * rank, target_modules="all-linear", init_lora_weights=False)
        model = get_peft_model(load_model(tiny_model_dir), config)
        out = root / f"trained-{seed}"
        model.save_pretrained(out, safe_serialization=True)
        write_json(out / ADAPTER_MANIFEST, {"base_model": str(tiny_model_dir), "method": "lora",
                                            "stop_token_ids": [tokenizer.eos_token_id]})
        library.add(out, f"r{rank}", base_fingerprint(tiny_model_dir))
    return library.root


def answers(engine: Engine, jobs: list[tuple[str, str]], mixed: bool = True, budget: int = 10) -> list[list[int]]:
    prompts = [engine.prompt(model, [Message("user", question)], budget) for model, question in jobs]
    tokens: list[list[int]] = [[] for _ in prompts]

    def on_token(index: int, token: Token, last: bool) -> bool:
        tokens[index].append(token.id)
        return True

    engine.run(prompts, on_token, mixed=mixed)
    return tokens


def test_stacked_mixed_batch_matches_each_adapter_alone(tiny_model_dir: Path, random_library: Path) -> None:
    models = ["base", "r4", "r8", "r2"]
    jobs = [(models[i % 4], QUESTIONS[i % len(QUESTIONS)]) for i in range(12)]
    stacked = Engine("base", tiny_model_dir, AdapterLibrary(random_library), max_loaded=3)
    mixed = answers(stacked, jobs)
    assert stacked._stacked is not None and len(stacked._stacked.adapters) == 3
    per_row = answers(Engine("base", tiny_model_dir, AdapterLibrary(random_library), stack_lora=False), jobs)
    single = Engine("base", tiny_model_dir, AdapterLibrary(random_library))
    alone = [answers(single, [job], mixed=False)[0] for job in jobs]  # set_adapter, batch of one
    assert mixed == per_row == alone
    by_model = {model: {tuple(t) for (m, _), t in zip(jobs, alone, strict=True) if m == model} for model in models}
    assert len({frozenset(answers) for answers in by_model.values()}) == 4  # the adapters answer differently


@pytest.mark.parametrize("stack_lora", [True, False])
def test_rows_that_join_a_running_batch_decode_exactly_as_alone(tiny_model_dir: Path, random_library: Path,
                                                                stack_lora: bool) -> None:
    """Continuous batching: prompts join between decode steps (their prompt pass, then the shared steps,
    their cache padded to the batch's width) while others finish and leave; with greedy decoding every
    row's tokens equal that request run alone, the joined ones included. The batch opens with a base row
    alone (LoRA off), then LoRA rows join: grouped LoRA, or peft's per-row path without it."""
    models = ["base", "r4", "r8", "r2"]
    jobs = [(models[i % 4], QUESTIONS[(3 * i) % len(QUESTIONS)]) for i in range(11)]
    budgets = [3, 10, 6, 10, 2, 9, 10, 4, 7, 10, 5]  # rows leave at different steps
    engine = Engine("base", tiny_model_dir, AdapterLibrary(random_library), max_loaded=3, stack_lora=stack_lora)
    prompts = [replace(engine.prompt(model, [Message("user", q)], budget), sampling=GREEDY)
               for (model, q), budget in zip(jobs, budgets, strict=True)]
    engine.run(prompts[1:2], lambda i, t, last: True)  # loads an adapter: LoRA rows may join
    arrivals = {1: prompts[1:4], 3: prompts[4:5], 4: prompts[5:8], 8: prompts[8:11]}  # step -> joining
    tokens: list[list[int]] = [[] for _ in prompts]
    calls = [0]

    def more(adapters_ok: bool) -> list[Prompt]:
        calls[0] += 1
        assert adapters_ok
        return arrivals.get(calls[0], [])

    def on_token(index: int, token: Token, last: bool) -> bool:
        tokens[index].append(token.id)
        return True

    engine.run(prompts[:1], on_token, more=more)
    assert (engine._stacked is not None and len(engine._stacked.adapters) == 3) == stack_lora
    single = Engine("base", tiny_model_dir, AdapterLibrary(random_library))
    alone = [answers(single, [job], mixed=False, budget=budget)[0] for job, budget in zip(jobs, budgets, strict=True)]
    assert [len(t) for t in tokens] == [len(t) for t in alone]
    assert tokens == alone
