"""The model behind the server: one base model in memory with its adapters attached by name.

Requests run one at a time under a lock; the base model answers with every adapter disabled.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.chat import with_system_prompt
from tunewright.errors import ModelError
from tunewright.evaluate.generate import Reply, generate_replies
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    system_prompt: str


def validate_adapter_name(name: str) -> str:
    if not ADAPTER_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"adapter name {name!r}: use letters, digits, '.', '_' or '-' (max 64), no '..'")
    return name


def read_adapter(name: str, path: Path) -> AdapterInfo:
    """An adapter directory (or a run directory holding `adapter/`) with safetensors weights."""
    validate_adapter_name(name)
    if (path / "adapter").is_dir():
        path = path / "adapter"
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelError(f"{path}: no adapter_model.safetensors; only safetensors adapters are served")
    manifest_file = path / ADAPTER_MANIFEST
    manifest: dict[str, Any] = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    return AdapterInfo(name, path.resolve(), str(manifest.get("system_prompt", "")))


class Engine:
    def __init__(self, base_name: str, base_dir: Path, adapters: list[AdapterInfo]) -> None:
        self.base_name = base_name
        self.tokenizer = load_tokenizer(base_dir)
        self.model: Any = load_model(base_dir)
        self.adapters = {adapter.name: adapter for adapter in adapters}
        if adapters:
            from peft import PeftModel

            first, *rest = adapters
            self.model = PeftModel.from_pretrained(self.model, first.path, adapter_name=first.name)
            for adapter in rest:
                self.model.load_adapter(adapter.path, adapter_name=adapter.name)
        self.model.eval()
        self.lock = threading.Lock()

    @property
    def model_names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    def complete(self, model: str, messages: list[Message], max_tokens: int) -> Reply:
        adapter = self.adapters.get(model)
        chat = with_system_prompt(messages, adapter.system_prompt if adapter else "")
        with self.lock:
            if adapter is None:
                return self._generate(chat, max_tokens, base=True)
            self.model.set_adapter(adapter.name)
            return self._generate(chat, max_tokens, base=False)

    def _generate(self, chat: list[dict[str, str]], max_tokens: int, base: bool) -> Reply:
        if base and self.adapters:
            with self.model.disable_adapter():
                return generate_replies(self.model, self.tokenizer, [chat], max_tokens, 1)[0]
        return generate_replies(self.model, self.tokenizer, [chat], max_tokens, 1)[0]
