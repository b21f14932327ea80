"""The engine behind the server: `prompt` turns a request into token ids (on the request side), and
`run` sends a batch down the right decode path: mixed base + LoRA rows in one pass (stacked or peft's
per-row adapters), one adapter's own model copy, or peft's `generate` for prompt and prefix tuning;
prompt passes start from the prefix cache's states where a request opens with a cached system prompt.
`run` touches models and is only ever called from the scheduler's one worker thread; the adapters
themselves live in the pool (pool.py)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor

from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.errors import ModelError
from tunewright.evaluate.constrained import LabelConstraint, LabelFormat, LabelTrie, build_trie
from tunewright.library import PROMPT_LEARNING, AdapterEntry, AdapterLibrary
from tunewright.modeling import CausalLM, left_pad
from tunewright.records import Message
from tunewright.retrieval import Neighbours, packaged_embedder, read_pool
from tunewright.runs import NEIGHBOUR_POOL
from tunewright.serve.decode import BASE_ROW, DecodeBatch, Row, TokenCallback, decode_rows
from tunewright.serve.pool import AdapterPool, LoadedAdapter
from tunewright.serve.prefix_cache import DEFAULT_BUDGET_BYTES, PrefixCache, PrefixStats, shared_prefix_len
from tunewright.serve.response_format import ResponseFormat, row_processor
from tunewright.serve.sampling import GREEDY, Sampling, Token
from tunewright.serve.stacked import StackedLora

SERVABLE = {"LORA", "IA3", *PROMPT_LEARNING}


class UnknownModel(ModelError):
    """The request names a model that is neither the base nor a registered adapter."""


@dataclass(frozen=True)
class Prompt:
    """One request as the engine runs it."""

    model: str
    entry: AdapterEntry | None  # None: the base model
    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    sampling: Sampling = GREEDY
    processors: tuple[LogitsProcessor, ...] = field(default=(), compare=False)  # per-row constraints
    prefix_len: int = 0  # leading prompt ids that are its system prompt, shared with other requests

    @property
    def batch_key(self) -> str:
        """Prompts with the same key may share one batch: base and plain LoRA all share one."""
        return "mixed" if self.entry is None or self.entry.mixable else f"solo:{self.model}"


class Engine:
    def __init__(self, base_name: str, base_dir: Path, library: AdapterLibrary, max_loaded: int = 8,
                 device: str = "cpu", stack_lora: bool = True, prefix_cache_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        from tunewright.library import base_fingerprint

        self.base_name, self.base_dir, self.library, self.device = base_name, base_dir, library, device
        self.fingerprint = base_fingerprint(base_dir)
        self.pool = AdapterPool(base_dir, device, max_loaded)
        self.base_shapes = self.pool.base_shapes
        self.tokenizer = self.pool.tokenizer
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.stack_lora = stack_lora
        self.prefixes = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes > 0 else None  # 0: no prefix cache
        self.pool.on_unload = self._drop_prefixes
        self._stacked: StackedLora | None = None  # rebuilt whenever the loaded adapters change
        self._stacked_key: tuple[int, list[str]] = (-1, [])
        self._tries: dict[tuple[str, tuple[int, int]], LabelTrie] = {}  # label tries of labelled adapters
        self._neighbours: dict[tuple[str, tuple[int, int]], Neighbours] = {}  # task.neighbours adapters' pools

    @property
    def max_loaded(self) -> int:
        return self.pool.max_loaded

    @property
    def loaded(self) -> OrderedDict[str, LoadedAdapter]:
        return self.pool.loaded

    @property
    def evictions(self) -> int:
        return self.pool.evictions

    def model_names(self) -> list[str]:
        return [self.base_name, *self.library.names()]

    def entry(self, name: str) -> AdapterEntry | None:
        """The adapter a request's `model` names (None for the base); refuses another base's adapter."""
        if name == self.base_name:
            return None
        if name not in self.library:
            raise UnknownModel(f"model {name!r} not found; GET /v1/models lists them")
        entry = self.library.get(name)
        check_servable(entry, self.fingerprint)
        return entry

    def prompt(self, model: str, messages: Sequence[Message], max_new_tokens: int, raw: str | None = None) -> Prompt:
        """Token ids for a chat (rendered with the adapter's own chat template and system prompt), or
        for raw text (`/v1/completions`)."""
        entry = self.entry(model)
        tokenizer = self.tokenizer_for(entry)
        prefix_len = 0
        if raw is not None:
            ids = [int(i) for i in tokenizer(raw, add_special_tokens=False)["input_ids"]]
        else:
            if entry is not None and entry.neighbours:
                messages = self._neighbours_of(entry).show_messages(messages)  # as in its training prompts
            chat = with_system_prompt(messages, entry.system_prompt if entry else "")
            ids = prompt_ids(tokenizer, chat)
            prefix_len = shared_prefix_len(tokenizer, chat, ids) if self.prefixes is not None else 0
        stops = entry.stop_token_ids if entry and entry.stop_token_ids else stop_token_ids(tokenizer)
        return Prompt(model, entry, ids, max_new_tokens, frozenset(stops), prefix_len=prefix_len)

    def _neighbours_of(self, entry: AdapterEntry) -> Neighbours:
        key = (entry.name, entry.weights_stamp)
        if key not in self._neighbours:
            self._neighbours[key] = Neighbours(read_pool(entry.path / NEIGHBOUR_POOL), entry.neighbours,
                                               packaged_embedder())
        return self._neighbours[key]

    def run(self, prompts: list[Prompt], on_token: TokenCallback, mixed: bool = True,
            more: Callable[[bool], list[Prompt]] | None = None) -> None:
        """Generate for prompts that share a batch key. With `mixed`, base and LoRA rows share one forward
        pass; without it (the naive way, for comparison) the batch's one adapter is made active. With
        `more` (mixed batches only), it is asked between steps for prompts to join the running batch
        (its argument: whether LoRA prompts may join)."""
        entries = {p.entry.name: p.entry for p in prompts if p.entry is not None}
        loaded = {name: self.pool.ensure_loaded(entry, pinned=set(entries)) for name, entry in entries.items()}
        rows = [self._row(p, loaded) for p in prompts]
        solo = next(iter(loaded.values())) if loaded and prompts[0].batch_key != "mixed" else None
        if solo is not None and solo.model is not None:
            if solo.entry.peft_type in PROMPT_LEARNING:
                return self._generate_all(solo.model, rows, on_token)
            return self._decode(solo.model, rows, on_token, per_row_adapters=False)
        if mixed and solo is None and more is not None:
            return self._run_joining(rows, on_token, more)
        lora_model = self.pool.lora_model
        if not loaded:
            if lora_model is None:
                return self._decode(self.pool.base, rows, on_token, per_row_adapters=False)
            with lora_model.disable_adapter():
                return self._decode(lora_model, rows, on_token, per_row_adapters=False)
        if mixed and solo is None:
            stacked = self._stacked_for({row.adapter for row in rows} - {BASE_ROW})
            return self._decode(lora_model, rows, on_token, per_row_adapters=True, stacked=stacked)
        if lora_model is None or len({row.adapter for row in rows}) != 1:
            raise ValueError("an unmixed batch must hold one adapter")
        lora_model.set_adapter(rows[0].adapter)
        return self._decode(lora_model, rows, on_token, per_row_adapters=False)

    def _run_joining(self, rows: list[Row], on_token: TokenCallback, more: Callable[[bool], list[Prompt]]) -> None:
        """A mixed batch that new prompts join between steps. LoRA prompts may join only once the
        shared LoRA model exists (loading the first adapter wraps the base model in place)."""
        model = self.pool.lora_model or self.pool.base

        def joining(batch: DecodeBatch) -> list[Row]:
            prompts = more(model is self.pool.lora_model)
            live = {name for name, adapter in self.loaded.items() if adapter.peft_name in batch.adapters}
            entries = {p.entry.name: p.entry for p in prompts if p.entry is not None}
            for entry in entries.values():
                self.pool.ensure_loaded(entry, pinned=live | set(entries))
            new = [self._row(p, self.loaded) for p in prompts]
            peft_names = (batch.adapters | {row.adapter for row in new}) - {BASE_ROW}
            batch.use_stacked(self._stacked_for(peft_names) if peft_names else None)
            return new

        peft_names = {row.adapter for row in rows} - {BASE_ROW}
        stacked = self._stacked_for(peft_names) if peft_names else None
        return self._decode(model, rows, on_token, per_row_adapters=model is not self.pool.base, stacked=stacked,
                            more=joining)

    def _decode(self, model: CausalLM, rows: list[Row], on_token: TokenCallback, per_row_adapters: bool,
                stacked: StackedLora | None = None, more: Callable[[DecodeBatch], list[Row]] | None = None) -> None:
        decode_rows(model, rows, self.pad_id, on_token, per_row_adapters, stacked, more, self.prefixes)

    def _row(self, prompt: Prompt, loaded: dict[str, LoadedAdapter]) -> Row:
        """The prompt as a decode row; its prefix key names the adapter and which load of it computes the
        states (a reloaded or re-registered adapter never meets its earlier states)."""
        adapter = loaded[prompt.entry.name] if prompt.entry else None
        scope = (adapter.entry.name, adapter.load) if adapter else (None, 0)
        prefix = (*scope, tuple(prompt.prompt_ids[:prompt.prefix_len])) if prompt.prefix_len else None
        return Row(prompt.prompt_ids, prompt.max_new_tokens, prompt.stop_ids,
                   adapter.peft_name if adapter else BASE_ROW, prompt.sampling, prompt.processors, prefix)

    def prefix_stats(self) -> PrefixStats:
        return self.prefixes.stats() if self.prefixes is not None else PrefixStats(0, 0, 0)

    def _drop_prefixes(self, adapter: LoadedAdapter) -> None:
        if self.prefixes is not None:
            self.prefixes.drop(adapter.entry.name)

    def _stacked_for(self, peft_names: set[str]) -> StackedLora | None:
        """Stacked LoRA over every loaded plain-LoRA adapter, rebuilt when that set changes; None when the
        batch holds an adapter it cannot cover (then peft's per-row path runs)."""
        if not self.stack_lora:
            return None
        shared = sorted(a.peft_name for a in self.loaded.values() if a.model is None and a.entry.mixable)
        key = (self.pool.generation, shared)
        if self._stacked is None or self._stacked_key != key:
            self._stacked, self._stacked_key = None, key
            lora_model = self.pool.lora_model
            stackable = [name for name in shared if StackedLora.supports(lora_model, [name])]
            self._stacked = StackedLora(lora_model, stackable)
        return self._stacked if peft_names <= set(self._stacked.adapters) else None

    def label_processors(self, prompt: Prompt) -> tuple[LogitsProcessor, ...]:
        """For a labelled adapter's chat answer: its label picked from the task's label set token by
        token, as evaluation decodes (evaluate/constrained.py); nothing for other models."""
        entry = prompt.entry
        if entry is None or not entry.labels or entry.label_format is None:
            return ()
        key = (entry.name, entry.weights_stamp)
        if key not in self._tries:
            tokenizer = self.tokenizer_for(entry)
            stops = sorted(prompt.stop_ids)
            stop = tokenizer.eos_token_id if tokenizer.eos_token_id in prompt.stop_ids else stops[0]
            self._tries[key] = build_trie(tokenizer, entry.labels, LabelFormat.from_json(entry.label_format), stop)
        return (LabelConstraint(self._tries[key], len(prompt.prompt_ids)),)

    def format_processors(self, prompt: Prompt, found: ResponseFormat | None) -> tuple[LogitsProcessor, ...]:
        """The grammar a chat answer decodes under: the response_format asked for, else the adapter's
        output schema (serve/response_format.py); fresh per choice, since it keeps state while a row decodes."""
        processor = row_processor(found, prompt.entry, self.tokenizer_for(prompt.entry), sorted(prompt.stop_ids),
                                  self.pool.base.config.vocab_size)
        return () if processor is None else (processor,)

    def unload(self, name: str) -> None:
        self.pool.unload(name)

    def tokenizer_for(self, entry: AdapterEntry | None) -> Any:
        return self.pool.tokenizer_for(entry)

    @torch.inference_mode()
    def _generate_all(self, model: CausalLM, rows: list[Row], on_token: TokenCallback) -> None:
        """Prompt and prefix tuning prepend learned states inside peft's own `generate`; their tokens are
        handed on once the batch is done."""
        input_ids, mask = left_pad([row.prompt_ids for row in rows], self.pad_id)
        width = input_ids.shape[1]
        stops = sorted(set().union(*(row.stop_ids for row in rows)))
        output = model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                max_new_tokens=max(row.max_new_tokens for row in rows), do_sample=False,
                                eos_token_id=stops, pad_token_id=self.pad_id)
        for index, row in enumerate(rows):
            for count, token in enumerate(output[index, width:].tolist()[: row.max_new_tokens], start=1):
                last = token in row.stop_ids or count == row.max_new_tokens
                if not on_token(index, Token(token), last) or last:
                    break


def check_servable(entry: AdapterEntry, fingerprint: str) -> None:
    if entry.peft_type not in SERVABLE:
        raise ModelError(f"adapter {entry.name!r}: peft_type {entry.peft_type or '?'} cannot be served "
                         f"(served: {', '.join(sorted(SERVABLE))})")
    if entry.base_fingerprint != fingerprint:
        raise ModelError(f"adapter {entry.name!r} was trained on another base model (fingerprint "
                         f"{entry.base_fingerprint} != {fingerprint}); serve it with its own base")
