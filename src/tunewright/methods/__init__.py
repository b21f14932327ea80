"""Fine-tuning methods: one module per method says how to make the base trainable; `METHODS` pairs
each with its facts (facts.py: what it saves, whether it merges, how much data it wants, its `plan`
terms). Adding a method is one module, one entry in `METHOD_FACTS` and one in `METHODS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.methods import dora, full, ia3, lora, preference, prefix_tuning, prompt_tuning, qlora
from tunewright.methods.facts import METHOD_FACTS, MethodFacts

if TYPE_CHECKING:
    from tunewright.config import Config, MethodConfig
    from tunewright.modeling import CausalLM
    from tunewright.runs import RunPaths


@dataclass(frozen=True)
class Method:
    facts: MethodFacts
    prepare: Callable[[CausalLM, MethodConfig], CausalLM]  # base model in, trainable model out
    quantization: Callable[[], Any] | None = None  # builds the base model's quantization config

    @property
    def artifact(self) -> str:
        return self.facts.artifact

    @property
    def shares_prefix(self) -> bool:
        return self.facts.shares_prefix


_PREPARE: dict[str, Callable[[CausalLM, MethodConfig], CausalLM]] = {
    "full": full.prepare, "lora": lora.prepare, "dora": dora.prepare, "qlora": qlora.prepare,
    "prompt_tuning": prompt_tuning.prepare, "prefix_tuning": prefix_tuning.prepare, "ia3": ia3.prepare,
    "dpo": preference.prepare, "kto": preference.prepare, "orpo": preference.prepare,
}
METHODS: dict[str, Method] = {
    name: Method(facts, _PREPARE[name], qlora.quantization_config if facts.quantized else None)
    for name, facts in METHOD_FACTS.items()
}

SFT_METHODS = [name for name, method in METHODS.items() if method.facts.preference is None]


def artifact_dir(config: Config, run: RunPaths) -> Path:
    """Where the trained artifact goes: `model/` for full fine-tunes, `adapter/` otherwise."""
    return run.model if METHODS[config.method.name].artifact == "model" else run.adapter


def load_base(model_dir: Path, method: Method) -> CausalLM:
    """The base model as the method trains it (4-bit for qlora, fp32 otherwise)."""
    from tunewright.modeling import load_model

    if method.quantization is None:
        return load_model(model_dir)
    model = load_model(model_dir, quantization_config=method.quantization())
    qlora.keep_one_cpu_kernel(model)
    return model


def prepare_model(model: CausalLM, config: MethodConfig) -> CausalLM:
    """Wrap `model` for training with the configured method; frozen weights stay frozen."""
    return METHODS[config.name].prepare(model, config)


def load_trained(model_dir: Path, artifact_dir: Path, method_name: str) -> CausalLM:
    """A trained artifact ready for inference: the full model, or the base (loaded the way the method
    trained it) with its adapter; safetensors only."""
    from peft import PeftModel

    from tunewright.modeling import load_model

    method = METHODS[method_name]
    if method.artifact == "model":
        model = load_model(artifact_dir)
    else:
        model = PeftModel.from_pretrained(load_base(model_dir, method), artifact_dir, is_trainable=False)
    model.eval()
    return model
