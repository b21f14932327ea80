"""Checkpoints and resume through the real CLI: a run killed with SIGKILL after a checkpoint and resumed
ends with the same weights as an uninterrupted run; SIGTERM saves a checkpoint and exits 130."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState

from tunewright.errors import EXIT_INTERRUPTED
from tunewright.runs import read_jsonl
from tunewright.train.checkpoints import StopOnSignal, latest_checkpoint

SETTINGS = ["training.max_steps=12", "training.checkpoint_every=3", "training.eval_every=3",
            "training.learning_rate=0.01", "training.early_stopping_patience=50"]


def _train(config: Path, out: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tunewright", "train", str(config), "--out", str(out), *extra]
    for setting in SETTINGS:
        command += ["--set", setting]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_dir():
        assert process.poll() is None, f"training ended before {path.name} appeared"
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _finish(process: subprocess.Popen[bytes]) -> int:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode in (0, EXIT_INTERRUPTED, -signal.SIGKILL), stderr.decode()[-2000:]
    return process.returncode


def test_killed_run_resumes_to_the_same_weights(make_project: Any, tmp_path: Path) -> None:
    config = make_project(tmp_path, 40)
    assert _finish(_train(config, tmp_path / "straight")) == 0

    killed = tmp_path / "killed"
    process = _train(config, killed)
    _wait_for(killed / "checkpoints" / "step-3", process)
    process.kill()  # SIGKILL: nothing gets to clean up
    assert _finish(process) == -signal.SIGKILL
    assert not (killed / "adapter").exists()
    checkpoint = latest_checkpoint(killed / "checkpoints")
    assert checkpoint is not None and int(checkpoint.name[5:]) < 12

    assert _finish(_train(config, killed, "--resume")) == 0
    expected = load_file(tmp_path / "straight" / "adapter" / "adapter_model.safetensors")
    actual = load_file(killed / "adapter" / "adapter_model.safetensors")
    assert expected.keys() == actual.keys()
    assert max(float((expected[name] - actual[name]).abs().max()) for name in expected) <= 1e-6
    steps = [row["step"] for row in read_jsonl(killed / "metrics.jsonl") if row["train_loss"] is not None]
    assert steps == list(range(1, 13))  # rows after the checkpoint were replaced, not duplicated


def test_sigterm_saves_a_checkpoint_and_exits_130(make_project: Any, tmp_path: Path) -> None:
    config = make_project(tmp_path, 40)
    out = tmp_path / "run"
    process = _train(config, out)
    _wait_for(out / "checkpoints" / "step-3", process)
    process.send_signal(signal.SIGTERM)
    assert _finish(process) == EXIT_INTERRUPTED
    logged = max(row["step"] for row in read_jsonl(out / "metrics.jsonl"))
    checkpoint = latest_checkpoint(out / "checkpoints")
    assert checkpoint is not None and int(checkpoint.name[5:]) == logged
    assert not (out / "adapter").exists()
    assert _finish(_train(config, out, "--resume")) == 0
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


def test_a_signal_during_the_last_step_lets_the_run_finish_and_earlier_ones_stop_it() -> None:
    # the last step is never checkpointed (a resume from it would train past the end): the run saves
    # its artifact instead of stopping
    stop = StopOnSignal()
    stop.received = True
    control = TrainerControl()
    stop.on_step_end(None, TrainerState(global_step=12, max_steps=12), control)  # type: ignore[arg-type]
    assert not control.should_save and not control.should_training_stop
    stop.on_step_end(None, TrainerState(global_step=11, max_steps=12), control)  # type: ignore[arg-type]
    assert control.should_save and control.should_training_stop
