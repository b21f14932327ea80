"""A resume is never silently wrong: a checkpoint missing a file or holding a truncated one is skipped with
one line and the run resumes from the previous complete one (ending with the same weights as an
uninterrupted run); with no complete checkpoint, and on a full disk, one line and exit 2."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from tunewright.train.checkpoint_manifest import MANIFEST

SETTINGS = ["training.max_steps=12", "training.checkpoint_every=3", "training.eval_every=3",
            "training.learning_rate=0.01", "training.early_stopping_patience=50"]
WEIGHTS = "adapter_model.safetensors"


def _train(config: Path, out: Path, *extra: str, file_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "tunewright", "train", str(config), "--out", str(out), *extra]
    for setting in SETTINGS:
        command += ["--set", setting]

    def limit_file_size() -> None:  # writes past it fail with EFBIG, as on a full disk
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(command, capture_output=True, text=True, timeout=600, preexec_fn=limit_file_size,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)


def _delete(name: str) -> Callable[[Path], None]:
    return lambda checkpoint: (checkpoint / name).unlink()


def _truncate(checkpoint: Path) -> None:
    data = (checkpoint / WEIGHTS).read_bytes()
    (checkpoint / WEIGHTS).write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def straight_run(make_project: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("straight")
    config = make_project(root, 40)
    done = _train(config, root / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    # the last step (12) is never checkpointed: the artifact is saved right after it
    assert sorted(p.name for p in (root / "run" / "checkpoints").iterdir()) == ["step-6", "step-9"]
    return config, root / "run"


@pytest.mark.parametrize("corrupt", [_delete("optimizer.pt"), _delete("scheduler.pt"), _delete("rng_state.pth"),
                                     _truncate], ids=["optimizer", "scheduler", "rng", "truncated-weights"])
def test_an_incomplete_checkpoint_is_skipped_with_one_line(straight_run: tuple[Path, Path], tmp_path: Path,
                                                           corrupt: Callable[[Path], None]) -> None:
    config, straight = straight_run
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    shutil.rmtree(run / "adapter")
    corrupt(run / "checkpoints" / "step-9")
    done = _train(config, run, "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if "incomplete checkpoint" in line]
    assert len(said) == 1 and "step-9" in said[0] and "resuming from step-6" in said[0]
    expected, actual = load_file(straight / "adapter" / WEIGHTS), load_file(run / "adapter" / WEIGHTS)
    assert expected.keys() == actual.keys()
    assert max(float((expected[name] - actual[name]).abs().max()) for name in expected) <= 1e-6


def test_no_complete_checkpoint_is_exit_2(straight_run: tuple[Path, Path], tmp_path: Path) -> None:
    config, straight = straight_run
    run = tmp_path / "run"
    shutil.copytree(straight, run)
    shutil.rmtree(run / "adapter")
    (run / "checkpoints" / "step-9" / "optimizer.pt").unlink()
    (run / "checkpoints" / "step-6" / MANIFEST).unlink()
    done = _train(config, run, "--resume")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len([line for line in lines if "error" in line]) == 1
    assert "no complete checkpoint" in done.stderr and "optimizer.pt is missing" in done.stderr
    assert not (run / "adapter").exists()


def test_a_full_disk_is_one_line_and_exit_2(straight_run: tuple[Path, Path], tmp_path: Path) -> None:
    config, straight = straight_run
    prepared = _train(config, tmp_path / "run", "--prepare-only")
    assert prepared.returncode == 0, prepared.stderr[-2000:]
    largest_before = max(path.stat().st_size for path in (tmp_path / "run").rglob("*") if path.is_file())
    # large enough for what a run writes before its first checkpoint, too small for the checkpoint
    limit = max(largest_before, 64_000)
    assert (straight / "checkpoints" / "step-9" / "optimizer.pt").stat().st_size > limit
    done = _train(config, tmp_path / "run", "--resume", file_limit=limit)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "error" in line] == [
        line for line in done.stderr.splitlines() if "the disk is full" in line and "checkpoints" in line]
    assert not list((tmp_path / "run" / "checkpoints").glob("step-*"))  # nothing that looks complete
    assert not (tmp_path / "run" / "adapter").exists()
