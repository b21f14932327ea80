"""Prompt tuning: learned virtual-token embeddings put before every input; base frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    from peft import PromptTuningConfig, get_peft_model

    peft_config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens)
    return get_peft_model(model, peft_config)
