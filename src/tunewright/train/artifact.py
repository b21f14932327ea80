"""The trained artifact: the adapter (PEFT layout) or, for full fine-tunes, every weight, saved
atomically as safetensors with its tokenizer, chat template and tunewright manifest."""

from __future__ import annotations

from typing import Any

from tunewright.chat import stop_token_ids
from tunewright.config import Config
from tunewright.methods import METHODS, artifact_dir
from tunewright.modeling import CausalLM, public_model_id
from tunewright.runs import ADAPTER_MANIFEST, AdapterManifest, RunPaths, atomic_dir, write_json

__all__ = ["artifact_dir", "save_artifact"]


def save_artifact(config: Config, run: RunPaths, model: CausalLM, tokenizer: Any, best_val_loss: float | None) -> None:
    method = METHODS[config.method.name]
    # adapter_config.json names the base by its public id, not this machine's cache path, so the
    # adapter directory loads elsewhere with stock peft (AutoPeftModelForCausalLM).
    for peft_config in getattr(model, "peft_config", {}).values():
        peft_config.base_model_name_or_path = public_model_id(config.model.base)
    with atomic_dir(artifact_dir(config, run)) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest = AdapterManifest(
            base_model=config.model.base, method=config.method.name, artifact=method.artifact,
            quantized_base="nf4" if method.facts.quantized else None, task=config.task.name,
            system_prompt=config.task.system_prompt, stop_token_ids=tuple(stop_token_ids(tokenizer)),
            output_schema=config.task.output_schema, best_val_loss=best_val_loss)
        write_json(tmp / ADAPTER_MANIFEST, manifest.to_json())
