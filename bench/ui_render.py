"""How long the dashboard takes to render a run page with ~3,000 evaluated rows (Banking77's official test
file, 77 labels), measured in one process through the real app (FastAPI's TestClient, no network).

The run is real except the training: the data is checked and split by `prepare_run`, the embedding
baselines answer all 3,080 test rows, and `score_run` scores them; summary.json and the reports are
written as `tunewright eval` writes them. A page's cost depends on the rows and labels it shows, not on
who answered them, so the "finetuned" candidate's answers here are embedding_classifier's and
training_result.json / metrics.jsonl describe a 60-step run without one (no model is trained).
Timings: the first (cold) request, then the median and worst of --repeat requests, for the run page, a
filtered page, a search, the review page and the runs list.

    python examples/banking77/prepare.py
    nice -n 10 .venv/bin/python bench/ui_render.py --out /tmp/ui-bench --json bench/results/ui_render.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tunewright.config import load_config
from tunewright.evaluate import evaluate_baselines, score_run
from tunewright.pipeline import build_summary, prepare_run
from tunewright.report import write_reports
from tunewright.run_summary import TrainingResult
from tunewright.runs import RunPaths, read_jsonl, write_json, write_jsonl
from tunewright.ui import UISettings, create_app

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "examples" / "banking77" / "tunewright.yaml"
RUN = "banking77-render"
TARGET_MS = 300.0


def build_run(runs: Path) -> RunPaths:
    config = load_config(CONFIG, ["eval.candidates=[embedding_knn,embedding_classifier]",
                                  "eval.probes.forgetting=false", "eval.probes.fairness=false"])
    run = RunPaths(runs / RUN)
    if not run.predictions("embedding_classifier").is_file():
        prepare_run(config, run, announce=print)
        evaluate_baselines(config, run, show_progress=False)
    answers = [{**row, "candidate": "finetuned"} for row in read_jsonl(run.predictions("embedding_classifier"))]
    write_jsonl(run.predictions("finetuned"), answers)
    write_jsonl(run.metrics, [{"step": step, "epoch": step / 60, "train_loss": 3.0 / step ** 0.5, "val_loss": None,
                               "lr": 2e-4, "grad_norm": 1.0, "tokens_seen": step * 900, "elapsed": step * 2.0}
                              for step in range(1, 61)])
    write_json(run.training_result, TrainingResult(
        steps=60, planned_steps=60, best_val_loss=None, best_step=None, stopped_early=False,
        overfitting_alert=False, train_tokens=54_000, train_tokens_per_second=450.0, seconds=120.0,
        precision="fp32", trainable_parameters=4_884_480, total_parameters=139_400_000).to_json())
    summary = build_summary(config, run, score_run(config, run).to_json())
    write_reports(run, summary)
    write_json(run.summary, summary.to_json())
    return run


def timed(client: TestClient, path: str, repeat: int) -> dict[str, Any]:
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    warm = times[1:]
    return {"path": path, "bytes": len(response.content), "cold_ms": times[0],
            "median_ms": statistics.median(warm), "max_ms": max(warm)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ui-bench"))
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "ui_render.json")
    args = parser.parse_args()
    runs = args.out / "runs"
    if not (runs / RUN / "summary.json").is_file():
        build_run(runs)
    rows = len(read_jsonl(RunPaths(runs / RUN).predictions("finetuned")))
    client = TestClient(create_app(UISettings(runs_dir=runs)))
    pages = [timed(client, path, args.repeat) for path in
             (f"/runs/{RUN}", f"/runs/{RUN}?show=regressed", f"/runs/{RUN}?q=card", f"/runs/{RUN}/review", "/")]
    print(f"{'page':<40} {'cold ms':>8} {'median ms':>10} {'max ms':>8} {'KiB':>6}")
    for item in pages:
        print(f"{item['path']:<40} {item['cold_ms']:>8.0f} {item['median_ms']:>10.0f} {item['max_ms']:>8.0f} "
              f"{item['bytes'] / 1024:>6.0f}")
    run_page = pages[0]
    verdict = "met" if run_page["median_ms"] <= TARGET_MS else "missed"
    print(f"run page with {rows} evaluated rows: median {run_page['median_ms']:.0f} ms (target <= {TARGET_MS:.0f} ms: "
          f"{verdict})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "rows": rows, "repeat": args.repeat, "pages": pages, "target_ms": TARGET_MS, "target": verdict,
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                        "load_average": os.getloadavg()},
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
