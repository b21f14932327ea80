"""`tunewright sweep` from one config: check the data and write one train / val split for every trial
(the test split is never built, written or read), train each trial's rungs with the pipeline's training
(resuming from its checkpoint), score it on the validation split as evaluation scores the test split,
and write sweep.json and chosen.yaml (the best finished trial's config, for `tunewright run`)."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunewright.config import Config, dump_config, metric_title
from tunewright.errors import ConfigError, DataError
from tunewright.evaluate.validation import validation_metric
from tunewright.label_format import label_format
from tunewright.methods.facts import METHOD_FACTS
from tunewright.pipeline import check_run_data, train_val_splits
from tunewright.runs import RunPaths, write_json, write_jsonl, write_text
from tunewright.sweep.grid import Trial, grid_trials, selection_metric, sweep_axes, trial_config
from tunewright.sweep.halving import RungOutcome, successive_halving
from tunewright.sweep.table import AXIS_TITLES, SweepResult, setting_text
from tunewright.train import train_run
from tunewright.train.checkpoints import TrainingInterrupted

Announce = Callable[[str], None]
CHOSEN_CONFIG = "chosen.yaml"


def run_sweep(config: Config, sweep: RunPaths, announce: Announce) -> SweepResult:
    """Successive halving over config.sweep.grid in `sweep` (a fresh directory); returns the table."""
    if METHOD_FACTS[config.method.name].preference:
        raise ConfigError(f"method {config.method.name} is selected on its policy, not a task metric: "
                          "sweep an SFT method (lora, dora, ...)")
    started = time.perf_counter()
    write_text(sweep.config, dump_config(config))
    report, _ = check_run_data(config, sweep, announce)
    train, val = train_val_splits(config, report)
    for name, rows in (("train", train), ("val", val)):
        if not rows:
            raise DataError(f"{config.data.path}: the {name} split is empty; add examples")
        write_jsonl(sweep.split_file(name), [row.to_json() for row in rows])
    fmt = label_format([e.reference for e in train], config.task.label_regex) if config.task.label_regex else None
    axes, skipped = sweep_axes(config, label_only=fmt is not None and fmt.label_only)
    trials = grid_trials(axes)
    metric = selection_metric(config)
    budget = config.sweep.budget_minutes * 60
    announce(f"{len(trials)} trials ({' x '.join(f'{len(v)} {AXIS_TITLES[a]}' for a, v in axes.items())}), "
             f"selected on {metric_title(metric)} over {len(val)} validation rows; budget "
             f"{config.sweep.budget_minutes:g} min")
    trainer = _RungTrainer(config, sweep, metric, announce)
    halving = successive_halving(trials, config.sweep.eta, budget, trainer.train, trainer.retire)
    result = SweepResult(
        metric=metric, chosen=halving.chosen, chosen_config=str(sweep.root / CHOSEN_CONFIG), eta=config.sweep.eta,
        shares=halving.shares, budget_seconds=budget, seconds=time.perf_counter() - started,
        over_budget=halving.over_budget, train_rows=len(train), val_rows=len(val), axes=axes,
        skipped_axes=skipped, trials=halving.trials)
    write_json(sweep.sweep, result.to_json())  # before chosen.yaml, which points at it
    chosen = trial_config(config, result.chosen_trial().settings, chosen_by=sweep.sweep.resolve())
    write_text(sweep.root / CHOSEN_CONFIG, dump_config(chosen))
    return result


@dataclass
class _RungTrainer:
    """Trains one trial to a share of its steps in its own directory under trials/, then validates it."""

    config: Config
    sweep: RunPaths
    metric: str
    announce: Announce

    def trial_run(self, trial: Trial) -> RunPaths:
        return RunPaths(self.sweep.root / "trials" / trial.name)

    def train(self, trial: Trial, share: float, resume: bool) -> RungOutcome:
        started = time.perf_counter()
        run = self.trial_run(trial)
        config = trial_config(self.config, trial.settings)
        if not resume:
            run.root.mkdir(parents=True)
            run.data_dir.symlink_to("../../data", target_is_directory=True)  # the sweep's one split
            write_text(run.config, dump_config(config))
        stop = StopAtShare(share)
        try:
            result = train_run(config, run, show_progress=False, resume=resume, callbacks=[stop])
        except TrainingInterrupted:
            raise TrainingInterrupted(f"sweep interrupted in trial {trial.name}; nothing was chosen (a sweep "
                                      "does not resume: run it again with a fresh --out)") from None
        metric = validation_metric(config, run, self.metric)
        outcome = RungOutcome(result.steps, result.planned_steps, not stop.stopped, metric,
                              time.perf_counter() - started)
        settings = ", ".join(f"{AXIS_TITLES[a]} {setting_text(a, v)}" for a, v in trial.settings.items())
        self.announce(f"{trial.name} ({settings}): {outcome.steps}/{outcome.planned_steps} steps, "
                      f"{metric_title(self.metric)} {100 * metric:.1f} % ({outcome.seconds:.0f} s)")
        return outcome

    def retire(self, trial: Trial, finished: bool) -> None:
        """A trial that trains no more keeps no checkpoints; one that did not finish keeps no adapter."""
        run = self.trial_run(trial)
        shutil.rmtree(run.checkpoints, ignore_errors=True)
        if not finished:
            shutil.rmtree(run.adapter, ignore_errors=True)
            shutil.rmtree(run.model, ignore_errors=True)


class StopAtShare(TrainerCallback):
    """Stops training once `share` of the planned steps are done, saving a checkpoint to resume from.
    The schedule stays that of the whole run (the planned steps), so a trial resumed rung by rung trains
    as it would in one go."""

    def __init__(self, share: float) -> None:
        self.share = share
        self.stop_at = 0
        self.stopped = False

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.stop_at = max(1, math.ceil(self.share * state.max_steps - 1e-9))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        if self.stop_at <= state.global_step < state.max_steps:
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True
