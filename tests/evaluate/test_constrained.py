"""Label-constrained decoding: the trie, the answer format it is built from, and generation with it."""

from __future__ import annotations

from pathlib import Path

import torch

from tunewright.evaluate.constrained import LabelConstraint, LabelFormat, LabelTrie, build_trie, label_format
from tunewright.evaluate.generate import generate_replies
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import extract_label

LABELS = ["Account Access", "Fraud Report", "Transaction Dispute", "General Inquiry"]
REGEX = r"^\[Intent: (?P<label>[^\]]+)\]"


def test_label_format_is_read_from_the_training_answers() -> None:
    answers = ["[Intent: Fraud Report] Sorry to hear.", "[Intent: General Inquiry] Happy to help."]
    assert label_format(answers, REGEX) == LabelFormat("[Intent: ", "]", label_only=False)
    assert label_format(["card arrival", "age limit"], r"^(?P<label>.+)$") == LabelFormat("", "", label_only=True)
    assert label_format(["[Intent: A] x", "Intent A"], r"(?P<label>A)") is None  # disagreeing prefixes


def test_trie_allows_only_label_spellings_then_frees_the_rest() -> None:
    trie = LabelTrie([[1, 2, 3], [1, 4], [5]])
    assert sorted(trie.allowed([]) or []) == [1, 5]
    assert sorted(trie.allowed([1]) or []) == [2, 4]
    assert trie.allowed([1, 4]) is None  # a full spelling: free text from here
    assert trie.allowed([1, 4, 9, 9]) is None
    assert trie.allowed([5, 7]) is None


def test_processor_masks_everything_outside_the_trie() -> None:
    trie = LabelTrie([[2, 3], [4]])
    scores = torch.zeros((2, 6))
    scores[:, 5] = 10.0  # the model's favourite is not a label token
    out = LabelConstraint(trie, prompt_width=1)(torch.tensor([[0], [0]]), scores.clone())
    assert torch.isinf(out[:, [0, 1, 3, 5]]).all() and (out[:, [2, 4]] == 0).all()
    finished = LabelConstraint(trie, prompt_width=1)(torch.tensor([[0, 4], [0, 2]]), scores.clone())
    assert (finished[0] == scores[0]).all()  # row 0 finished its label: untouched
    assert torch.isinf(finished[1, [0, 1, 2, 4, 5]]).all()  # row 1 must finish "2 3"


def test_constrained_generation_always_yields_a_valid_label(tiny_model_dir: Path) -> None:
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    trie = build_trie(tokenizer, LABELS, LabelFormat("[Intent: ", "]", label_only=False), tokenizer.eos_token_id)
    chats = [[{"role": "user", "content": text}] for text in ("card stolen", "hello there", "cannot log in")]
    free = generate_replies(model, tokenizer, chats, max_new_tokens=12, batch_size=2)
    constrained = generate_replies(model, tokenizer, chats, max_new_tokens=12, batch_size=2, constraint=trie)
    assert all(extract_label(reply.text, REGEX) in LABELS for reply in constrained)
    assert not all(extract_label(reply.text, REGEX) in LABELS for reply in free)  # the random model rambles
    per_row = [build_trie(tokenizer, [label], LabelFormat("", "", label_only=True), tokenizer.eos_token_id)
               for label in ("Fraud Report", "General Inquiry", "Fraud Report")]
    narrowed = generate_replies(model, tokenizer, chats, max_new_tokens=12, batch_size=2, row_constraints=per_row)
    assert [reply.text for reply in narrowed] == ["Fraud Report", "General Inquiry", "Fraud Report"]
