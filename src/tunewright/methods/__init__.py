"""Fine-tuning methods: each module prepares a base model for training; the loop is shared.

Adding a method is one module with a `prepare` function and one line in `METHODS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from tunewright.methods import lora

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


class Method(Protocol):
    def __call__(self, model: CausalLM, config: MethodConfig) -> CausalLM: ...


METHODS: dict[str, Method] = {
    "lora": lora.prepare,
}


def prepare_model(model: CausalLM, config: MethodConfig) -> CausalLM:
    """Wrap `model` for training with the configured method; frozen weights stay frozen."""
    return METHODS[config.name](model, config)
