"""The trained artifact: the adapter (PEFT layout) or, for full fine-tunes, every weight, saved
atomically as safetensors with its tokenizer, chat template and tunewright manifest."""

from __future__ import annotations

from typing import Any

from tunewright.chat import stop_token_ids
from tunewright.config import Config
from tunewright.label_format import label_format
from tunewright.methods import METHODS, artifact_dir
from tunewright.modeling import CausalLM, public_model_id
from tunewright.retrieval import input_text
from tunewright.runs import (
    ADAPTER_MANIFEST,
    NEIGHBOUR_POOL,
    AdapterManifest,
    RunPaths,
    atomic_dir,
    write_json,
    write_jsonl,
)

__all__ = ["artifact_dir", "save_artifact"]


def save_artifact(config: Config, run: RunPaths, model: CausalLM, tokenizer: Any, best_val_loss: float | None) -> None:
    method = METHODS[config.method.name]
    # adapter_config.json names the base by its public id, not this machine's cache path, so the
    # adapter directory loads elsewhere with stock peft (AutoPeftModelForCausalLM).
    for peft_config in getattr(model, "peft_config", {}).values():
        peft_config.base_model_name_or_path = public_model_id(config.model.base)
    with atomic_dir(artifact_dir(config, run)) as tmp:
        if method.artifact == "adapter":
            # peft's "auto" asks the Hub for the base's config.json (by the public id recorded above) to
            # see whether the vocabulary was resized; tunewright never resizes it, and never goes online.
            model.save_pretrained(tmp, safe_serialization=True, save_embedding_layers=False)
        else:
            model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        manifest = AdapterManifest(
            base_model=config.model.base, method=config.method.name, artifact=method.artifact,
            quantized_base="nf4" if method.facts.quantized else None, task=config.task.name,
            system_prompt=config.task.system_prompt, stop_token_ids=tuple(stop_token_ids(tokenizer)),
            output_schema=config.task.output_schema, best_val_loss=best_val_loss, neighbours=config.task.neighbours,
            copied_fields=tuple(config.task.copied_fields) if config.eval.constrain_copies else (),
            **_label_facts(config, run))
        write_json(tmp / ADAPTER_MANIFEST, manifest.to_json())
        if config.task.neighbours:
            write_jsonl(tmp / NEIGHBOUR_POOL, [{"input": input_text(example), "label": example.label}
                                               for example in run.load_split("train")])


def _label_facts(config: Config, run: RunPaths) -> dict[str, Any]:
    """The label set and where the label sits in the training answers, for serving to constrain a
    labelled task's answers as evaluation does; nothing when the task has no labels or the answers
    disagree on the format (or constrain_labels is off), and for preference runs (their splits hold pairs)."""
    task = config.task
    if METHODS[config.method.name].facts.preference or not (
            config.eval.constrain_labels and task.labels and task.label_regex):
        return {}
    fmt = label_format([example.reference for example in run.load_split("train")], task.label_regex)
    return {} if fmt is None else {"labels": tuple(task.labels), "label_format": fmt.to_json()}
