"""The compute precision a training run uses, and why: recorded in training.json and printed at the
start of training, so a result that differs on another machine can be traced to its precision."""

from __future__ import annotations

from dataclasses import dataclass

from tunewright.modeling import fast_bf16_available


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" or "bf16" (bf16 is autocast: weights and optimizer state stay fp32)
    reason: str


def resolve_precision(choice: str) -> Precision:
    """'auto' is bf16 only where bf16 matmuls are fast (CUDA with bf16, CPUs with avx512_bf16/AMX);
    elsewhere bf16 is far slower than fp32, so fp32. An explicit choice is kept as it is."""
    if choice != "auto":
        return Precision(choice, f"training.precision is {choice}")
    if fast_bf16_available():
        return Precision("bf16", "training.precision is auto and this machine has fast bf16 "
                                 "(CUDA with bf16, or a CPU with avx512_bf16 / AMX)")
    return Precision("fp32", "training.precision is auto and this machine has no fast bf16 "
                             "(bf16 autocast would be far slower here)")
