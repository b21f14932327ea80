"""Label scoring: one batched pass gives each shortlisted label the log-likelihood a plain forward
pass over prompt + label gives it; the probabilities sum to 1 and the argmax is the likeliest label."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.evaluate.constrained import LabelFormat
from tunewright.evaluate.label_scoring import label_spelling, score_labels
from tunewright.modeling import load_model, load_tokenizer

LABELS = ["Fraud Report", "Account Access", "General Inquiry", "Transaction Dispute"]
INPUTS = ["I can't log in", "why was I charged twice for one coffee at the station this morning", "fees?",
          "someone used my card in Spain while I was at home", "hello"]


def plain_log_likelihood(model: object, prompt: list[int], label: list[int]) -> float:
    ids = torch.tensor([prompt + label])
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0].float()  # type: ignore[operator]
    log_probs = torch.log_softmax(logits[len(prompt) - 1:-1], dim=-1)
    return float(log_probs.gather(-1, torch.tensor(label).unsqueeze(-1)).sum())


@pytest.mark.parametrize("fmt", [LabelFormat("[Intent: ", "]", False), LabelFormat("", "", True)])
def test_scores_equal_a_plain_forward_pass_and_sum_to_one(tiny_model_dir: Path, fmt: LabelFormat) -> None:
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    model.eval()
    stop = stop_token_ids(tokenizer)[0]
    chats = [[{"role": "system", "content": "Label it."}, {"role": "user", "content": text}] for text in INPUTS]
    # Shortlists of different sizes in one batch, as a retrieval shortlist gives them.
    shortlists = [LABELS, LABELS[:2], LABELS[1:], LABELS[:1], LABELS[::-1]]
    scored = score_labels(model, tokenizer, chats, shortlists, fmt, stop, batch_size=3)
    for chat, shortlist, probabilities in zip(chats, shortlists, scored, strict=True):
        assert set(probabilities) == set(shortlist)
        assert math.isclose(sum(probabilities.values()), 1.0, rel_tol=1e-5)
        prompt = prompt_ids(tokenizer, chat)
        plain = {label: plain_log_likelihood(model, prompt, label_spelling(tokenizer, label, fmt, stop))
                 for label in shortlist}
        expected = torch.softmax(torch.tensor([plain[label] for label in shortlist]), dim=0)
        assert torch.allclose(torch.tensor([probabilities[label] for label in shortlist]), expected, atol=1e-4)
        assert max(probabilities, key=lambda label: probabilities[label]) == max(plain, key=lambda label: plain[label])
