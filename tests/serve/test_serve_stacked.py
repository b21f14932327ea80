"""Stacked LoRA (all loaded adapters in two matmuls per layer, a row mask picking each row's own) gives
the same tokens as each adapter running alone, and as peft's per-row path, in one mixed batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, write_json
from tunewright.serve.engine import Engine

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


def answers(engine: Engine, jobs: list[tuple[str, str]], mixed: bool = True) -> list[list[int]]:
    prompts = [engine.prompt(model, [Message("user", question)], 10) for model, question in jobs]
    tokens: list[list[int]] = [[] for _ in prompts]

    def on_token(index: int, token: int, last: bool) -> bool:
        tokens[index].append(token)
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
