"""`tunewright plan`: how much memory a method needs for a model before anything is trained (weights,
gradients, optimizer state, activations), a rough time per step, whether it fits a GPU, and what to
do instead when it does not. Pure arithmetic on the model's shape; calibrated against measured peaks
of every method on the packaged 135M model (bench/plan_memory.py)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from tunewright.errors import ConfigError
from tunewright.methods.facts import METHOD_FACTS, method_names

GB = 1e9
ADAM_BYTES = 8  # two fp32 moments per trainable parameter
NF4_BYTES = 0.53  # 4-bit weights plus double-quantized block scales


@dataclass(frozen=True)
class ModelShape:
    """What memory depends on: sizes of a Llama-style decoder."""

    name: str
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool = False

    @property
    def parameters(self) -> int:
        kv = self.hidden * self.kv_heads // self.heads
        per_layer = 2 * self.hidden * self.hidden + 2 * self.hidden * kv + 3 * self.hidden * self.intermediate
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return self.layers * (per_layer + 2 * self.hidden) + embeddings + self.hidden

    @property
    def kv_width(self) -> int:
        """Width of the key and value projections (smaller than hidden with grouped-query attention)."""
        return self.hidden * self.kv_heads // self.heads

    @property
    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear in one layer: q, o, k, v, gate, up, down."""
        return [(self.hidden, self.hidden)] * 2 + [(self.hidden, self.kv_width)] * 2 + \
               [(self.hidden, self.intermediate)] * 2 + [(self.intermediate, self.hidden)]

    @property
    def linear_parameters(self) -> int:
        """Parameters in the layers' linear weights (what 4-bit quantization and LoRA touch)."""
        return self.parameters - self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @classmethod
    def from_dir(cls, path: Path) -> ModelShape:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        return cls(path.name, config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"],
                   config["vocab_size"], config["num_attention_heads"],
                   config.get("num_key_value_heads") or config["num_attention_heads"],
                   bool(config.get("tie_word_embeddings", False)))


# Published shapes of common open models, by size.
KNOWN_SIZES = {
    "135m": ModelShape("SmolLM2-135M", 30, 576, 1536, 49152, 9, 3, True),
    "360m": ModelShape("SmolLM2-360M", 32, 960, 2560, 49152, 15, 5, True),
    "1.7b": ModelShape("SmolLM2-1.7B", 24, 2048, 8192, 49152, 32, 32, True),
    "3b": ModelShape("Llama-3.2-3B", 28, 3072, 8192, 128256, 24, 8, True),
    "7b": ModelShape("Qwen2.5-7B", 28, 3584, 18944, 152064, 28, 4),
    "8b": ModelShape("Llama-3.1-8B", 32, 4096, 14336, 128256, 32, 8),
    "13b": ModelShape("Llama-2-13B", 40, 5120, 13824, 32000, 40, 40),
    "70b": ModelShape("Llama-3.1-70B", 80, 8192, 28672, 128256, 64, 8),
}


def resolve_shape(size_or_dir: str) -> ModelShape:
    path = Path(size_or_dir).expanduser()
    if (path / "config.json").is_file():
        return ModelShape.from_dir(path)
    key = re.sub(r"\s+", "", size_or_dir.lower())
    if key in KNOWN_SIZES:
        return KNOWN_SIZES[key]
    raise ConfigError(f"--model {size_or_dir!r}: not a model directory with config.json nor a known size "
                      f"({', '.join(KNOWN_SIZES)})")


@dataclass(frozen=True)
class MemoryPlan:
    method: str
    weights: float  # bytes
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations


def trainable_parameters(shape: ModelShape, method: str, r: int = 16, virtual_tokens: int = 20) -> int:
    if method not in METHOD_FACTS:
        raise ConfigError(f"--method {method!r}: one of {method_names()}")
    return METHOD_FACTS[method].trainable_parameters(shape, r, virtual_tokens)


