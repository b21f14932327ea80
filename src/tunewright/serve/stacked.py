"""Mixed-adapter LoRA as two matmuls per layer: every loaded adapter's A and B (scaled) are concatenated
along the rank, each row multiplies by all of them and a row mask keeps only its own adapter's slice
(zeros for base rows). peft's per-row path (`adapter_names`) loops over the adapters in a batch, a few
small kernels each, per layer; here the count of kernels does not grow with the adapters, which is what
makes a batch over 8 adapters nearly as fast as one over the base."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import torch

from tunewright.modeling import CausalLM


class StackedLora:
    """Built from a peft model's plain LoRA Linear layers for a fixed set of loaded adapters."""

    def __init__(self, model: CausalLM, adapters: list[str]) -> None:
        from peft.tuners.lora import Linear

        self.adapters = adapters
        self.layers: list[tuple[Any, torch.Tensor, torch.Tensor, tuple[int, ...]]] = []
        for layer in model.modules():
            if not isinstance(layer, Linear):
                continue
            module = cast(Any, layer)  # nn.Module attribute access is untyped
            present = [name for name in adapters if name in module.lora_A]
            if not present:
                continue
            ranks = tuple(module.r[name] if name in module.lora_A else 0 for name in adapters)
            a = torch.cat([module.lora_A[name].weight.T for name in present], dim=1)  # in x R
            b = torch.cat([module.lora_B[name].weight.T * module.scaling[name] for name in present], dim=0)  # R x out
            self.layers.append((module, a.contiguous(), b.contiguous(), ranks))
        self._masks: dict[tuple[int, ...], torch.Tensor] = {}
        self._rows: list[str | None] = []

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
        """The adapter of each row now in the batch (None: the base model); masks follow."""
        self._masks.clear()
        self._rows = row_adapters

    def _mask(self, ranks: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        if ranks not in self._masks:
            starts = [sum(ranks[:index]) for index in range(len(ranks))]
            mask = torch.zeros(len(self._rows), sum(ranks), dtype=dtype)
            for row, name in enumerate(self._rows):
                if name is not None:
                    index = self.adapters.index(name)
                    mask[row, starts[index]:starts[index] + ranks[index]] = 1
            self._masks[ranks] = mask.to(device)[:, None, :]
        return self._masks[ranks]

    @contextmanager
    def active(self, model: CausalLM) -> Iterator[None]:
        """Within the block the model's own LoRA is off and each layer adds the stacked delta."""
        def add_delta(module: Any, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            a, b, ranks = hooked[id(module)]
            x = args[0].to(a.dtype)
            delta: torch.Tensor = ((x @ a) * self._mask(ranks, a.device, a.dtype)) @ b
            return output + delta.to(output.dtype)  # peft keeps adapter weights in fp32 on a bf16 base

        hooked = {id(module): (a, b, ranks) for module, a, b, ranks in self.layers}
        handles = [module.register_forward_hook(add_delta) for module, _, _, _ in self.layers]
        try:
            with model.disable_adapter():
                yield
        finally:
            for handle in handles:
                handle.remove()
