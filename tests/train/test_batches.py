"""Packing: several examples in one row with per-example positions give exactly the loss of the same
examples run padded and unpacked (the per-token mean over the batch), and training with it works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunewright.chat import IGNORE_INDEX
from tunewright.config import load_config
from tunewright.data.formats import read_examples
from tunewright.errors import ConfigError
from tunewright.modeling import load_tokenizer
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths, read_jsonl
from tunewright.train import encode_split, train_run
from tunewright.train.batches import PackCollator, PadCollator
from tunewright.train.loss import batch_loss


def _rows(config_path: Path, count: int) -> list[dict[str, list[int]]]:
    config = load_config(config_path)
    tokenizer = load_tokenizer(Path(config.model.base))
    examples, _ = read_examples(config.data.path, config.task.label_regex)
    return encode_split(config, tokenizer, examples[:count])


def test_pack_collator_restarts_positions_and_masks_each_first_label() -> None:
    batch = PackCollator()([
        {"input_ids": [5, 6, 7], "labels": [5, 6, 7]},
        {"input_ids": [8, 9], "labels": [IGNORE_INDEX, 9]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, IGNORE_INDEX, 9]]
    assert "attention_mask" not in batch  # boundaries come from the positions


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_loss_equals_the_unpacked_per_token_mean(attention: str, tiny_project: Path,
                                                        tiny_model_dir: Path) -> None:
    rows = _rows(tiny_project, 5)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation=attention)
    for name, parameter in model.named_parameters():
        if "norm" not in name:  # a random tiny model barely looks at context; make context matter
            torch.nn.init.normal_(parameter, std=0.5)
    model.eval()
    padded = PadCollator(load_tokenizer(tiny_model_dir).pad_token_id)(rows)
    packed = PackCollator()(rows)
    with torch.no_grad():
        reference = model(**padded).loss  # transformers' own loss: mean over every labelled token
        per_example = [model(input_ids=torch.tensor([r["input_ids"]]), labels=torch.tensor([r["labels"]])).loss
                       for r in rows]
        loss = batch_loss(model, packed, share_prefix=True)
    counts = torch.tensor([sum(label != IGNORE_INDEX for label in r["labels"][1:]) for r in rows])
    token_mean = (torch.stack(per_example) * counts).sum() / counts.sum()
    assert abs(float(loss) - float(reference)) <= 1e-4
    assert abs(float(loss) - float(token_mean)) <= 1e-4
    # and it is not the loss of attending across examples (the check has teeth)
    with torch.no_grad():
        crossing = model(input_ids=packed["input_ids"], labels=packed["labels"]).loss
    assert abs(float(crossing) - float(reference)) > 1e-3


def test_training_with_packing_learns(make_project: Any, tmp_path: Path) -> None:
    config = load_config(make_project(tmp_path, 40), ["training.packing=true", "training.max_steps=8",
                                                      "training.learning_rate=0.01", "training.eval_every=4"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    result = train_run(config, run, show_progress=False)
    losses = [row["train_loss"] for row in read_jsonl(run.metrics) if row["train_loss"] is not None]
    assert result.steps == 8 and sum(losses[-2:]) / 2 < losses[0]
    assert (run.adapter / "adapter_model.safetensors").is_file()


def test_packing_is_refused_for_methods_with_virtual_tokens(make_project: Any, tmp_path: Path) -> None:
    config = load_config(make_project(tmp_path, 40), ["training.packing=true", "method.name=prefix_tuning"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    with pytest.raises(ConfigError, match=r"training\.packing"):
        train_run(config, run, show_progress=False)
