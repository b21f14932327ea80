"""A direction tried for labelled tasks: the fine-tuned LLM's hidden state where its answer starts, as
features beside the packaged MiniLM embedding in one logistic regression, against the embedding
baselines (embedding_knn, embedding_classifier) on the same run's train / val / test splits, in one
process. The layer is chosen on the validation split; the test rows are only scored. Prints a table
and writes JSON.

    OMP_NUM_THREADS=2 TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/label_features.py \\
        runs/banking77 --test-rows 400 --json bench/results/banking77_label_features.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from tunewright.chat import prompt_ids, with_system_prompt
from tunewright.config import load_config
from tunewright.evaluate.embedding_baselines import CLASSIFIER_C, embed, embedding_answers
from tunewright.methods import artifact_dir, load_trained
from tunewright.modeling import load_tokenizer, resolve_base_model
from tunewright.records import Example
from tunewright.runs import RunPaths

LAYERS = (8, 15, 22, 30)


@torch.inference_mode()
def hidden_states(model: Any, tokenizer: Any, rows: list[Example], system_prompt: str, batch: int) -> np.ndarray:
    """(rows, layers, hidden) states at the last prompt token, i.e. where the answer's first token is
    predicted, from the prompt the model was trained and is evaluated with."""
    encoded = [prompt_ids(tokenizer, with_system_prompt(row.prompt, system_prompt)) for row in rows]
    order = sorted(range(len(rows)), key=lambda i: len(encoded[i]))
    result: list[np.ndarray] = [np.empty(0)] * len(rows)
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(chunk):  # left padding: every prompt ends in the last column
            ids[row, width - len(encoded[i]):] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]):] = 1
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    output_hidden_states=True, logits_to_keep=1)
        for row, i in enumerate(chunk):
            result[i] = torch.stack([out.hidden_states[layer][row, -1] for layer in LAYERS]).float().numpy()
    return np.stack(result)


def standardised(blocks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Standardised with the training rows' mean and spread, then unit length (as MiniLM's rows are)."""
    mean, spread = blocks["train"].mean(0), blocks["train"].std(0) + 1e-6
    scaled = {name: (value - mean) / spread for name, value in blocks.items()}
    return {name: value / np.linalg.norm(value, axis=1, keepdims=True) for name, value in scaled.items()}


def accuracies(features: dict[str, np.ndarray], gold: dict[str, list[str]]) -> dict[str, float]:
    model = LogisticRegression(C=CLASSIFIER_C, max_iter=3000).fit(features["train"], gold["train"])
    return {"val": float(model.score(features["val"], gold["val"])),
            "test": float(model.score(features["test"], gold["test"]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a trained run directory (config.yaml, data/, its adapter)")
    parser.add_argument("--test-rows", type=int, help="score only the first N test rows (a cheap prototype)")
    parser.add_argument("--base", action="store_true", help="also the base model's states, without the fine-tune")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = RunPaths(args.run)
    config = load_config(run.config)
    splits = {name: run.load_split(name) for name in ("train", "val", "test")}
    splits["test"] = splits["test"][:args.test_rows]
    gold = {name: [str(row.label) for row in rows] for name, rows in splits.items()}
    labels, timings, table = config.task.labels, {}, []
    started = time.perf_counter()
    for name in ("embedding_knn", "embedding_classifier"):
        answers = embedding_answers(name, splits["train"], splits["test"], labels)
        table.append({"name": name, "test": sum(a.label == g for a, g in zip(answers, gold["test"], strict=True))
                      / len(answers)})
    minilm = {name: embed(rows) for name, rows in splits.items()}
    timings["embedding_baselines"] = time.perf_counter() - started
    base_dir = resolve_base_model(config.model.base)
    models = {"fine-tuned": lambda: load_trained(base_dir, artifact_dir(config, run), config.method.name)}
    if args.base:
        from tunewright.methods import METHODS, load_base
        models["base"] = lambda: load_base(base_dir, METHODS[config.method.name]).eval()
    tokenizer = load_tokenizer(artifact_dir(config, run))
    for which, load in models.items():
        mark = time.perf_counter()
        model = load()
        states = {name: hidden_states(model, tokenizer, rows, config.task.system_prompt, args.batch_size)
                  for name, rows in splits.items()}
        timings[f"{which} states"] = time.perf_counter() - mark
        for j, layer in enumerate(LAYERS):
            block = standardised({name: value[:, j] for name, value in states.items()})
            table.append({"name": f"{which} LLM layer {layer} alone", "layer": layer, **accuracies(block, gold)})
            joined = {name: np.concatenate([minilm[name], block[name]], axis=1) for name in splits}
            table.append({"name": f"MiniLM + {which} LLM layer {layer}", "layer": layer, **accuracies(joined, gold)})
        del model
    joined_rows = [row for row in table if row["name"].startswith("MiniLM + fine-tuned")]
    chosen = max(joined_rows, key=lambda row: row["val"])  # chosen on validation, never on test
    best_baseline = max(row["test"] for row in table[:2])
    print(f"{'system':<44} {'val':>6} {'test':>6}")
    for row in table:
        print(f"{row['name']:<44} {row.get('val', float('nan')):>6.3f} {row['test']:>6.3f}")
    print(f"chosen on validation: {chosen['name']} -> test {chosen['test']:.4f} "
          f"({100 * (chosen['test'] - best_baseline):+.1f} points over the best embedding baseline)")
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    report = {"run": str(args.run), "test_rows": len(splits["test"]), "table": table, "chosen": chosen,
              "best_embedding_baseline": best_baseline, "timings_seconds": timings,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
