"""LoRA: low-rank adapters on the chosen linear layers (all of them by default); base frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peft import LoraConfig

    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def lora_config(config: MethodConfig, **extra: Any) -> LoraConfig:
    from peft import LoraConfig

    return LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        task_type="CAUSAL_LM",
        **extra,
    )


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    from peft import get_peft_model

    return get_peft_model(model, lora_config(config))
