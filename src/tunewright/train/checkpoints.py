"""Resumable training: checkpoints in `<out>/checkpoints/step-<N>/`, early stopping that restores the
best weights (kept across a resume), and SIGINT/SIGTERM turning into "save a checkpoint, then stop".

Trainer writes each checkpoint (weights as safetensors, optimizer, scheduler, RNG, trainer state with
the data position) into `checkpoint-<N>`; it is renamed to `step-<N>` only once complete, so a run
killed mid-save never leaves a checkpoint that looks whole."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunewright.errors import EXIT_INTERRUPTED, TunewrightError
from tunewright.train.checkpoint_manifest import write_manifest

BEST_WEIGHTS = "tunewright-best.safetensors"
BEST_STATE = "tunewright-best.json"


class TrainingInterrupted(TunewrightError):
    exit_code = EXIT_INTERRUPTED


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest complete `step-<N>` checkpoint, if any."""
    steps = [(int(path.name[5:]), path) for path in checkpoints.glob("step-*") if path.name[5:].isdigit()]
    return max(steps)[1] if steps else None


class Checkpoints(TrainerCallback):
    """Early stopping with best-weight restore, and checkpoint naming and rotation.

    The best weights (trainable parameters only) are held in memory and written into every checkpoint,
    so a resumed run restores the same best weights an uninterrupted one would. With `accuracy_key`
    (preference methods: the validation preference accuracy), the best evaluation is the most accurate
    one, ties broken by the lower validation loss."""

    def __init__(self, checkpoints: Path, patience: int, keep: int, resume_from: Path | None = None,
                 accuracy_key: str | None = None) -> None:
        self.checkpoints = checkpoints
        self.patience = patience
        self.keep = keep
        self.accuracy_key = accuracy_key
        self.best_loss: float | None = None
        self.best_accuracy: float | None = None
        self.best_step: int | None = None
        self.bad_evals = 0
        self.best_weights: dict[str, torch.Tensor] = {}
        if resume_from is not None and (resume_from / BEST_STATE).is_file():
            state = json.loads((resume_from / BEST_STATE).read_text())
            self.best_loss, self.best_step, self.bad_evals = state["loss"], state["step"], state["bad_evals"]
            self.best_accuracy = state.get("accuracy")
            # safetensors: our own file, read without unpickling anything
            self.best_weights = load_file(resume_from / BEST_WEIGHTS) if self.best_step is not None else {}

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, float] | None = None, model: Any = None, **kwargs: Any) -> None:
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        accuracy = (metrics or {}).get(self.accuracy_key) if self.accuracy_key else None
        if self._better(loss, accuracy):
            self.best_loss, self.best_accuracy, self.best_step, self.bad_evals = loss, accuracy, state.global_step, 0
            self.best_weights = {name: p.detach().to("cpu", copy=True).contiguous()
                                 for name, p in model.named_parameters() if p.requires_grad}
        else:
            self.bad_evals += 1
            if self.bad_evals >= self.patience:
                control.should_training_stop = True

    def _better(self, loss: float, accuracy: float | None) -> bool:
        if self.best_loss is None:
            return True
        if accuracy is not None and self.best_accuracy is not None and accuracy != self.best_accuracy:
            return accuracy > self.best_accuracy
        return loss < self.best_loss

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        # Trainer always checkpoints the last step; the artifact is saved right after, so that
        # checkpoint would only cost time (for a full fine-tune, weights plus twice their size in
        # optimizer state), and a resume from it would train one step too many (Trainer only checks
        # max_steps after a step). So the newest checkpoint is always before the last step.
        if state.global_step >= state.max_steps:
            control.should_save = False

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # every rank has written its RNG state into the folder
        if not state.is_world_process_zero:
            return
        written = self.checkpoints / f"checkpoint-{state.global_step}"
        if self.best_weights:
            save_file(self.best_weights, written / BEST_WEIGHTS)
        (written / BEST_STATE).write_text(json.dumps(
            {"loss": self.best_loss, "accuracy": self.best_accuracy, "step": self.best_step,
             "bad_evals": self.bad_evals}))
        write_manifest(written)  # last: a checkpoint without a matching manifest is never resumed from
        final = self.checkpoints / f"step-{state.global_step}"
        if final.exists():
            shutil.rmtree(final)
        written.rename(final)
        done = sorted((int(p.name[5:]), p) for p in self.checkpoints.glob("step-*") if p.name[5:].isdigit())
        for _, old in done[:-self.keep]:
            shutil.rmtree(old)

    def restore_best(self, model: Any) -> None:
        """Put the best weights seen back into `model` (nothing to do if it never evaluated)."""
        if not self.best_weights:
            return
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if name in self.best_weights:
                    parameter.copy_(self.best_weights[name])


class StopOnSignal(TrainerCallback):
    """SIGINT / SIGTERM ask for a checkpoint and a clean stop after the current step; a second signal
    falls through to Python's default handling."""

    def __init__(self) -> None:
        self.received = False

    @contextmanager
    def installed(self) -> Iterator[StopOnSignal]:
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def handle(signum: int, frame: FrameType | None) -> None:
            self.received = True
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        for sig in previous:
            signal.signal(sig, handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        # a signal during the last step lets the run finish: it saves the artifact next, and a checkpoint of
        # the last step is never written (see Checkpoints.on_step_end)
        stop = self.received and state.global_step < state.max_steps
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(stop)], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)  # every rank stops together
            stop = bool(flag.item())
        if stop:
            self.received = True
            control.should_save = True
            control.should_training_stop = True
