"""The models behind the server: one base model with LoRA adapters attached by name on first use (an LRU
keeps at most `max_loaded`), and a model copy per adapter whose kind cannot share the base's batches
(IA3, prompt and prefix tuning). `run` touches models and is only ever called from the scheduler's one
worker thread; `prompt` (tokenising, checks) runs on the request side."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright.chat import prompt_ids, stop_token_ids, with_system_prompt
from tunewright.errors import ModelError
from tunewright.library import PROMPT_LEARNING, AdapterEntry, AdapterLibrary
from tunewright.modeling import CausalLM, load_model, load_tokenizer
from tunewright.records import Message
from tunewright.serve.adapter_check import base_shapes, check_lora_shapes
from tunewright.serve.decode import BASE_ROW, Row, TokenCallback, decode_rows
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

    @property
    def batch_key(self) -> str:
        """Prompts with the same key may share one batch: base and plain LoRA all share one."""
        return "mixed" if self.entry is None or self.entry.mixable else f"solo:{self.model}"


@dataclass
class LoadedAdapter:
    entry: AdapterEntry
    peft_name: str
    model: CausalLM | None  # its own model copy, or None when attached to the shared LoRA model


class Engine:
    def __init__(self, base_name: str, base_dir: Path, library: AdapterLibrary, max_loaded: int = 8,
                 device: str = "cpu", stack_lora: bool = True) -> None:
        from tunewright.library import base_fingerprint

        self.base_name, self.base_dir, self.library, self.device = base_name, base_dir, library, device
        self.max_loaded = max_loaded
        self.fingerprint = base_fingerprint(base_dir)
        self.tokenizer = load_tokenizer(base_dir)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.base: CausalLM = load_model(base_dir).to(device).eval()
        self.base_shapes = base_shapes(base_dir)  # for checking an adapter's tensors before peft loads it
        self.lora_model: CausalLM | None = None  # the base wrapped by peft once a LoRA adapter loads
        self.loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self.loads = self.evictions = 0
        self.stack_lora = stack_lora
        self._stacked: StackedLora | None = None  # rebuilt whenever the loaded adapters change
        self._stacked_key: list[str] = []
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer_lock = threading.Lock()

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
        if raw is not None:
            ids = [int(i) for i in tokenizer(raw, add_special_tokens=False)["input_ids"]]
        else:
            ids = prompt_ids(tokenizer, with_system_prompt(messages, entry.system_prompt if entry else ""))
        stops = entry.stop_token_ids if entry and entry.stop_token_ids else stop_token_ids(tokenizer)
        return Prompt(model, entry, ids, max_new_tokens, frozenset(stops))

    def run(self, prompts: list[Prompt], on_token: TokenCallback, mixed: bool = True) -> None:
        """Generate for prompts that share a batch key. With `mixed`, base and LoRA rows share one forward
        pass; without it (the naive way, for comparison) the batch's one adapter is made active."""
        entries = {p.entry.name: p.entry for p in prompts if p.entry is not None}
        loaded = {name: self._ensure_loaded(entry, pinned=set(entries)) for name, entry in entries.items()}
        rows = [Row(p.prompt_ids, p.max_new_tokens, p.stop_ids,
                    loaded[p.entry.name].peft_name if p.entry else BASE_ROW) for p in prompts]
        solo = next(iter(loaded.values())) if loaded and prompts[0].batch_key != "mixed" else None
        if solo is not None and solo.model is not None:
            if solo.entry.peft_type in PROMPT_LEARNING:
                return self._generate_all(solo.model, rows, on_token)
            return decode_rows(solo.model, rows, self.pad_id, on_token, per_row_adapters=False)
        if not loaded:
            if self.lora_model is None:
                return decode_rows(self.base, rows, self.pad_id, on_token, per_row_adapters=False)
            with self.lora_model.disable_adapter():
                return decode_rows(self.lora_model, rows, self.pad_id, on_token, per_row_adapters=False)
        if mixed and solo is None:
            stacked = self._stacked_for({row.adapter for row in rows} - {BASE_ROW})
            return decode_rows(self.lora_model, rows, self.pad_id, on_token, per_row_adapters=True,
                               stacked=stacked)
        if self.lora_model is None or len({row.adapter for row in rows}) != 1:
            raise ValueError("an unmixed batch must hold one adapter")
        self.lora_model.set_adapter(rows[0].adapter)
        return decode_rows(self.lora_model, rows, self.pad_id, on_token, per_row_adapters=False)

    def _stacked_for(self, peft_names: set[str]) -> StackedLora | None:
        """Stacked LoRA over every loaded plain-LoRA adapter, rebuilt when that set changes; None when the
        batch holds an adapter it cannot cover (then peft's per-row path runs)."""
        if not self.stack_lora:
            return None
        shared = sorted(a.peft_name for a in self.loaded.values() if a.model is None and a.entry.mixable)
        if self._stacked is None or self._stacked_key != shared:
            self._stacked, self._stacked_key = None, shared
            stackable = [name for name in shared if StackedLora.supports(self.lora_model, [name])]
            self._stacked = StackedLora(self.lora_model, stackable)
        return self._stacked if peft_names <= set(self._stacked.adapters) else None

    def _ensure_loaded(self, entry: AdapterEntry, pinned: set[str]) -> LoadedAdapter:
        if entry.name in self.loaded:
            if self.loaded[entry.name].entry == entry:
                self.loaded.move_to_end(entry.name)
                return self.loaded[entry.name]
            self._unload(self.loaded.pop(entry.name))  # re-registered under the same name: load it afresh
        while len(self.loaded) >= self.max_loaded:
            victim = next((name for name in self.loaded if name not in pinned), None)
            if victim is None:
                raise ModelError(f"more than max_loaded={self.max_loaded} adapters in one batch")
            self._unload(self.loaded.pop(victim))
        from peft import PeftModel

        # peft adapter names become module keys: keep them free of '.' and clear of its own prefixes.
        peft_name = "tw_" + hashlib.sha256(entry.name.encode()).hexdigest()[:12]
        model: CausalLM | None = None
        try:
            if entry.peft_type == "LORA":
                check_lora_shapes(entry.path, self.base_shapes)
                if self.lora_model is None:
                    self.lora_model = PeftModel.from_pretrained(self.base, entry.path, adapter_name=peft_name)
                else:
                    self.lora_model.load_adapter(entry.path, adapter_name=peft_name)
                self.lora_model.eval()
            else:
                copy = load_model(self.base_dir).to(self.device)
                model = PeftModel.from_pretrained(copy, entry.path, adapter_name=peft_name).eval()
        except Exception as exc:
            self._discard_failed_load(peft_name)
            raise ModelError(f"adapter {entry.name!r} cannot be loaded ({' '.join(str(exc).split())[:300]}); "
                             "register it again from a good copy") from exc
        self.loads += 1
        self.loaded[entry.name] = LoadedAdapter(entry, peft_name, model)
        return self.loaded[entry.name]

    def _discard_failed_load(self, peft_name: str) -> None:
        """Undo what peft did before a load raised: the half-added adapter goes, and a base that peft had
        already wrapped in place (the first LoRA) is read again from disk."""
        self._stacked = None
        if self.lora_model is None:
            if any(hasattr(module, "lora_A") for module in self.base.modules()):
                self.base = load_model(self.base_dir).to(self.device).eval()
        elif peft_name in self.lora_model.peft_config:
            self.lora_model.delete_adapter(peft_name)

    def unload(self, name: str) -> None:
        if name in self.loaded:
            self._unload(self.loaded.pop(name))

    def _unload(self, adapter: LoadedAdapter) -> None:
        self.evictions += 1
        self._stacked = None
        if adapter.model is None and self.lora_model is not None:
            self.lora_model.delete_adapter(adapter.peft_name)
        with self._tokenizer_lock:
            self._tokenizers.pop(adapter.entry.name, None)

    def tokenizer_for(self, entry: AdapterEntry | None) -> Any:
        if entry is None or not (entry.path / "tokenizer_config.json").is_file():
            return self.tokenizer
        with self._tokenizer_lock:
            if entry.name not in self._tokenizers:
                self._tokenizers[entry.name] = load_tokenizer(entry.path)
            return self._tokenizers[entry.name]

    @torch.inference_mode()
    def _generate_all(self, model: CausalLM, rows: list[Row], on_token: TokenCallback) -> None:
        """Prompt and prefix tuning prepend learned states inside peft's own `generate`; their tokens are
        handed on once the batch is done."""
        width = max(len(row.prompt_ids) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for index, row in enumerate(rows):
            input_ids[index, width - len(row.prompt_ids):] = torch.tensor(row.prompt_ids)
            mask[index, width - len(row.prompt_ids):] = 1
        stops = sorted(set().union(*(row.stop_ids for row in rows)))
        output = model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                max_new_tokens=max(row.max_new_tokens for row in rows), do_sample=False,
                                eos_token_id=stops, pad_token_id=self.pad_id)
        for index, row in enumerate(rows):
            for count, token in enumerate(output[index, width:].tolist()[: row.max_new_tokens], start=1):
                last = token in row.stop_ids or count == row.max_new_tokens
                if not on_token(index, token, last) or last:
                    break


def check_servable(entry: AdapterEntry, fingerprint: str) -> None:
    if entry.peft_type not in SERVABLE:
        raise ModelError(f"adapter {entry.name!r}: peft_type {entry.peft_type or '?'} cannot be served "
                         f"(served: {', '.join(sorted(SERVABLE))})")
    if entry.base_fingerprint != fingerprint:
        raise ModelError(f"adapter {entry.name!r} was trained on another base model (fingerprint "
                         f"{entry.base_fingerprint} != {fingerprint}); serve it with its own base")
