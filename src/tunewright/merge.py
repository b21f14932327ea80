"""Merge a run's adapter (LoRA, DoRA, IA3; QLoRA into a base reloaded at 32 bit) into its base model and
save a standalone model directory (safetensors, tokenizer, chat template, generation config), checking
that merged logits match the adapter's. Prompt and prefix tuning have nothing to merge and say so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.config import Config
from tunewright.errors import ModelError, TunewrightError
from tunewright.library import PROMPT_LEARNING, AdapterEntry, read_adapter_dir
from tunewright.modeling import load_tokenizer, load_with_adapter, resolve_base_model
from tunewright.runs import RunPaths, atomic_dir, write_json

PARITY_TOLERANCE = 1e-3  # fp32 merge reorders sums; observed differences are ~1e-5
PARITY_SAMPLES = 4
MERGEABLE_PEFT_TYPES = {"LORA", "IA3"}  # DoRA is LoRA with use_dora; QLoRA saves a LoRA adapter
MERGE_MANIFEST = "tunewright-merged.json"


@dataclass(frozen=True)
class MergeResult:
    path: Path
    max_abs_diff: float
    method: str


def merge_adapter(config: Config, run: RunPaths, out: Path) -> MergeResult:
    adapter = mergeable_adapter(run)
    tokenizer = load_tokenizer(run.adapter)
    # The base is always loaded at 32 bit here, so a QLoRA adapter merges into full-precision weights,
    # never into the 4-bit NF4 copy it was trained against.
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
    merged.generation_config.do_sample = False
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / MERGE_MANIFEST, {"base_model": config.model.base, "method": adapter.method,
                                          "peft_type": adapter.peft_type, "dtype": "float32",
                                          "parity_max_abs_diff": max_diff, "task": config.task.name})
    return MergeResult(out, max_diff, adapter.method)


def mergeable_adapter(run: RunPaths) -> AdapterEntry:
    """The run's adapter if merging it means something; otherwise one line saying why not."""
    if not run.adapter.is_dir():
        raise TunewrightError(f"{run.root}: no adapter/ to merge; train first with `tunewright train`")
    if (run.adapter / "config.json").is_file() and not (run.adapter / "adapter_config.json").is_file():
        raise ModelError(f"{run.adapter}: method full trained every weight; it is already a standalone model "
                         "with nothing to merge")
    adapter = read_adapter_dir(run.adapter, "merge")
    if adapter.peft_type in PROMPT_LEARNING:
        raise ModelError(f"{run.adapter}: {adapter.method} learns virtual tokens, not weight changes, so there "
                         "is nothing to merge; serve the adapter as it is with `tunewright serve`")
    if adapter.peft_type not in MERGEABLE_PEFT_TYPES:
        raise ModelError(f"{run.adapter}: merging peft_type {adapter.peft_type} is not supported "
                         f"(merges: LoRA, DoRA, QLoRA, IA3)")
    return adapter


def _parity_inputs(config: Config, run: RunPaths, tokenizer: object) -> list[torch.Tensor]:
    rows = run.load_split("test")[:PARITY_SAMPLES]
    chats = [with_system_prompt(example.prompt, config.task.system_prompt) for example in rows]
    return [torch.tensor([prompt_ids(tokenizer, chat)]) for chat in chats]  # type: ignore[arg-type]
