"""Merge a run's adapter into its base model and save a standalone model directory (safetensors,
tokenizer, chat template, generation config), checking that merged logits match the adapter's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.config import Config
from tunewright.errors import TunewrightError
from tunewright.modeling import load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.runs import RunPaths, atomic_dir

PARITY_TOLERANCE = 1e-3  # fp32 merge reorders sums; observed differences are ~1e-5
PARITY_SAMPLES = 4


@dataclass(frozen=True)
class MergeResult:
    path: Path
    max_abs_diff: float


def merge_adapter(config: Config, run: RunPaths, out: Path) -> MergeResult:
    if not run.adapter.is_dir():
        raise TunewrightError(f"{run.root}: no adapter/ to merge; train first with `tunewright train`")
    tokenizer = load_tokenizer(run.adapter)
    model = load_with_adapter(resolve_base_model(config.model.base), run.adapter)
    samples = _parity_inputs(config, run, tokenizer)
    with torch.inference_mode():
        adapter_logits = [model(input_ids=ids).logits for ids in samples]
        merged = model.merge_and_unload()
        max_diff = max(float((merged(input_ids=ids).logits - ref).abs().max())
                       for ids, ref in zip(samples, adapter_logits, strict=True))
    if max_diff > PARITY_TOLERANCE:
        raise TunewrightError(f"merged logits differ from the adapter's by {max_diff:.2e} "
                              f"(> {PARITY_TOLERANCE:.0e}); the merge is not trustworthy, nothing saved")
    merged.generation_config.eos_token_id = stop_token_ids(tokenizer)
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return MergeResult(out, max_diff)


def _parity_inputs(config: Config, run: RunPaths, tokenizer: object) -> list[torch.Tensor]:
    rows = run.load_split("test")[:PARITY_SAMPLES]
    chats = [with_system_prompt(example.prompt, config.task.system_prompt) for example in rows]
    return [torch.tensor([prompt_ids(tokenizer, chat)]) for chat in chats]  # type: ignore[arg-type]
