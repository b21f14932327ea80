"""What each fine-tuning method is, as plain data: what it saves, whether it merges exactly, how much
data it wants, and its terms for `plan` (parameters it trains, memory it adds). Config validation,
CLI help, `data check` and `plan` read these, so this module never imports torch (directly or through
another module); `methods/__init__.py` pairs each entry with the code that prepares the model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tunewright.plan import ModelShape

ADAPTER_MIN_EXAMPLES = 100
FULL_MIN_EXAMPLES = 10_000
ADAPTER_MAX_EXAMPLES = 1_000_000  # beyond this a full fine-tune usually repays its cost


def _full(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    return shape.parameters


def _lora(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    """A (r x in) and B (out x r) on every adapted linear."""
    return shape.layers * sum(r * (i + o) for i, o in shape.linears)


def _dora(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    """LoRA's A and B, plus one magnitude per output channel of every adapted linear."""
    return shape.layers * sum(r * (i + o) + o for i, o in shape.linears)


def _ia3(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    """One scale per channel of the keys, the values and the MLP's intermediate activations."""
    return shape.layers * (2 * shape.kv_width + shape.intermediate)


def _prompt_tuning(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    return virtual_tokens * shape.hidden


def _prefix_tuning(shape: ModelShape, r: int, virtual_tokens: int) -> int:
    return virtual_tokens * shape.layers * 2 * shape.kv_width


@dataclass(frozen=True)
class MethodFacts:
    description: str  # one phrase, for help texts
    # (model shape, LoRA rank, virtual tokens) -> parameters it trains, for `plan`
    trainable_parameters: Callable[[ModelShape, int, int], int]
    artifact: Literal["adapter", "model"] = "adapter"  # a PEFT adapter, or every weight (safetensors)
    # True where the model sees exactly the input sequence, so the shared-prefix loss (which feeds a
    # KV cache) is exact; prompt and prefix tuning add virtual tokens and use the plain loss.
    shares_prefix: bool = True
    quantized: bool = False  # the frozen base is 4-bit NF4
    merges_exactly: bool = False  # folds into fp32 weights exactly: evaluation merges it to generate faster
    min_examples: int = ADAPTER_MIN_EXAMPLES  # `data check` warns below this
    max_examples: int | None = ADAPTER_MAX_EXAMPLES  # ... and above this suggests method full
    # `plan`: tensors saved for backward per token and layer, in multiples of the hidden and intermediate
    # widths, fitted to measured peaks (bench/results/plan_memory_gpu.json)
    activation_widths: tuple[float, float] = (8.0, 3.0)
    extra_weight_bytes: float = 0.0  # `plan`: bytes per linear parameter the method adds
    flops_per_parameter: int = 4  # per token: forward + activation gradients; full adds weight gradients
    # Trains on preference rows (trl's trainers, LoRA adapters) instead of SFT examples; "pairs" or "unpaired"
    # (KTO: each row one answer marked desirable or not; pairs are split into one of each).
    preference: Literal["pairs", "unpaired"] | None = None
    ranked: bool = False  # trains low-rank matrices of rank method.r (what `sweep` varies on its r axis)


METHOD_FACTS: dict[str, MethodFacts] = {
    "full": MethodFacts("every weight", _full, artifact="model", min_examples=FULL_MIN_EXAMPLES,
                        max_examples=None, activation_widths=(10.0, 3.5), flops_per_parameter=6),
    "lora": MethodFacts("low-rank adapters", _lora, merges_exactly=True, ranked=True, activation_widths=(16.0, 5.25)),
    # DoRA materialises every adapted weight to take its norms; part of that stays alive for backward.
    "dora": MethodFacts("LoRA with a magnitude/direction split", _dora, merges_exactly=True, ranked=True,
                        activation_widths=(22.0, 8.25), extra_weight_bytes=2.5),
    "qlora": MethodFacts("LoRA on a 4-bit NF4 base", _lora, quantized=True, ranked=True,
                         activation_widths=(16.0, 5.25)),
    "prompt_tuning": MethodFacts("virtual input tokens", _prompt_tuning, shares_prefix=False),
    "prefix_tuning": MethodFacts("per-layer key/value prefixes", _prefix_tuning, shares_prefix=False),
    "ia3": MethodFacts("per-channel scales", _ia3, activation_widths=(9.0, 3.75)),
    # Preference methods forward a chosen and a rejected answer per pair (DPO also a reference pass with the
    # adapter disabled, without gradients): about twice LoRA's activations per row.
    "dpo": MethodFacts("direct preference optimisation on pairs, LoRA", _lora, merges_exactly=True,
                       activation_widths=(32.0, 10.5), preference="pairs"),
    "kto": MethodFacts("Kahneman-Tversky optimisation on answers rated good or bad, LoRA", _lora,
                       merges_exactly=True, activation_widths=(32.0, 10.5), preference="unpaired"),
    "orpo": MethodFacts("odds-ratio preference optimisation on pairs, no reference pass, LoRA", _lora,
                        merges_exactly=True, activation_widths=(32.0, 10.5), preference="pairs"),
}


def method_names() -> str:
    """'full, lora, ...': every method, for help texts and error messages."""
    return ", ".join(METHOD_FACTS)
