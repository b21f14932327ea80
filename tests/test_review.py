"""Human review: the append-only verdicts file, the latest verdict per reviewer counting once, the win
rate with its interval, kappa against the judge, and the gate condition."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunewright.config import GateConfig, HumanGate
from tunewright.evaluate.gate import FINETUNED, decide
from tunewright.evaluate.metrics import CandidateMetrics
from tunewright.review import VerdictRecord, append_verdict, finetuned_side, read_verdicts, summarise, verdicts_path


def verdict(row: str, choice: str, reviewer: str = "ann", baseline: str = "few_shot") -> VerdictRecord:
    return VerdictRecord(reviewer=reviewer, time="2026-12-01T00:00:00+00:00", row=row, baseline=baseline,
                         verdict=choice, finetuned_side="left")  # type: ignore[arg-type]


def test_verdicts_append_and_the_latest_per_reviewer_counts(tmp_path: Path) -> None:
    for record in [verdict("r1", "baseline"), verdict("r1", "finetuned"), verdict("r2", "both_bad"),
                   verdict("r2", "finetuned", reviewer="bob"), verdict("r3", "finetuned", baseline="zero_shot")]:
        append_verdict(tmp_path, record)
    assert len(verdicts_path(tmp_path).read_text().splitlines()) == 5  # nothing rewritten
    human = summarise(tmp_path, "few_shot")
    assert human is not None
    assert (human.rows, human.verdicts, human.reviewers) == (2, 3, 2)
    assert (human.wins, human.losses, human.ties) == (2, 0, 1)
    assert human.win_rate == pytest.approx((1.0 + (0.5 + 1.0) / 2) / 2)  # r1: 1; r2: mean of 0.5 and 1
    assert human.ci95 is not None and human.ci95[0] <= human.win_rate <= human.ci95[1]
    assert summarise(tmp_path, "retrieved_few_shot") is None


def test_a_torn_last_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path: Path) -> None:
    append_verdict(tmp_path, verdict("r1", "finetuned"))
    with verdicts_path(tmp_path).open("a") as handle:
        handle.write('{"reviewer": "ann", "ti')
    assert len(read_verdicts(tmp_path)) == 1
    append_verdict(tmp_path, verdict("r2", "finetuned"))
    with pytest.raises(Exception, match=r"verdicts.jsonl:2"):
        read_verdicts(tmp_path)


def test_kappa_against_the_judge(tmp_path: Path) -> None:
    rows = {"r1": ("finetuned", True, False), "r2": ("baseline", False, True), "r3": ("both_good", True, True),
            "r4": ("both_bad", True, False)}
    for row, (choice, _, _) in rows.items():
        append_verdict(tmp_path, verdict(row, choice))
    judge = {FINETUNED: {row: tuned for row, (_, tuned, _) in rows.items()},
             "few_shot": {row: base for row, (_, _, base) in rows.items()}}
    human = summarise(tmp_path, "few_shot", judge)
    assert human is not None and human.judge_rows == 4
    assert human.judge_kappa is not None and 0 < human.judge_kappa < 1  # three of four agree


def test_sides_are_fixed_per_row_and_reviewer_and_mixed() -> None:
    sides = [finetuned_side("run", f"row{i}", "ann") for i in range(40)]
    assert sides == [finetuned_side("run", f"row{i}", "ann") for i in range(40)]
    assert 10 < sides.count("left") < 30


def _metrics(accuracy: float) -> CandidateMetrics:
    return CandidateMetrics(rows=20, label_accuracy=accuracy, macro_f1=None, rubric_pass_rate=None, rubric={},
                            no_label_rate=0.0)


@pytest.mark.parametrize(("graded", "wins", "decision"), [(10, 10, "no-go"), (20, 14, "go"), (20, 10, "no-go")])
def test_the_gate_needs_enough_rows_and_the_win_rate(tmp_path: Path, graded: int, wins: int, decision: str) -> None:
    for index in range(graded):
        append_verdict(tmp_path, verdict(f"r{index}", "finetuned" if index < wins else "baseline"))
    gate = GateConfig(beat_by=0.0, human_win_rate=HumanGate(min=0.6, min_rows=20))
    result = decide(gate, {FINETUNED: _metrics(0.9), "few_shot": _metrics(0.8)}, [],
                    summarise(tmp_path, "few_shot"))
    assert result.decision == decision
    assert result.reasons[-1].startswith("human win rate vs few-shot")
