"""The one training loop, for every method: transformers' Trainer on chat-templated examples with the
loss on assistant tokens only, validation loss every N steps, early stopping that restores the best
weights, resumable checkpoints, metrics.jsonl, a live progress bar, and the trained artifact (adapter,
or the whole model for full fine-tunes) saved atomically with its tokenizer and manifest."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments, set_seed

from tunewright.chat import IGNORE_INDEX, encode_example
from tunewright.config import Config
from tunewright.data.duplicates import input_clusters
from tunewright.errors import ConfigError, DataError
from tunewright.methods import METHODS, Method, artifact_dir, load_base
from tunewright.modeling import CausalLM, load_tokenizer, resolve_base_model
from tunewright.records import Example
from tunewright.retrieval import Neighbours, packaged_embedder
from tunewright.run_summary import TrainingResult
from tunewright.runs import RunPaths, write_json
from tunewright.timing import stage
from tunewright.train.artifact import save_artifact
from tunewright.train.batches import PackCollator, PadCollator, Row
from tunewright.train.checkpoint_manifest import disk_full_as_error
from tunewright.train.loss import batch_loss
from tunewright.train.precision import Precision, probe_key, resolve_precision, training_step
from tunewright.train.trainer import PrefixSharingTrainer
from tunewright.train.watch import TrainingWatch

__all__ = ["PadCollator", "TrainingResult", "artifact_dir", "train_run"]


def train_run(config: Config, run: RunPaths, show_progress: bool = True, resume: bool = False,
              callbacks: Sequence[TrainerCallback] = ()) -> TrainingResult:
    """Train on the run's train split, stop early on its val split, save the artifact (`run.adapter`,
    or `run.model` for full fine-tunes). With `resume`, continue from the newest checkpoint."""
    if METHODS[config.method.name].facts.preference:
        from tunewright.train.preference import train_preference_run

        return train_preference_run(config, run, show_progress, resume, callbacks)
    started = time.perf_counter()
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    train_rows, val_rows = encode_splits(config, tokenizer, run)
    method = METHODS[config.method.name]
    check_packing(config, method)
    set_seed(config.training.seed)  # adapter initialisation is part of the run's seeded state
    with stage("load_model"):
        model = method.prepare(load_base(model_dir, method), config.method)
    with stage("precision_probe"):
        precision = choose_precision(config, model_dir, model, collator_for(config, tokenizer)(
            train_rows[: config.training.batch_size]), method)
    if show_progress:
        print(f"precision: {precision.name} ({precision.reason})", file=sys.stderr)

    watch = TrainingWatch.start(config, run, resume, show_progress, callbacks)
    trainer = PrefixSharingTrainer(
        model=model,
        args=training_arguments(config, run, precision.name),
        data_collator=collator_for(config, tokenizer),
        train_dataset=train_rows,  # a list is a map-style dataset
        eval_dataset=val_rows,
        callbacks=watch.callbacks,
        share_prefix=method.shares_prefix,
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl and the progress bar
    with stage("steps"):
        watch.train(trainer, run)
    tuned: CausalLM = trainer.model
    watch.best.restore_best(tuned)

    return save_trained(config, run, trainer, watch, tuned, tokenizer, precision, started)


def save_trained(config: Config, run: RunPaths, trainer: Any, watch: TrainingWatch, tuned: CausalLM, tokenizer: Any,
                 precision: Precision, started: float) -> TrainingResult:
    """The end of every training recipe: the result, and (on the main process) the artifact and
    training_result.json."""
    result = training_result(config, trainer, watch, tuned, precision, time.perf_counter() - started)
    if trainer.is_world_process_zero():
        with disk_full_as_error(run.root), stage("save"):
            save_artifact(config, run, tuned, tokenizer, watch.best.best_loss)
        write_json(run.training_result, result.to_json())
    return result


def encode_splits(config: Config, tokenizer: Any, run: RunPaths) -> tuple[list[Row], list[Row]]:
    """The train and val splits as token rows; refuses a train split with nothing to learn."""
    train, val = prompted_splits(config, run.load_split("train"), run.load_split("val"))
    train_rows = encode_split(config, tokenizer, train)
    val_rows = encode_split(config, tokenizer, val)
    if not any(label != IGNORE_INDEX for row in train_rows for label in row["labels"]):
        raise DataError("every training label is masked: there is no assistant answer to learn from")
    return train_rows, val_rows


def prompted_splits(config: Config, train: list[Example], val: list[Example]) -> tuple[list[Example], list[Example]]:
    """With task.neighbours, each prompt shows its row's nearest training examples (retrieval.Neighbours);
    a training row never sees itself or its near-duplicate cluster."""
    if not config.task.neighbours:
        return train, val
    neighbours = Neighbours(train, config.task.neighbours, packaged_embedder())
    return neighbours.show_pool(input_clusters(train).cluster), neighbours.show(val)


def encode_split(config: Config, tokenizer: Any, examples: list[Example]) -> list[Row]:
    rows = []
    for example in examples:
        encoded = encode_example(tokenizer, example, config.task.system_prompt, config.training.max_seq_len,
                                 config.task.label_regex)
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels,
                     "label_span": list(encoded.label_span or ())})
    return rows


def choose_precision(config: Config, model_dir: Path, model: CausalLM, batch: dict[str, torch.Tensor],
                     method: Method) -> Precision:
    """training.precision, with 'auto' measured on `model` and a real training batch (precision.py).
    Under several processes each would measure on its own and they could disagree, so there 'auto'
    is not measured (fp32; set the precision explicitly)."""
    if config.training.precision != "auto" or _world_size() > 1:
        return resolve_precision(config.training.precision)
    step = training_step(model, batch, lambda m, inputs: batch_loss(m, inputs, method.shares_prefix))
    return resolve_precision("auto", probe_key(model_dir, config.method.name, batch), step)


def check_packing(config: Config, method: Method) -> None:
    if config.training.packing and not method.shares_prefix:
        raise ConfigError(f"training.packing: {config.method.name} puts virtual tokens before each input, so "
                          "examples cannot share a row; set training.packing=false for this method")


def collator_for(config: Config, tokenizer: Any) -> PackCollator | PadCollator:
    label_weight = config.training.label_weight
    if config.training.packing:
        return PackCollator(label_weight)
    return PadCollator(tokenizer.pad_token_id, label_weight)


def training_result(config: Config, trainer: Trainer, watch: TrainingWatch, model: CausalLM,
                    precision: Precision, seconds: float) -> TrainingResult:
    state = trainer.state
    train_seconds = watch.metrics_log.train_seconds(seconds)
    return TrainingResult(
        steps=state.global_step,
        planned_steps=state.max_steps,
        best_val_loss=watch.best.best_loss,
        best_step=watch.best.best_step,
        stopped_early=state.global_step < state.max_steps,
        overfitting_alert=watch.metrics_log.overfitting_alert,
        train_tokens=state.num_input_tokens_seen,
        train_tokens_per_second=watch.metrics_log.tokens_this_session / max(train_seconds, 1e-9),
        seconds=seconds,
        precision=precision.name,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total_parameters=sum(p.numel() for p in model.parameters()),
        method=config.method.name,
        resumed_from_step=watch.resumed_step,
        precision_reason=precision.reason,
    )


def training_arguments(config: Config, run: RunPaths, precision: str) -> TrainingArguments:
    """The only place TrainingArguments are built."""
    return TrainingArguments(**training_settings(config, run, precision))


def training_settings(config: Config, run: RunPaths, precision: str) -> dict[str, Any]:
    """TrainingArguments' settings for a run; trl's configs (train/preference.py) take the same ones."""
    training = config.training
    distributed = training.distributed
    strategy: dict[str, Any] = {}
    if distributed.strategy == "fsdp":
        strategy = {"fsdp": True, "fsdp_config": _str(distributed.config)}
    elif distributed.strategy == "deepspeed":
        strategy = {"deepspeed": _str(distributed.config)}
    cuda = torch.cuda.is_available()
    return dict(
        output_dir=str(run.checkpoints),
        num_train_epochs=training.epochs,
        max_steps=training.max_steps or -1,
        per_device_train_batch_size=training.batch_size,
        per_device_eval_batch_size=training.batch_size,
        learning_rate=training.learning_rate,
        lr_scheduler_type=training.scheduler,
        warmup_steps=training.warmup_ratio,
        eval_strategy="steps",
        eval_steps=training.eval_every,
        save_strategy="steps",
        save_steps=training.checkpoint_every,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
        bf16=precision == "bf16",
        use_cpu=not cuda,
        ddp_backend=("nccl" if cuda else "gloo") if _world_size() > 1 else None,
        ddp_find_unused_parameters=False,  # every method uses all its trainable weights in every step
        seed=training.seed,
        data_seed=training.seed,
        remove_unused_columns=False,
        disable_tqdm=True,
        report_to=[name for name in training.report_to if name != "tensorboard"] or "none",
        prediction_loss_only=True,
        **strategy,
    )


def _world_size() -> int:
    """Processes in this run; torchrun (`--nproc`) sets WORLD_SIZE."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None
