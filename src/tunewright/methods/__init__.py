"""Fine-tuning methods: each module says how to load the base, how to make it trainable and what it
saves; the training loop is shared. Adding a method is one module and one line in `METHODS`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tunewright.methods import dora, full, ia3, lora, prefix_tuning, prompt_tuning, qlora

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


@dataclass(frozen=True)
class Method:
    prepare: Callable[[CausalLM, MethodConfig], CausalLM]  # base model in, trainable model out
    artifact: Literal["adapter", "model"] = "adapter"  # a PEFT adapter, or every weight (safetensors)
    # True where the model sees exactly the input sequence, so the shared-prefix loss (which feeds a
    # KV cache) is exact; prompt and prefix tuning add virtual tokens and use the plain loss.
    shares_prefix: bool = True
    quantization: Callable[[], Any] | None = None  # builds the base model's quantization config


METHODS: dict[str, Method] = {
    "full": Method(full.prepare, artifact="model"),
    "lora": Method(lora.prepare),
    "dora": Method(dora.prepare),
    "qlora": Method(qlora.prepare, quantization=qlora.quantization_config),
    "prompt_tuning": Method(prompt_tuning.prepare, shares_prefix=False),
    "prefix_tuning": Method(prefix_tuning.prepare, shares_prefix=False),
    "ia3": Method(ia3.prepare),
}


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
