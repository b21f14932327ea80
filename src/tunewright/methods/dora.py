"""DoRA: LoRA with each adapted weight split into magnitude and direction; base frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunewright.methods.lora import lora_config

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(config, use_dora=True))