def plan_memory(shape: ModelShape, method: str, seq_len: int, batch: int, precision: str = "bf16") -> MemoryPlan:
    """Peak training memory in bytes. Trainable weights, their gradients and AdamW state are fp32
    (master weights); a frozen base is held in the compute precision (NF4 for qlora)."""
    trainable = trainable_parameters(shape, method)
    facts = METHOD_FACTS[method]
    compute_bytes = 2 if precision == "bf16" else 4
    embeddings = shape.parameters - shape.linear_parameters
    if facts.artifact == "model":
        weights = 4.0 * shape.parameters
    elif facts.quantized:
        weights = NF4_BYTES * shape.linear_parameters + compute_bytes * embeddings + 4.0 * trainable
    else:
        weights = compute_bytes * shape.parameters + 4.0 * trainable
    weights += facts.extra_weight_bytes * shape.linear_parameters
    tokens = seq_len * batch
    hidden_terms, intermediate_terms = facts.activation_widths
    per_token = shape.layers * (hidden_terms * shape.hidden + intermediate_terms * shape.intermediate)
    logits = 3.0 * shape.vocab * 4  # fp32 logits, their softmax and gradient, for every token (upper bound)
    activations = tokens * (per_token * compute_bytes + logits)
    return MemoryPlan(method, weights, 4.0 * trainable, ADAM_BYTES * trainable, activations)


def step_seconds(shape: ModelShape, method: str, seq_len: int, batch: int, tflops: float, mfu: float = 0.4) -> float:
    """Rough seconds per optimizer step: ~6N FLOPs per token for full fine-tuning (forward, and
    backward for activations and weights), ~4N for adapters (no weight gradients for the base)."""
    flops_per_token = METHOD_FACTS[method].flops_per_parameter * shape.parameters
    return flops_per_token * seq_len * batch / (tflops * 1e12 * mfu)


@dataclass(frozen=True)
class Plan:
    shape: ModelShape
    memory: MemoryPlan
    seconds_per_step: float
    gpu_bytes: float | None
    suggestion: str

    @property
    def fits(self) -> bool | None:
        return None if self.gpu_bytes is None else self.memory.total <= self.gpu_bytes


def make_plan(size_or_dir: str, method: str, seq_len: int, batch: int, gpu_memory_gb: float | None,
              precision: str = "bf16", tflops: float = 100.0) -> Plan:
    shape = resolve_shape(size_or_dir)
    memory = plan_memory(shape, method, seq_len, batch, precision)
    gpu = gpu_memory_gb * GB if gpu_memory_gb else None
    return Plan(shape, memory, step_seconds(shape, method, seq_len, batch, tflops), gpu,
                _suggest(shape, memory, seq_len, batch, gpu, precision))


def _suggest(shape: ModelShape, memory: MemoryPlan, seq_len: int, batch: int, gpu: float | None,
             precision: str) -> str:
    needs = {m: plan_memory(shape, m, seq_len, batch, precision).total for m in ("full", "lora", "qlora")}
    summary = "; ".join(f"{m} ~{_gb(b)}" for m, b in needs.items())
    if gpu is None:
        return f"{shape.name}: {summary} (pass --gpu-memory GB to check a GPU)"
    if memory.total <= gpu:
        return f"fits: {memory.method} needs ~{_gb(memory.total)} of {_gb(gpu)}"
    for method in ("lora", "qlora"):
        for smaller in sorted({batch, 4, 2, 1}, reverse=True):
            if smaller <= batch and plan_memory(shape, method, seq_len, smaller, precision).total <= gpu:
                steps = batch // smaller
                accumulate = f" and gradient accumulation x{steps}" if steps > 1 else ""
                return (f"does not fit: {summary}; on a {_gb(gpu)} GPU use {method} with batch {smaller}"
                        f"{accumulate} at seq-len {seq_len}")
    return f"does not fit: {summary}; even qlora at batch 1 needs more than {_gb(gpu)}: shorten --seq-len or " \
           "use several GPUs (--nproc with training.distributed.strategy fsdp)"


def _gb(value: float) -> str:
    return f"{value / 1e12:.1f} TB" if value >= 1e12 else f"{value / GB:.1f} GB"
