"""The go / no-go decision: the fine-tuned model must beat a baseline (the best prompting baseline by
default) by the margin in the config, optionally with the bootstrap interval's lower end above a bar,
without giving up more than allowed on the metrics named in max_regression (rubric included), and, if
the config asks, with a human win rate from blind pairwise review at or above its bar."""

from __future__ import annotations

from dataclasses import dataclass

from tunewright.config import EMBEDDING_BASELINES, GateConfig, metric_title
from tunewright.evaluate.metrics import CandidateMetrics
from tunewright.evaluate.stats import Comparison
from tunewright.review import HumanReview

FINETUNED = "finetuned"
# Metrics are ratios of small counts (17/20 - 16/20 != 0.05 in floats): a result exactly at the
# margin must pass, so comparisons allow this much rounding.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Decision:
    decision: str  # "go" | "no-go"
    reasons: list[str]
    best_baseline: str


def metric_value(metrics: CandidateMetrics, name: str) -> float | None:
    """A metric by name; 'rubric.<criterion>' reads one rubric criterion's pass rate."""
    if name.startswith("rubric."):
        return metrics.rubric.get(name.removeprefix("rubric."))
    value = getattr(metrics, name, None)
    return value if isinstance(value, float | int) else None


def best_baseline(gate: GateConfig, candidates: dict[str, CandidateMetrics]) -> str:
    """The baseline the gate compares with: gate.beat, or the best on gate.metric; "" when none."""
    baselines = {name: m for name, m in candidates.items() if name != FINETUNED}
    if not baselines:
        return ""
    if gate.beat == "best_baseline" or gate.beat not in baselines:
        return max(baselines, key=lambda name: metric_value(baselines[name], gate.metric) or 0.0)
    return gate.beat


def decide(gate: GateConfig, candidates: dict[str, CandidateMetrics],
           comparisons: list[Comparison] | None = None, human: HumanReview | None = None,
           accuracy_at_coverage: float | None = None) -> Decision:
    """`accuracy_at_coverage`: the fine-tuned model's label accuracy on its gate.coverage most confident
    rows (None when it has no confidences)."""
    tuned = candidates[FINETUNED]
    baselines = {name: m for name, m in candidates.items() if name != FINETUNED}
    if not baselines:
        return Decision("no-go", ["no baseline was evaluated, so there is nothing to beat"], "")
    best = best_baseline(gate, candidates)
    reasons, passed = [], True
    tuned_value = metric_value(tuned, gate.metric)
    best_value = metric_value(baselines[best], gate.metric) or 0.0  # a baseline without it scores 0
    if tuned_value is None:
        passed = False
        reasons.append(f"{metric_title(gate.metric)}: not measured for this task (pick another eval.gate.metric): FAIL")
    else:
        wins = tuned_value - best_value >= gate.beat_by - TOLERANCE
        passed &= wins
        reasons.append(
            f"{metric_title(gate.metric)}: fine-tuned {percent(tuned_value)} vs {shown_name(best)} "
            f"{percent(best_value)} (needs {points(gate.beat_by)}): {'pass' if wins else 'FAIL'}"
        )
    if gate.ci_lower_above is not None:
        found = [c for c in comparisons or [] if c.metric == gate.metric and c.baseline == best]
        lower = found[0].ci95[0] if found else None
        sure = lower is not None and lower > gate.ci_lower_above
        passed &= sure
        shown = "not computed" if lower is None else points(lower)
        reasons.append(f"{metric_title(gate.metric)}: the 95% interval of the difference to {shown_name(best)} starts "
                       f"at {shown} (must be above {points(gate.ci_lower_above)}): {'pass' if sure else 'FAIL'}")
    if gate.min_accuracy_at_coverage is not None and gate.coverage is not None:
        reason, reaches = _coverage_condition(gate, accuracy_at_coverage)
        passed &= reaches
        reasons.append(reason)
    for reason, keeps in _regression_conditions(gate, tuned, baselines):
        passed &= keeps
        reasons.append(reason)
    if gate.human_win_rate is not None:
        reason, ok = _human_condition(gate, best, human)
        passed &= ok
        reasons.append(reason)
    return Decision("go" if passed else "no-go", reasons, best)


