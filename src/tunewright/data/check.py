"""Check a dataset before a single step is trained: schema, labels, duplicates, length, size.

Errors stop a run; warnings are reported. Exit codes of `data check`: 0 clean, 1 problems, 2 unusable.
"""

from __future__ import annotations

import string
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.chat import encode_example
from tunewright.config import TaskConfig
from tunewright.data.formats import Finding, read_examples
from tunewright.records import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MIN_EXAMPLES_LORA = 100
MIN_PER_LABEL = 5


@dataclass
class CheckReport:
    path: str
    examples: list[Example]
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "examples": len(self.examples),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "labels": dict(Counter(e.label for e in self.examples if e.label is not None)),
            "findings": [vars(f) for f in self.findings],
        }


def check_dataset(
    path: Path,
    task: TaskConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_seq_len: int | None = None,
) -> CheckReport:
    """Read `path` and run every check; the tokenizer enables the length checks."""
    examples, findings = read_examples(path, task.label_regex)
    report = CheckReport(str(path), examples, findings)
    if not examples:
        if not report.errors:
            report.findings.append(Finding("error", "empty", "no examples in the file", str(path)))
        return report
    if task.labels:
        report.findings.extend(check_labels(examples, task.labels))
    report.findings.extend(check_duplicates(examples))
    if tokenizer is not None and max_seq_len is not None:
        report.findings.extend(check_lengths(examples, tokenizer, task.system_prompt, max_seq_len))
    report.findings.extend(check_size(path, examples, task.labels))
    return report


def normalise_label(label: str) -> str:
    """Case, punctuation, spacing and unicode form folded away: 'Fraud report.' == 'fraud  Report'."""
    folded = unicodedata.normalize("NFKC", label).casefold()
    folded = folded.translate(str.maketrans("", "", string.punctuation))
    return " ".join(folded.split())


def check_labels(examples: list[Example], labels: list[str]) -> list[Finding]:
    known = {normalise_label(label): label for label in labels}
    findings = []
    variants: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for example in examples:
        if example.label is None:
            findings.append(Finding("error", "no-label", "the answer carries no label the task regex finds",
                                    example.source, "output"))
        elif example.label not in labels:
            canonical = known.get(normalise_label(example.label))
            if canonical is None:
                findings.append(Finding("error", "unknown-label", f"label {example.label!r} is not in "
                                        f"task.labels {labels}", example.source, "output"))
            else:
                variants[(example.label, canonical)].append(example)
    for (variant, canonical), rows in variants.items():
        findings.append(Finding("error", "label-variant", f"{variant!r} x{len(rows)} is a variant of "
                                f"{canonical!r}; rewrite it as {canonical!r}", rows[0].source, "output"))
    return findings


def check_duplicates(examples: list[Example]) -> list[Finding]:
    findings = []
    seen: dict[tuple[str, ...], Example] = {}
    answers: dict[tuple[str, ...], Example] = {}
    for example in examples:
        key = tuple(m.content for m in example.messages)
        prompt_key = tuple(" ".join(m.content.split()).casefold() for m in example.prompt)
        if key in seen:
            findings.append(Finding("warning", "duplicate", f"same as {seen[key].source}", example.source))
            continue
        seen[key] = example
        first = answers.setdefault(prompt_key, example)
        if first is not example and first.label != example.label:
            findings.append(Finding("error", "conflicting-labels", f"same input as {first.source} but "
                                    f"label {example.label!r} vs {first.label!r}", example.source))
    return findings


def check_lengths(
    examples: list[Example], tokenizer: PreTrainedTokenizerBase, system_prompt: str, max_seq_len: int
) -> list[Finding]:
    findings = []
    for example in examples:
        encoded = encode_example(tokenizer, example, system_prompt, max_seq_len)
        if encoded.truncated:
            findings.append(Finding("warning", "too-long", f"longer than training.max_seq_len={max_seq_len} "
                                    "tokens: the answer is cut and its end-of-turn never learned",
                                    example.source))
    return findings


def check_size(path: Path, examples: list[Example], labels: list[str]) -> list[Finding]:
    findings = []
    if len(examples) < MIN_EXAMPLES_LORA:
        findings.append(Finding("warning", "too-few-examples", f"{len(examples)} examples; LoRA usually "
                                f"needs at least {MIN_EXAMPLES_LORA}", str(path)))
    counts = Counter(e.label for e in examples)
    for label in labels:
        if counts[label] < MIN_PER_LABEL:
            findings.append(Finding("warning", "rare-label", f"label {label!r} has {counts[label]} examples; "
                                    f"aim for at least {MIN_PER_LABEL}", str(path)))
    return findings
