"""The batched step loop behind the server: one KV cache for every row, per-row adapter selection for
LoRA, per-row sampling, constraints, stop tokens and budgets, and a callback for every new token so
replies stream while their batch runs. Rows leave the batch as they finish, and new rows join between
steps (iteration-level batching): a joining row's prompt pass runs on its own, then its cache is
left-padded to the batch's width and it decodes with the rest. A row whose prompt opens with a cached
system prompt (prefix_cache.py) starts its prompt pass from that prefix's key/value states."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from transformers import LogitsProcessor

from tunewright.modeling import CausalLM, left_pad
from tunewright.serve.kv_cache import growing, plain_dynamic
from tunewright.serve.prefix_cache import PrefixCache, PrefixKey, PrefixStart, pad_states
from tunewright.serve.sampling import GREEDY, Sampling, Token, choose, generator_for

if TYPE_CHECKING:
    from tunewright.serve.stacked import StackedLora

BASE_ROW = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(frozen=True)
class Row:
    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    adapter: str  # peft adapter name, or "__base__" for the base model
    sampling: Sampling = GREEDY
    processors: tuple[LogitsProcessor, ...] = field(default=(), compare=False)  # this row's constraints
    prefix: PrefixKey | None = None  # the shared prefix its prompt opens with, for the prefix cache


# on_token(row key, token, is_last) -> keep going; False drops the row (the client went away)
TokenCallback = Callable[[int, Token, bool], bool]


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


class DecodeBatch:
    """Rows decoding together, each under a key of the caller's. With `per_row_adapters` each row runs
    through its own LoRA adapter: grouped LoRA (`stacked`, stacked.py) where it covers the batch's
    adapters, for prompt passes and steps alike, else peft's per-row path (`adapter_names`). State
    between steps: `mask` covers the cache plus the pending token, `positions` and `pending` are each
    row's next position and token."""

    def __init__(self, model: CausalLM, pad_id: int, per_row_adapters: bool, stacked: StackedLora | None,
                 prefixes: PrefixCache | None = None) -> None:
        self.model, self.pad_id, self.per_row_adapters, self.stacked = model, pad_id, per_row_adapters, stacked
        self.prefixes = prefixes
        self.rows: dict[int, Row] = {}
        self.context: dict[int, list[int]] = {}  # prompt + generated, for penalties and constraints
        self.generators: dict[int, torch.Generator | None] = {}
        self.live: list[int] = []  # keys, in batch order
        self.cache: Any = None
        self.mask = self.positions = self.pending = torch.empty(0, dtype=torch.long)
        self._stack: ExitStack | None = None  # the stacked adapters' hooks (or LoRA off) while on
        self._selected: list[int] | None = None  # the rows the stacked adapters are selected for

    @property
    def adapters(self) -> set[str]:
        return {self.rows[key].adapter for key in self.live}

    @property
    def joinable(self) -> bool:
        """Caches of plain dynamic layers can be padded and stacked (not sliding-window ones)."""
        return self.cache is None or plain_dynamic(self.cache)

    def use_stacked(self, stacked: StackedLora | None) -> None:
        if stacked is not self.stacked:
            self._stacked_off()
            self.stacked = stacked

    def join(self, rows: list[tuple[int, Row]], on_token: TokenCallback) -> None:
        """The prompt pass of new rows (from their cached prefixes, where held), their first tokens, and
        their place in the batch."""
        device = self.model.device
        prefixes = [row.prefix for _, row in rows]
        start = self.prefixes.start(prefixes) if self.prefixes is not None else PrefixStart.empty(len(rows))
        tails = [row.prompt_ids[length:] for (_, row), length in zip(rows, start.lengths, strict=True)]
        input_ids, tail_mask = (t.to(device) for t in left_pad(tails, self.pad_id))
        mask = torch.cat([start.mask.to(device), tail_mask], 1)
        positions = torch.tensor(start.lengths, device=device)[:, None] + (tail_mask.cumsum(-1) - 1).clamp(min=0)
        extra = self._adapters_for([row.adapter for _, row in rows])
        output = _forward(self.model, input_ids, mask, positions, start.cache, extra)
        self._selected = None  # the next step selects its own rows
        if self.prefixes is not None:
            self.prefixes.keep(prefixes, start, output.cache, [len(row.prompt_ids) for _, row in rows])
        for key, row in rows:
            self.rows[key], self.context[key] = row, list(row.prompt_ids)
            self.generators[key] = generator_for(row.sampling)
        keys = [key for key, _ in rows]
        tokens = self._choose(keys, output.logits[:, -1])
        keep = self._emit(keys, tokens, on_token)
        if not keep:
            return
        kept = torch.tensor(keep, device=device)
        output.cache.batch_select_indices(kept)
        mask = torch.cat([mask[kept], mask.new_ones((len(keep), 1))], 1)
        self._merge(growing(output.cache), [keys[i] for i in keep], mask, positions[kept, -1] + 1,
                    torch.tensor([tokens[i].id for i in keep], device=device))

    def step(self, on_token: TokenCallback) -> None:
        """One token for every live row."""
        extra: dict[str, Any] = {}
        if self._selected != self.live:
            extra = self._adapters_for([self.rows[key].adapter for key in self.live])
            self._selected = None if extra else list(self.live)
        output = _forward(self.model, self.pending[:, None], self.mask, self.positions[:, None], self.cache, extra)
        self.cache = output.cache
        tokens = self._choose(self.live, output.logits[:, -1])
        keep = self._emit(self.live, tokens, on_token)
        self.pending = torch.tensor([tokens[i].id for i in keep], device=self.mask.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        self.positions = self.positions + 1
        if len(keep) < len(self.live):
            self._keep(keep)

    def _adapters_for(self, adapters: list[str]) -> dict[str, Any]:
        """Sets up the next forward pass for rows with these adapters: grouped LoRA selected for them
        (nothing to pass on), LoRA off for base rows alone, peft's per-row `adapter_names`, or nothing
        for an unmixed model."""
        if self.stacked is None:
            if not self.per_row_adapters:
                return {}
            if any(adapter != BASE_ROW for adapter in adapters):
                self._stacked_off()  # LoRA back on, if base rows alone had it off
                return {"adapter_names": adapters}
            self._hold(self.model.disable_adapter)  # peft's per-row path would loop over every layer for nothing
            return {}
        self._hold(partial(self.stacked.active, self.model))
        self.stacked.select([None if adapter == BASE_ROW else adapter for adapter in adapters])
        return {}

    def _hold(self, context: Callable[[], AbstractContextManager[Any]]) -> None:
        """Enters `context` unless the batch already holds one (until `_stacked_off`)."""
        if self._stack is None:
            self._stack = ExitStack()
            self._stack.enter_context(context())

    def close(self) -> None:
        self._stacked_off()

    def _stacked_off(self) -> None:
        self._selected = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _choose(self, keys: list[int], logits: torch.Tensor) -> list[Token]:
        plain = [index for index, key in enumerate(keys)
                 if self.rows[key].sampling.plain_greedy and not self.rows[key].processors]
        tokens: list[Token | None] = [None] * len(keys)
        if plain:
            for index, token in zip(plain, logits[plain].argmax(-1).tolist(), strict=True):
                tokens[index] = Token(int(token))
        for index, key in enumerate(keys):
            if tokens[index] is None:
                row = self.rows[key]
                tokens[index] = choose(logits[index], row.sampling, row.processors, self.context[key],
                                       len(row.prompt_ids), self.generators[key])
        return [token for token in tokens if token is not None]

    def _emit(self, keys: list[int], tokens: list[Token], on_token: TokenCallback) -> list[int]:
        """Hands each token on; the slots of the rows that go on."""
        keep = []
        for slot, (key, token) in enumerate(zip(keys, tokens, strict=True)):
            row, context = self.rows[key], self.context[key]
            context.append(token.id)
            last = token.id in row.stop_ids or len(context) - len(row.prompt_ids) >= row.max_new_tokens
            if on_token(key, token, last) and not last:
                keep.append(slot)
            else:
                self._forget(key)
        return keep

    def _forget(self, key: int) -> None:
        del self.rows[key], self.context[key], self.generators[key]

    def _keep(self, slots: list[int]) -> None:
        """Only these batch slots stay; cache columns that are padding for every remaining row go."""
        self.live = [self.live[slot] for slot in slots]
        if not slots:
            self.cache, self.mask = None, torch.empty(0, dtype=torch.long)
            return
        kept = torch.tensor(slots, device=self.mask.device)
        self.cache.batch_select_indices(kept)
        self.mask, self.positions = self.mask[kept], self.positions[kept]
        unused = int((self.mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        if unused:
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]

    def _merge(self, cache: Any, keys: list[int], mask: torch.Tensor, positions: torch.Tensor,
               pending: torch.Tensor) -> None:
        """New rows' cache and state joined to the batch's, both left-padded to one width."""
        if self.cache is None:
            self.cache, self.live, self.mask, self.positions, self.pending = cache, keys, mask, positions, pending
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([pad_states(old.keys, width - 1), pad_states(new.keys, width - 1)])
            old.values = torch.cat([pad_states(old.values, width - 1), pad_states(new.values, width - 1)])
        self.mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)),
                               F.pad(mask, (width - mask.shape[1], 0))])
        self.positions = torch.cat([self.positions, positions])
        self.pending = torch.cat([self.pending, pending])
        self.live = self.live + keys


def decode_rows(model: CausalLM, rows: list[Row], pad_id: int, on_token: TokenCallback, per_row_adapters: bool,
                stacked: StackedLora | None = None, more: Callable[[DecodeBatch], list[Row]] | None = None,
                prefixes: PrefixCache | None = None) -> None:
    """Decode every row (keys 0..n-1). With `more`, it is asked between steps for rows to join; they
    take the next keys in order. With `prefixes`, prompt passes start from cached shared prefixes."""
    with torch.inference_mode():
        batch = DecodeBatch(model, pad_id, per_row_adapters, stacked, prefixes)
        try:
            batch.join(list(enumerate(rows)), on_token)
            next_key = len(rows)
            while True:
                joining = more(batch) if more is not None and batch.joinable else []
                if joining:
                    batch.join(list(enumerate(joining, start=next_key)), on_token)
                    next_key += len(joining)
                if not batch.live:
                    break
                batch.step(on_token)
        finally:
            batch.close()
