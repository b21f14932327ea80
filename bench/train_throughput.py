"""Training throughput, side by side in one process, on the same examples, model, epochs and seed:
(a) the tutorial recipe (Trainer + peft LoRA, every row padded to max_length, fp32),
(b) a strong baseline (Trainer + peft LoRA, dynamic padding, length-grouped batches, bf16 where bf16
    is fast - `precision: auto` - else fp32),
(c) tunewright's default (`train_run`: shared-prefix loss, logits only where labels follow).
Reports non-padding tokens/s, c/a, c/b, validation loss (the same unweighted per-token mean for all),
peak memory, and model FLOP utilisation against a matmul peak measured in this run.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/train_throughput.py --json bench/results/train_throughput.json
    ... --quick   (a few steps of each, to check the script)
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from tunewright.config import load_config
from tunewright.methods import METHODS, load_base
from tunewright.modeling import fast_bf16_available, load_tokenizer, resolve_base_model
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths
from tunewright.train import encode_split, train_run
from tunewright.train.batches import PadCollator
from tunewright.train.loss import plain_loss

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fintech-support" / "tunewright.yaml"
STATUS = Path("/proc/self/status")


class Timer(TrainerCallback):
    """Wall time from the first step's start to the last step's end: model loading, the evaluation
    Trainer runs after the last step and the final save are outside it. Keeps the model."""

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.model, self.started = model, time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.started
        self.steps = state.global_step


class FixedPad(PadCollator):
    """The tutorial's padding="max_length": every row padded to the same width."""

    def __init__(self, pad_token_id: int, width: int) -> None:
        super().__init__(pad_token_id)
        self.width = width

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        filler = {"input_ids": [self.pad_token_id] * self.width, "labels": [-100] * self.width}
        batch = super().__call__([*rows, filler])
        return {key: value[:-1] for key, value in batch.items()}


def matmul_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    """FLOP/s of a 2048 x 2048 matmul on this machine, now."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    size = 8192 if device == "cuda" else 2048
    a, b = torch.randn(size, size, dtype=dtype, device=device), torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        runs += 1
        if device == "cuda":
            torch.cuda.synchronize()
    return 2 * size**3 * runs / (time.perf_counter() - started)


def memory_mark() -> int:
    """Reset the peak memory to now (GPU memory on CUDA, else resident memory); returns the current bytes."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    STATUS.with_name("clear_refs").write_text("5")
    return _status("VmRSS")


def memory_peak() -> int:
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else _status("VmHWM")


def _status(field: str) -> int:
    line = next(line for line in STATUS.read_text().splitlines() if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def val_loss(model: Any, rows: list[dict[str, list[int]]], pad_id: int) -> float:
    """Unweighted mean next-token loss over every answer token of the validation rows."""
    model.eval()
    total = count = 0.0
    collate = PadCollator(pad_id)
    with torch.no_grad():
        for start in range(0, len(rows), 8):
            batch = {key: value.to(model.device) for key, value in collate(rows[start:start + 8]).items()}
            tokens = float((batch["labels"][:, 1:] != -100).sum())
            total += float(plain_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])) * tokens
            count += tokens
    return total / count


