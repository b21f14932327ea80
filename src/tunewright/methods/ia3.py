"""IA3: learned per-channel scales on attention keys/values and the MLP (peft's per-architecture
defaults, or the listed modules); base frozen."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    from peft import IA3Config, get_peft_model

    targets = None if config.target_modules == "all-linear" else config.target_modules
    return get_peft_model(model, IA3Config(task_type="CAUSAL_LM", target_modules=targets))
