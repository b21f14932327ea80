"""Label-constrained decoding: the answer's label is chosen from the task's label set token by token
(a trie of the label spellings), so every answer carries a valid label; the rest is free text.
Evaluation decodes every candidate with it (evaluate/generate.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

from tunewright.label_format import LabelFormat, label_format

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["LabelConstraint", "LabelFormat", "LabelTrie", "build_trie", "label_format"]

_END = -1  # trie key marking that a complete label spelling ends here


class LabelTrie:
    """Token-id spellings of `before + label + after` for every label; a spelling ends with the
    end-of-turn token for bare-label answers."""

    def __init__(self, spellings: Sequence[Sequence[int]]) -> None:
        self.root: dict[int, dict] = {}  # type: ignore[type-arg]
        for ids in spellings:
            node = self.root
            for token in ids:
                node = node.setdefault(token, {})
            node[_END] = {}

    def allowed(self, generated: Sequence[int]) -> list[int] | None:
        """Tokens allowed after `generated`; None once a full spelling is done (free text from there)."""
        node = self.root
        for token in generated:
            if _END in node and token not in node:
                return None
            if token not in node:
                return None  # left the trie (only possible if the caller forced a token): stop constraining
            node = node[token]
        nexts = [token for token in node if token != _END]
        return nexts or None


def build_trie(tokenizer: PreTrainedTokenizerBase, labels: Sequence[str], fmt: LabelFormat,
               stop_id: int) -> LabelTrie:
    spellings = []
    for label in labels:
        ids = list(tokenizer.encode(fmt.before + label + fmt.after, add_special_tokens=False))
        spellings.append([*ids, stop_id] if fmt.label_only else ids)
    return LabelTrie(spellings)


class LabelConstraint(LogitsProcessor):
    """For `generate(logits_processor=[...])`: masks every token the trie does not allow. All rows
    must start generating at column `prompt_width` (left padding, as batched generation does)."""

    def __init__(self, trie: LabelTrie | None, prompt_width: int,
                 per_row: Sequence[LabelTrie | None] | None = None) -> None:
        self.trie, self.prompt_width, self.per_row = trie, prompt_width, per_row

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_width:].tolist()
        for row, ids in enumerate(generated):
            trie = self.per_row[row] if self.per_row is not None else self.trie
            allowed = trie.allowed(ids) if trie is not None else None
            if allowed is not None:
                keep = scores[row, allowed].clone()
                scores[row, :] = float("-inf")
                scores[row, allowed] = keep
        return scores