def trainer_variant(config: Any, model_dir: Path, rows: list[Any], collator: Any, precision: str, out: Path,
                    group_by_length: bool, max_steps: int | None) -> Timer:
    method = METHODS["lora"]
    torch.manual_seed(config.training.seed)
    model = method.prepare(load_base(model_dir, method), config.method)
    timer = Timer()
    training = config.training
    args = TrainingArguments(
        output_dir=str(out), num_train_epochs=training.epochs, max_steps=max_steps or -1,
        per_device_train_batch_size=training.batch_size, learning_rate=training.learning_rate,
        lr_scheduler_type=training.scheduler, warmup_steps=training.warmup_ratio, save_strategy="no",
        eval_strategy="no", logging_steps=10, bf16=precision == "bf16", use_cpu=not torch.cuda.is_available(),
        seed=training.seed, data_seed=training.seed, remove_unused_columns=False, report_to="none",
        disable_tqdm=True, train_sampling_strategy="group_by_length" if group_by_length else "random",
    )
    Trainer(model=model, args=args, train_dataset=rows, data_collator=collator, callbacks=[timer]).train()
    return timer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=None, help="Train rows to use (default: all).")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="16 examples, 2 steps per variant.")
    parser.add_argument("--bf16-steps", type=int, default=0,
                        help="Where bf16 is not fast, also time this many bf16 steps of (b) to show how slow it is "
                        "(on a CPU without avx512_bf16 one step takes many minutes).")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="Config override, e.g. model.base=DIR (repeatable).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = load_config(EXAMPLE, [f"training.epochs={args.epochs}", *args.overrides])
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    scratch = Path(tempfile.mkdtemp(prefix="tw-bench-"))
    run = RunPaths(scratch / "run")
    prepare_run(config, run, announce=lambda message: None)
    limit = 16 if args.quick else args.examples
    max_steps = 2 if args.quick else None
    train_rows = encode_split(config, tokenizer, run.load_split("train"))[:limit]
    val_rows = encode_split(config, tokenizer, run.load_split("val"))[: 8 if args.quick else None]
    tokens = sum(len(row["input_ids"]) for row in train_rows)
    pad_id = tokenizer.pad_token_id
    # The loops are compared in one precision: training.precision when set, else bf16 where bf16 is
    # fast (the hardware rule; `auto`'s probe belongs to a run, not to this comparison).
    chosen = config.training.precision
    auto = chosen if chosen != "auto" else ("bf16" if fast_bf16_available() else "fp32")
    n_params = sum(p.numel() for p in load_base(model_dir, METHODS["lora"]).parameters())
    peak_fp32 = matmul_peak(torch.float32)
    peak_auto = matmul_peak(torch.bfloat16) if auto == "bf16" else peak_fp32

    results: dict[str, dict[str, Any]] = {}
    variants = {
        "tutorial": lambda out: trainer_variant(config, model_dir, train_rows,
                                                FixedPad(pad_id, config.training.max_seq_len), "fp32", out,
                                                False, max_steps),
        "strong": lambda out: trainer_variant(config, model_dir, train_rows, PadCollator(pad_id), auto, out,
                                              True, max_steps),
        "tunewright": lambda out: _tunewright(config, run, train_rows, max_steps, auto),
    }
    for name, variant in variants.items():
        gc.collect()
        before = memory_mark()
        timer = variant(scratch / name)
        peak = memory_peak() - before
        seen = tokens * (timer.steps * config.training.batch_size / len(train_rows) if max_steps else args.epochs)
        speed = seen / timer.seconds
        precision = "fp32" if name == "tutorial" else auto
        peak_flops = peak_auto if precision == "bf16" else peak_fp32
        results[name] = {"tokens_per_second": speed, "seconds": timer.seconds, "steps": timer.steps,
                         "precision": precision, "peak_memory_bytes": peak,
                         "mfu": speed * 4 * n_params / peak_flops, "val_loss": val_loss(timer.model, val_rows, pad_id)}
        row = results[name]
        print(f"{name:<11} {speed:8.1f} tok/s  {timer.seconds:8.1f} s  {timer.steps:4d} steps  "
              f"val {row['val_loss']:.4f}  peak {peak / 1e9:.2f} GB  MFU {row['mfu']:.1%}", flush=True)
        del timer
    bf16_probe = None
    if auto != "bf16" and args.bf16_steps:
        timer = trainer_variant(config, model_dir, train_rows, PadCollator(pad_id), "bf16", scratch / "bf16", True,
                                args.bf16_steps)
        bf16_probe = {"steps": timer.steps, "tokens_per_second":
                      tokens * timer.steps * config.training.batch_size / len(train_rows) / timer.seconds}
        print(f"bf16 probe  {bf16_probe['tokens_per_second']:8.1f} tok/s over {timer.steps} steps "
              "(bf16 is not fast on this machine, so `auto` is fp32)")
    c, a, b = (results[n]["tokens_per_second"] for n in ("tunewright", "tutorial", "strong"))
    summary = {
        "ratio_vs_tutorial": c / a, "ratio_vs_strong": c / b, "mfu": results["tunewright"]["mfu"],
        "val_loss": {name: row["val_loss"] for name, row in results.items()}, "variants": results,
        "bf16_fast": auto == "bf16", "bf16_probe": bf16_probe, "matmul_peak_flops": {"fp32": peak_fp32,
        "auto": peak_auto}, "train_examples": len(train_rows), "non_padding_tokens": tokens, "epochs": args.epochs,
        "quick": args.quick, "threads": torch.get_num_threads(), "model_parameters": n_params,
    }
    print(f"c/a {c / a:.2f}x   c/b {c / b:.2f}x   (matmul peak {peak_fp32 / 1e9:.0f} GFLOP/s fp32)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


def _tunewright(config: Any, run: RunPaths, train_rows: list[Any], max_steps: int | None, precision: str) -> Timer:
    """tunewright's own loop with the task's config; evaluation only after the timed loop."""
    timer = Timer()
    training = config.training.model_copy(update={"eval_every": 10**6, "checkpoint_every": 10**6,
                                                  "max_steps": max_steps, "precision": precision})
    own = config.model_copy(update={"training": training})
    subset = RunPaths(run.root.parent / "tunewright")
    subset.data_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val"):
        lines = run.split_file(split).read_text().splitlines(keepends=True)
        subset.split_file(split).write_text("".join(lines[: len(train_rows)] if split == "train" else lines))
    train_run(own, subset, show_progress=False, callbacks=[timer])
    return timer


if __name__ == "__main__":
    main()
