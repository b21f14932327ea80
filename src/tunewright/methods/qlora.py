"""QLoRA: the frozen base loaded in 4-bit NF4 through bitsandbytes, LoRA adapters on top in fp32."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from peft import get_peft_model, prepare_model_for_kbit_training

from tunewright.errors import ModelError
from tunewright.methods.lora import lora_config

if TYPE_CHECKING:
    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def quantization_config() -> Any:
    import torch
    from transformers import BitsAndBytesConfig

    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelError("method qlora needs bitsandbytes (4-bit NF4 base): pip install 'bitsandbytes>=0.50', "
                         "or use method.name=lora")
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.float32)


def keep_one_cpu_kernel(model: CausalLM) -> None:
    """Keep every 4-bit layer on bitsandbytes' plain kernel. On a CPU with avx512_bf16 it would repack
    a layer's weights on the first forward in eval mode into an inference-only layout (absmax rounded
    to bf16, no autograd kernel, rows in blocks of 32); the validation passes inside training would
    then change the frozen base and the gradients of later steps, and results would differ by CPU."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    # Gradient checkpointing is the memory/speed trade a user opts into, not part of QLoRA itself.
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return get_peft_model(model, lora_config(config))
