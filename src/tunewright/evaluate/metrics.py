"""Score predictions: label accuracy, macro-F1, confusion matrix, exact match, ROUGE-L, semantic
similarity, the task card's rubric, and for tasks with an output schema JSON / schema validity and
field-level scores (evaluate/fields.py). Every metric is also available per subset of rows
(`row_scores`), which is what the paired bootstrap resamples."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tunewright.config import RubricCriterion, TaskConfig
from tunewright.evaluate.fields import FIELD_METRICS, FieldErrors, field_errors, field_row_scores, score_answers
from tunewright.evaluate.stats import RowScore, mean_of
from tunewright.records import Prediction


@dataclass(frozen=True)
class CandidateMetrics:
    rows: int
    label_accuracy: float | None
    macro_f1: float | None
    rubric_pass_rate: float | None
    rubric: dict[str, float]  # pass rate per criterion
    no_label_rate: float | None
    exact_match: float | None = None
    rouge_l: float | None = None
    semantic_similarity: float | None = None
    judge_pass_rate: float | None = None
    judge_parse_failures: int | None = None
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # gold -> predicted -> count
    json_valid_rate: float | None = None
    schema_valid_rate: float | None = None
    field_precision: float | None = None  # micro over every (field, value) pair
    field_recall: float | None = None
    field_f1: float | None = None
    exact_frame_match: float | None = None  # every field right, none extra
    fields: list[FieldErrors] = field(default_factory=list)  # per-field error table


# Metrics compared between candidates with a bootstrap interval (rubric criteria are added per task).
COMPARED = ("label_accuracy", "macro_f1", "rubric_pass_rate", "exact_match", "rouge_l",
            "semantic_similarity", "judge_pass_rate", *FIELD_METRICS)
NO_LABEL = "(no label)"


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
    if criterion.must_mention_one_of is not None:
        lowered = reply.lower()
        return any(term.lower() in lowered for term in criterion.must_mention_one_of)
    assert criterion.min_questions is not None  # the config allows exactly one check per criterion
    return questions >= criterion.min_questions


def grade_rubric(task: TaskConfig, reply: str) -> dict[str, bool]:
    return {criterion.name: passes(criterion, reply) for criterion in task.rubric}


def rouge_l(predictions: Sequence[Prediction]) -> list[float]:
    """ROUGE-L F-measure of each output against its reference (Google's rouge-score package)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [scorer.score(p.reference, p.output)["rougeL"].fmeasure for p in predictions]


def row_scores(task: TaskConfig, predictions: Sequence[Prediction],
               similarity: Sequence[float] | None = None,
               judge: Sequence[bool | None] | None = None) -> dict[str, RowScore]:
    """Each metric as a function of a list of row indices (repeats allowed), for the bootstrap."""
    scores: dict[str, RowScore] = {}
    if task.labels and any(p.label is not None for p in predictions):
        correct = [None if p.label is None else float(p.predicted_label == p.label) for p in predictions]
        scores["label_accuracy"] = mean_of(correct)

        def f1(indices: Sequence[int]) -> float | None:
            kept = [predictions[i] for i in indices if predictions[i].label is not None]
            if not kept:
                return None
            return macro_f1(task.labels, [p.label for p in kept], [p.predicted_label for p in kept])
        scores["macro_f1"] = f1
    if task.rubric:
        scores["rubric_pass_rate"] = mean_of([float(all(p.rubric.values())) for p in predictions])
        for criterion in task.rubric:
            scores[f"rubric.{criterion.name}"] = mean_of([float(p.rubric[criterion.name]) for p in predictions])
    if task.output_schema is not None:
        scores.update(field_row_scores(task.output_schema, predictions))
    scores["exact_match"] = mean_of([float(p.output.strip() == p.reference.strip()) for p in predictions])
    scores["rouge_l"] = mean_of(rouge_l(predictions))
    if similarity is not None:
        scores["semantic_similarity"] = mean_of(list(similarity))
    if judge is not None:
        scores["judge_pass_rate"] = mean_of([None if verdict is None else float(verdict) for verdict in judge])
    return scores


def score(task: TaskConfig, predictions: list[Prediction], similarity: Sequence[float] | None = None,
          judge: Sequence[bool | None] | None = None, judge_parse_failures: int | None = None) -> CandidateMetrics:
    """All metrics of one candidate. `judge` has one verdict per row (None: not judged or unreadable)."""
    everything = range(len(predictions))
    per_row = row_scores(task, predictions, similarity, judge) if predictions else {}

    def value(name: str) -> float | None:
        return per_row[name](everything) if name in per_row else None

    labelled = [p for p in predictions if p.label is not None]
    no_label = None
    confusion: dict[str, dict[str, int]] = {}
    if "label_accuracy" in per_row and labelled:
        no_label = sum(p.predicted_label is None for p in labelled) / len(labelled)
        for p in labelled:
            assert p.label is not None
            row = confusion.setdefault(p.label, {})
            predicted = p.predicted_label or NO_LABEL
            row[predicted] = row.get(predicted, 0) + 1
    rubric_rates = {c.name: value(f"rubric.{c.name}") or 0.0 for c in task.rubric} if predictions else {}
    schema = task.output_schema
    fields = field_errors(score_answers(schema, predictions)) if schema is not None else []
    return CandidateMetrics(
        rows=len(predictions),
        label_accuracy=value("label_accuracy"),
        macro_f1=value("macro_f1"),
        rubric_pass_rate=value("rubric_pass_rate"),
        rubric=rubric_rates,
        no_label_rate=no_label,
        exact_match=value("exact_match"),
        rouge_l=value("rouge_l"),
        semantic_similarity=value("semantic_similarity"),
        judge_pass_rate=value("judge_pass_rate"),
        judge_parse_failures=judge_parse_failures,
        confusion=confusion,
        **{name: value(name) for name in FIELD_METRICS},
        fields=fields,
    )


def macro_f1(labels: list[str], gold: Sequence[str | None], predicted: Sequence[str | None]) -> float:
    """Unweighted mean of per-label F1; a missing or unknown prediction counts against the gold label."""
    true_pos = dict.fromkeys(labels, 0)
    false_pos = dict.fromkeys(labels, 0)
    false_neg = dict.fromkeys(labels, 0)
    for g, p in zip(gold, predicted, strict=True):
        if g == p and g in true_pos:
            true_pos[g] += 1
            continue
        if p in false_pos:
            false_pos[p] += 1
        if g in false_neg:
            false_neg[g] += 1
    scores = []
    for label in labels:
        denominator = 2 * true_pos[label] + false_pos[label] + false_neg[label]
        scores.append(2 * true_pos[label] / denominator if denominator else 0.0)
    return sum(scores) / len(scores)
