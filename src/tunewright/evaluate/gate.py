"""The go / no-go decision: the fine-tuned model must beat the best prompting baseline by a margin
written in the config, without giving up rubric quality."""

from __future__ import annotations

from dataclasses import dataclass

from tunewright.config import GateConfig
from tunewright.evaluate.metrics import CandidateMetrics

FINETUNED = "finetuned"
# Metrics are ratios of small counts (17/20 - 16/20 != 0.05 in floats): a result exactly at the
# margin must pass, so comparisons allow this much rounding.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Decision:
    decision: str  # "go" | "no-go"
    reasons: list[str]
    best_baseline: str


def decide(gate: GateConfig, candidates: dict[str, CandidateMetrics]) -> Decision:
    tuned = candidates[FINETUNED]
    baselines = {name: m for name, m in candidates.items() if name != FINETUNED}
    best = max(baselines, key=lambda name: getattr(baselines[name], gate.metric) or 0.0)
    tuned_value = getattr(tuned, gate.metric) or 0.0
    best_value = getattr(baselines[best], gate.metric) or 0.0
    reasons = []
    wins = tuned_value - best_value >= gate.beat_by - TOLERANCE
    reasons.append(
        f"{gate.metric}: finetuned {tuned_value:.3f} vs best baseline {best} {best_value:.3f} "
        f"(needs +{gate.beat_by:.3f}): {'pass' if wins else 'FAIL'}"
    )
    keeps_rubric = True
    if tuned.rubric_pass_rate is not None:
        best_rubric = max(m.rubric_pass_rate or 0.0 for m in baselines.values())
        keeps_rubric = best_rubric - tuned.rubric_pass_rate <= gate.max_rubric_regression + TOLERANCE
        reasons.append(
            f"rubric_pass_rate: finetuned {tuned.rubric_pass_rate:.3f} vs best baseline {best_rubric:.3f} "
            f"(may drop at most {gate.max_rubric_regression:.3f}): {'pass' if keeps_rubric else 'FAIL'}"
        )
    return Decision("go" if wins and keeps_rubric else "no-go", reasons, best)
