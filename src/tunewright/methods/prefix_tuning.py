"""Prefix tuning: learned key/value prefixes in every attention layer; base frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    from peft import PrefixTuningConfig, get_peft_model

    peft_config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=config.num_virtual_tokens)
    return get_peft_model(model, peft_config)
