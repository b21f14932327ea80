"""A direction tried for labelled tasks (issue 10): the packaged SmolLM2-135M as a sequence classifier
(AutoModelForSequenceClassification: a linear `score` head on the last token's hidden state) with a
LoRA on every linear layer, the head trained alongside it (peft's SEQ_CLS task type puts `score` in
modules_to_save). Side by side in one process, on the split `bench/labelled_recipe.py` uses (the
config's data check and split, the official Banking77 test): embedding_knn, embedding_classifier and a
late fusion of the head's probabilities with the classifier's (weights fitted on validation only). The
epoch is chosen on validation accuracy; the test split is only scored. Prints a table, writes JSON.
Data: Banking77 (Casanueva et al. 2020, CC-BY-4.0; examples/banking77/CITATION.md).

    python examples/banking77/prepare.py
    OMP_NUM_THREADS=2 TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/seq_cls_head.py \\
        examples/banking77/tunewright.yaml --out /tmp/seq-cls-run --json bench/results/banking77_seq_cls.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunewright.config import load_config
from tunewright.evaluate.calibration import combine, expected_calibration_error, fit_weights
from tunewright.evaluate.embedding_baselines import classifier_probabilities, embedding_answers
from tunewright.evaluate.metrics import macro_f1
from tunewright.evaluate.stats import Comparison, bootstrap_indices, mean_of, paired_difference
from tunewright.modeling import load_tokenizer, resolve_base_model
from tunewright.pipeline import prepare_run
from tunewright.records import Example
from tunewright.retrieval import input_text
from tunewright.runs import RunPaths

MAX_TOKENS = 64


def encode(tokenizer: Any, rows: list[Example]) -> list[list[int]]:
    """The message's tokens, then the end-of-turn token: the head reads that last position, the same
    token at the end of every input."""
    texts = tokenizer([input_text(row) for row in rows], add_special_tokens=False)["input_ids"]
    return [[*ids[:MAX_TOKENS - 1], tokenizer.eos_token_id] for ids in texts]


def padded(encoded: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask. The pad id differs from every token in the rows, so the model's
    "rightmost non-pad token" pooling lands on each row's end-of-turn token."""
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    for row, ids in enumerate(encoded):
        input_ids[row, :len(ids)] = torch.tensor(ids)
    return input_ids, (input_ids != pad_id).long()


def load_head(base_dir: Path, labels: list[str], pad_id: int, args: argparse.Namespace) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(args.seed)  # the new score head's initial weights
    model = AutoModelForSequenceClassification.from_pretrained(
        base_dir, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, dtype=torch.float32,
        trust_remote_code=False, local_files_only=True, use_safetensors=True)
    model.config.pad_token_id = pad_id  # the base's pad is its end-of-turn token, which every input ends with
    lora = LoraConfig(task_type=TaskType.SEQ_CLS, r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05,
                      target_modules="all-linear")
    return get_peft_model(model, lora)


def training_batches(encoded: list[list[int]], size: int, generator: torch.Generator) -> list[list[int]]:
    """Batches in random order of rows of similar length: shuffled rows sorted by length within windows
    of 8 batches, then the batches shuffled, so padding stays small (a few inputs run to 64 tokens,
    most are ~12) while the order stays random."""
    order, window = torch.randperm(len(encoded), generator=generator).tolist(), 8 * size
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(encoded[i]))
        batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


@torch.inference_mode()
def probabilities(model: Any, encoded: list[list[int]], pad_id: int, batch: int = 64) -> np.ndarray:
    """(rows, labels) softmax of the head's logits, batches of similar length to keep padding small."""
    model.eval()
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    result = np.zeros((len(encoded), model.config.num_labels))
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        input_ids, mask = padded([encoded[i] for i in chunk], pad_id)
        result[chunk] = torch.softmax(model(input_ids=input_ids, attention_mask=mask).logits, -1).numpy()
    model.train()
    return result


