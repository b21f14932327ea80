"""The adapter pool: the base model with adapters loaded onto it by name on first use, at most
`max_loaded` at once (least recently used evicted first), and each adapter's own tokenizer. Plain
LoRA adapters attach to one shared peft model; every other kind gets a model copy of its own."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError
from tunewright.library import AdapterEntry
from tunewright.modeling import CausalLM, load_model, load_tokenizer
from tunewright.serve.adapter_check import base_shapes, check_lora_shapes


@dataclass
class LoadedAdapter:
    entry: AdapterEntry
    peft_name: str
    model: CausalLM | None  # its own model copy, or None when attached to the shared LoRA model
    load: int = 0  # which load of the pool this is (the pool's `loads` count), so a reload tells apart


class AdapterPool:
    """Loading and eviction touch models, so they run only on the scheduler's worker thread;
    `tokenizer_for` is also called from request threads and takes a lock."""

    def __init__(self, base_dir: Path, device: str, max_loaded: int) -> None:
        self.base_dir, self.device, self.max_loaded = base_dir, device, max_loaded
        self.tokenizer = load_tokenizer(base_dir)
        self.base: CausalLM = load_model(base_dir).to(device).eval()
        self.base_shapes = base_shapes(base_dir)  # for checking an adapter's tensors before peft loads it
        self.lora_model: CausalLM | None = None  # the base wrapped by peft once a LoRA adapter loads
        self.loaded: OrderedDict[str, LoadedAdapter] = OrderedDict()
        self.loads = self.evictions = 0
        self.generation = 0  # changes whenever an adapter leaves, so caches built on the set rebuild
        self.on_unload: Callable[[LoadedAdapter], None] | None = None  # told of every adapter that leaves
        self._tokenizers: dict[str, Any] = {}
        self._tokenizer_lock = threading.Lock()

    def ensure_loaded(self, entry: AdapterEntry, pinned: set[str]) -> LoadedAdapter:
        """`entry` loaded and most recently used; evicts the least recently used not in `pinned`."""
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
        loaded = self._load(entry)
        self.loads += 1
        loaded.load = self.loads
        self.loaded[entry.name] = loaded
        return loaded

    def _load(self, entry: AdapterEntry) -> LoadedAdapter:
        from peft import PeftModel

        # peft adapter names become module keys: keep them free of '.' and clear of its own prefixes.
        peft_name = "tw_" + hashlib.sha256(entry.name.encode()).hexdigest()[:12]
        try:
            if entry.peft_type != "LORA":
                copy = load_model(self.base_dir).to(self.device)
                return LoadedAdapter(entry, peft_name, PeftModel.from_pretrained(copy, entry.path,
                                                                                 adapter_name=peft_name).eval())
            check_lora_shapes(entry.path, self.base_shapes)
            if self.lora_model is None:
                self.lora_model = PeftModel.from_pretrained(self.base, entry.path, adapter_name=peft_name)
            else:
                self.lora_model.load_adapter(entry.path, adapter_name=peft_name)
                if self.lora_model.active_adapter not in self.lora_model.peft_config:
                    self.lora_model.set_adapter(peft_name)  # peft leaves a deleted last adapter active
            self.lora_model.eval()
        except Exception as exc:
            self._discard_failed_load(peft_name)
            raise ModelError(f"adapter {entry.name!r} cannot be loaded ({' '.join(str(exc).split())[:300]}); "
                             "register it again from a good copy") from exc
        return LoadedAdapter(entry, peft_name, None)

    def _discard_failed_load(self, peft_name: str) -> None:
        """Undo what peft did before a load raised: the half-added adapter goes, and a base that peft had
        already wrapped in place (the first LoRA) is read again from disk."""
        self.generation += 1  # the stacked-LoRA cache rebuilds
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
        self.generation += 1
        if adapter.model is None and self.lora_model is not None:
            self.lora_model.delete_adapter(adapter.peft_name)
        with self._tokenizer_lock:
            self._tokenizers.pop(adapter.entry.name, None)
        if self.on_unload is not None:
            self.on_unload(adapter)

    def tokenizer_for(self, entry: AdapterEntry | None) -> Any:
        """The adapter's own tokenizer (and chat template) where it saved one, else the base's."""
        if entry is None or not (entry.path / "tokenizer_config.json").is_file():
            return self.tokenizer
        with self._tokenizer_lock:
            if entry.name not in self._tokenizers:
                self._tokenizers[entry.name] = load_tokenizer(entry.path)
            return self._tokenizers[entry.name]
