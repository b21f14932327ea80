"""Merge a run's adapter (LoRA, DoRA, IA3; QLoRA into a base reloaded at 32 bit) into its base model and
save a standalone model directory (safetensors, tokenizer, a chat template whose default system prompt
is the task's, generation config with the stop tokens, and a model card), checking that merged logits
match the adapter's. Prompt and prefix tuning have nothing to merge and say so."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright.card import ModelCard, template_with_default_system
from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.config import Config
from tunewright.errors import ModelError, TunewrightError
from tunewright.library import PROMPT_LEARNING, AdapterEntry, eval_summary, read_adapter_dir
from tunewright.modeling import load_tokenizer, load_with_adapter, public_model_id, resolve_base_model
from tunewright.runs import RunPaths, atomic_dir, write_json, write_text

PARITY_TOLERANCE = 1e-3  # fp32 merge reorders sums; observed differences are ~1e-5
PARITY_SAMPLES = 4
MERGEABLE_PEFT_TYPES = {"LORA", "IA3"}  # DoRA is LoRA with use_dora; QLoRA saves a LoRA adapter
MERGE_MANIFEST = "tunewright-merged.json"
MODEL_CARD = "README.md"


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
    set_default_system_prompt(tokenizer, config.task.system_prompt)
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_text(tmp / MODEL_CARD, merged_card(config, run, adapter.method, tokenizer).render())
        write_json(tmp / MERGE_MANIFEST, {"base_model": config.model.base, "method": adapter.method,
                                          "peft_type": adapter.peft_type, "dtype": "float32",
                                          "parity_max_abs_diff": max_diff, "task": config.task.name})
    return MergeResult(out, max_diff, adapter.method)


def set_default_system_prompt(tokenizer: Any, system_prompt: str) -> None:
    """Give the tokenizer's chat template the task's system prompt as its default, after checking on a
    sample that a user-only conversation then renders exactly as tunewright renders it."""
    original = tokenizer.chat_template
    tokenizer.chat_template = template_with_default_system(original, system_prompt)
    sample = [{"role": "user", "content": "Hello"}]
    wanted = prompt_ids(tokenizer, with_system_prompt([], system_prompt) + sample)
    if prompt_ids(tokenizer, sample) != wanted:
        tokenizer.chat_template = original
        raise ModelError("the chat template does not take the task's system prompt as its default cleanly "
                         "(it renders a user-only conversation differently); nothing saved")


def merged_card(config: Config, run: RunPaths, method: str, tokenizer: Any) -> ModelCard:
    """The merged model's card: what it is, its system prompt and stop tokens, its evaluation, and how to
    call it with stock transformers."""
    stops = tuple(str(tokenizer.convert_ids_to_tokens(i)) for i in stop_token_ids(tokenizer))
    return ModelCard(
        title=f"{config.task.name} (merged)", base_model=public_model_id(config.model.base), task=config.task.name,
        description=config.task.description, method=method, system_prompt=config.task.system_prompt,
        stop_tokens=stops, labels=tuple(config.task.labels), evaluation=eval_summary(run.summary),
        usage=TRANSFORMERS_USAGE)


TRANSFORMERS_USAGE = """\
```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder", dtype="float32")
messages = [{"role": "user", "content": "I cannot log in to my account"}]  # the system prompt is the default
ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**ids, max_new_tokens=128, do_sample=False)  # generation_config.json holds the stop tokens
print(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
```
"""


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
    if adapter.neighbours:
        raise ModelError(f"{run.adapter}: its prompts show {adapter.neighbours} retrieved training examples "
                         "(task.neighbours), which only `tunewright serve` builds; a merged model would be asked "
                         "without them. Serve the adapter, or train with task.neighbours: 0 to merge")
    if adapter.peft_type not in MERGEABLE_PEFT_TYPES:
        raise ModelError(f"{run.adapter}: merging peft_type {adapter.peft_type} is not supported "
                         f"(merges: LoRA, DoRA, QLoRA, IA3)")
    return adapter


def _parity_inputs(config: Config, run: RunPaths, tokenizer: object) -> list[torch.Tensor]:
    rows = run.load_split("test")[:PARITY_SAMPLES]
    chats = [with_system_prompt(example.prompt, config.task.system_prompt) for example in rows]
    return [torch.tensor([prompt_ids(tokenizer, chat)]) for chat in chats]  # type: ignore[arg-type]
