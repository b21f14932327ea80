"""The go / no-go gate: beat the best prompting baseline by the margin, without losing rubric quality."""

import pytest

from tunewright.config import GateConfig
from tunewright.evaluate.gate import FINETUNED, decide
from tunewright.evaluate.metrics import CandidateMetrics


def metrics(accuracy: float | None, rubric: float | None = None, f1: float | None = None) -> CandidateMetrics:
    return CandidateMetrics(rows=20, label_accuracy=accuracy, macro_f1=f1, rubric_pass_rate=rubric, rubric={},
                            no_label_rate=0.0)


def candidates(tuned: CandidateMetrics, zero: CandidateMetrics, few: CandidateMetrics) -> dict[str, CandidateMetrics]:
    return {FINETUNED: tuned, "zero_shot": zero, "few_shot": few}


@pytest.mark.parametrize(
    ("tuned", "zero", "few", "decision"),
    [
        (0.90, 0.60, 0.80, "go"),
        (0.84, 0.60, 0.80, "no-go"),  # beats the best baseline, but by less than the margin
        (0.85, 0.60, 0.80, "go"),  # exactly the margin (17/20 vs 16/20)
        (0.70, 0.80, 0.60, "no-go"),  # beats few-shot by a lot but not zero-shot
        (0.50, 0.60, 0.80, "no-go"),
    ],
)
def test_tuned_must_beat_the_best_baseline_by_the_margin(tuned: float, zero: float, few: float,
                                                          decision: str) -> None:
    result = decide(GateConfig(beat_by=0.05), candidates(metrics(tuned), metrics(zero), metrics(few)))
    assert result.decision == decision
    assert result.best_baseline == ("zero_shot" if zero > few else "few_shot")
    assert len(result.reasons) == 1  # no rubric measured
    assert result.reasons[0].startswith("label accuracy: fine-tuned")
    assert result.reasons[0].endswith("pass" if decision == "go" else "FAIL")


def test_rubric_regression_blocks_a_label_win() -> None:
    gate = GateConfig(beat_by=0.05, max_rubric_regression=0.02)
    result = decide(gate, candidates(metrics(0.95, rubric=0.70), metrics(0.60, rubric=0.90),
                                     metrics(0.80, rubric=0.50)))
    assert result.decision == "no-go"
    label_reason, rubric_reason = result.reasons
    assert label_reason.endswith("pass")
    assert rubric_reason.startswith("rubric pass rate:") and rubric_reason.endswith("FAIL")
    assert "90.0%" in rubric_reason  # compared with the best baseline rubric, whichever won on labels


@pytest.mark.parametrize(("tuned_rubric", "decision"), [(0.88, "go"), (0.87, "no-go"), (0.95, "go")])
def test_rubric_may_drop_at_most_the_allowed_amount(tuned_rubric: float, decision: str) -> None:
    gate = GateConfig(beat_by=0.05, max_rubric_regression=0.02)
    result = decide(gate, candidates(metrics(0.95, rubric=tuned_rubric), metrics(0.60, rubric=0.90),
                                     metrics(0.80, rubric=0.50)))
    assert result.decision == decision


def test_gate_metric_is_configurable() -> None:
    gate = GateConfig(metric="macro_f1", beat_by=0.1)
    tuned = metrics(0.50, f1=0.80)  # loses on accuracy, wins on macro-F1
    result = decide(gate, candidates(tuned, metrics(0.90, f1=0.40), metrics(0.90, f1=0.60)))
    assert result.decision == "go"
    assert result.best_baseline == "few_shot"
    assert result.reasons[0].startswith("macro-F1:")


def test_missing_metric_counts_as_zero() -> None:
    result = decide(GateConfig(), candidates(metrics(None), metrics(0.0), metrics(0.1)))
    assert result.decision == "no-go"
    result = decide(GateConfig(), candidates(metrics(0.5), metrics(None), metrics(None)))
    assert result.decision == "go"


def test_interval_bar_and_named_baseline() -> None:
    from tunewright.evaluate.stats import Comparison

    found = [Comparison("label_accuracy", "finetuned", "few_shot", 0.2, (-0.01, 0.4)),
             Comparison("label_accuracy", "finetuned", "zero_shot", 0.3, (0.1, 0.5))]
    pool = candidates(metrics(0.8), metrics(0.5), metrics(0.6))
    unsure = decide(GateConfig(by=0.05, ci_lower_above=0.0), pool, found)
    assert unsure.decision == "no-go" and "starts at -1.0 points" in unsure.reasons[1]
    named = decide(GateConfig(by=0.05, beat="zero_shot", ci_lower_above=0.0), pool, found)
    assert named.decision == "go" and named.best_baseline == "zero_shot"


def test_max_regression_on_any_metric() -> None:
    tuned = CandidateMetrics(rows=20, label_accuracy=0.9, macro_f1=0.9, rubric_pass_rate=None, rubric={},
                             no_label_rate=0.0, rouge_l=0.30)
    base = CandidateMetrics(rows=20, label_accuracy=0.5, macro_f1=0.5, rubric_pass_rate=None, rubric={},
                            no_label_rate=0.0, rouge_l=0.40)
    pool = {"finetuned": tuned, "zero_shot": base}
    assert decide(GateConfig(max_regression={"rouge_l": 0.2}), pool).decision == "go"
    strict = decide(GateConfig(max_regression={"rouge_l": 0.05}), pool)
    assert strict.decision == "no-go" and strict.reasons[-1].startswith("ROUGE-L") and "FAIL" in strict.reasons[-1]


@pytest.mark.parametrize(("measured", "decision"), [(0.95, "go"), (0.85, "no-go"), (None, "no-go")])
def test_gate_can_require_accuracy_at_a_coverage(measured: float | None, decision: str) -> None:
    gate = GateConfig(coverage=0.8, min_accuracy_at_coverage=0.9)
    result = decide(gate, candidates(metrics(0.9), metrics(0.6), metrics(0.8)), accuracy_at_coverage=measured)
    assert result.decision == decision
    assert any("80% most confident rows" in reason for reason in result.reasons)


def test_embedding_classifiers_count_for_the_label_but_not_for_reply_quality() -> None:
    """An embedding classifier's reply is a stored training answer: it is beaten on the label, and its
    rubric pass rate (a canned answer always has the format) is no bar for the fine-tune's replies."""
    gate = GateConfig(beat_by=0.05, max_rubric_regression=0.02)
    found = {FINETUNED: metrics(0.95, rubric=0.90), "zero_shot": metrics(0.40, rubric=0.10),
             "embedding_classifier": metrics(0.85, rubric=1.00)}
    result = decide(gate, found)
    assert result.best_baseline == "embedding_classifier" and result.decision == "go", result.reasons
    assert "vs best baseline 10.0%" in result.reasons[-1]
    found[FINETUNED] = metrics(0.88, rubric=0.90)
    assert decide(gate, found).decision == "no-go"  # not 5 points above the classifier's label accuracy
