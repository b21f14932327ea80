"""Confidence of label predictions: expected calibration error and its reliability bins, accuracy
against coverage when answers under a confidence threshold are withheld, and the label ensemble:
the LLM's label scores and the embedding classifier's probabilities combined as a weighted product,
the two weights fitted on the validation split (never the test split) by log-loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BINS = 10
FLOOR = 1e-6  # probabilities are floored before the log so a zero from one side cannot veto a label
WEIGHT_BOUNDS = (0.0, 10.0)


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    rows: int
    confidence: float  # mean confidence of the rows in the bin
    accuracy: float


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> list[ReliabilityBin]:
    """Equal-width confidence bins (the last one includes 1.0); empty bins are left out."""
    conf, right = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    index = np.minimum((conf * bins).astype(int), bins - 1)
    return [ReliabilityBin(b / bins, (b + 1) / bins, int((index == b).sum()), float(conf[index == b].mean()),
                           float(right[index == b].mean())) for b in range(bins) if (index == b).any()]


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float:
    """Mean over rows of |accuracy - confidence| of the row's bin (Guo et al. 2017)."""
    total = len(confidences)
    if total == 0:
        return 0.0
    return sum(b.rows / total * abs(b.accuracy - b.confidence) for b in reliability(confidences, correct, bins))


def coverage_curve(confidences: Sequence[float], correct: Sequence[bool],
                   points: int = BINS) -> list[tuple[float, float, float]]:
    """(threshold, coverage, accuracy on the answered rows) when rows below the threshold abstain,
    at thresholds that answer 100 %, 90 %, ... of the rows (most confident first)."""
    conf, right = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    order = np.argsort(-conf, kind="stable")
    curve = []
    for step in range(points, 0, -1):
        kept = max(1, round(len(conf) * step / points))
        chosen = order[:kept]
        curve.append((float(conf[chosen].min()), kept / len(conf), float(right[chosen].mean())))
    return curve


def accuracy_at_coverage(confidences: Sequence[float], correct: Sequence[bool], coverage: float) -> float:
    """Accuracy on the most confident `coverage` share of rows."""
    conf, right = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    kept = max(1, round(len(conf) * coverage))
    return float(right[np.argsort(-conf, kind="stable")[:kept]].mean())


def combine(llm: Sequence[dict[str, float]], embedding: Sequence[dict[str, float]],
            weights: tuple[float, float]) -> list[dict[str, float]]:
    """Per row, softmax over the row's labels of a * log p_llm + b * log p_embedding."""
    combined = []
    for scores, prior in zip(llm, embedding, strict=True):
        labels = list(scores)
        logits = np.array([weights[0] * np.log(max(scores[label], FLOOR))
                           + weights[1] * np.log(max(prior.get(label, 0.0), FLOOR)) for label in labels])
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        combined.append(dict(zip(labels, probabilities.tolist(), strict=True)))
    return combined


def fit_weights(llm: Sequence[dict[str, float]], embedding: Sequence[dict[str, float]],
                gold: Sequence[str | None]) -> tuple[float, float]:
    """The (a, b) of `combine` with the lowest log-loss on these rows (the validation split). Rows
    whose gold label is outside their shortlist carry no signal and are skipped; with none left, the
    plain product (1, 1) is used."""
    from scipy.optimize import minimize

    usable = [(s, p, g) for s, p, g in zip(llm, embedding, gold, strict=True) if g is not None and g in s]
    if not usable:
        return (1.0, 1.0)

    def log_loss(weights: np.ndarray) -> float:
        rows = combine([s for s, _, _ in usable], [p for _, p, _ in usable], (weights[0], weights[1]))
        return -float(np.mean([np.log(max(row[g], 1e-12)) for row, (_, _, g) in zip(rows, usable, strict=True)]))

    found = minimize(log_loss, np.array([1.0, 1.0]), method="L-BFGS-B", bounds=[WEIGHT_BOUNDS, WEIGHT_BOUNDS])
    return (float(found.x[0]), float(found.x[1]))
