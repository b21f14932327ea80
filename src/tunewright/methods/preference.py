"""dpo, kto and orpo: the model they train is a LoRA adapter, as for lora; what differs is the data and the
objective, which trl's trainers bring (train/preference.py). A fresh adapter is left to the trainer, which
then uses the base with the adapter disabled as the reference; `method.init_from` starts from an SFT run's
adapter instead (`from_sft_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tunewright.errors import ConfigError
from tunewright.methods import lora

if TYPE_CHECKING:
    from peft import LoraConfig

    from tunewright.config import MethodConfig
    from tunewright.modeling import CausalLM


def prepare(model: CausalLM, config: MethodConfig) -> CausalLM:
    """The model as `plan` and the method tests see it: LoRA on the base."""
    return lora.prepare(model, config)


def adapter_config(config: MethodConfig) -> LoraConfig:
    """The LoRA adapter trl's trainer puts on the base (`peft_config=`)."""
    return lora.lora_config(config)


def from_sft_run(model: CausalLM, run_dir: Path) -> CausalLM:
    """The base with the SFT run's adapter, trainable; trl copies it into a frozen 'ref' adapter."""
    from peft import PeftModel

    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise ConfigError(f"method.init_from: {run_dir} has no adapter/adapter_config.json; point it at a finished "
                          "lora run directory (tunewright train writes runs/<name>/adapter/)")
    return PeftModel.from_pretrained(model, adapter, is_trainable=True)
