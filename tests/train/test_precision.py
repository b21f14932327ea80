"""`precision: auto` by measurement: the probe runs real forward + backward steps of the prepared
model in both precisions, leaves the model as it was, and its answer is cached under a key of
machine, model, method, batch and versions; a changed key never reads an old answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import tunewright.train.precision as precision
from tunewright.config import load_config
from tunewright.methods import METHODS, load_base
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths, read_json
from tunewright.train import train_run
from tunewright.train.loss import batch_loss
from tunewright.train.recipe import collator_for, encode_splits


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TUNEWRIGHT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "fast_bf16_available", lambda: True)  # so the probe runs on any CPU
    return tmp_path / "cache"


def _probe_inputs(tiny_project: Path, tmp_path: Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, str]]:
    from tunewright.modeling import load_tokenizer

    config = load_config(tiny_project)
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    model_dir = Path(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    train_rows, _ = encode_splits(config, tokenizer, run)
    method = METHODS["lora"]
    model = method.prepare(load_base(model_dir, method), config.method)
    batch = collator_for(config, tokenizer)(train_rows[:4])
    return model, batch, precision.probe_key(model_dir, "lora", batch)


def test_probe_measures_both_precisions_and_leaves_the_model_unchanged(
        tiny_project: Path, tmp_path: Path, cache: Path) -> None:
    model, batch, key = _probe_inputs(tiny_project, tmp_path)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    rng = torch.get_rng_state()
    calls: list[str] = []
    real = precision.training_step(model, batch, lambda m, inputs: batch_loss(m, inputs, True))

    def step(name: str) -> None:
        calls.append(name)
        real(name)

    chosen = precision.resolve_precision("auto", key, step)
    assert sorted(set(calls)) == ["bf16", "fp32"] and len(calls) == 2 * (1 + precision.PROBE_STEPS)
    stored = read_json(next((cache / "precision").glob("*.json")))
    measured = precision.ProbeResult(**stored["result"])
    assert stored["key"] == key and chosen.name == measured.choice
    assert f"fp32 {measured.fp32_seconds:.2f} s/step" in chosen.reason and "cached" not in chosen.reason
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


def test_probe_answer_is_cached_and_a_changed_key_measures_again(cache: Path) -> None:
    calls: list[str] = []
    key = {"machine": "cpu:x", "model": "abc", "method": "lora", "batch_shape": "8x100", "torch": "2.13.0",
           "transformers": "5.24", "peft": "0.21", "threads": "2"}
    first = precision.resolve_precision("auto", key, calls.append)
    assert len(calls) == 6
    again = precision.resolve_precision("auto", dict(key), calls.append)
    assert len(calls) == 6 and again.name == first.name and "cached probe" in again.reason
    for field, value in [("torch", "2.14.0"), ("model", "abd"), ("machine", "cpu:y"), ("batch_shape", "8x101")]:
        precision.resolve_precision("auto", {**key, field: value}, calls.append)
    assert len(calls) == 6 + 4 * 6  # every changed key measured again
    assert len(list((cache / "precision").glob("*.json"))) == 5


def test_a_tampered_cache_entry_is_not_trusted(cache: Path) -> None:
    key = {"machine": "cpu:x", "model": "abc"}
    precision.write_probe(key, precision.ProbeResult(fp32_seconds=2.0, bf16_seconds=1.0))
    assert precision.read_probe(key) == precision.ProbeResult(2.0, 1.0)
    path = next((cache / "precision").glob("*.json"))
    path.write_text(path.read_text().replace('"abc"', '"abz"'))
    assert precision.read_probe(key) is None


def test_bf16_must_be_clearly_faster_to_be_chosen() -> None:
    assert precision.ProbeResult(fp32_seconds=1.2, bf16_seconds=1.0).choice == "bf16"
    assert precision.ProbeResult(fp32_seconds=1.05, bf16_seconds=1.0).choice == "fp32"
    assert precision.ProbeResult(fp32_seconds=1.0, bf16_seconds=1.3).choice == "fp32"


def test_auto_is_fp32_without_probe_where_bf16_is_not_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "fast_bf16_available", lambda: False)
    calls: list[str] = []
    chosen = precision.resolve_precision("auto", {"machine": "x"}, calls.append)
    assert chosen.name == "fp32" and "no fast bf16" in chosen.reason and not calls
    assert precision.resolve_precision("bf16").name == "bf16"


def test_training_with_auto_records_the_probe(tiny_project: Path, tmp_path: Path, cache: Path) -> None:
    config = load_config(tiny_project, ["training.max_steps=2", "training.eval_every=2", "training.precision=auto"])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    train_run(config, run, show_progress=False)
    recorded = read_json(run.training_result)
    assert recorded["precision"] in ("fp32", "bf16") and "probe on this machine" in recorded["precision_reason"]
    assert len(list((cache / "precision").glob("*.json"))) == 1
