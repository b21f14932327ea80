"""Scoring predictions: accuracy with missing labels counted wrong, macro-F1, every rubric check kind."""

import pytest

from tunewright.config import RubricCriterion, TaskConfig
from tunewright.evaluate.metrics import grade_rubric, macro_f1, passes, score
from tunewright.records import Prediction

LABELS = ["A", "B", "C"]
TASK = TaskConfig(name="t", system_prompt="s", labels=LABELS, label_regex=r"^(?P<label>\w+)")


def prediction(gold: str | None, predicted: str | None, rubric: dict[str, bool] | None = None) -> Prediction:
    return Prediction("id", "finetuned", "out", "ref", gold, predicted, rubric or {})


def test_macro_f1_matches_a_hand_computed_value() -> None:
    gold: list[str | None] = ["A", "A", "B", "B", "C", "C"]
    predicted: list[str | None] = ["A", "B", "B", None, "C", "A"]
    # A: tp 1, fp 1, fn 1 -> 1/2;  B: tp 1, fp 1, fn 1 -> 1/2;  C: tp 1, fp 0, fn 1 -> 2/3
    assert macro_f1(LABELS, gold, predicted) == pytest.approx((0.5 + 0.5 + 2 / 3) / 3)


def test_macro_f1_is_one_when_perfect_and_zero_when_all_missing() -> None:
    assert macro_f1(LABELS, ["A", "B", "C"], ["A", "B", "C"]) == 1.0
    assert macro_f1(LABELS, ["A", "B", "C"], [None, None, None]) == 0.0


def test_macro_f1_weights_every_label_equally() -> None:
    # Always predicting the majority label: high accuracy, low macro-F1.
    gold: list[str | None] = ["A"] * 8 + ["B", "C"]
    predicted: list[str | None] = ["A"] * 10
    # A: tp 8, fp 2 -> 16/18; B and C: 0
    assert macro_f1(LABELS, gold, predicted) == pytest.approx((16 / 18) / 3)


def test_unknown_predicted_label_counts_against_the_gold_label_only() -> None:
    assert macro_f1(["A", "B"], ["A", "B"], ["Z", "B"]) == pytest.approx((0.0 + 1.0) / 2)


def test_score_counts_missing_labels_as_wrong() -> None:
    predictions = [prediction("A", "A"), prediction("B", None), prediction("C", "C"), prediction("A", "B")]
    metrics = score(TASK, predictions)
    assert metrics.rows == 4
    assert metrics.label_accuracy == pytest.approx(2 / 4)
    assert metrics.no_label_rate == pytest.approx(1 / 4)
    assert metrics.macro_f1 == pytest.approx(macro_f1(LABELS, ["A", "B", "C", "A"], ["A", None, "C", "B"]))


def test_rows_without_a_gold_label_are_left_out_of_label_metrics() -> None:
    metrics = score(TASK, [prediction("A", "A"), prediction(None, "B")])
    assert metrics.rows == 2
    assert metrics.label_accuracy == 1.0
    assert metrics.no_label_rate == 0.0


def test_free_form_task_has_no_label_metrics() -> None:
    task = TaskConfig(name="t", system_prompt="s")
    metrics = score(task, [prediction(None, None)])
    assert (metrics.label_accuracy, metrics.macro_f1, metrics.no_label_rate) == (None, None, None)
    assert metrics.rubric_pass_rate is None and metrics.rubric == {}


@pytest.mark.parametrize(
    ("check", "reply", "expected"),
    [
        ({"required_pattern": r"^\[Intent: \w+"}, "[Intent: Fraud] Sorry.", True),
        ({"required_pattern": r"^\[Intent: \w+"}, "Sorry. [Intent: Fraud]", False),
        ({"required_pattern": "thanks"}, "Many thanks!", True),  # search, not full match
        ({"forbidden_pattern": r"(?i)\bpassword\b"}, "What is your Password?", False),
        ({"forbidden_pattern": r"(?i)\bpassword\b"}, "Please reset it in the app.", True),
        ({"max_chars": 5}, "12345", True),
        ({"max_chars": 5}, "123456", False),
        ({"max_questions": 1}, "When? ", True),
        ({"max_questions": 1}, "When? Where?", False),
        ({"max_questions": 0}, "No questions.", True),
        ({"min_questions": 1}, "No questions.", False),
        ({"min_questions": 1}, "Which card?", True),
    ],
)
def test_each_rubric_check_kind(check: dict[str, object], reply: str, expected: bool) -> None:
    criterion = RubricCriterion.model_validate({"name": "c", **check})
    assert passes(criterion, reply) is expected


def test_rubric_pass_rate_per_criterion_and_overall() -> None:
    task = TaskConfig(name="t", system_prompt="s", rubric=[
        RubricCriterion(name="asks", min_questions=1), RubricCriterion(name="short", max_chars=12)])
    replies = ["Which card?", "Which card was it?", "Done."]
    assert [grade_rubric(task, r) for r in replies] == [
        {"asks": True, "short": True}, {"asks": True, "short": False}, {"asks": False, "short": True}]
    metrics = score(task, [prediction(None, None, grade_rubric(task, r)) for r in replies])
    assert metrics.rubric == {"asks": pytest.approx(2 / 3), "short": pytest.approx(2 / 3)}
    assert metrics.rubric_pass_rate == pytest.approx(1 / 3)  # only one reply passes every criterion
