"""A direction tried for labelled tasks: fine-tune the packaged MiniLM encoder itself (mean pooling,
cosine classifier initialised at the class means, cross-entropy), against logistic regression on the
frozen embeddings, on the same run's train / val / test splits, in one process. No LLM involved.

    .venv/bin/python bench/encoder_finetune.py runs/banking77 --json bench/results/banking77_encoder_finetune.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from tunewright.evaluate.embedding_baselines import embedding_answers
from tunewright.records import Example
from tunewright.retrieval import input_text, minilm_dir
from tunewright.runs import RunPaths

SCALE = 20.0  # cosine logits times this: a softmax over unit-length similarities needs a temperature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run directory with data/{train,val,test}.jsonl")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    run = RunPaths(args.run)
    train, val, test = (run.load_split(name) for name in ("train", "val", "test"))
    labels = sorted({str(e.label) for e in train})
    started = time.perf_counter()
    classifier = embedding_answers("embedding_classifier", train, test, labels)
    baseline = sum(a.label == e.label for a, e in zip(classifier, test, strict=True)) / len(test)
    baseline_seconds = time.perf_counter() - started

    tokenizer, encoder = AutoTokenizer.from_pretrained(minilm_dir()), AutoModel.from_pretrained(minilm_dir())

    def embed(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        states, mask = encoder(**batch).last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1)

    def accuracy(rows: list[Example]) -> float:
        encoder.eval()
        with torch.no_grad():
            scores = torch.cat([embed([input_text(e) for e in rows[i:i + 128]]) @ heads().T
                                for i in range(0, len(rows), 128)])
        encoder.train()
        gold = torch.tensor([labels.index(str(e.label)) for e in rows])
        return float((scores.argmax(1) == gold).float().mean())

    texts, gold = [input_text(e) for e in train], torch.tensor([labels.index(str(e.label)) for e in train])
    started = time.perf_counter()
    with torch.no_grad():
        start = torch.cat([embed(texts[i:i + 64]) for i in range(0, len(texts), 64)])
    prototypes = torch.nn.Parameter(torch.stack([start[gold == c].mean(0) for c in range(len(labels))]))

    def heads() -> torch.Tensor:
        return torch.nn.functional.normalize(prototypes, dim=-1)

    optimizer = torch.optim.AdamW([{"params": encoder.parameters(), "lr": args.lr},
                                   {"params": [prototypes], "lr": 1e-2}], weight_decay=0.01)
    history = []
    for epoch in range(args.epochs):
        for batch in torch.randperm(len(train)).split(16):
            logits = SCALE * embed([texts[i] for i in batch]) @ heads().T
            loss = torch.nn.functional.cross_entropy(logits, gold[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        history.append({"epoch": epoch + 1, "val_accuracy": accuracy(val)})
        print(history[-1], flush=True)
    tuned = accuracy(test)
    result = {"test_rows": len(test), "embedding_classifier_accuracy": baseline,
              "embedding_classifier_seconds": baseline_seconds, "encoder_finetuned_accuracy": tuned,
              "encoder_finetune_seconds": time.perf_counter() - started, "epochs": args.epochs, "lr": args.lr,
              "history": history, "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC")}
    print(f"embedding_classifier {baseline:.4f}   fine-tuned MiniLM encoder {tuned:.4f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
