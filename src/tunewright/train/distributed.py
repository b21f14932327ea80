"""Multi-process training: `tunewright train --nproc N` re-runs the training stage under torchrun, one
process per GPU (NCCL) or N CPU processes (gloo), each running the same `train_run` under DDP, FSDP or
DeepSpeed as `training.distributed` says."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tunewright.config import Config
from tunewright.errors import ConfigError


def rank() -> int:
    """This process's global rank under torchrun; 0 when not distributed."""
    return int(os.environ.get("RANK", "0"))


def check_strategy(config: Config) -> None:
    """One clear line before any process starts when the chosen strategy cannot run here."""
    distributed = config.training.distributed
    if distributed.strategy == "deepspeed":
        if distributed.config is None:
            raise ConfigError("training.distributed.config: deepspeed needs a DeepSpeed JSON config file")
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("training.distributed.strategy deepspeed: the deepspeed package is not installed "
                              "(pip install deepspeed), or use ddp / fsdp")
    if distributed.config is not None and not distributed.config.is_file():
        raise ConfigError(f"training.distributed.config: {distributed.config} not found")


def launch(config_path: Path, run_root: Path, overrides: Sequence[str], nproc: int) -> int:
    """Run `tunewright train CONFIG --out RUN --resume` in `nproc` processes; returns torchrun's exit code.
    The run directory is already prepared, so every process trains on the same split files."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "tunewright", "train", str(config_path), "--out", str(run_root), "--resume"]
    for override in overrides:
        command += ["--set", override]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # N CPU processes share the cores; one thread each
    return subprocess.run(command, env=env, check=False).returncode
