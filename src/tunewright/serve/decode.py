"""The batched greedy step loop behind the server: left-padded prompts, one KV cache, per-row adapter
selection for LoRA, per-row stop tokens and budgets, and a callback for every new token so replies can
stream while their batch is still running. Finished rows leave the batch."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessor

from tunewright.modeling import CausalLM, left_pad

if TYPE_CHECKING:
    from tunewright.serve.stacked import StackedLora

BASE_ROW = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Row:
    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    adapter: str  # peft adapter name, or "__base__" for the base model
    processor: LogitsProcessor | None = None  # this row's constraint (serve/response_format.py), fresh per request


# on_token(row index, token id, is_last) -> keep going; False drops the row (the client went away)
TokenCallback = Callable[[int, int, bool], bool]


def remove_row_hooks(model: CausalLM) -> int:
    """Remove the per-row `adapter_names` hooks peft installs for a forward pass. peft removes them only
    when the forward returns; after one that raised they would pin every later batch to that batch's
    row count. Returns how many were removed."""
    removed = 0
    for module in model.modules():
        for key, hook in list(module._forward_pre_hooks.items()):
            if isinstance(hook, partial) and getattr(hook.func, "__name__", "") == "_adapter_names_pre_forward_hook":
                del module._forward_pre_hooks[key]
                module._forward_pre_hooks_with_kwargs.pop(key, None)
                removed += 1
    return removed


def _forward(model: CausalLM, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor,
             cache: Any, extra: dict[str, Any]) -> Any:
    """One forward step; peft's per-row hooks (`adapter_names`) are removed if it raises, so a failed
    batch leaves nothing behind for the next one."""
    try:
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                     cache=cache, use_cache=True, logits_to_keep=1, **extra)
    except BaseException:
        if extra:
            remove_row_hooks(model)
        raise


@torch.inference_mode()
def decode_rows(model: CausalLM, rows: list[Row], pad_id: int, on_token: TokenCallback,
                per_row_adapters: bool, stacked: StackedLora | None = None) -> None:
    """Greedy-decode every row. With `per_row_adapters`, each row runs through its own LoRA adapter in
    the same forward pass (peft's `adapter_names`); otherwise the model's active adapter answers. With
    `stacked` too, only the prompt pass goes through peft's per-row path (its few large matmuls per
    adapter cost little there), and every one-token step after it through the stacked adapters."""
    input_ids, attention_mask = left_pad([row.prompt_ids for row in rows], pad_id)
    device = model.device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    live = list(range(len(rows)))  # indices into `rows` of the rows still in the batch
    counts = [0] * len(rows)
    generated: list[list[int]] = [[] for _ in rows]  # what constrained rows' processors are shown
    cache = None
    selected: list[int] = []  # the rows the stacked masks were built for
    with ExitStack() as steps:
        while live:
            if stacked is not None and cache is not None and not selected:
                steps.enter_context(stacked.active(model))
            if stacked is not None and cache is not None and selected != live:
                stacked.select([None if rows[i].adapter == BASE_ROW else rows[i].adapter for i in live])
                selected = list(live)
            per_row = per_row_adapters and (stacked is None or cache is None)
            extra = {"adapter_names": [rows[i].adapter for i in live]} if per_row else {}
            output = _forward(model, input_ids, attention_mask, positions, cache, extra)
            cache = output.cache
            next_tokens = _constrained(output.logits[:, -1], rows, live, generated).argmax(-1)
            keep: list[int] = []
            for slot, (index, token) in enumerate(zip(live, next_tokens.tolist(), strict=True)):
                counts[index] += 1
                generated[index].append(token)
                last = token in rows[index].stop_ids or counts[index] >= rows[index].max_new_tokens
                if on_token(index, token, last) and not last:
                    keep.append(slot)
            if len(keep) < len(live):
                if not keep:
                    break
                kept = torch.tensor(keep, device=device)
                cache.batch_select_indices(kept)
                next_tokens, attention_mask, positions = next_tokens[kept], attention_mask[kept], positions[kept]
                live = [live[slot] for slot in keep]
            input_ids = next_tokens[:, None]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(live), 1))], dim=1)
            positions = positions[:, -1:] + 1


def _constrained(logits: torch.Tensor, rows: list[Row], live: list[int], generated: list[list[int]]) -> torch.Tensor:
    """Each live row with a processor gets its logits masked, seeing that row's ids so far ([1, t])."""
    for slot, index in enumerate(live):
        processor = rows[index].processor
        if processor is not None:
            ids = torch.tensor([rows[index].prompt_ids + generated[index]], dtype=torch.long)
            logits[slot:slot + 1] = processor(ids, logits[slot:slot + 1])
    return logits
