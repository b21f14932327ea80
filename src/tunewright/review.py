"""Blind pairwise human review of a run: which side each reviewer sees on which row, the append-only
verdicts file runs/<name>/review/verdicts.jsonl, and what the verdicts add up to (human win rate of the
fine-tuned model with a 95 % interval, Cohen's kappa against the LLM judge). No torch here: `tunewright
ui` and the gate read it."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from tunewright.errors import TunewrightError

FINETUNED = "finetuned"  # mirrors evaluate.gate.FINETUNED without importing evaluate (torch)
Verdict = Literal["finetuned", "baseline", "both_good", "both_bad"]
VERDICTS: tuple[Verdict, ...] = ("finetuned", "baseline", "both_good", "both_bad")
# Pairwise scores: a tie (both good or both bad) is half a win, as in Chatbot Arena's win rates.
SCORE = {"finetuned": 1.0, "baseline": 0.0, "both_good": 0.5, "both_bad": 0.5}
RESAMPLES = 2000


@dataclass(frozen=True)
class VerdictRecord:
    """One human judgement of one test row; the file keeps every one, the latest per reviewer counts."""

    reviewer: str
    time: str  # ISO 8601, UTC
    row: str  # the test example's id
    baseline: str  # the candidate the fine-tuned model was shown against
    verdict: Verdict
    finetuned_side: Literal["left", "right"]
    failed_finetuned: list[str] = field(default_factory=list)  # rubric criteria the reviewer saw fail
    failed_baseline: list[str] = field(default_factory=list)
    comment: str = ""


@dataclass(frozen=True)
class HumanReview:
    """What the verdicts against one baseline add up to."""

    baseline: str
    rows: int  # distinct test rows with at least one verdict
    verdicts: int  # latest verdict per (reviewer, row)
    reviewers: int
    wins: int
    losses: int
    ties: int
    win_rate: float | None
    ci95: tuple[float, float] | None
    judge_kappa: float | None  # Cohen's kappa between the LLM judge's and the humans' verdicts
    judge_rows: int  # rows both graded

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def verdicts_path(run_root: Path) -> Path:
    return run_root / "review" / "verdicts.jsonl"


def finetuned_side(run_name: str, row: str, reviewer: str) -> Literal["left", "right"]:
    """A fixed coin flip per (run, row, reviewer): random to the reviewer, the same again after a reload."""
    digest = hashlib.sha256(f"{run_name}\0{row}\0{reviewer}".encode()).digest()
    return "left" if digest[0] % 2 == 0 else "right"


def append_verdict(run_root: Path, record: VerdictRecord) -> None:
    """Append one line (one write call, flushed to disk), so concurrent reviewers never interleave."""
    if record.verdict not in VERDICTS:
        raise TunewrightError(f"verdict {record.verdict!r}: use one of {', '.join(VERDICTS)}")
    path = verdicts_path(run_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(asdict(record), ensure_ascii=False) + "\n").encode("utf-8")
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        line = b"\n" + line  # after a torn line (a crash mid-write) the new verdict starts a line of its own
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_verdicts(run_root: Path) -> list[VerdictRecord]:
    """Every verdict in the file, oldest first; a torn last line (a crash mid-write) is skipped."""
    path = verdicts_path(run_root)
    if not path.is_file():
        return []
    records = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(VerdictRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            if number == len(lines):
                continue
            raise TunewrightError(f"{path}:{number}: not a verdict ({exc}); fix or delete that line") from None
    return records


def latest(records: list[VerdictRecord], baseline: str) -> dict[tuple[str, str], VerdictRecord]:
    """The last verdict of each reviewer on each row against `baseline`: changing one's mind counts once."""
    return {(r.reviewer, r.row): r for r in records if r.baseline == baseline}


def summarise(run_root: Path, baseline: str, judge: dict[str, dict[str, bool | None]] | None = None,
              seed: int = 0) -> HumanReview | None:
    """Win rate of the fine-tuned model over `baseline` (ties count half), a bootstrap 95 % interval over
    rows, and kappa against the judge's per-row verdicts ({candidate: {row: pass}}); None without verdicts."""
    kept = latest(read_verdicts(run_root), baseline)
    if not kept:
        return None
    by_row: dict[str, list[float]] = {}
    for record in kept.values():
        by_row.setdefault(record.row, []).append(SCORE[record.verdict])
    row_scores = [sum(scores) / len(scores) for scores in by_row.values()]
    counts = {verdict: sum(r.verdict == verdict for r in kept.values()) for verdict in VERDICTS}
    kappa, judged = judge_agreement(list(kept.values()), judge or {}, baseline)
    return HumanReview(
        baseline=baseline, rows=len(by_row), verdicts=len(kept),
        reviewers=len({r.reviewer for r in kept.values()}),
        wins=counts["finetuned"], losses=counts["baseline"], ties=counts["both_good"] + counts["both_bad"],
        win_rate=sum(row_scores) / len(row_scores), ci95=bootstrap_interval(row_scores, seed),
        judge_kappa=kappa, judge_rows=judged,
    )


def bootstrap_interval(values: list[float], seed: int) -> tuple[float, float]:
    """2.5th and 97.5th percentiles of the mean over rows resampled with replacement."""
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(RESAMPLES))
    last = len(means) - 1
    return means[math.floor(0.025 * last)], means[math.ceil(0.975 * last)]


def judge_verdict(tuned: bool | None, base: bool | None) -> Verdict | None:
    """The judge's PASS/FAIL on both answers, read as a pairwise verdict."""
    if tuned is None or base is None:
        return None
    if tuned != base:
        return "finetuned" if tuned else "baseline"
    return "both_good" if tuned else "both_bad"


def judge_agreement(records: list[VerdictRecord], judge: dict[str, dict[str, bool | None]],
                    baseline: str) -> tuple[float | None, int]:
    """Cohen's kappa (scikit-learn) over every human verdict whose row the judge graded for both sides."""
    tuned, base = judge.get(FINETUNED, {}), judge.get(baseline, {})
    pairs = [(human.verdict, machine) for human in records
             if (machine := judge_verdict(tuned.get(human.row), base.get(human.row))) is not None]
    if len(pairs) < 2:
        return None, len(pairs)
    from sklearn.metrics import cohen_kappa_score

    humans, machines = zip(*pairs, strict=True)
    if len(set(humans) | set(machines)) < 2:  # one category everywhere: agreement is perfect, kappa undefined
        return 1.0, len(pairs)
    return float(cohen_kappa_score(list(humans), list(machines), labels=list(VERDICTS))), len(pairs)
