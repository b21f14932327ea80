"""The shared-prefix loss is the ordinary next-token loss on assistant tokens, computed with less work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunewright.chat import encode_example
from tunewright.config import MethodConfig
from tunewright.methods import prepare_model
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Example, Message
from tunewright.train.batches import PadCollator
from tunewright.train.loss import _shared_prefix_length, shared_prefix_loss

INPUTS = ["my card was stolen", "how do I open a savings account for my daughter?", "login fails"]


def _batch(model_dir: Path, system_prompt: str) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(model_dir)
    rows = []
    for text in INPUTS:
        example = Example(text, (Message("user", text), Message("assistant", f"[Intent: X] About {text}?")))
        encoded = encode_example(tokenizer, example, system_prompt, 256)
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
    return PadCollator(tokenizer.pad_token_id)(rows)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    return grads


@pytest.mark.lowest
def test_loss_and_gradients_equal_the_plain_forward(tiny_model_dir: Path) -> None:
    torch.manual_seed(0)
    model = prepare_model(load_model(tiny_model_dir), MethodConfig())
    for parameter in model.parameters():
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.1)  # lora_B starts at zero; make the adapter matter
    model.eval()  # no dropout, so both passes see the same function
    for system_prompt in ("You are a careful bank assistant. Label, then reply.", ""):
        batch = _batch(tiny_model_dir, system_prompt)
        reference = model(**batch).loss
        reference.backward()
        expected = _grads(model)
        loss = shared_prefix_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
        loss.backward()
        actual = _grads(model)
        assert torch.allclose(loss, reference, atol=1e-5)
        assert expected.keys() == actual.keys() and expected
        for name in expected:
            assert torch.allclose(actual[name], expected[name], atol=1e-5), name


def test_shared_prefix_stops_before_the_first_label_and_at_padding() -> None:
    input_ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 9, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    none = torch.zeros_like(input_ids, dtype=torch.bool)
    assert _shared_prefix_length(input_ids, mask, none) == 3
    early = none.clone()
    early[1, 1] = True  # row 1 needs the logit at position 1
    assert _shared_prefix_length(input_ids, mask, early) == 1
    assert _shared_prefix_length(input_ids[:1], mask[:1], none[:1]) == 0


@pytest.mark.lowest
def test_weights_shift_the_loss_towards_weighted_tokens(tiny_model_dir: Path) -> None:
    torch.manual_seed(0)
    model = load_model(tiny_model_dir)
    model.eval()
    batch = _batch(tiny_model_dir, "Label, then reply.")
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    ones = torch.ones(ids.shape)
    with torch.no_grad():
        assert torch.allclose(shared_prefix_loss(model, ids, mask, labels, ones),
                              shared_prefix_loss(model, ids, mask, labels), atol=1e-6)
        # all weight on one token per row: the loss becomes the mean loss of exactly those tokens
        targets = [int((row != -100).nonzero()[0]) for row in labels]
        focused = torch.full(ids.shape, 1e-9)
        for row, position in enumerate(targets):
            focused[row, position] = 1.0
        logits = model(input_ids=ids, attention_mask=mask).logits
        expected = torch.stack([
            torch.nn.functional.cross_entropy(logits[row, position - 1], labels[row, position])
            for row, position in enumerate(targets)
        ]).mean()
        assert torch.allclose(shared_prefix_loss(model, ids, mask, labels, focused), expected, atol=1e-5)
