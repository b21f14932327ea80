"""The training loop on the tiny model: the loss falls, LoRA weights change, frozen ones do not,
the best weights are kept and the saved adapter reloads to the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunewright.config import load_config
from tunewright.errors import DataError
from tunewright.label_format import label_format
from tunewright.modeling import load_model, load_with_adapter
from tunewright.pipeline import prepare_run
from tunewright.records import Example, Message
from tunewright.report import write_loss_plot
from tunewright.runs import RunPaths, read_json, read_jsonl, write_jsonl
from tunewright.train import PadCollator, train_run


def test_lora_training_learns_and_saves_a_reloadable_adapter(tiny_project: Path, tmp_path: Path) -> None:
    config = load_config(tiny_project, ["training.max_steps=12", "training.learning_rate=0.01",
                                        "training.early_stopping_patience=50"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    result = train_run(config, run, show_progress=False)

    rows = read_jsonl(run.metrics)
    train_losses = [row["train_loss"] for row in rows if row["train_loss"] is not None]
    val_losses = [row["val_loss"] for row in rows if row["val_loss"] is not None]
    assert result.steps == 12 and len(train_losses) == 12 and len(val_losses) == 6
    assert min(train_losses[-3:]) < train_losses[0]
    assert result.best_val_loss == pytest.approx(min(val_losses))
    assert not list(run.checkpoints.glob("step-*"))  # checkpoint_every 50: none, and no forced last one
    assert 0 < result.trainable_parameters < result.total_parameters

    base = load_model(Path(config.model.base))
    tuned = load_with_adapter(Path(config.model.base), run.adapter)
    base_state = base.state_dict()
    changed = frozen_same = 0
    for name, tensor in tuned.named_parameters():
        if "lora_" in name:
            if "lora_B" in name:  # lora_B starts at zero, so any change proves it trained
                assert tensor.abs().sum() > 0, name
                changed += 1
        else:
            plain = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(tensor, base_state[plain]), name
            frozen_same += 1
    assert changed > 0 and frozen_same > 0

    ids = torch.tensor([[1, 2, 3, 4, 5]])
    reloaded = load_with_adapter(Path(config.model.base), run.adapter)
    assert torch.allclose(tuned(input_ids=ids).logits, reloaded(input_ids=ids).logits)
    assert not torch.allclose(tuned(input_ids=ids).logits, base(input_ids=ids).logits)
    manifest = json.loads((run.adapter / "tunewright-adapter.json").read_text())
    assert manifest["system_prompt"] == config.task.system_prompt
    fmt = label_format([example.reference for example in run.load_split("train")], config.task.label_regex or "")
    assert fmt is not None and manifest["label_format"] == fmt.to_json()  # serving constrains labels with these
    assert manifest["labels"] == list(config.task.labels)
    assert (run.adapter / "adapter_model.safetensors").is_file()
    assert (run.adapter / "chat_template.jinja").is_file() or "chat_template" in (
        run.adapter / "tokenizer_config.json").read_text()


def test_training_refuses_when_every_label_is_masked(tiny_project: Path, tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    prepare_run(load_config(tiny_project), run, announce=lambda message: None)  # the data check passes
    # 40 tokens hold only the system prompt and input: no answer token survives truncation.
    with pytest.raises(DataError, match="every training label is masked"):
        train_run(load_config(tiny_project, ["training.max_seq_len=40"]), run, show_progress=False)


def test_pad_collator_masks_padding() -> None:
    batch = PadCollator(pad_token_id=0)([
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [5], "labels": [5]},
    ])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [5, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_pad_collator_weights_the_label_span() -> None:
    batch = PadCollator(pad_token_id=0, label_weight=4.0)([
        {"input_ids": [5, 6, 7, 8], "labels": [-100, 6, 7, 8], "label_span": [1, 3]},
        {"input_ids": [5, 6], "labels": [-100, 6], "label_span": []},
    ])
    assert batch["weights"].tolist() == [[1.0, 4.0, 4.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
    assert "weights" not in PadCollator(pad_token_id=0)([{"input_ids": [1], "labels": [1]}])


def test_split_files_round_trip(tmp_path: Path) -> None:
    example = Example("a", (Message("user", "hi"), Message("assistant", "yo")), "L", None, "f:1")
    write_jsonl(tmp_path / "x.jsonl", [example.to_json()])
    assert Example.from_json(read_jsonl(tmp_path / "x.jsonl")[0]) == example


def test_tensorboard_events_precision_and_loss_plot(tiny_project: Path, tmp_path: Path) -> None:
    config = load_config(tiny_project, ["training.max_steps=4", "training.eval_every=2",
                                        "training.report_to=[tensorboard]", "training.precision=bf16"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    result = train_run(config, run, show_progress=False)
    events = list((run.root / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run.root / "tensorboard"))
    accumulator.Reload()
    assert "train/loss" in accumulator.Tags()["scalars"] and "eval/loss" in accumulator.Tags()["scalars"]
    assert result.precision == "bf16"
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float32 for t in load_file(run.adapter / "adapter_model.safetensors").values())
    write_loss_plot(run)  # the training stage writes the files the plot is drawn from; report/ draws
    assert run.loss_plot.read_bytes().startswith(b"\x89PNG")


def test_training_records_its_precision_and_why(tiny_project: Path, tmp_path: Path) -> None:
    config = load_config(tiny_project, ["training.max_steps=2", "training.eval_every=2", "training.precision=fp32"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    train_run(config, run, show_progress=False)
    recorded = read_json(run.training_result)
    assert recorded["precision"] == "fp32" and recorded["precision_reason"] == "training.precision is fp32"
