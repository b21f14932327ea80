"""Mixed-adapter LoRA in two batched matmuls per layer. Every loaded adapter's A and B (B scaled) are held
as one tensor each, [adapters, in, rank] and [adapters, rank, out] (ranks padded with zeros to the
largest); for a decode step the batch's rows are gathered into one group per adapter (each padded to the
largest group), multiplied through their own adapter only (`torch.bmm`), and added back to their rows.
A prompt pass (many tokens per row) multiplies each adapter's rows through it in two plain matmuls:
there the matmuls are large and padding or gathering every row would cost more than the loop.
peft's per-row path (`adapter_names`) loops over the adapters in a batch, a few small kernels each, per
layer; here the count of kernels does not grow with the adapters. An earlier version multiplied every
row by all adapters at once and masked the other adapters' slices: as many kernels, but each row paid
for every adapter's rank (`bench/serve_step.py` compares the two costs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import torch

from tunewright.modeling import CausalLM


@dataclass(frozen=True)
class Plan:
    """Which rows go through which adapter: for steps, the gather of rows grouped by adapter (each group
    padded with row 0 to the largest), which gathered rows are real and the rows they are added back to;
    for prompt passes, each adapter's rows on their own."""

    gather: torch.Tensor
    real: torch.Tensor
    rows: torch.Tensor
    size: int
    groups: tuple[tuple[int, torch.Tensor], ...]  # (adapter index, its rows), adapters with rows only


class StackedLora:
    """Built from a peft model's plain LoRA Linear layers for a fixed set of loaded adapters."""

    def __init__(self, model: CausalLM, adapters: list[str]) -> None:
        from peft.tuners.lora import Linear

        self.adapters = adapters
        self.layers: list[tuple[Any, torch.Tensor, torch.Tensor]] = []
        for layer in model.modules():
            if not isinstance(layer, Linear):
                continue
            module = cast(Any, layer)  # nn.Module attribute access is untyped
            held = [name for name in adapters if name in module.lora_A]
            if not held:
                continue
            first = module.lora_A[held[0]].weight  # its dtype: peft keeps adapter weights in fp32 on a bf16 base
            rank = max(module.r[name] for name in held)
            a = first.new_zeros((len(adapters), module.in_features, rank))
            b = first.new_zeros((len(adapters), rank, module.out_features))
            for index, name in enumerate(adapters):
                if name in module.lora_A:
                    lora_a, lora_b = module.lora_A[name].weight, module.lora_B[name].weight
                    a[index, :, :lora_a.shape[0]] = lora_a.T
                    b[index, :lora_b.shape[1]] = lora_b.T * module.scaling[name]
            self.layers.append((module, a, b))
        self._plan: Plan | None = None

    @staticmethod
    def supports(model: CausalLM, adapters: list[str]) -> bool:
        """True when every module holding these adapters is a plain LoRA Linear layer (no DoRA, no
        embedding LoRA, no fully trained modules)."""
        from peft.tuners.lora import Linear, LoraLayer
        from peft.utils import ModulesToSaveWrapper

        for module in model.modules():
            if isinstance(module, ModulesToSaveWrapper) and set(adapters) & set(module.modules_to_save):
                return False
            if isinstance(module, LoraLayer) and set(adapters) & set(module.lora_A):
                if not isinstance(module, Linear) or any(module.use_dora.get(name) for name in adapters):
                    return False
                if set(adapters) & set(module.lora_embedding_A):
                    return False
        return True

    def select(self, row_adapters: list[str | None]) -> None:
        """The adapter of each row now in the batch (None: the base model). Plans the gather: row indices
        grouped by adapter, each group padded (with row 0) to the largest; which gathered rows are real;
        and the rows they are added back to."""
        groups = [[row for row, name in enumerate(row_adapters) if name == adapter] for adapter in self.adapters]
        size = max(map(len, groups), default=0)
        if size == 0:
            self._plan = None
            return
        gather = [row for group in groups for row in group + [0] * (size - len(group))]
        real = [index * size + slot for index, group in enumerate(groups) for slot in range(len(group))]
        rows = [row for group in groups for row in group]
        device = self.layers[0][1].device if self.layers else None
        self._plan = Plan(torch.tensor(gather, device=device), torch.tensor(real, device=device),
                          torch.tensor(rows, device=device), size,
                          tuple((index, torch.tensor(group, device=device)) for index, group in enumerate(groups)
                                if group))

    @contextmanager
    def active(self, model: CausalLM) -> Iterator[None]:
        """Within the block the model's own LoRA is off and each layer adds the stacked delta."""
        def add_delta(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            if self._plan is None:  # only base rows
                return output
            a, b = hooked[id(module)]
            plan, x = self._plan, args[0].to(a.dtype)
            if x.shape[1] > 1:  # a prompt pass: per adapter, matmuls over all its rows' tokens are large
                for index, rows in plan.groups:
                    output.index_add_(0, rows, ((x[rows] @ a[index]) @ b[index]).to(output.dtype))
                return output
            grouped = x[plan.gather].reshape(a.shape[0], -1, a.shape[1])  # [adapters, size * tokens, in]
            delta = torch.bmm(torch.bmm(grouped, a), b).reshape(a.shape[0] * plan.size, *output.shape[1:])
            return output.index_add_(0, plan.rows, delta[plan.real].to(output.dtype))

        hooked = {id(module): (a, b) for module, a, b in self.layers}
        handles = [module.register_forward_hook(add_delta) for module, _, _ in self.layers]
        try:
            with model.disable_adapter():
                yield
        finally:
            for handle in handles:
                handle.remove()
