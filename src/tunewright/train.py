"""The one training loop, for every method: transformers' Trainer on chat-templated examples with the
loss on assistant tokens only, validation loss every N steps, early stopping that restores the best
weights, metrics.jsonl, a live progress bar, and the adapter saved atomically with its chat template."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import EarlyStoppingCallback, PrinterCallback, TrainingArguments

from tunewright.chat import IGNORE_INDEX, encode_example, stop_token_ids
from tunewright.config import Config
from tunewright.errors import DataError
from tunewright.methods import prepare_model
from tunewright.modeling import CausalLM, fast_bf16_available, load_model, load_tokenizer, resolve_base_model
from tunewright.prefix_loss import PrefixSharingTrainer
from tunewright.records import Example
from tunewright.runs import ADAPTER_MANIFEST, RunPaths, atomic_dir, write_json
from tunewright.training_log import MetricsLog, ProgressBar


@dataclass(frozen=True)
class TrainingResult:
    steps: int
    planned_steps: int
    best_val_loss: float | None
    best_step: int | None
    stopped_early: bool
    overfitting_alert: bool
    train_tokens: int
    train_tokens_per_second: float
    seconds: float
    precision: str
    trainable_parameters: int
    total_parameters: int


def train_run(config: Config, run: RunPaths, show_progress: bool = True) -> TrainingResult:
    """Train on the run's train split, stop early on its val split, save `run.adapter`."""
    started = time.perf_counter()
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    train_rows = encode_split(config, tokenizer, run.load_split("train"))
    val_rows = encode_split(config, tokenizer, run.load_split("val"))
    if not any(label != IGNORE_INDEX for row in train_rows for label in row["labels"]):
        raise DataError("every training label is masked: there is no assistant answer to learn from")

    precision = resolve_precision(config.training.precision)
    model = prepare_model(load_model(model_dir), config.method)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    metrics_log = MetricsLog(run.metrics)
    callbacks: list[Any] = [
        EarlyStoppingCallback(early_stopping_patience=config.training.early_stopping_patience),
        metrics_log,
    ]
    if show_progress:
        callbacks.append(ProgressBar())
    trainer = PrefixSharingTrainer(
        model=model,
        args=training_arguments(config, run, precision),
        data_collator=PadCollator(tokenizer.pad_token_id, config.training.label_weight),
        train_dataset=train_rows,  # a list is a map-style dataset
        eval_dataset=val_rows,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.jsonl and the progress bar
    trainer.train()
    state = trainer.state
    tuned: CausalLM = trainer.model

    with atomic_dir(run.adapter) as tmp:
        tuned.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / ADAPTER_MANIFEST, {
            "base_model": config.model.base,
            "method": config.method.name,
            "task": config.task.name,
            "system_prompt": config.task.system_prompt,
            "stop_token_ids": stop_token_ids(tokenizer),
            "best_val_loss": state.best_metric,
        })

    train_seconds = metrics_log.train_seconds(time.perf_counter() - started)
    result = TrainingResult(
        steps=state.global_step,
        planned_steps=state.max_steps,
        best_val_loss=state.best_metric,
        best_step=_step_of(state.best_model_checkpoint),
        stopped_early=state.global_step < state.max_steps,
        overfitting_alert=metrics_log.overfitting_alert,
        train_tokens=state.num_input_tokens_seen,
        train_tokens_per_second=state.num_input_tokens_seen / max(train_seconds, 1e-9),
        seconds=time.perf_counter() - started,
        precision=precision,
        trainable_parameters=trainable,
        total_parameters=total,
    )
    write_json(run.training_result, asdict(result))
    return result


def encode_split(config: Config, tokenizer: Any, examples: list[Example]) -> list[dict[str, list[int]]]:
    rows = []
    for example in examples:
        encoded = encode_example(tokenizer, example, config.task.system_prompt, config.training.max_seq_len,
                                 config.task.label_regex)
        rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels,
                     "label_span": list(encoded.label_span or ())})
    return rows


def resolve_precision(choice: str) -> str:
    if choice == "auto":
        return "bf16" if fast_bf16_available() else "fp32"
    return choice


def training_arguments(config: Config, run: RunPaths, precision: str) -> TrainingArguments:
    """The only place TrainingArguments are built."""
    training = config.training
    return TrainingArguments(
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
        save_steps=training.eval_every,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=1,
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        bf16=precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        seed=training.seed,
        data_seed=training.seed,
        remove_unused_columns=False,
        disable_tqdm=True,
        report_to="none",
        prediction_loss_only=True,
    )


class PadCollator:
    """Right-pads a batch to its longest row: pad id for inputs, IGNORE_INDEX for labels; with a
    label weight, also a per-token loss weight that is `label_weight` on each row's label span."""

    def __init__(self, pad_token_id: int, label_weight: float = 1.0) -> None:
        self.pad_token_id = pad_token_id
        self.label_weight = label_weight

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for index, row in enumerate(rows):
            length = len(row["input_ids"])
            input_ids[index, :length] = torch.tensor(row["input_ids"])
            labels[index, :length] = torch.tensor(row["labels"])
            attention_mask[index, :length] = 1
        batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
        if self.label_weight != 1.0:
            weights = torch.ones((len(rows), width))
            for index, row in enumerate(rows):
                if span := row.get("label_span"):
                    weights[index, span[0]:span[1]] = self.label_weight
            batch["weights"] = weights
        return batch


def _step_of(checkpoint: str | None) -> int | None:
    return int(checkpoint.rsplit("-", 1)[1]) if checkpoint else None
