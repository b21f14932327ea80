"""`tunewright train --nproc 2`: two CPU processes (torchrun, gloo, DDP) follow the same loss trajectory
as one process with the same global batch, and end with the same adapter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from tunewright.runs import read_jsonl

SETTINGS = ["training.max_steps=4", "training.eval_every=2", "training.learning_rate=0.01",
            "method.dropout=0", "training.early_stopping_patience=50"]
# Both runs see the same examples in each step (one length-grouped order, split between the processes)
# and the loss is the mean over every answer token of the global batch in both, so they differ only by
# floating-point summation order: the `tolerance` of the run's precision.


def _train(config: Path, out: Path, *extra: str) -> None:
    command = [sys.executable, "-m", "tunewright", "train", str(config), "--out", str(out), *extra]
    for setting in SETTINGS:
        command += ["--set", setting]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.precision
def test_two_processes_match_one_with_the_same_global_batch(make_project: Any, tmp_path: Path,
                                                            tolerance: float) -> None:
    config = make_project(tmp_path, 40)
    _train(config, tmp_path / "one", "--set", "training.batch_size=4")
    _train(config, tmp_path / "two", "--nproc", "2", "--set", "training.batch_size=2")

    def losses(run: str) -> list[float]:
        return [row["train_loss"] for row in read_jsonl(tmp_path / run / "metrics.jsonl")
                if row["train_loss"] is not None]

    single, double = losses("one"), losses("two")
    assert len(single) == len(double) == 4
    assert all(abs(a - b) <= tolerance for a, b in zip(single, double, strict=True)), (single, double)
    one = load_file(tmp_path / "one" / "adapter" / "adapter_model.safetensors")
    two = load_file(tmp_path / "two" / "adapter" / "adapter_model.safetensors")
    assert max(float((one[name] - two[name]).abs().max()) for name in one) <= tolerance
