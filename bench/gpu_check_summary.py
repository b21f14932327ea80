"""The one JSON of bench/gpu_check.sh: every step's exit code and seconds, the environment, each part's
figures, and the GPU targets of the issue checked (meaningless in a dry run on a tiny model, and
marked so).

    python bench/gpu_check_summary.py OUT_DIR DRY_RUN(0|1)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = {"train_ratio_vs_tutorial": 2.0, "plan_within": 0.15, "serve_mixed_vs_base": 0.85}


def read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def steps(parts: Path) -> list[dict[str, Any]]:
    rows = []
    for line in (parts / "steps.tsv").read_text().splitlines():
        name, code, seconds = line.split("\t")
        rows.append({"step": name, "exit_code": int(code) if code.lstrip("-").isdigit() else code,
                     "seconds": int(seconds)})
    return rows


def checks(train: Any, plan: Any, serve: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if train:
        ratio = train["ratio_vs_tutorial"]
        result["train_ratio_vs_tutorial"] = {"value": ratio, "target": f">= {TARGETS['train_ratio_vs_tutorial']}",
                                             "met": ratio >= TARGETS["train_ratio_vs_tutorial"]}
    if plan:
        for row in plan["rows"]:
            off = abs(row["ratio"] - 1)
            result[f"plan_{row['method']}"] = {"planned_over_measured": row["ratio"],
                                               "target": f"within {TARGETS['plan_within']:.0%}",
                                               "met": off <= TARGETS["plan_within"]}
    if serve:
        ratio = serve["ratio_mixed_vs_base"]
        result["serve_mixed_vs_base"] = {"value": ratio, "target": f">= {TARGETS['serve_mixed_vs_base']}",
                                         "met": ratio >= TARGETS["serve_mixed_vs_base"]}
    return result


def main() -> None:
    out, dry = Path(sys.argv[1]), sys.argv[2] == "1"
    parts = out / "parts"
    train, plan, serve = read(parts / "train_lora.json"), read(parts / "plan_memory.json"), read(parts / "serve.json")
    qlora = read(parts / "qlora-run" / "training.json")
    ran = steps(parts)
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "dry_run": dry,
        "note": "dry run: CPU and a tiny random model; the figures only show that every step runs" if dry else "",
        "environment": read(parts / "environment.json"),
        "steps": ran,
        "train_lora": train,
        "train_qlora": qlora,
        "plan_memory": plan,
        "serve_8_adapters": serve,
        "checks": checks(train, plan, serve),
        "all_steps_ran": all(row["exit_code"] == 0 or str(row["exit_code"]).startswith("skipped") for row in ran),
    }
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
    for row in ran:
        print(f"{row['step']:<18} exit {row['exit_code']}  {row['seconds']} s")
    for name, check in summary["checks"].items():
        print(f"{name:<26} {'met' if check['met'] else 'MISSED'}  {check}")
    print(f"wrote {out / 'gpu_check.json'}")
    sys.exit(0 if summary["all_steps_ran"] else 1)


if __name__ == "__main__":
    main()
