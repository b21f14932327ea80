"""`data stats`: what a dataset holds: rows, label distribution, token lengths after the chat template
(percentiles and a text histogram), duplicates, personal-data counts and, for tasks with an output
schema, how often each answer field is present."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunewright.config import TaskConfig
from tunewright.data.duplicates import input_clusters
from tunewright.data.formats import read_examples
from tunewright.data.lengths import token_lengths
from tunewright.data.pii import find_pii
from tunewright.data.schema_check import field_coverage

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PERCENTILES = (50, 90, 95, 99, 100)


@dataclass(frozen=True)
class DatasetStats:
    path: str
    rows: int
    unreadable: int
    labels: dict[str, int]
    exact_duplicates: int
    near_duplicates: int
    pii: dict[str, int]
    fields: dict[str, int] = field(default_factory=dict)  # answers holding each output field (output_schema)
    token_percentiles: dict[str, int] = field(default_factory=dict)
    histogram: list[tuple[int, int, int]] = field(default_factory=list)  # (low, high, rows)

    def to_json(self) -> dict[str, Any]:
        return {**vars(self), "histogram": [list(bucket) for bucket in self.histogram]}

    def histogram_lines(self, width: int = 40) -> list[str]:
        """One text bar per bucket: `  128-255 | ######## 412`."""
        peak = max((rows for _, _, rows in self.histogram), default=0) or 1
        return [f"{low:>6}-{high:<6}| {'#' * round(width * rows / peak):<{width}} {rows}"
                for low, high, rows in self.histogram]


def dataset_stats(path: Path, task: TaskConfig, tokenizer: PreTrainedTokenizerBase | None) -> DatasetStats:
    examples, findings = read_examples(path, task.label_regex)
    unreadable = len({f.source for f in findings if f.severity == "error"})
    exact = len(examples) - len({tuple(m.content for m in e.messages) for e in examples})
    clusters = input_clusters(examples)
    near = sum(1 for _ in clusters.pairs())
    pii = Counter(match.kind for match in find_pii([m.content for e in examples for m in e.messages]))
    stats = DatasetStats(str(path), len(examples), unreadable, dict(Counter(e.label or "(none)" for e in examples)),
                         exact, near, dict(pii),
                         field_coverage(examples, task.output_schema) if task.output_schema is not None else {})
    if tokenizer is None or not examples:
        return stats
    lengths = sorted(token_lengths(examples, tokenizer, task.system_prompt))
    percentiles = {f"p{p}": lengths[min(len(lengths) - 1, (p * len(lengths)) // 100)] for p in PERCENTILES}
    return DatasetStats(**{**vars(stats), "token_percentiles": percentiles, "histogram": _histogram(lengths)})


def _histogram(lengths: list[int], buckets: int = 10) -> list[tuple[int, int, int]]:
    """Equal-width buckets from the shortest to the longest row (lengths sorted)."""
    low, high = lengths[0], lengths[-1]
    width = max(1, -(-(high - low + 1) // buckets))
    counts = Counter((length - low) // width for length in lengths)
    return [(low + b * width, low + (b + 1) * width - 1, counts[b]) for b in range((high - low) // width + 1)]
