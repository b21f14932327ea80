"""sweep.json: every trial of a sweep (settings, steps trained, validation metric per rung, seconds) and
the one chosen, as typed records; the CLI and the run report show it as one table. No torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunewright.config import metric_title
from tunewright.runs import read_json

TrialStatus = Literal["finished", "eliminated", "unfinished", "not run"]
AXIS_TITLES = {"learning_rate": "learning rate", "epochs": "epochs", "r": "r", "label_weight": "label weight"}
AXIS_HEADERS = {"learning_rate": "lr", "epochs": "epochs", "r": "r", "label_weight": "label w."}


@dataclass(frozen=True)
class RungResult:
    rung: int  # 0 is the first, shortest rung
    steps: int  # optimizer steps trained by the end of this rung
    metric: float  # the selection metric on the validation split after it
    seconds: float  # training and validating in this rung


@dataclass(frozen=True)
class TrialRecord:
    name: str
    settings: dict[str, float]
    status: TrialStatus  # finished: trained all its steps (or stopped early); unfinished: the budget ran out
    planned_steps: int | None  # steps its epochs make (None if it never trained)
    rungs: list[RungResult] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return self.rungs[-1].steps if self.rungs else 0

    @property
    def metric(self) -> float | None:
        return self.rungs[-1].metric if self.rungs else None

    @property
    def seconds(self) -> float:
        return sum(rung.seconds for rung in self.rungs)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> TrialRecord:
        return cls(payload["name"], payload["settings"], payload["status"], payload["planned_steps"],
                   [RungResult(**rung) for rung in payload["rungs"]])


@dataclass(frozen=True)
class SweepResult:
    metric: str  # what trials were selected on, on the validation split
    chosen: str  # the name of the chosen trial: the best finished one
    chosen_config: str  # chosen.yaml, which `tunewright run` takes as it is
    eta: int
    shares: list[float]  # the share of its steps a trial has trained after each rung
    budget_seconds: float
    seconds: float
    over_budget: bool  # no trial had finished when the budget ran out, so the leader was finished past it
    train_rows: int
    val_rows: int
    axes: dict[str, list[float]]
    skipped_axes: dict[str, str]  # axis -> why it was not swept
    trials: list[TrialRecord]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def read(cls, path: Path) -> SweepResult:
        payload = read_json(path)
        return cls(**{**payload, "trials": [TrialRecord.from_json(trial) for trial in payload["trials"]]})

    def chosen_trial(self) -> TrialRecord:
        return next(trial for trial in self.trials if trial.name == self.chosen)


def setting_text(axis: str, value: float) -> str:
    return f"{value:g}" if axis != "learning_rate" else f"{value:.0e}"


def trial_table(result: SweepResult) -> tuple[list[str], list[list[str]]]:
    """Headers and rows (every trial, grid order): settings, status, steps trained / planned, the metric
    after each rung (with the step it was measured at), seconds."""
    rung_headers = [f"rung {rung + 1} ({100 * share:.0f} %)" for rung, share in enumerate(result.shares)]
    headers = ["trial", *(AXIS_HEADERS[axis] for axis in result.axes), "status", "steps", *rung_headers, "s"]
    rows = []
    for trial in result.trials:
        by_rung = {rung.rung: rung for rung in trial.rungs}
        cells = [f"{100 * by_rung[k].metric:.1f} @{by_rung[k].steps}" if k in by_rung else "—"
                 for k in range(len(result.shares))]
        planned = "?" if trial.planned_steps is None else str(trial.planned_steps)
        name = f"{trial.name} (chosen)" if trial.name == result.chosen else trial.name
        rows.append([name, *(setting_text(axis, trial.settings[axis]) for axis in result.axes), trial.status,
                     f"{trial.steps}/{planned}", *cells, f"{trial.seconds:.0f}"])
    return headers, rows


def sweep_summary(result: SweepResult) -> list[str]:
    """What the sweep did and chose, in sentences (CLI and report)."""
    chosen = result.chosen_trial()
    settings = ", ".join(f"{AXIS_TITLES[axis]} {setting_text(axis, value)}" for axis, value in chosen.settings.items())
    metric = chosen.metric if chosen.metric is not None else 0.0
    lines = [f"Chosen on the validation split ({result.val_rows} rows; trained on {result.train_rows}), never the "
             f"test split: {chosen.name} ({settings}) with {metric_title(result.metric)} {100 * metric:.1f} % "
             f"after {chosen.steps} steps.",
             f"Successive halving over {len(result.trials)} trials (eta {result.eta}) in {result.seconds / 60:.1f} "
             f"of {result.budget_seconds / 60:.1f} budgeted minutes."]
    if result.over_budget:
        lines.append("No trial had finished when the budget ran out: the leader was trained to the end past it.")
    lines += [f"Not swept: {AXIS_TITLES[axis]} ({why})." for axis, why in result.skipped_axes.items()]
    return lines
