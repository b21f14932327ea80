"""Calibration, coverage and the label ensemble: ECE from known bins, coverage from the most confident
rows, ensemble probabilities summing to 1, weights fitted to the side that knows the answer; and
abstention: under task.abstain_below the fine-tuned model answers the escalation reply."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tunewright.config import load_config
from tunewright.data.formats import read_examples
from tunewright.evaluate.calibration import (
    accuracy_at_coverage,
    combine,
    coverage_curve,
    expected_calibration_error,
    fit_weights,
)
from tunewright.evaluate.label_answers import label_scoring_format, prepare_scorer, scored_answers, scored_labels
from tunewright.modeling import load_model, load_tokenizer


def test_expected_calibration_error_from_known_bins() -> None:
    # Two bins: 0.95-confident rows right 1 of 2 times (gap 0.45), 0.25-confident rows right 1 of 2 (gap 0.25).
    ece = expected_calibration_error([0.95, 0.95, 0.25, 0.25], [True, False, True, False])
    assert math.isclose(ece, 0.5 * 0.45 + 0.5 * 0.25)
    assert expected_calibration_error([0.8] * 5, [True, True, True, True, False]) < 1e-9


def test_coverage_keeps_the_most_confident_rows() -> None:
    confidence, correct = [0.9, 0.8, 0.3, 0.2], [True, True, False, False]
    assert accuracy_at_coverage(confidence, correct, 0.5) == 1.0
    curve = coverage_curve(confidence, correct, points=2)
    assert curve == [(0.2, 1.0, 0.5), (0.8, 0.5, 1.0)]


def test_ensemble_sums_to_one_and_fits_the_informative_side() -> None:
    labels = ["a", "b", "c"]
    gold = ["a", "b", "c", "a", "b", "c"]
    # The model's scores are noise; the embedding side puts 0.6 on the right label.
    model = [{"a": 0.5, "b": 0.3, "c": 0.2}] * 6
    embedding = [{label: 0.6 if label == g else 0.2 for label in labels} for g in gold]
    for row in combine(model, embedding, (1.0, 1.0)):
        assert math.isclose(sum(row.values()), 1.0)
    weight_model, weight_embedding = fit_weights(model, embedding, gold)
    assert weight_embedding > 1.0 and weight_model < weight_embedding


@pytest.fixture(scope="module")
def scored_project(tmp_path_factory: pytest.TempPathFactory, make_project: object) -> tuple[object, ...]:
    config_path = make_project(tmp_path_factory.mktemp("abstain"), 40)  # type: ignore[operator]
    config = load_config(config_path)
    examples, _ = read_examples(config.data.path, config.task.label_regex)
    tokenizer, model = load_tokenizer(Path(config.model.base)), load_model(Path(config.model.base))
    model.eval()
    return config, examples[:32], examples[32:36], examples[36:], tokenizer, model


@pytest.mark.parametrize("threshold", [None, 0.99])
def test_abstains_below_the_threshold(scored_project: tuple[object, ...], threshold: float | None) -> None:
    config, train, val, test, tokenizer, model = scored_project
    task = config.task.model_copy(update={"abstain_below": threshold})  # type: ignore[attr-defined]
    config = config.model_copy(update={"task": task})  # type: ignore[attr-defined]
    fmt = label_scoring_format(config, train)  # type: ignore[arg-type]
    assert fmt is not None and not fmt.label_only
    scorer = prepare_scorer(config, model, tokenizer, train, val, fmt)  # type: ignore[arg-type]
    answers = scored_answers(scorer, test)  # type: ignore[arg-type]
    # the sweep's validation labels are these answers' labels, without generating the replies
    assert scored_labels(scorer, test) == [None if a.abstained else a.label for a in answers]  # type: ignore[arg-type]
    assert scored_answers(scorer, []) == []  # e.g. a fairness probe that found no name to swap
    for answer in answers:
        assert math.isclose(sum(answer.final_scores.values()), 1.0, rel_tol=1e-6)
        assert answer.label == max(answer.final_scores, key=lambda label: answer.final_scores[label])
        assert answer.confidence == answer.final_scores[answer.label]
        if threshold is None:
            assert not answer.abstained and answer.reply.startswith(f"[Intent: {answer.label}]")
        else:  # 4 labels from a random tiny model: no probability reaches 0.99
            assert answer.abstained and answer.reply == task.escalation_reply
