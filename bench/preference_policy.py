"""Issue 12's measurement: the fintech SFT adapter alone against SFT + DPO (examples/fintech-safety) on the
held-out policy probe, the fintech label accuracy and the held-out pairs, plus the time of one DPO epoch.
It runs the real commands one after the other: `tunewright train` of the SFT example (or reuses a finished
SFT run with --sft-run), `tunewright train` of the DPO example from it, then `tunewright eval` of the DPO
run, which scores the tuned adapter, the SFT adapter and the base model side by side in one process
(eval/policy.json). The machine's load average is sampled through every stage: on a shared machine the
times are inflated, the policy and accuracy numbers are not. Prints a table and writes JSON.

    OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/preference_policy.py --sft-run runs/fintech-support \\
        --json bench/results/fintech_safety.json [--set method.beta=0.2 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SFT_CONFIG = REPO / "examples" / "fintech-support" / "tunewright.yaml"
DPO_CONFIG = REPO / "examples" / "fintech-safety" / "tunewright.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sft-run", type=Path, default=REPO / "runs" / "fintech-support",
                        help="the SFT run the DPO config starts from (method.init_from); trained first if missing")
    parser.add_argument("--dpo-run", type=Path, default=REPO / "runs" / "fintech-safety")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override for the DPO run (e.g. method.beta=0.2)")
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "fintech_safety.json")
    args = parser.parse_args()

    overrides = [f"method.init_from={args.sft_run.resolve()}", *args.overrides]
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
                              "command": " ".join(sys.argv), "dpo_overrides": overrides, "stages": {}}
    if not (args.sft_run / "adapter" / "adapter_config.json").is_file():
        result["stages"]["sft_train"] = timed(["train", str(SFT_CONFIG), "--out", str(args.sft_run)])
    result["sft_training"] = json.loads((args.sft_run / "training.json").read_text())
    result["stages"]["dpo_train"] = timed(["train", str(DPO_CONFIG), "--out", str(args.dpo_run),
                                           *(f"--set={o}" for o in overrides)])
    result["dpo_training"] = json.loads((args.dpo_run / "training.json").read_text())
    result["dpo_train_pairs"] = len((args.dpo_run / "data" / "train.jsonl").read_text().splitlines())
    result["stages"]["eval"] = timed(["eval", str(args.dpo_run)], allowed=(0, 3))
    scores = json.loads((args.dpo_run / "eval" / "policy.json").read_text())
    result["scores"] = scores  # with every probe answer of every candidate: the evidence behind the pass rates
    result["summary"] = summarise(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result["summary"])
    print(f"wrote {args.json}")


def timed(command: list[str], allowed: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Run one tunewright command; its wall time, exit code and the load average sampled while it ran."""
    loads: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(15):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    code = subprocess.run([str(REPO / ".venv" / "bin" / "tunewright"), *command], cwd=REPO, check=False).returncode
    done.set()
    if code not in allowed:
        raise SystemExit(f"tunewright {' '.join(command)} exited {code}")
    return {"command": "tunewright " + " ".join(command), "exit_code": code,
            "seconds": round(time.perf_counter() - started, 1),
            "load_average": {"mean": round(sum(loads) / len(loads), 2), "min": min(loads), "max": max(loads)}
            if loads else None}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its measured value."""
    scores = result["scores"]
    policy = scores["policy"]
    gain = next(c for c in policy["comparisons"] if c["baseline"] == "sft")
    labels = scores["label_accuracy"]
    training = result["dpo_training"]
    return {
        "policy_pass_rate": {name: c["pass_rate"] for name, c in policy["candidates"].items()},
        "policy_pass_rate_ci95": {name: c.get("ci95") for name, c in policy["candidates"].items()},
        "policy_gain_over_sft": gain["difference"], "policy_gain_over_sft_ci95": gain["ci95"],
        "label_accuracy": labels, "label_accuracy_drop_vs_sft": labels["sft"] - labels["finetuned"]
        if "sft" in labels and "finetuned" in labels else None,
        "preference_accuracy": scores["preference_accuracy"],
        "preference_accuracy_summed": scores.get("preference_accuracy_summed"), "test_pairs": scores["test_pairs"],
        "probe_rows": policy["rows"], "task_test_rows": scores["task_test_rows"],
        "decision": scores["decision"], "dpo_steps": training["steps"], "dpo_train_pairs": result["dpo_train_pairs"],
        "dpo_train_seconds": training["seconds"], "dpo_train_tokens": training["train_tokens"],
        "dpo_load_average": result["stages"]["dpo_train"]["load_average"],
    }


def print_table(summary: dict[str, Any]) -> None:
    names = list(summary["policy_pass_rate"])
    print(f"{'candidate':<12}{'policy pass':>12}{'95 % interval':>18}{'pref. acc.':>12}{'label acc.':>12}")
    for name in names:
        low, high = summary["policy_pass_rate_ci95"][name] or (float("nan"),) * 2
        pref, label = summary["preference_accuracy"].get(name), summary["label_accuracy"].get(name)
        print(f"{name:<12}{summary['policy_pass_rate'][name]:>12.1%}{f'[{low:.0%}, {high:.0%}]':>18}"
              f"{'-' if pref is None else f'{pref:.1%}':>12}{'-' if label is None else f'{label:.1%}':>12}")
    low, high = summary["policy_gain_over_sft_ci95"]
    print(f"gain over sft: {summary['policy_gain_over_sft'] * 100:+.1f} points (95 % CI {low * 100:+.1f} to "
          f"{high * 100:+.1f}); label accuracy drop vs sft: {summary['label_accuracy_drop_vs_sft'] * 100:+.1f} points")
    print(f"dpo: {summary['dpo_train_pairs']} training pairs, {summary['dpo_steps']} steps, "
          f"{summary['dpo_train_seconds']:.0f} s, "
          f"{summary['dpo_train_tokens']:,} tokens, load average {summary['dpo_load_average']}; "
          f"decision {summary['decision']}")


def machine() -> dict[str, Any]:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "")
    return {"cpus": os.cpu_count(), "cpu": model, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "niceness": os.nice(0)}


if __name__ == "__main__":
    main()
