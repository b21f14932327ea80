"""The quickstart pipeline, timed stage by stage, in this tree and (with --against) in a git worktree of
another commit, one after the other in the same command on the same machine, so every speed change is
measured against the commit before it. Each run gets an empty tunewright cache (the packaged model's
converted weights are linked in: converting them is setup, not pipeline), so cached baselines or a
cached precision probe never make a run look faster; --warm adds a second run of this tree with the
first run's cache, to show what a repeated run costs. The machine's load (`uptime`) is recorded with
every run: on a shared machine absolute times are inflated, comparisons within one command count.

    nice -n 10 .venv/bin/python bench/quickstart.py --against HEAD~3 --json bench/results/quickstart.json
    ... --set training.precision=fp32 --set training.precision=bf16   (one run per precision)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", help="another commit (e.g. HEAD~1), run first in a git worktree")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override for every run (repeat the option with the same key, e.g. "
                             "training.precision, to run each value in turn)")
    parser.add_argument("--warm", action="store_true", help="also rerun this tree with its first run's cache")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "quickstart.json")
    args = parser.parse_args()

    variants = override_variants(args.overrides)
    trees: list[tuple[str, Path]] = []
    scratch = Path(tempfile.mkdtemp(prefix="tw-bench-quickstart-"))
    if args.against:
        trees.append((commit_of(args.against), add_worktree(args.against, scratch / "against")))
    trees.append((commit_of("HEAD") + ("+dirty" if dirty() else ""), REPO))
    runs: list[dict[str, Any]] = []
    result = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": " ".join(sys.argv), "runs": runs}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    try:
        for overrides in variants:
            for commit, tree in trees:
                cache = fresh_cache(scratch / f"cache-{len(runs)}")
                runs.append(run_quickstart(tree, commit, overrides, cache, scratch / f"run-{len(runs)}"))
                args.json.write_text(json.dumps(result, indent=2) + "\n")  # what ran so far survives a kill
                if args.warm and tree == REPO:
                    runs.append(run_quickstart(tree, commit + " (warm cache)", overrides, cache,
                                               scratch / f"run-{len(runs)}"))
                    args.json.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if args.against:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(scratch / "against")],
                           check=False)
    print_table(runs)
    print(f"wrote {args.json}")
    shutil.rmtree(scratch, ignore_errors=True)


def override_variants(overrides: list[str]) -> list[list[str]]:
    """Overrides whose key repeats become one variant per value; the others apply to every variant."""
    keys = [item.partition("=")[0] for item in overrides]
    repeated = {key for key in keys if keys.count(key) > 1}
    common = [item for item, key in zip(overrides, keys, strict=True) if key not in repeated]
    varying = [item for item, key in zip(overrides, keys, strict=True) if key in repeated]
    return [[*common, item] for item in varying] or [common]


def run_quickstart(tree: Path, commit: str, overrides: list[str], cache: Path, out: Path) -> dict[str, Any]:
    """One `tunewright quickstart` from `tree`'s source, with this interpreter's packages."""
    command = [sys.executable, "-m", "tunewright", "quickstart", "--out", str(out)]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(tree / "src"), "TUNEWRIGHT_CACHE": str(cache)}
    load_before = load_average()
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if completed.returncode not in (0, 3):  # 3 is a no-go: a finished run
        sys.stderr.write(completed.stdout[-3000:] + completed.stderr[-3000:])
        raise SystemExit(f"quickstart failed in {tree} (exit {completed.returncode})")
    summary = json.loads((out / "summary.json").read_text())
    row = describe(summary)
    row.update(commit=commit, overrides=overrides, wall_seconds=wall,
               load_before=load_before, load_after=load_average())
    print(f"{commit} {' '.join(overrides)}: {row['timings']['total_seconds']:.0f} s pipeline, "
          f"finetuned label accuracy {row['label_accuracy'].get('finetuned')}", flush=True)
    return row


def describe(summary: dict[str, Any]) -> dict[str, Any]:
    candidates = summary["eval"]["candidates"]
    training = summary["training"]
    return {
        "decision": summary["decision"],
        "best_baseline": summary["eval"]["best_baseline"],
        "label_accuracy": {name: m.get("label_accuracy") for name, m in candidates.items()},
        "rubric_pass_rate": {name: m.get("rubric_pass_rate") for name, m in candidates.items()},
        "precision": training.get("precision"),
        "precision_reason": training.get("precision_reason"),
        "training_steps": training["steps"],
        "train_tokens_per_second": training["train_tokens_per_second"],
        "timings": summary["timings"],
    }


def print_table(runs: list[dict[str, Any]]) -> None:
    stages = ["data", "baselines", "training", "evaluation", "report", "total_seconds"]
    print(f"{'commit':28} {'set':28} " + " ".join(f"{name[:10]:>10}" for name in stages)
          + "   acc    load")
    for row in runs:
        timings = row["timings"]
        cells = " ".join(f"{timings.get(name, 0.0):10.1f}" for name in stages)
        accuracy = row["label_accuracy"].get("finetuned") or 0.0
        print(f"{row['commit'][:28]:28} {' '.join(row['overrides'])[:28]:28} {cells} {accuracy:5.3f} "
              f"{row['load_before'][0]:.1f}/{row['load_after'][0]:.1f}")
    for row in runs:
        parts = {name: seconds for name, seconds in row["timings"].get("stages", {}).items() if "/" in name}
        if parts:
            print(f"{row['commit']}: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in parts.items()))


def fresh_cache(path: Path) -> Path:
    """An empty tunewright cache that shares only the converted packaged model with the user's cache."""
    from tunewright.modeling import cache_dir

    path.mkdir(parents=True)
    models = cache_dir() / "models"
    if models.is_dir():
        (path / "models").symlink_to(models, target_is_directory=True)
    return path


def add_worktree(commit: str, target: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(target), commit],
                   check=True, capture_output=True)
    return target


def commit_of(ref: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", ref], check=True,
                          capture_output=True, text=True).stdout.strip()


def dirty() -> bool:
    status = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                            check=True, capture_output=True, text=True).stdout
    return bool(status.strip())


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def machine() -> dict[str, Any]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    import torch

    return {"cpus": os.cpu_count(), "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


if __name__ == "__main__":
    main()
