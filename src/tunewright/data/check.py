"""`data check`: run every dataset check and gather the findings. Errors stop a run; warnings are
reported (and stop it too with `data.strict`). Most checks live in their own modules; this one orders
them and holds the two small ones that need the whole dataset (personal data, size and balance)."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.config import TaskConfig
from tunewright.data.content import check_content
from tunewright.data.duplicates import check_duplicates, input_clusters
from tunewright.data.formats import Finding, rows_to_examples
from tunewright.data.labels import check_labels, normalise_label
from tunewright.data.leakage import check_leakage
from tunewright.data.lengths import check_lengths, token_lengths
from tunewright.data.pii import find_pii
from tunewright.data.preference_check import check_preferences, side_examples
from tunewright.data.preferences import is_preference_row, rows_to_preferences
from tunewright.data.readers import RawRow, read_rows
from tunewright.data.schema_check import check_outputs
from tunewright.data.similarity import NearDuplicates
from tunewright.data.textscan import offsets
from tunewright.methods.facts import METHOD_FACTS
from tunewright.records import Example, Preference

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["CheckReport", "check_dataset", "normalise_label"]

MIN_EXAMPLES_LORA = METHOD_FACTS["lora"].min_examples
MIN_PER_LABEL = 5
MAX_IMBALANCE = 20  # largest class / smallest class


@dataclass
class CheckReport:
    path: str
    examples: list[Example]
    findings: list[Finding] = field(default_factory=list)
    token_lengths: list[int] | None = None
    clusters: NearDuplicates | None = None  # near-duplicate inputs, reused by the split
    preferences: list[Preference] = field(default_factory=list)  # set instead of `examples` for preference files

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def blocking(self, strict: bool) -> list[Finding]:
        """What stops a run: errors, and warnings too when strict."""
        return self.findings if strict else self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "examples": len(self.examples),
            "preferences": len(self.preferences),
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "labels": dict(Counter(e.label for e in self.examples if e.label is not None)),
            "codes": dict(Counter(f.code for f in self.findings)),
            "findings": [vars(f) for f in self.findings],
        }


def check_dataset(
    path: Path,
    task: TaskConfig,
    tokenizer: PreTrainedTokenizerBase | None = None,
    max_seq_len: int | None = None,
    method: str = "lora",
    split_dir: Path | None = None,
) -> CheckReport:
    """Read `path` and run every check; the tokenizer enables the length checks, `split_dir` leakage.
    A file of preference rows gets the preference checks instead (see check_preference_file)."""
    rows, findings = read_rows(path)
    if any(is_preference_row(raw.value) for raw in rows[:1]):
        return check_preference_file(path, rows, findings, task, tokenizer, max_seq_len, method)
    examples, more = rows_to_examples(rows, task.label_regex)
    report = CheckReport(str(path), examples, findings + more)
    if not examples:
        if not report.errors:
            report.findings.append(Finding("error", "empty", "no examples in the file", str(path)))
        return report
    if task.labels:
        report.findings.extend(check_labels(examples, task.labels))
    if task.output_schema is not None:
        report.findings.extend(check_outputs(examples, task.output_schema, task.copied_fields))
    report.findings.extend(check_content(examples, _special_tokens(tokenizer)))
    report.clusters = input_clusters(examples)
    report.findings.extend(check_duplicates(examples, report.clusters, labelled=bool(task.labels)))
    report.findings.extend(check_pii(examples))
    if tokenizer is not None and max_seq_len is not None:
        report.token_lengths = token_lengths(examples, tokenizer, task.system_prompt)
        report.findings.extend(check_lengths(examples, report.token_lengths, tokenizer, task.system_prompt,
                                             max_seq_len))
    report.findings.extend(check_size(path, examples, task.labels, method))
    if split_dir is not None:
        report.findings.extend(check_leakage(split_dir, task.label_regex))
    return report


def check_preference_file(path: Path, rows: list[RawRow], findings: list[Finding], task: TaskConfig,
                          tokenizer: PreTrainedTokenizerBase | None, max_seq_len: int | None,
                          method: str) -> CheckReport:
    """Pairs and KTO rows: their own checks, then personal data and size as for SFT examples."""
    preferences, more = rows_to_preferences(rows)
    report = CheckReport(str(path), [], findings + more, preferences=preferences)
    if not preferences:
        if not report.errors:
            report.findings.append(Finding("error", "empty", "no preference rows in the file", str(path)))
        return report
    report.findings.extend(check_preferences(preferences, str(path), _special_tokens(tokenizer), tokenizer,
                                             task.system_prompt, max_seq_len))
    both_sides = [*side_examples(preferences, "chosen"), *side_examples(preferences, "rejected")]
    report.findings.extend(dict.fromkeys(check_pii(both_sides)))
    # every row has at least one side, so the first len(preferences) side examples count the rows
    report.findings.extend(check_size(path, both_sides[:len(preferences)], [], method))
    return report


def check_pii(examples: list[Example]) -> list[Finding]:
    """One warning per turn holding personal data, naming the kinds found."""
    contents = [message.content for example in examples for message in example.messages]
    first_turn = offsets(len(example.messages) for example in examples)
    kinds: dict[int, list[str]] = {}
    for match in find_pii(contents):
        kinds.setdefault(match.text_index, []).append(match.kind)
    findings = []
    for turn, found in sorted(kinds.items()):
        example = examples[bisect_right(first_turn, turn) - 1]
        index = turn - first_turn[bisect_right(first_turn, turn) - 1]
        names = ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in Counter(found).items())
        findings.append(Finding("warning", "pii", f"personal data in the {example.messages[index].role} turn "
                                f"({names}); redact with `data clean --redact-pii`", example.source,
                                f"messages[{index}]"))
    return findings


def check_size(path: Path, examples: list[Example], labels: list[str], method: str) -> list[Finding]:
    """Dataset size against the method's facts (a name the registry does not know is treated like lora)
    and class balance."""
    findings = []
    facts = METHOD_FACTS.get(method, METHOD_FACTS["lora"])
    if len(examples) < facts.min_examples:
        findings.append(Finding("warning", "too-few-examples", f"{len(examples)} examples; {method} usually "
                                f"needs at least {facts.min_examples}", str(path)))
    if facts.max_examples is not None and len(examples) > facts.max_examples:
        findings.append(Finding("warning", "large-for-method", f"{len(examples):,} examples: with this much "
                                f"data {method} likely leaves quality on the table; consider method full",
                                str(path)))
    counts = Counter(e.label for e in examples)
    for label in labels:
        if counts[label] < MIN_PER_LABEL:
            findings.append(Finding("warning", "rare-label", f"label {label!r} has {counts[label]} examples; "
                                    f"aim for at least {MIN_PER_LABEL}", str(path)))
    present = [counts[label] for label in labels if counts[label] >= MIN_PER_LABEL]
    if len(present) >= 2 and max(present) > MAX_IMBALANCE * min(present):
        findings.append(Finding("warning", "imbalanced", f"largest class has {max(present)} examples, smallest "
                                f"{min(present)} (over {MAX_IMBALANCE}x); the model may learn to ignore the "
                                "small ones", str(path)))
    return findings


def _special_tokens(tokenizer: PreTrainedTokenizerBase | None) -> list[str]:
    if tokenizer is None:
        return []
    return [token.content for token in tokenizer.added_tokens_decoder.values() if token.special]
