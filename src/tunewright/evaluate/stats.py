"""Paired bootstrap: the fine-tuned model's difference to each baseline on every metric, with a seeded
95 % interval from resampling test rows (the same rows for both candidates in each resample)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

RowScore = Callable[[Sequence[int]], float | None]  # a metric computed on a subset of test-row indices


@dataclass(frozen=True)
class Comparison:
    metric: str
    candidate: str
    baseline: str
    difference: float
    ci95: tuple[float, float]

    def to_json(self) -> dict[str, object]:
        return {"metric": self.metric, "candidate": self.candidate, "baseline": self.baseline,
                "difference": self.difference, "ci95": list(self.ci95)}


def bootstrap_indices(rows: int, resamples: int, seed: int) -> list[list[int]]:
    """The resamples every metric and baseline share, so intervals are paired and reproducible."""
    rng = random.Random(seed)
    return [[rng.randrange(rows) for _ in range(rows)] for _ in range(resamples)]


def paired_difference(metric: str, candidate: str, baseline: str, tuned: RowScore, base: RowScore,
                      rows: int, samples: list[list[int]]) -> Comparison | None:
    """tuned - base on all rows, and the 2.5th / 97.5th percentiles of that difference over `samples`."""
    everything = range(rows)
    tuned_all, base_all = tuned(everything), base(everything)
    if tuned_all is None or base_all is None:
        return None
    differences = []
    for sample in samples:
        left, right = tuned(sample), base(sample)
        if left is not None and right is not None:
            differences.append(left - right)
    differences.sort()
    if not differences:
        return Comparison(metric, candidate, baseline, tuned_all - base_all, (tuned_all - base_all,) * 2)
    last = len(differences) - 1
    low, high = differences[math.floor(0.025 * last)], differences[math.ceil(0.975 * last)]
    return Comparison(metric, candidate, baseline, tuned_all - base_all, (low, high))


def mean_of(values: Sequence[float | None]) -> RowScore:
    """A RowScore averaging a per-row value (rows without a value are skipped)."""
    def score(indices: Sequence[int]) -> float | None:
        kept = [value for i in indices if (value := values[i]) is not None]
        return sum(kept) / len(kept) if kept else None
    return score
