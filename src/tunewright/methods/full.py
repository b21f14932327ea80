"""Full fine-tuning: every weight trains; the artifact is a whole model directory (safetensors)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
