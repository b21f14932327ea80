"""Retrieval alone on Banking77: the packaged MiniLM's nearest training messages (k-NN, similarity-
weighted vote) on the official test file, and how often the right intent is among the k nearest
(the ceiling of eval.retrieval_candidates = k). No LLM involved.

    python examples/banking77/prepare.py
    .venv/bin/python examples/banking77/retrieval_baseline.py --json bench/results/banking77_retrieval.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from tunewright.retrieval import Embedder

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    train = [json.loads(line) for line in (HERE / "data.jsonl").read_text(encoding="utf-8").splitlines()]
    test = [json.loads(line) for line in (HERE / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    started = time.perf_counter()
    embedder = Embedder()
    scores = embedder.embed([row["prompt"] for row in test]) @ embedder.embed([row["prompt"] for row in train]).T
    seconds = time.perf_counter() - started
    top = torch.topk(scores, 10, dim=1).indices.tolist()
    result: dict[str, object] = {"train_rows": len(train), "test_rows": len(test), "embed_seconds": seconds}
    for k in (1, 3, 5, 10):
        right, recall = 0, 0
        for row, (gold, nearest) in enumerate(zip((r["label"] for r in test), top, strict=True)):
            votes: dict[str, float] = {}
            for index in nearest[:k]:
                label = train[index]["label"]
                votes[label] = votes.get(label, 0.0) + float(scores[row, index])
            right += int(max(votes, key=lambda name: votes[name]) == gold)
            recall += int(gold in {train[index]["label"] for index in nearest[:k]})
        result[f"knn{k}_accuracy"] = right / len(test)
        result[f"recall_at_{k}"] = recall / len(test)
        print(f"k={k:<3} k-NN accuracy {right / len(test):.4f}   right intent among the {k} nearest "
              f"{recall / len(test):.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
