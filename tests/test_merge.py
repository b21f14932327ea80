"""Merging a LoRA adapter gives a standalone model with the adapter's logits."""

from __future__ import annotations

from pathlib import Path

import torch

from tunewright.config import load_config
from tunewright.merge import merge_adapter
from tunewright.modeling import load_model, load_tokenizer, load_with_adapter
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths
from tunewright.train import train_run


def test_merged_model_matches_adapter(tiny_project: Path, tmp_path: Path) -> None:
    config = load_config(tiny_project, ["training.max_steps=2", "training.learning_rate=0.05"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    train_run(config, run, show_progress=False)

    result = merge_adapter(config, run, tmp_path / "merged")
    assert result.max_abs_diff < 1e-3
    merged = load_model(result.path)
    assert load_tokenizer(result.path).chat_template
    assert list(result.path.glob("*.safetensors")) and not list(result.path.glob("*.bin"))
    ids = torch.tensor([[3, 7, 11, 13, 17]])
    adapter_model = load_with_adapter(Path(config.model.base), run.adapter)
    with torch.inference_mode():
        assert torch.allclose(merged(input_ids=ids).logits, adapter_model(input_ids=ids).logits, atol=1e-4)
