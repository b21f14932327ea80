"""Extraction metrics for tasks with task.output_schema: JSON validity, schema validity, field-level
precision / recall / F1 (micro over every (field, value) pair, and per field) and exact frame match.

A field is a leaf path of the answer object (schema.answer_fields): a gold field the answer lacks is a
false negative, an answer field the gold lacks a false positive, a wrong value both. Each metric is a
RowScore, so the paired bootstrap resamples it like every other metric."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunewright.evaluate.stats import RowScore, mean_of
from tunewright.records import Prediction
from tunewright.schema import Field, answer_fields, by_field, parse_answer

FIELD_METRICS = ("json_valid_rate", "schema_valid_rate", "field_precision", "field_recall", "field_f1",
                 "exact_frame_match")


@dataclass(frozen=True)
class FieldCounts:
    """Per row: true positives, false positives and false negatives of (field, value) pairs."""

    true_pos: int
    false_pos: int
    false_neg: int


@dataclass(frozen=True)
class FieldErrors:
    """One field's row of the error table: matched, wrong value, missing (gold only), extra (answer only)."""

    field: str
    gold: int
    correct: int
    wrong_value: int
    missing: int
    extra: int
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class ScoredAnswer:
    valid_json: bool
    valid_schema: bool
    gold: Counter[Field]
    predicted: Counter[Field]


def score_answers(schema: dict[str, Any], predictions: Sequence[Prediction]) -> list[ScoredAnswer]:
    scored = []
    for p in predictions:
        answer, gold = parse_answer(p.output.strip(), schema), parse_answer(p.reference.strip(), schema)
        scored.append(ScoredAnswer(answer.valid_json, answer.valid_schema, answer_fields(gold.value),
                                   answer_fields(answer.value) if answer.valid_json else Counter()))
    return scored


def pair_counts(gold: Counter[Field], predicted: Counter[Field]) -> FieldCounts:
    matched = sum((gold & predicted).values())
    return FieldCounts(matched, sum(predicted.values()) - matched, sum(gold.values()) - matched)


def field_row_scores(schema: dict[str, Any], predictions: Sequence[Prediction]) -> dict[str, RowScore]:
    """The six extraction metrics, each as a function of a subset of row indices."""
    scored = score_answers(schema, predictions)
    counts = [pair_counts(s.gold, s.predicted) for s in scored]

    def micro(kind: str) -> RowScore:
        def value(indices: Sequence[int]) -> float | None:
            tp = sum(counts[i].true_pos for i in indices)
            fp = sum(counts[i].false_pos for i in indices)
            fn = sum(counts[i].false_neg for i in indices)
            return prf(tp, fp, fn)[kind]
        return value

    return {
        "json_valid_rate": mean_of([float(s.valid_json) for s in scored]),
        "schema_valid_rate": mean_of([float(s.valid_schema) for s in scored]),
        "field_precision": micro("precision"),
        "field_recall": micro("recall"),
        "field_f1": micro("f1"),
        "exact_frame_match": mean_of([float(s.valid_json and s.gold == s.predicted) for s in scored]),
    }


def prf(true_pos: int, false_pos: int, false_neg: int) -> dict[str, float]:
    """Precision, recall and F1; a candidate that predicts nothing for nothing to find scores 1."""
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else float(false_neg == 0)
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else float(false_pos == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def field_errors(scored: Sequence[ScoredAnswer], prefix: str = "") -> list[FieldErrors]:
    """The per-field error table over fields starting with `prefix`, the most frequent gold field first."""
    tally: dict[str, Counter[str]] = {}
    for s in scored:
        gold_by, predicted_by = by_field(s.gold), by_field(s.predicted)
        for name in gold_by.keys() | predicted_by.keys():
            if not name.startswith(prefix):
                continue
            gold, predicted = gold_by.get(name, Counter()), predicted_by.get(name, Counter())
            matched = sum((gold & predicted).values())
            gold_left, predicted_left = sum(gold.values()) - matched, sum(predicted.values()) - matched
            wrong = min(gold_left, predicted_left)
            row = tally.setdefault(name, Counter())
            row.update(gold=sum(gold.values()), correct=matched, wrong_value=wrong, missing=gold_left - wrong,
                       extra=predicted_left - wrong)
    table = []
    for name, row in tally.items():
        scores = prf(row["correct"], row["wrong_value"] + row["extra"], row["wrong_value"] + row["missing"])
        table.append(FieldErrors(name, row["gold"], row["correct"], row["wrong_value"], row["missing"],
                                 row["extra"], scores["precision"], scores["recall"], scores["f1"]))
    return sorted(table, key=lambda row: (-row.gold, row.field))
