"""Label-constrained decoding: the answer's label is chosen from the task's label set token by token
(a trie of the label spellings), so every answer carries a valid label; the rest is free text.
Evaluation decodes every candidate with it (evaluate/generate.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_END = -1  # trie key marking that a complete label spelling ends here


@dataclass(frozen=True)
class LabelFormat:
    """Where the label sits in an answer: `before` + label + `after`, then free text (or the end of
    turn when `after` is empty and answers are the bare label)."""

    before: str
    after: str
    label_only: bool

    def to_json(self) -> dict[str, object]:
        return {"before": self.before, "after": self.after, "label_only": self.label_only}

    @classmethod
    def from_json(cls, row: dict[str, object]) -> LabelFormat:
        return cls(str(row["before"]), str(row["after"]), bool(row["label_only"]))


def label_format(answers: Sequence[str], label_regex: str) -> LabelFormat | None:
    """The format every training answer shares, or None when they disagree (no constraint then).
    `after` is the single character that follows the label (e.g. ']'), if the answers agree on one."""
    pattern = re.compile(label_regex)
    befores, afters, ends = set(), set(), set()
    for answer in answers:
        text = answer.strip()
        match = pattern.search(text)
        if match is None:
            return None
        befores.add(text[: match.start("label")])
        rest = text[match.end("label"):]
        afters.add(rest[:1])
        ends.add(rest == "")
    if len(befores) != 1 or len(ends) != 1:
        return None
    label_only = ends.pop()
    after = afters.pop() if len(afters) == 1 and not label_only else ""
    return LabelFormat(befores.pop(), after, label_only)


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
