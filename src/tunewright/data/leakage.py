"""Leakage between splits: a validation or test row whose input equals or near-equals a training row's,
so the held-out score measures memory instead of skill."""

from __future__ import annotations

from pathlib import Path

from tunewright.data.duplicates import prompt_text
from tunewright.data.formats import read_examples
from tunewright.data.readers import Finding
from tunewright.data.similarity import near_duplicates
from tunewright.errors import DataError
from tunewright.records import Example

SPLIT_FILES = ("train", "val", "test")


def check_leakage(split_dir: Path, label_regex: str | None = None) -> list[Finding]:
    """Every val/test row of `split_dir` ({train,val,test}.jsonl) whose input matches a train row."""
    splits: dict[str, list[Example]] = {}
    for name in SPLIT_FILES:
        path = split_dir / f"{name}.jsonl"
        if not path.is_file():
            raise DataError(f"{path}: missing; --split-dir needs train.jsonl, val.jsonl and test.jsonl "
                            "(as written by `tunewright data split`)")
        splits[name], _ = read_examples(path, label_regex)
    train = splits["train"]
    held_out = splits["val"] + splits["test"]
    texts = [prompt_text(example) for example in train + held_out]
    clusters = near_duplicates(texts)
    exact = {clusters.normalised[row]: example for row, example in enumerate(train)}
    findings = []
    for offset, example in enumerate(held_out):
        row = len(train) + offset
        match = exact.get(clusters.normalised[row])
        if match is not None:
            findings.append(Finding("error", "leakage", f"same input as training row {match.source}",
                                    example.source))
            continue
        first = clusters.cluster[row]
        if first < len(train):
            findings.append(Finding("error", "leakage", f"input {clusters.similarity[row]:.0%} similar to "
                                    f"training row {train[first].source}", example.source))
    return findings
