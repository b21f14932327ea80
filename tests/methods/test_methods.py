"""Every SFT method (preference methods: tests/train/test_preference.py) through the one training loop
on the tiny model: the loss falls, every trainable parameter changed and every frozen one did not, and the
saved artifact reloads to the same logits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from tunewright.config import load_config
from tunewright.data.formats import read_examples
from tunewright.methods import METHODS, SFT_METHODS, load_base, load_trained, prepare_model
from tunewright.modeling import load_tokenizer
from tunewright.pipeline import prepare_run
from tunewright.runs import ADAPTER_MANIFEST, RunPaths, read_jsonl
from tunewright.train import PadCollator, artifact_dir, encode_split, train_run
from tunewright.train.loss import batch_loss

LEARNING_RATES = {"prompt_tuning": 0.1, "prefix_tuning": 0.03, "ia3": 0.1}


class KeepModel(TrainerCallback):
    """Holds the model Trainer trains and a copy of every parameter as training begins."""

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.model = model
        self.before = {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.lowest
@pytest.mark.precision
@pytest.mark.parametrize("method", sorted(SFT_METHODS))
def test_method_trains_changes_only_trainable_weights_and_reloads(method: str, make_project: Any,
                                                                  tmp_path: Path, test_precision: str,
                                                                  tolerance: float) -> None:
    config = load_config(make_project(tmp_path, 40), [
        f"method.name={method}", "training.max_steps=8", "training.eval_every=4", "training.batch_size=4",
        f"training.learning_rate={LEARNING_RATES.get(method, 0.01)}", "training.early_stopping_patience=50",
        "training.warmup_ratio=0",
    ])
    run = RunPaths(tmp_path / "run")
    prepare_run(config, run, announce=lambda message: None)
    keep = KeepModel()
    result = train_run(config, run, show_progress=False, callbacks=[keep])

    losses = [row["train_loss"] for row in read_jsonl(run.metrics) if row["train_loss"] is not None]
    assert result.steps == 8 and sum(losses[-2:]) / 2 < losses[0]
    trained = keep.model
    trainable = {name for name, p in trained.named_parameters() if p.requires_grad}
    assert trainable and 0 < result.trainable_parameters <= result.total_parameters
    for name, parameter in trained.named_parameters():
        same = torch.equal(parameter.detach(), keep.before[name])
        assert same != (name in trainable), f"{name}: {'unchanged' if same else 'changed'}"

    saved = artifact_dir(config, run)
    manifest = json.loads((saved / ADAPTER_MANIFEST).read_text())
    assert manifest["method"] == method and manifest["artifact"] == METHODS[method].artifact
    assert not list(saved.glob("*.bin")) and list(saved.glob("*.safetensors"))
    reloaded = load_trained(Path(config.model.base), saved, method)
    trained.eval()
    ids = torch.tensor([[1, 5, 9, 30, 2, 7]])
    # Trainer leaves the trained model's forward wrapped in the run's autocast, so after a bf16 run it
    # computes in bf16 while the reloaded model computes in fp32: same weights, bf16 rounding apart.
    atol = 1e-5 if test_precision == "fp32" else tolerance
    with torch.no_grad():
        assert torch.allclose(trained(input_ids=ids).logits, reloaded(input_ids=ids).logits, atol=atol)


@pytest.mark.parametrize("method", sorted(SFT_METHODS))
def test_training_loss_is_the_models_own_loss_for_every_method(method: str, tiny_project: Path) -> None:
    """The loss path each method takes (shared prefix where exact, plain where the method adds
    virtual tokens) equals the model's own next-token loss on the same batch."""
    config = load_config(tiny_project, [f"method.name={method}"])
    model_dir = Path(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    examples, _ = read_examples(config.data.path, config.task.label_regex)
    batch = PadCollator(tokenizer.pad_token_id)(encode_split(config, tokenizer, examples[:3]))
    torch.manual_seed(0)
    model = prepare_model(load_base(model_dir, METHODS[method]), config.method)
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype.is_floating_point:
            torch.nn.init.normal_(parameter, mean=1.0 if method == "ia3" else 0.0, std=0.1)
    model.eval()
    with torch.no_grad():
        expected = model(**batch).loss
        actual = batch_loss(model, batch, METHODS[method].shares_prefix)
    assert torch.allclose(actual, expected, atol=1e-5)


def test_qlora_base_keeps_its_weights_through_an_eval_pass(tiny_model_dir: Path) -> None:
    """bitsandbytes would repack 4-bit weights for inference on the first eval-mode forward on a CPU
    with avx512_bf16 (lossy, no autograd); tunewright keeps the plain kernel, so an eval pass in the
    middle of training changes nothing, on every CPU."""
    model = load_base(tiny_model_dir, METHODS["qlora"])
    layers = [module for module in model.modules() if hasattr(module, "support_avx512bf16_for_cpu")]
    assert layers and not any(layer.support_avx512bf16_for_cpu for layer in layers)
    before = {id(layer): layer.weight.data.clone() for layer in layers}
    model.eval()
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 5, 9, 30, 2, 7]]))
    for layer in layers:
        assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
        assert torch.equal(layer.weight.data, before[id(layer)])
