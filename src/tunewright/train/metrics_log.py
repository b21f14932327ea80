"""What a person and a file see while training runs: metrics.jsonl rows, an overfitting alert and a
Rich progress bar with ETA and live losses. Both are Trainer callbacks."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    TextColumn,
)
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunewright.progress import progress_bar
from tunewright.runs import RunPaths, write_jsonl

OVERFIT_EVALS = 2  # validation rising this many evaluations in a row while training falls
# What trl's preference trainers log, under the names metrics.jsonl gives them (train_..., and val_... from the
# evaluation's eval_... keys); a row carries them only when the trainer logged them.
PREFERENCE_METRICS = {"rewards/margins": "reward_margin", "rewards/accuracies": "preference_accuracy",
                      "logps/chosen": "chosen_logp", "logps/rejected": "rejected_logp"}


class MetricsLog(TrainerCallback):
    """Appends one JSON row per logged step to metrics.jsonl and watches for overfitting."""

    def __init__(self, path: Path, keep_until_step: int | None = None) -> None:
        """A fresh metrics.jsonl, or, resuming from step `keep_until_step`, the rows up to that step."""
        self.path = path
        self.started = time.perf_counter()
        self.eval_seconds = 0.0
        self.val_losses: list[float] = []
        self.train_losses: list[float] = []
        self.overfitting_alert = False
        self.first_tokens: int | None = None
        self.tokens_this_session = 0
        kept = []
        if keep_until_step is not None and path.is_file():
            kept = [row for row in map(json.loads, path.read_text().splitlines()) if row["step"] <= keep_until_step]
        for row in kept:
            if row["train_loss"] is not None:
                self.train_losses.append(row["train_loss"])
            if row["val_loss"] is not None:
                self.val_losses.append(row["val_loss"])
        write_jsonl(path, kept)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs and "eval_loss" not in logs:
            return
        row = {
            "step": state.global_step,
            "epoch": round(state.epoch or 0.0, 4),
            "train_loss": logs.get("loss"),
            "val_loss": logs.get("eval_loss"),
            "lr": logs.get("learning_rate"),
            "grad_norm": logs.get("grad_norm"),
            "tokens_seen": state.num_input_tokens_seen,
            "elapsed": round(time.perf_counter() - self.started, 3),
        }
        for key, name in PREFERENCE_METRICS.items():
            for prefix, logged in (("train_", key), ("val_", f"eval_{key}")):
                if logged in logs:
                    row[prefix + name] = logs[logged]
        if self.first_tokens is None:
            self.first_tokens = state.num_input_tokens_seen
        self.tokens_this_session = state.num_input_tokens_seen - self.first_tokens
        if not state.is_world_process_zero:
            return
        if "loss" in logs:
            self.train_losses.append(logs["loss"])
        if "eval_loss" in logs:
            self.eval_seconds += logs.get("eval_runtime", 0.0)
            self.val_losses.append(logs["eval_loss"])
            self._watch_overfitting()
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def train_seconds(self, total: float) -> float:
        """Wall time spent training, evaluation passes excluded."""
        return total - self.eval_seconds

    def _watch_overfitting(self) -> None:
        recent = self.val_losses[-(OVERFIT_EVALS + 1):]
        rising = len(recent) == OVERFIT_EVALS + 1 and all(a < b for a, b in pairwise(recent))
        falling = len(self.train_losses) >= 2 and self.train_losses[-1] < self.train_losses[0]
        if rising and falling and not self.overfitting_alert:
            self.overfitting_alert = True
            Console(stderr=True).print(
                f"[yellow]overfitting alert: validation loss rose {OVERFIT_EVALS} evaluations in a row "
                "while training loss fell; the best checkpoint is kept[/yellow]"
            )


class ProgressBar(TrainerCallback):
    """Steps done, ETA and the latest train / validation loss."""

    def __init__(self) -> None:
        self.progress = progress_bar("train", TextColumn("{task.fields[losses]}"))
        self.task_id = self.progress.add_task("train", total=None, losses="")
        self.losses = {"train": "-", "val": "-"}

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        self.progress.update(self.task_id, total=state.max_steps)
        self.progress.start()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        self.progress.update(self.task_id, completed=state.global_step)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" in logs:
            self.losses["train"] = f"{logs['loss']:.3f}"
        if "eval_loss" in logs:
            self.losses["val"] = f"{logs['eval_loss']:.3f}"
        self.progress.update(self.task_id, losses=f"loss {self.losses['train']}  val {self.losses['val']}")

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        self.progress.stop()


def tracking_callbacks(report_to: Sequence[str], run: RunPaths) -> list[TrainerCallback]:
    """TensorBoard writes into `<out>/tensorboard/`; other trackers go through Trainer's report_to."""
    if "tensorboard" not in report_to:
        return []
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations.integration_utils import TensorBoardCallback

    return [TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(run.root / "tensorboard")))]
