"""The compute precision a training run uses, and why: recorded in training.json and printed at the
start of training, so a result that differs on another machine can be traced to its precision.

`auto` is decided by measurement: a few forward + backward passes of the prepared model on a real
training batch in fp32 and in bf16 autocast, interleaved so a load change on a shared machine hits
both alike; bf16 runs only where it is clearly faster (BF16_MUST_WIN), since it also changes the
numbers. The measurement is cached per machine, model, method, batch and library versions, so a
repeated run does not pay for it; any change in that key measures again."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from tunewright.modeling import cache_dir, fast_bf16_available

BF16_MUST_WIN = 1.10  # bf16 must train at least 10 % faster per step to be chosen
PROBE_STEPS = 2  # timed steps per precision, after one warm-up step each


@dataclass(frozen=True)
class Precision:
    name: str  # "fp32" or "bf16" (bf16 is autocast: weights and optimizer state stay fp32)
    reason: str


@dataclass(frozen=True)
class ProbeResult:
    """Median seconds per forward + backward step in each precision, as measured."""

    fp32_seconds: float
    bf16_seconds: float

    @property
    def choice(self) -> str:
        return "bf16" if self.fp32_seconds >= BF16_MUST_WIN * self.bf16_seconds else "fp32"


StepFn = Callable[[str], None]  # one forward + backward step in the named precision


def resolve_precision(choice: str, key: dict[str, str] | None = None, step: StepFn | None = None) -> Precision:
    """An explicit choice is kept as it is. 'auto' is fp32 where bf16 matmuls are not fast (no CUDA
    bf16, no avx512_bf16 / AMX: bf16 would be emulated, far slower); elsewhere the probe decides, read
    from the cache under `key` when it was measured before. Without a step to measure with, 'auto'
    is fp32."""
    if choice != "auto":
        return Precision(choice, f"training.precision is {choice}")
    if not fast_bf16_available():
        return Precision("fp32", "training.precision is auto and this machine has no fast bf16 "
                                 "(bf16 autocast would be far slower here), so no probe was run")
    if key is None or step is None:
        return Precision("fp32", "training.precision is auto and there was nothing to measure bf16 with")
    cached = read_probe(key)
    result = cached or measure(step)
    if cached is None:
        write_probe(key, result)
    source = "cached probe" if cached else "probe"
    speedup = result.fp32_seconds / max(result.bf16_seconds, 1e-9)
    verdict = "at least" if result.choice == "bf16" else "less than"
    return Precision(result.choice,
                     f"training.precision is auto; {source} on this machine and model: fp32 "
                     f"{result.fp32_seconds:.2f} s/step, bf16 {result.bf16_seconds:.2f} s/step "
                     f"({speedup:.2f}x, {verdict} the {BF16_MUST_WIN:.2f}x bf16 must win by)")


def measure(step: StepFn) -> ProbeResult:
    """One warm-up step per precision, then PROBE_STEPS timed steps each, alternating; medians."""
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for name in ("fp32", "bf16"):
        step(name)
    for _ in range(PROBE_STEPS):
        for name in ("fp32", "bf16"):
            started = time.perf_counter()
            step(name)
            seconds[name].append(time.perf_counter() - started)
    return ProbeResult(statistics.median(seconds["fp32"]), statistics.median(seconds["bf16"]))


def training_step(model: Any, batch: dict[str, torch.Tensor], loss_fn: Callable[[Any, dict[str, Any]], Any]) -> StepFn:
    """A probe step as training runs it: the run's loss on a real batch, forward and backward, in
    fp32 or under bf16 autocast; gradients are cleared and the RNG restored, so the probe leaves the
    model and the run's seeded state as they were."""
    device = next(model.parameters()).device
    moved = {name: tensor.to(device) for name, tensor in batch.items()}

    def step(name: str) -> None:
        model.train()
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16"):
                loss = loss_fn(model, moved)
            loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        model.zero_grad(set_to_none=True)

    return step


def probe_key(model_dir: Path, method: str, batch: dict[str, torch.Tensor]) -> dict[str, str]:
    """What the probe's answer depends on: the machine, the model, the method, the batch shape, the
    library versions and the thread count."""
    import peft
    import transformers

    return {
        "machine": _machine(),
        "model": _model_fingerprint(model_dir),
        "method": method,
        "batch_shape": "x".join(str(size) for size in batch["input_ids"].shape),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "threads": str(torch.get_num_threads()),
    }


def read_probe(key: dict[str, str]) -> ProbeResult | None:
    path = _probe_path(key)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if stored.get("key") != key:  # a hash collision or a hand-edited file: measure again
        return None
    return ProbeResult(**stored["result"])


def write_probe(key: dict[str, str], result: ProbeResult) -> None:
    path = _probe_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "result": asdict(result)}, indent=2))
    tmp.replace(path)


def _probe_path(key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "precision" / f"{digest}.json"


def _machine() -> str:
    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name()}"
    model_name, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not model_name:
                model_name = line.partition(":")[2].strip()
            elif line.startswith("flags") and not flags:
                flags = line.partition(":")[2].strip()
    except OSError:
        model_name = platform.processor()
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    return f"cpu:{model_name}:{os.cpu_count()} cpus:flags {digest}"


def _model_fingerprint(model_dir: Path) -> str:
    """The model's config and the names and sizes of its weight files (hashing gigabytes of weights
    would cost more than the probe)."""
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    digest.update(config.read_bytes() if config.is_file() else str(model_dir).encode())
    for weights in sorted(model_dir.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return digest.hexdigest()[:24]
