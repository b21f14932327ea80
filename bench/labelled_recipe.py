"""The labelled-task recipe against the embedding baselines, side by side in one process: check and
split the data, train the adapter (or reuse one already trained in --out with --reuse), run the
embedding baselines (embedding_knn, embedding_classifier) on the test split, evaluate the fine-tuned
model with label scoring (the config's recipe), then read every variant off the saved label scores:
the model alone, the ensemble with the embedding classifier (weights fitted on validation), and the
plain product. Prints a table and writes JSON with accuracy, macro-F1, calibration and wall times.

    python examples/banking77/prepare.py
    OMP_NUM_THREADS=2 TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/labelled_recipe.py \\
        examples/banking77/tunewright.yaml --out runs/banking77 --json bench/results/banking77_recipe.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from tunewright.config import load_config
from tunewright.evaluate import evaluate_baselines, evaluate_finetuned, score_run
from tunewright.evaluate.calibration import accuracy_at_coverage, combine, expected_calibration_error
from tunewright.evaluate.metrics import macro_f1
from tunewright.pipeline import prepare_run
from tunewright.runs import RunPaths, read_json, read_jsonl
from tunewright.train import train_run

EMBEDDING = ["embedding_knn", "embedding_classifier"]


def variant(name: str, rows: list[dict[str, Any]], final: list[dict[str, float]], labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE and accuracy at 80 % coverage of one way of turning scores into labels."""
    predicted = [max(scores, key=lambda label: scores[label]) for scores in final]
    correct = [p == row["label"] for p, row in zip(predicted, rows, strict=True)]
    confidence = [scores[p] for scores, p in zip(final, predicted, strict=True)]
    return {"name": name, "accuracy": sum(correct) / len(rows),
            "macro_f1": macro_f1(labels, [row["label"] for row in rows], predicted),
            "ece": expected_calibration_error(confidence, correct),
            "accuracy_at_80_coverage": accuracy_at_coverage(confidence, correct, 0.8)}


def fixed_weights(labels: list[str], run: RunPaths, out: Path | None) -> None:
    rows = read_jsonl(run.eval_dir / "label_scores-finetuned.jsonl")
    model, embedding = [row["model"] for row in rows], [row["embedding"] for row in rows]
    variants = [variant(f"model weight {a}, classifier weight 1", rows, combine(model, embedding, (a, 1.0)), labels)
                for a in (1.0, 0.5, 0.25, 0.1, 0.05)]
    for item in variants:
        print(f"{item['name']:<40} {item['accuracy']:.4f} ECE {item['ece']:.4f}")
    if out:
        out.write_text(json.dumps({"test_rows": len(rows), "variants": variants}, indent=2) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--reuse", action="store_true", help="evaluate the adapter already trained in --out")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--weights-only", action="store_true",
                        help="re-read --out's saved label scores and print the ensemble at fixed weights (looks at "
                        "the test split: bounds a direction, never picks the recipe)")
    args = parser.parse_args()
    if args.weights_only:
        fixed_weights(load_config(args.config, args.overrides).task.labels, RunPaths(args.out), args.json)
        return
    config = load_config(args.config, args.overrides)
    config = config.model_copy(update={"eval": config.eval.model_copy(update={"candidates": EMBEDDING})})
    run = RunPaths(args.out)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if not (args.reuse and run.training_result.exists()):
        prepare_run(config, run, print)
        train_run(config, run, show_progress=False)
    timings["training"] = read_json(run.training_result)["seconds"]
    mark = time.perf_counter()
    evaluate_baselines(config, run, show_progress=False)
    timings["embedding_baselines"] = time.perf_counter() - mark
    mark = time.perf_counter()
    evaluate_finetuned(config, run, show_progress=False)
    timings["finetuned_evaluation"] = time.perf_counter() - mark
    result = score_run(config, run)
    timings["total_this_process"] = time.perf_counter() - started

    rows = read_jsonl(run.eval_dir / "label_scores-finetuned.jsonl")
    weights = tuple(read_json(run.eval_dir / "label_ensemble.json")["weights"])
    labels = config.task.labels
    model, embedding = [row["model"] for row in rows], [row["embedding"] for row in rows]
    variants = [
        variant("model label scores alone (shortlist)", rows, model, labels),
        variant("embedding classifier restricted to the shortlist", rows, embedding, labels),
        variant("plain product (1, 1)", rows, combine(model, embedding, (1.0, 1.0)), labels),
        variant(f"ensemble, weights fitted on validation {weights[0]:.2f}, {weights[1]:.2f}", rows,
                [row["final"] for row in rows], labels),
    ]
    shortlist_recall = sum(row["label"] in row["model"] for row in rows) / len(rows)
    candidates = {name: {"label_accuracy": m.label_accuracy, "macro_f1": m.macro_f1}
                  for name, m in result.candidates.items()}
    print(f"{'candidate':<60} {'accuracy':>9} {'macro-F1':>9}")
    for name, m in candidates.items():
        print(f"{name:<60} {m['label_accuracy']:>9.4f} {m['macro_f1']:>9.4f}")
    print(f"\nright label in the shortlist: {shortlist_recall:.4f}")
    print(f"{'variant':<60} {'accuracy':>9} {'macro-F1':>9} {'ECE':>7} {'acc@80%':>8}")
    for item in variants:
        print(f"{item['name']:<60} {item['accuracy']:>9.4f} {item['macro_f1']:>9.4f} {item['ece']:>7.4f} "
              f"{item['accuracy_at_80_coverage']:>8.4f}")
    print("timings (s):", {k: round(v, 1) for k, v in timings.items()})
    report = {"config": str(args.config), "overrides": args.overrides, "test_rows": result.test_rows,
              "decision": result.decision, "decision_reasons": result.decision_reasons,
              "candidates": candidates, "shortlist_recall": shortlist_recall, "variants": variants,
              "ensemble_weights": list(weights), "timings_seconds": timings,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_average": os.getloadavg()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
