"""The prefix cache: the key/value states of the opening that many requests of one model share (their
system prompt, or the template's default one, up to the user's text), kept from the first such
request's prompt pass so the next ones run their prompt pass only on the tokens after it. Bounded in
bytes (least recently used leave first). A key holds the adapter and its load as well as the prefix's
token ids, so states computed under one adapter (or the base) never start another's rows; an adapter's
entries go when the pool unloads it."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

import torch
import torch.nn.functional as F
from jinja2 import TemplateError
from transformers.cache_utils import DynamicCache, DynamicLayer

from tunewright.chat_content import chat_ids

MIN_PREFIX_TOKENS = 16  # shorter system prompts cost too little to be worth an entry
DEFAULT_BUDGET_BYTES = 256 * 2**20
PROBES = ("0", "1")  # two user turns whose renderings part at the turn's text

# (adapter name, or None for the base; the pool's load count when it loaded; the prefix's token ids)
PrefixKey = tuple[str | None, int, tuple[int, ...]]
States = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values [1, heads, tokens, head_dim]


@dataclass(frozen=True)
class PrefixStats:
    hits: int
    misses: int
    bytes: int


@dataclass(frozen=True)
class PrefixStart:
    """What a prompt pass starts from: the rows' cached prefixes left-padded to one width (None when no
    row has one), their mask, and how many prompt tokens each row takes from it (0: its whole prompt runs)."""

    cache: DynamicCache | None
    mask: torch.Tensor  # [rows, width]
    lengths: list[int]

    @classmethod
    def empty(cls, rows: int) -> PrefixStart:
        return cls(None, torch.zeros((rows, 0), dtype=torch.long), [0] * rows)


def shared_prefix_len(tokenizer: Any, chat: list[dict[str, str]], ids: list[int]) -> int:
    """How many leading `ids` (a chat's prompt) every chat opening with the same system messages shares:
    the template's text up to the first user turn's content, its default system prompt included where it
    adds one to a chat that has none. Found as the common start of two renderings that differ only in a
    user turn's text; 0 when that is shorter than MIN_PREFIX_TOKENS or `ids` do not start with it."""
    head = list(takewhile(lambda message: message["role"] == "system", chat))
    try:
        first, second = (chat_ids(tokenizer, [*head, {"role": "user", "content": probe}], add_generation_prompt=True)
                         for probe in PROBES)
    except TemplateError:  # templates that refuse the probe conversation
        return 0
    length = next((at for at, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
                  min(len(first), len(second)))
    return length if MIN_PREFIX_TOKENS <= length < len(ids) and ids[:length] == first[:length] else 0


def pad_states(states: torch.Tensor, width: int) -> torch.Tensor:
    """Key or value states [B, H, T, D] left-padded with zeros to `width` positions."""
    return F.pad(states, (0, 0, width - states.shape[-2], 0))


class PrefixCache:
    """Used only on the scheduler's worker thread; `stats` is read from request threads (plain ints)."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.budget = budget_bytes
        self.entries: OrderedDict[PrefixKey, States] = OrderedDict()
        self.hits = self.misses = self.bytes = 0

    def stats(self) -> PrefixStats:
        return PrefixStats(self.hits, self.misses, self.bytes)

    def drop(self, name: str) -> None:
        """Every entry computed under adapter `name` goes (it was unloaded, evicted or replaced)."""
        for key in [key for key in self.entries if key[0] == name]:
            self.bytes -= _nbytes(self.entries.pop(key))

    def start(self, keys: Sequence[PrefixKey | None]) -> PrefixStart:
        """The cached prefixes of a prompt pass's rows (each row's key, None for rows without a shared
        prefix); counts a hit or a miss for every row with a key."""
        found = [self._find(key) for key in keys]
        lengths = [0 if states is None else states[0][0].shape[-2] for states in found]
        width = max(lengths, default=0)
        mask = torch.zeros((len(keys), width), dtype=torch.long)
        for row, length in enumerate(lengths):
            mask[row, width - length:] = 1
        some = next((states for states in found if states is not None), None)
        if some is None:
            return PrefixStart(None, mask, lengths)
        empty = [(layer_keys[..., :0, :], layer_values[..., :0, :]) for layer_keys, layer_values in some]
        rows = [empty if states is None else states for states in found]
        layers = [tuple(torch.cat([pad_states(states[index][part], width) for states in rows]) for part in (0, 1))
                  for index in range(len(some))]
        return PrefixStart(DynamicCache(ddp_cache_data=layers), mask, lengths)

    def keep(self, keys: Sequence[PrefixKey | None], start: PrefixStart, cache: Any, prompt_lengths: list[int]) -> None:
        """After a prompt pass: the prefix states of the rows that missed, copied out of its cache (each
        row's prompt ends in the cache's last column)."""
        if not all(type(layer) is DynamicLayer for layer in cache.layers):
            return  # sliding-window layers keep no full history to cut a prefix from
        width = cache.layers[0].keys.shape[-2]
        for row, key in enumerate(keys):
            if key is None or start.lengths[row] or key in self.entries:
                continue
            first = width - prompt_lengths[row]
            span = slice(first, first + len(key[2]))
            self._add(key, [(layer.keys[row:row + 1, :, span].clone(), layer.values[row:row + 1, :, span].clone())
                            for layer in cache.layers])

    def _find(self, key: PrefixKey | None) -> States | None:
        if key is None:
            return None
        states = self.entries.get(key)
        if states is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return states

    def _add(self, key: PrefixKey, states: States) -> None:
        size = _nbytes(states)
        if size > self.budget:
            return
        self.entries[key] = states
        self.bytes += size
        while self.bytes > self.budget:
            self.bytes -= _nbytes(self.entries.popitem(last=False)[1])


def _nbytes(states: States) -> int:
    return sum(keys.nbytes + values.nbytes for keys, values in states)
