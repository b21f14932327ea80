"""Where the label sits in a labelled task's answers (`before` + label + `after`), read from the
training answers. Torch-free: training writes it into the adapter manifest, evaluation and serving
build their label constraints from it (evaluate/constrained.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass


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
