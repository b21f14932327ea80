"""What watches a training run: the resume point, early stopping with best-weight restore, the
metrics log, the Ctrl-C handler, trackers and the progress bar, assembled as Trainer callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from tunewright.config import Config
from tunewright.runs import RunPaths
from tunewright.train.checkpoint_manifest import disk_full_as_error, latest_complete_checkpoint
from tunewright.train.checkpoints import Checkpoints, StopOnSignal, TrainingInterrupted
from tunewright.train.metrics_log import MetricsLog, ProgressBar, tracking_callbacks


@dataclass
class TrainingWatch:
    checkpoint: Path | None  # the checkpoint a resumed run continues from
    metrics_log: MetricsLog
    best: Checkpoints
    interrupt: StopOnSignal
    callbacks: list[Any]

    @property
    def resumed_step(self) -> int | None:
        return int(self.checkpoint.name[5:]) if self.checkpoint else None

    @classmethod
    def start(cls, config: Config, run: RunPaths, resume: bool, show_progress: bool,
              extra: Sequence[TrainerCallback] = (), accuracy_key: str | None = None) -> TrainingWatch:
        """Fresh watchers, or, with `resume`, ones that carry on from the newest checkpoint; `accuracy_key`
        makes early stopping follow that validation accuracy (see Checkpoints)."""
        checkpoint = latest_complete_checkpoint(run.checkpoints) if resume else None
        resumed_step = int(checkpoint.name[5:]) if checkpoint else None
        metrics_log = MetricsLog(run.metrics, keep_until_step=resumed_step)
        best = Checkpoints(run.checkpoints, config.training.early_stopping_patience,
                           config.training.keep_checkpoints, resume_from=checkpoint, accuracy_key=accuracy_key)
        interrupt = StopOnSignal()
        callbacks: list[Any] = [best, interrupt, metrics_log, *tracking_callbacks(config.training.report_to, run),
                                *extra]
        if show_progress:
            callbacks.append(ProgressBar())
        return cls(checkpoint, metrics_log, best, interrupt, callbacks)

    def train(self, trainer: Trainer, run: RunPaths) -> None:
        """Run `trainer` to the end; a Ctrl-C / SIGTERM saves a checkpoint and raises TrainingInterrupted."""
        # Trainer reloads its own checkpoint files (optimizer.pt, scheduler.pt, rng_state.pth) with
        # torch.load(weights_only=True); the weights themselves are safetensors.
        with self.interrupt.installed(), disk_full_as_error(run.checkpoints):
            trainer.train(resume_from_checkpoint=str(self.checkpoint) if self.checkpoint else None)
        step = trainer.state.global_step
        if self.interrupt.received and step < trainer.state.max_steps:
            raise TrainingInterrupted(
                f"interrupted at step {step}; checkpoint saved in {run.checkpoint(step)}; "
                f"continue with: tunewright train CONFIG --out {run.root} --resume")
