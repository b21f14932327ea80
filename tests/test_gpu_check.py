"""bench/gpu_check.sh in its --dry-run mode (CPU, a tiny random model): every step runs from the
source tree and the one JSON holds each part, so the GPU script cannot rot between GPU sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_step_and_writes_one_json(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "TUNEWRIGHT_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry_run"] is True and result["all_steps_ran"] is True
    names = [row["step"] for row in result["steps"]]
    assert names[:3] == ["environment", "train_lora", "train_qlora"] and names[-2:] == ["plan_memory",
                                                                                        "serve_8_adapters"]
    train = result["train_lora"]
    assert {"tutorial", "strong", "tunewright"} <= set(train["variants"]) and train["ratio_vs_tutorial"] > 0
    methods = [row["method"] for row in result["plan_memory"]["rows"]]
    assert "lora" in methods and not result["plan_memory"]["failed"]
    bitsandbytes = result["environment"]["versions"]["bitsandbytes"]
    assert ("qlora" in methods) == (bitsandbytes is not None) == (result["train_qlora"] is not None)
    assert set(result["serve_8_adapters"]["modes"]) == {"base", "mixed", "serial"}
    assert {"train_ratio_vs_tutorial", "plan_lora", "serve_mixed_vs_base"} <= set(result["checks"])