def train_head(model: Any, train: tuple[list[list[int]], list[int]], val: tuple[list[list[int]], list[int]],
               pad_id: int, args: argparse.Namespace) -> tuple[list[dict[str, float]], float]:
    """AdamW with warmup and cosine decay; validation accuracy (ties: lower loss) after every epoch,
    and the best epoch's trainable weights restored at the end. Returns the history and seconds."""
    from transformers import get_cosine_schedule_with_warmup

    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    head = [p for name, p in trainable.items() if "modules_to_save" in name]
    lora = [p for name, p in trainable.items() if "modules_to_save" not in name]
    optimizer = torch.optim.AdamW([{"params": lora, "lr": args.lr}, {"params": head, "lr": args.head_lr}],
                                  weight_decay=0.01)
    steps = args.epochs * math.ceil(len(train[0]) / args.batch_size)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, round(0.05 * steps)), steps)
    generator = torch.Generator().manual_seed(args.seed)
    gold_val = np.array(val[1])
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, 0.0)
    best_state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()
    model.train()
    for epoch in range(1, args.epochs + 1):
        losses = []
        for batch in training_batches(train[0], args.batch_size, generator):
            input_ids, mask = padded([train[0][i] for i in batch], pad_id)
            out = model(input_ids=input_ids, attention_mask=mask, labels=torch.tensor([train[1][i] for i in batch]))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(out.loss.detach()))
        probs = probabilities(model, val[0], pad_id)
        val_accuracy = float((probs.argmax(1) == gold_val).mean())
        val_loss = float(-np.log(np.maximum(probs[np.arange(len(gold_val)), gold_val], 1e-12)).mean())
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                        "val_accuracy": val_accuracy, "seconds": time.perf_counter() - started})
        print(history[-1], flush=True)
        if (val_accuracy, -val_loss) > best:
            best = (val_accuracy, -val_loss)
            best_state = {name: p.detach().clone() for name, p in trainable.items()}
    with torch.no_grad():
        for name, p in trainable.items():
            p.copy_(best_state[name])
    return history, time.perf_counter() - started


def as_dicts(known: list[str], probs: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(known, row.tolist(), strict=True)) for row in probs]


def summary(name: str, rows: list[dict[str, float]], gold: list[str], labels: list[str],
            seconds: dict[str, float | None], calibrated: bool = True) -> dict[str, Any]:
    predicted = [max(scores, key=lambda label: scores[label]) for scores in rows]
    correct = [p == g for p, g in zip(predicted, gold, strict=True)]
    confidence = [scores[p] for scores, p in zip(rows, predicted, strict=True)]
    return {"name": name, "accuracy": sum(correct) / len(gold), "macro_f1": macro_f1(labels, gold, predicted),
            "ece": expected_calibration_error(confidence, correct) if calibrated else None, "correct": correct,
            **seconds}


def machine() -> dict[str, Any]:
    cpu = Path("/proc/cpuinfo").read_text(encoding="utf-8") if Path("/proc/cpuinfo").exists() else ""
    flags = next((line.split(":", 1)[1].split() for line in cpu.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu": model, "platform": platform.platform(),
            "torch_threads": torch.get_num_threads(),
            "cpu_flags": sorted(f for f in flags if f.startswith(("avx", "amx")) or f in ("fma", "f16c"))}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()


def baselines(train: list[Example], val: list[Example], test: list[Example], labels: list[str]
              ) -> tuple[list[dict[str, Any]], list[dict[str, float]], list[dict[str, float]]]:
    """embedding_knn and embedding_classifier on the test split, and the classifier's probabilities
    on validation and test (for the ensemble)."""
    gold = [str(e.label) for e in test]
    mark = time.perf_counter()
    knn = embedding_answers("embedding_knn", train, test, labels)
    rows = [summary("embedding_knn", [{a.label: 1.0} for a in knn], gold, labels,
                    {"train_seconds": None, "eval_seconds": time.perf_counter() - mark}, calibrated=False)]
    mark = time.perf_counter()
    known, classifier_test = classifier_probabilities(train, test, labels)
    # fit and scoring in one call, on the embeddings embedding_knn already computed (cached per text)
    seconds = {"train_seconds": None, "eval_seconds": time.perf_counter() - mark}
    _, classifier_val = classifier_probabilities(train, val, labels)
    rows.append(summary("embedding_classifier", as_dicts(known, classifier_test), gold, labels, seconds))
    return rows, as_dicts(known, classifier_val), as_dicts(known, classifier_test)


def head_run(config_base: str, splits: dict[str, list[Example]], labels: list[str], args: argparse.Namespace
             ) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]]]:
    """Train the head (epoch chosen on validation), then its probabilities on validation and test
    (the test pass on the merged model). Returns the facts for the report and the probabilities."""
    base_dir = resolve_base_model(config_base)
    tokenizer = load_tokenizer(base_dir)
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert pad_id != tokenizer.eos_token_id
    model = load_head(base_dir, labels, pad_id, args)
    model.print_trainable_parameters()
    index = {label: i for i, label in enumerate(labels)}
    encoded = {name: encode(tokenizer, rows) for name, rows in splits.items()}
    gold = {name: [index[str(e.label)] for e in rows] for name, rows in splits.items()}
    history, train_seconds = train_head(model, (encoded["train"], gold["train"]), (encoded["val"], gold["val"]),
                                        pad_id, args)
    val_probs = probabilities(model, encoded["val"], pad_id)
    mark = time.perf_counter()
    merged = model.merge_and_unload()  # the same function without LoRA's extra matmuls in every layer
    merge_gap = float(np.abs(probabilities(merged, encoded["val"], pad_id) - val_probs).max())
    test_probs = probabilities(merged, encoded["test"], pad_id)
    facts = {"history": history, "train_seconds": train_seconds, "eval_seconds": time.perf_counter() - mark,
             "merged_vs_adapter_max_probability_gap_on_val": merge_gap}
    return facts, {"val": as_dicts(labels, val_probs), "test": as_dicts(labels, test_probs)}


