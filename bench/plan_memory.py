"""Peak training memory of every method on the packaged model, measured (one fresh process per method,
a few optimizer steps), next to what `tunewright plan` predicts for the same shape.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/plan_memory.py --json bench/results/plan_memory.json

Peak = on CUDA, the peak allocated GPU memory; on CPU, the process's peak resident memory during
training (VmHWM, reset after loading) minus its resident memory after imports. Both count weights,
gradients, optimizer state and activations."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

MEASURE = r"""
import json, sys, torch
from pathlib import Path
from tunewright.config import MethodConfig
from tunewright.methods import METHODS, load_base
from tunewright.modeling import resolve_base_model
from tunewright.train.loss import plain_loss

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

method, batch, seq, model_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cuda = torch.cuda.is_available()
torch.manual_seed(0)
model_dir = resolve_base_model(model_dir)
vocab = json.loads((Path(model_dir) / "config.json").read_text())["vocab_size"]
ids = torch.randint(min(100, vocab - 1), min(40000, vocab), (batch, seq), device="cuda" if cuda else "cpu")
mask = torch.ones_like(ids)
before = torch.cuda.memory_allocated() if cuda else rss()
if not cuda:
    Path("/proc/self/clear_refs").write_text("5")  # loading may briefly double memory; count from here
model = METHODS[method].prepare(load_base(model_dir, METHODS[method]), MethodConfig(name=method))
if cuda:
    model.to("cuda")
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
loaded = torch.cuda.memory_allocated() if cuda else rss()
if cuda:
    torch.cuda.reset_peak_memory_stats()
else:
    Path("/proc/self/clear_refs").write_text("5")
for _ in range(2):
    plain_loss(model, ids, mask, ids).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
peak = torch.cuda.max_memory_allocated() if cuda else hwm()
print(json.dumps({"method": method, "peak_bytes": max(peak, loaded) - before}))
"""


def measure(method: str, batch: int, seq: int, model: str) -> int | None:
    done = subprocess.run([sys.executable, "-c", MEASURE, method, str(batch), str(seq), model],
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{method}: failed: {done.stderr.strip().splitlines()[-1]}", flush=True)
        return None
    return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])


def main() -> None:
    from tunewright.methods import METHODS
    from tunewright.modeling import resolve_base_model
    from tunewright.plan import ModelShape, plan_memory

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--methods", nargs="*", default=sorted(METHODS))
    parser.add_argument("--model", default="smollm2-135m-instruct", help="The packaged model or a model dir.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shape = ModelShape.from_dir(resolve_base_model(args.model))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = []
    failed = []
    print(f"{'method':<14} {'measured GB':>12} {'planned GB':>11} {'ratio':>6}")
    for method in args.methods:
        measured = measure(method, args.batch, args.seq_len, args.model)
        if measured is None:
            failed.append(method)
            continue
        planned = plan_memory(shape, method, args.seq_len, args.batch, "fp32").total
        rows.append({"method": method, "measured_bytes": measured, "planned_bytes": planned,
                     "ratio": planned / measured})
        print(f"{method:<14} {measured / 1e9:>12.3f} {planned / 1e9:>11.3f} {planned / measured:>6.2f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"batch": args.batch, "seq_len": args.seq_len, "device": device,
                                         "rows": rows, "failed": failed}, indent=2) + "\n")
    if failed:
        sys.exit(f"measuring failed for: {', '.join(failed)}")


if __name__ == "__main__":
    main()
