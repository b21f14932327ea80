"""Directions tried for labelled tasks on the packaged MiniLM alone (no LLM), against the embedding
baselines tunewright scores (embedding_knn, embedding_classifier), on one run's train / val / test
splits in one process: the label names' own embeddings added as one extra training row per label
(nothing dataset-specific: every labelled task has task.labels), and other strengths of the logistic
regression's penalty. Validation and test accuracy are both printed; nothing is selected here.

    OMP_NUM_THREADS=2 TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/embedding_variants.py \\
        runs/banking77 --json bench/results/banking77_embedding_variants.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from tunewright.config import load_config
from tunewright.evaluate.embedding_baselines import CLASSIFIER_C, embed, embedding_answers
from tunewright.retrieval import packaged_embedder
from tunewright.runs import RunPaths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with config.yaml and data/{train,val,test}.jsonl")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = RunPaths(args.run)
    labels = load_config(run.config).task.labels
    splits = {name: run.load_split(name) for name in ("train", "val", "test")}
    gold = {name: np.array([str(row.label) for row in rows]) for name, rows in splits.items()}
    started = time.perf_counter()
    table = []
    for name in ("embedding_knn", "embedding_classifier"):
        answers = {split: embedding_answers(name, splits["train"], splits[split], labels) for split in ("val", "test")}
        table.append({"name": name, **{split: float(np.mean([a.label == g for a, g in zip(rows, gold[split],
                                                                                         strict=True)]))
                                       for split, rows in answers.items()}})
    vectors = {name: embed(rows) for name, rows in splits.items()}
    names = np.asarray(packaged_embedder().embed(list(labels)).numpy())

    def scored(name: str, features: np.ndarray, targets: np.ndarray, weights: np.ndarray | None, c: float) -> None:
        model = LogisticRegression(C=c, max_iter=3000).fit(features, targets, sample_weight=weights)
        table.append({"name": name, "val": float(model.score(vectors["val"], gold["val"])),
                      "test": float(model.score(vectors["test"], gold["test"]))})

    for weight in (1.0, 3.0, 9.0):
        scored(f"classifier + label names as training rows (weight {weight:g})",
               np.concatenate([vectors["train"], names]), np.concatenate([gold["train"], np.asarray(labels)]),
               np.concatenate([np.ones(len(vectors["train"])), np.full(len(labels), weight)]), CLASSIFIER_C)
    for c in (5.0, 50.0, 100.0):
        scored(f"classifier, C={c:g} (tunewright: {CLASSIFIER_C:g})", vectors["train"], gold["train"], None, c)
    seconds = time.perf_counter() - started
    print(f"{'system':<58} {'val':>6} {'test':>7}")
    for row in table:
        print(f"{row['name']:<58} {row['val']:>6.4f} {row['test']:>7.4f}")
    report = {"run": str(args.run), "rows": {name: len(rows) for name, rows in splits.items()}, "table": table,
              "seconds": seconds, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()}}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
