"""What the dashboard knows about runs, read only from their files: config.yaml, summary.json,
metrics.jsonl, data/test.jsonl and eval/predictions-*.jsonl. Typed rows for the templates."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunewright.records import Example, Prediction
from tunewright.report.examples import correct, last_user_turn
from tunewright.report.sections import points
from tunewright.report.view import percent
from tunewright.run_summary import RunSummary
from tunewright.runs import RunPaths, read_jsonl

FINETUNED = "finetuned"
STALE_SECONDS = 600  # a run without a summary whose metrics.jsonl has not moved for this long stopped


@dataclass(frozen=True)
class RunRow:
    name: str
    task: str
    method: str
    status: str  # "running" | "finished" | "failed"
    decision: str  # "go" | "no-go" | ""
    metric: str  # the gate's metric
    value: str  # the fine-tuned model's value on it, e.g. "87.5%"
    difference: str  # against the best baseline, with its interval
    updated: float


@dataclass(frozen=True)
class ExampleRow:
    """One test row side by side: the fine-tuned model and the best baseline."""

    example_id: str
    input: str
    reference: str
    label: str | None
    tuned: Prediction
    baseline: Prediction
    change: str  # "improved" | "regressed" | ""

    @property
    def rubric_failures(self) -> list[str]:
        return [name for name, ok in self.tuned.rubric.items() if not ok]


def run_dirs(runs_dir: Path) -> list[Path]:
    """Directories under runs_dir holding a config.yaml (a run), newest first."""
    if not runs_dir.is_dir():
        return []
    found = [path for path in runs_dir.iterdir() if (path / "config.yaml").is_file()]
    return sorted(found, key=lambda path: -_updated(RunPaths(path)))


def find_run(runs_dir: Path, name: str) -> RunPaths | None:
    """A run by directory name; None for names that are not a run directly under runs_dir."""
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    path = runs_dir / name
    return RunPaths(path) if (path / "config.yaml").is_file() else None


def summary_of(run: RunPaths) -> RunSummary | None:
    """The run's summary; None while it has none or one being rewritten (not yet whole)."""
    if not run.summary.is_file():
        return None
    try:
        return RunSummary.read(run.summary)
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def status(run: RunPaths, summary: RunSummary | None) -> str:
    if summary is not None:
        return "finished"
    return "running" if time.time() - _updated(run) < STALE_SECONDS else "failed"


def run_row(path: Path) -> RunRow:
    run = RunPaths(path)
    summary = summary_of(run)
    config = _config(run)
    gate = config.get("eval", {}).get("gate", {}) or {}
    metric = str(gate.get("metric", "label_accuracy"))
    value = difference = ""
    if summary is not None:
        value = percent(summary.evaluation.candidates.get(FINETUNED, {}).get(metric))
        best = summary.evaluation.best_baseline
        for item in summary.evaluation.comparisons:
            if item["metric"] == metric and item["baseline"] == best:
                low, high = item["ci95"]
                difference = f"{points(item['difference'])} vs {best} [{points(low)}, {points(high)}]"
    return RunRow(
        name=path.name,
        task=str(config.get("task", {}).get("name", "?")),
        method=str((config.get("method") or {}).get("name", "lora")),
        status=status(run, summary),
        decision=summary.decision if summary else "",
        metric=metric, value=value, difference=difference, updated=_updated(run),
    )


def loss_points(run: RunPaths, after: int = 0) -> list[dict[str, Any]]:
    """metrics.jsonl lines from index `after` on; a line being written (no newline yet) waits."""
    if not run.metrics.is_file():
        return []
    text = run.metrics.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # the part after the last newline is incomplete
    return [json.loads(line) for line in lines[after:] if line.strip()]


def example_rows(run: RunPaths, baseline: str) -> list[ExampleRow]:
    """Every test row the fine-tuned model and `baseline` both answered, in test-split order."""
    if not baseline or not run.predictions(baseline).is_file() or not run.predictions(FINETUNED).is_file():
        return []
    inputs = {example.id: example for example in run.load_split("test")}
    theirs = {p.example_id: p for p in _predictions(run, baseline)}
    rows = []
    for tuned in _predictions(run, FINETUNED):
        other = theirs.get(tuned.example_id)
        example = inputs.get(tuned.example_id)
        if other is None or example is None:
            continue
        rows.append(ExampleRow(tuned.example_id, last_user_turn(example), tuned.reference, tuned.label,
                               tuned, other, _change(tuned, other)))
    return rows


def test_example(run: RunPaths, row: str) -> Example | None:
    return next((example for example in run.load_split("test") if example.id == row), None)


def _change(tuned: Prediction, baseline: Prediction) -> str:
    ours, theirs = correct(tuned), correct(baseline)
    if ours is True and theirs is False:
        return "improved"
    if ours is False and theirs is True:
        return "regressed"
    return ""


def _predictions(run: RunPaths, candidate: str) -> list[Prediction]:
    return [Prediction(**row) for row in read_jsonl(run.predictions(candidate))]


def _config(run: RunPaths) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(run.config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _updated(run: RunPaths) -> float:
    times = [path.stat().st_mtime for path in (run.config, run.metrics, run.summary) if path.exists()]
    return max(times, default=0.0)
