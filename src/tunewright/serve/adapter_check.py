"""Checks that an adapter fits the served base before it can answer a request: the weights file whole,
every LoRA tensor shaped for the base module it names (from the safetensors headers alone, no weights
read), and, at registration, the adapter really loaded onto the base and run once in a separate process
with a time limit."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError

PEFT_PREFIX = "base_model.model."
VERIFY_TIMEOUT_S = 120.0


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header; refuses a file shorter than its header says."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ModelError(f"{path}: truncated safetensors file ({size} bytes); copy it again")
        (header_size,) = struct.unpack("<Q", head)
        if 8 + header_size > size:
            raise ModelError(f"{path}: truncated safetensors file (header of {header_size} bytes, file of "
                             f"{size}); copy it again")
        try:
            header: dict[str, Any] = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ModelError(f"{path}: not a safetensors file (unreadable header)") from None
    header.pop("__metadata__", None)
    end = max((int(meta["data_offsets"][1]) for meta in header.values()), default=0)
    if 8 + header_size + end > size:
        raise ModelError(f"{path}: truncated safetensors file ({size} bytes, its header needs "
                         f"{8 + header_size + end}); copy it again")
    return {name: tuple(int(n) for n in meta["shape"]) for name, meta in header.items()}


def base_shapes(base_dir: Path) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for weights in sorted(base_dir.glob("*.safetensors")):
        shapes.update(safetensors_shapes(weights))
    return shapes


def check_lora_shapes(adapter_dir: Path, base: dict[str, tuple[int, ...]]) -> None:
    """Every lora_A / lora_B pair names a base module, matches its in/out features and the configured
    rank (`r`, unless a rank_pattern varies it); a fully trained module (modules_to_save) has its base
    tensor's shape."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    rank = config.get("r") if isinstance(config.get("r"), int) and not config.get("rank_pattern") else None
    shapes = safetensors_shapes(adapter_dir / "adapter_model.safetensors")
    for key, shape in shapes.items():
        name = key.removeprefix(PEFT_PREFIX)
        for part, embedding in ((".lora_A.weight", False), (".lora_B.weight", False),
                                (".lora_embedding_A", True), (".lora_embedding_B", True)):
            if name.endswith(part):
                _check_factor(adapter_dir, name, name.removesuffix(part), part, shape, base, rank, embedding)
                break
        else:
            if name in base and base[name] != shape and "lora_" not in name:
                raise ModelError(f"{adapter_dir}: {name} has shape {list(shape)}, the base's is "
                                 f"{list(base[name])}; this adapter was trained on another base model")


def _check_factor(adapter_dir: Path, key: str, module: str, part: str, shape: tuple[int, ...],
                  base: dict[str, tuple[int, ...]], rank: int | None, embedding: bool) -> None:
    target = base.get(f"{module}.weight")
    if target is None:
        raise ModelError(f"{adapter_dir}: {key} adapts {module}, which the base model does not have; "
                         "this adapter was trained on another base model")
    if len(shape) != 2 or len(target) != 2:
        raise ModelError(f"{adapter_dir}: {key} has shape {list(shape)}; a LoRA factor is a matrix")
    # Linear weight is (out, in): A is (r, in), B is (out, r). Embedding weight is (num, dim): A is
    # (r, num), B is (dim, r).
    first = part.endswith("A.weight") or part.endswith("embedding_A")
    want_features = (target[0] if embedding else target[1]) if first else (target[1] if embedding else target[0])
    features, r = (shape[1], shape[0]) if first else (shape[0], shape[1])
    if features != want_features:
        raise ModelError(f"{adapter_dir}: {key} has shape {list(shape)}, which does not fit the base's "
                         f"{module} {list(target)}; this adapter was trained on another base model")
    if rank is not None and r != rank:
        raise ModelError(f"{adapter_dir}: {key} has rank {r} but adapter_config.json says r={rank}; "
                         "the config and weights do not belong together")


def verify_adapter(base_dir: Path, base: dict[str, tuple[int, ...]], adapter_dir: Path,
                   timeout_s: float = VERIFY_TIMEOUT_S) -> None:
    """Everything checked before an adapter is registered: shapes first (cheap), then a real load."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    if str(config.get("peft_type", "")).upper() == "LORA":
        check_lora_shapes(adapter_dir, base)
    verify_loads(base_dir, adapter_dir, timeout_s)


def verify_loads(base_dir: Path, adapter_dir: Path, timeout_s: float = VERIFY_TIMEOUT_S) -> None:
    """Load the adapter onto the base and run one forward pass in a separate process (a crash or a hang
    there cannot touch the server); raises ModelError with the worker's reason."""
    command = [sys.executable, "-m", "tunewright.serve.adapter_check", str(base_dir), str(adapter_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ModelError(f"{adapter_dir}: loading the adapter did not finish within {timeout_s:.0f} s; "
                         "refused") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"the check exited with {done.returncode}"
        raise ModelError(f"{adapter_dir}: the adapter does not load onto this base: {reason}")


def _load_and_run(base_dir: Path, adapter_dir: Path) -> None:
    """The worker: peft loads the adapter strictly (no missing or unexpected keys) and the model answers
    a few tokens with finite logits."""
    import torch
    from peft import PeftModel

    from tunewright.modeling import load_model

    model = PeftModel.from_pretrained(load_model(base_dir), adapter_dir, adapter_name="check").eval()
    with torch.inference_mode():
        ids = torch.tensor([[1, 2, 3, 4]])
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    if not torch.isfinite(logits).all():
        raise ModelError("the adapter gives non-finite logits")


if __name__ == "__main__":
    try:
        _load_and_run(Path(sys.argv[1]), Path(sys.argv[2]))
    except Exception as exc:
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}", file=sys.stderr)
        sys.exit(1)