def _regression_conditions(gate: GateConfig, tuned: CandidateMetrics,
                           baselines: dict[str, CandidateMetrics]) -> list[tuple[str, bool]]:
    """How far the fine-tune may fall below the best baseline on each guarded metric."""
    limits = dict(gate.max_regression)
    if tuned.rubric_pass_rate is not None:
        limits.setdefault("rubric_pass_rate", gate.max_rubric_regression)
    # The embedding classifiers compete on the label only: their reply is a stored training answer.
    repliers = [m for name, m in baselines.items() if name not in EMBEDDING_BASELINES]
    conditions = []
    for metric, allowed in limits.items():
        ours = metric_value(tuned, metric)
        theirs = [v for m in repliers if (v := metric_value(m, metric)) is not None]
        if ours is None or not theirs:
            continue
        keeps = max(theirs) - ours <= allowed + TOLERANCE
        reason = (f"{metric_title(metric)}: fine-tuned {percent(ours)} vs best baseline {percent(max(theirs))} "
                  f"(may drop at most {points(allowed, sign=False)}): {'pass' if keeps else 'FAIL'}")
        conditions.append((reason, keeps))
    return conditions


def _coverage_condition(gate: GateConfig, accuracy_at_coverage: float | None) -> tuple[str, bool]:
    assert gate.min_accuracy_at_coverage is not None and gate.coverage is not None
    reaches = accuracy_at_coverage is not None and accuracy_at_coverage >= gate.min_accuracy_at_coverage - TOLERANCE
    shown = "not measured (no confidences)" if accuracy_at_coverage is None else percent(accuracy_at_coverage)
    return (f"label accuracy on the {percent(gate.coverage, 0)} most confident rows: {shown} "
            f"(needs {percent(gate.min_accuracy_at_coverage)}): {'pass' if reaches else 'FAIL'}"), reaches


def _human_condition(gate: GateConfig, best: str, human: HumanReview | None) -> tuple[str, bool]:
    assert gate.human_win_rate is not None
    bar, needed = gate.human_win_rate.min, gate.human_win_rate.min_rows
    rows = human.rows if human is not None else 0
    if human is None or human.win_rate is None or rows < needed:
        return (f"human win rate vs {shown_name(best)}: {rows} of {needed} test rows reviewed (grade them with "
                f"`tunewright ui`): FAIL"), False
    ok = human.win_rate >= bar - TOLERANCE
    return (f"human win rate vs {shown_name(best)}: {percent(human.win_rate)} on {rows} rows (needs "
            f"{percent(bar)}): {'pass' if ok else 'FAIL'}"), ok


def shown_name(candidate: str) -> str:
    """A candidate as people read it: 'few-shot', 'embedding classifier', 'fine-tuned'."""
    return {FINETUNED: "fine-tuned"}.get(candidate, candidate.replace("_shot", "-shot").replace("_", " "))


def percent(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}%"  # as the report writes percentages (report/view.py)


def points(value: float, sign: bool = True) -> str:
    return f"{value * 100:{'+' if sign else ''}.1f} points"


LABEL_METRICS = ("label_accuracy", "macro_f1")
ADDED_METRICS = ("rubric_pass_rate", "semantic_similarity", "rouge_l", "exact_match", "judge_pass_rate")


def label_without_llm(gate: GateConfig, candidates: dict[str, CandidateMetrics]) -> dict[str, object] | None:
    """The best embedding classifier, when it passes the gate's label metric on its own: it beats the
    best prompting baseline by the gate's margin, as the fine-tune must. Says whether the fine-tune
    beats it by that margin too, and on which other metrics the fine-tune is ahead (e.g. the reply)."""
    if gate.metric not in LABEL_METRICS or FINETUNED not in candidates:
        return None
    embedding = {n: v for n in EMBEDDING_BASELINES if n in candidates
                 and (v := metric_value(candidates[n], gate.metric)) is not None}
    prompting = [v for n, m in candidates.items() if n != FINETUNED and n not in EMBEDDING_BASELINES
                 and (v := metric_value(m, gate.metric)) is not None]
    if not embedding:
        return None
    best = max(embedding, key=lambda name: embedding[name])
    bar = max(prompting, default=0.0)
    if embedding[best] - bar < gate.beat_by - TOLERANCE:
        return None
    tuned = metric_value(candidates[FINETUNED], gate.metric)
    added = {metric: {"finetuned": ours, best: theirs} for metric in ADDED_METRICS
             if (ours := metric_value(candidates[FINETUNED], metric)) is not None
             and (theirs := metric_value(candidates[best], metric)) is not None and ours > theirs + TOLERANCE}
    needed = tuned is not None and tuned - embedding[best] >= gate.beat_by - TOLERANCE
    return {"candidate": best, "metric": gate.metric, "value": embedding[best], "best_prompting": bar,
            "finetuned": tuned, "finetune_needed": needed, "finetune_adds": added}