def print_table(table: list[dict[str, Any]], comparisons: list[Comparison]) -> None:
    print(f"\n{'system (' + str(len(table[0]['correct'])) + ' test rows)':<62} {'acc':>7} {'mF1':>7} {'ECE':>6} "
          f"{'train s':>8} {'eval s':>7}")
    for row in table:
        train_s, ece = row["train_seconds"], "-" if row["ece"] is None else f"{row['ece']:.3f}"
        print(f"{row['name']:<62} {row['accuracy']:>7.4f} {row['macro_f1']:>7.4f} {ece:>6} "
              f"{'-' if train_s is None else f'{train_s:.0f}':>8} {row['eval_seconds']:>7.1f}")
    for c in comparisons:
        print(f"{c.candidate} - {c.baseline}: {100 * c.difference:+.2f} points, "
              f"95 % CI {100 * c.ci95[0]:+.2f} to {100 * c.ci95[1]:+.2f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="scratch run directory for the split")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate of the LoRA weights")
    parser.add_argument("--head-lr", type=float, default=2e-3, help="learning rate of the new score head")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max-train", type=int, help="first N training rows only (a quick development run)")
    parser.add_argument("--max-test", type=int, help="first N test rows only (a quick development run)")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    load_before, started_at = uptime(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    config = load_config(args.config)
    run = RunPaths(args.out)
    prepare_run(config, run, print)
    splits = {name: run.load_split(name) for name in ("train", "val", "test")}
    splits["train"], splits["test"] = splits["train"][:args.max_train], splits["test"][:args.max_test]
    labels, gold = config.task.labels, {name: [str(e.label) for e in rows] for name, rows in splits.items()}
    table, classifier_val, classifier_test = baselines(splits["train"], splits["val"], splits["test"], labels)
    facts, head = head_run(config.model.base, splits, labels, args)
    seconds = {"train_seconds": facts["train_seconds"], "eval_seconds": facts["eval_seconds"]}
    table.append(summary(f"seq-cls head (LoRA r{args.rank} all-linear + score)", head["test"], gold["test"], labels,
                         seconds))
    weights = fit_weights(head["val"], classifier_val, gold["val"])
    table.append(summary(f"ensemble head x classifier, weights on validation {weights[0]:.2f}, {weights[1]:.2f}",
                         combine(head["test"], classifier_test, weights), gold["test"], labels, seconds))
    samples = bootstrap_indices(len(splits["test"]), config.eval.bootstrap_resamples, config.eval.seed)
    baseline = mean_of([float(c) for c in table[1]["correct"]])
    comparisons = [c for row in table[2:] if (c := paired_difference(
        "label_accuracy", row["name"], "embedding_classifier", mean_of([float(x) for x in row["correct"]]),
        baseline, len(splits["test"]), samples)) is not None]
    print_table(table, comparisons)
    report = {"config": str(args.config), "args": {k: str(v) for k, v in vars(args).items()},
              "rows": {name: len(rows) for name, rows in splits.items()},
              "table": [{k: v for k, v in row.items() if k != "correct"} for row in table],
              "ensemble_weights": list(weights), **facts, "comparisons": [c.to_json() for c in comparisons],
              "machine": {**machine(), "uptime_before": load_before, "uptime_after": uptime()},
              "started": started_at, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
