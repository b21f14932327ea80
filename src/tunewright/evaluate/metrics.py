"""Score predictions: label accuracy, macro-F1 and the task card's rubric, as data."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tunewright.config import RubricCriterion, TaskConfig
from tunewright.records import Prediction


@dataclass(frozen=True)
class CandidateMetrics:
    rows: int
    label_accuracy: float | None
    macro_f1: float | None
    rubric_pass_rate: float | None
    rubric: dict[str, float]  # pass rate per criterion
    no_label_rate: float | None


def passes(criterion: RubricCriterion, reply: str) -> bool:
    questions = reply.count("?")
    if criterion.required_pattern is not None:
        return re.search(criterion.required_pattern, reply) is not None
    if criterion.forbidden_pattern is not None:
        return re.search(criterion.forbidden_pattern, reply) is None
    if criterion.max_chars is not None:
        return len(reply) <= criterion.max_chars
    if criterion.max_questions is not None:
        return questions <= criterion.max_questions
    assert criterion.min_questions is not None  # the config allows exactly one check per criterion
    return questions >= criterion.min_questions


def grade_rubric(task: TaskConfig, reply: str) -> dict[str, bool]:
    return {criterion.name: passes(criterion, reply) for criterion in task.rubric}


def score(task: TaskConfig, predictions: list[Prediction]) -> CandidateMetrics:
    labelled = [p for p in predictions if p.label is not None]
    accuracy = f1 = no_label = None
    if task.labels and labelled:
        accuracy = sum(p.predicted_label == p.label for p in labelled) / len(labelled)
        f1 = macro_f1(task.labels, [p.label for p in labelled], [p.predicted_label for p in labelled])
        no_label = sum(p.predicted_label is None for p in labelled) / len(labelled)
    rubric_rates: dict[str, float] = {}
    pass_rate = None
    if task.rubric and predictions:
        for criterion in task.rubric:
            rubric_rates[criterion.name] = sum(p.rubric[criterion.name] for p in predictions) / len(predictions)
        pass_rate = sum(all(p.rubric.values()) for p in predictions) / len(predictions)
    return CandidateMetrics(len(predictions), accuracy, f1, pass_rate, rubric_rates, no_label)


def macro_f1(labels: list[str], gold: list[str | None], predicted: list[str | None]) -> float:
    """Unweighted mean of per-label F1; a missing or unknown prediction counts against the gold label."""
    scores = []
    for label in labels:
        true_pos = sum(g == label and p == label for g, p in zip(gold, predicted, strict=True))
        false_pos = sum(g != label and p == label for g, p in zip(gold, predicted, strict=True))
        false_neg = sum(g == label and p != label for g, p in zip(gold, predicted, strict=True))
        denominator = 2 * true_pos + false_pos + false_neg
        scores.append(2 * true_pos / denominator if denominator else 0.0)
    return sum(scores) / len(scores)
