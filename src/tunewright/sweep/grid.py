"""The trials of a sweep: which axes of sweep.grid apply to a config, every combination of their values,
the config each trial trains with, the metric trials are selected on, and the rungs of successive halving."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from tunewright.config import Config
from tunewright.methods.facts import METHOD_FACTS

LABEL_METRICS = ("label_accuracy", "macro_f1")


@dataclass(frozen=True)
class Trial:
    name: str  # t01, t02, ... in grid order
    settings: dict[str, float]  # axis -> value


def sweep_axes(config: Config, label_only: bool) -> tuple[dict[str, list[float]], dict[str, str]]:
    """The axes swept for `config` ({axis: values}) and those skipped ({axis: why}). `label_only`: the
    training answers are the bare label."""
    grid = config.sweep.grid
    axes: dict[str, list[float]] = {"learning_rate": list(grid.learning_rate), "epochs": list(grid.epochs)}
    skipped = {}
    if METHOD_FACTS[config.method.name].ranked:
        axes["r"] = [float(r) for r in grid.r]
    else:
        skipped["r"] = f"method {config.method.name} has no rank"
    if not config.task.labels:
        skipped["label_weight"] = "the task has no labels"
    elif label_only:
        skipped["label_weight"] = ("the answers are the bare label, so the weight would only rescale the loss "
                                   "(the learning_rate axis covers that)")
    else:
        axes["label_weight"] = list(grid.label_weight)
    return axes, skipped


def grid_trials(axes: dict[str, list[float]]) -> list[Trial]:
    """Every combination of the axes' values, in grid order (the last axis changes fastest)."""
    names = list(axes)
    return [Trial(f"t{number:02d}", dict(zip(names, values, strict=True)))
            for number, values in enumerate(itertools.product(*axes.values()), start=1)]


def trial_config(config: Config, settings: dict[str, float], chosen_by: Path | None = None) -> Config:
    """`config` with a trial's settings: training.max_steps unset (the epochs decide), and method.alpha
    scaled with method.r so that the adapter's scale alpha / r stays the config's."""
    training = {"max_steps": None, "learning_rate": settings["learning_rate"], "epochs": settings["epochs"]}
    if "label_weight" in settings:
        training["label_weight"] = settings["label_weight"]
    method = {}
    if "r" in settings:
        r = int(settings["r"])
        method = {"r": r, "alpha": max(1, round(config.method.alpha * r / config.method.r))}
    return config.model_copy(update={
        "training": config.training.model_copy(update=training),
        "method": config.method.model_copy(update=method),
        "sweep": config.sweep.model_copy(update={"chosen_by": chosen_by}),
    })


def selection_metric(config: Config) -> str:
    """What trials are compared on: for tasks with labels the label accuracy (macro-F1 where that is the
    gate's metric), otherwise the gate's metric. Never the loss."""
    gate = config.eval.gate.metric
    if config.task.labels:
        return gate if gate in LABEL_METRICS else "label_accuracy"
    return gate


def rung_shares(trials: int, eta: int) -> list[float]:
    """The share of its own steps every trial still in the sweep has trained by the end of each rung:
    1/eta^(R-1), ..., 1/eta, 1, with one rung per division by eta until one trial would be left."""
    rungs, left = 1, trials
    while left // eta >= 1:
        left //= eta
        rungs += 1
    return [float(eta) ** (rung - rungs + 1) for rung in range(rungs)]


def survivors(count: int, eta: int) -> int:
    """How many of `count` trials go on to the next rung."""
    return max(1, count // eta)
