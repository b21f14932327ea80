"""Peak training memory of every method on the packaged model, measured (one fresh process per method,
a few optimizer steps), next to what `tunewright plan` predicts for the same shape.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/plan_memory.py --json bench/results/plan_memory.json

Peak = the process's peak resident memory during training (VmHWM, reset after imports) minus its
resident memory after imports, so it counts weights, gradients, optimizer state and activations."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

MEASURE = r"""
import json, sys, torch
from pathlib import Path
from tunewright.config import MethodConfig
from tunewright.methods import METHODS, load_base
from tunewright.modeling import resolve_base_model
from tunewright.prefix_loss import plain_loss

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

method, batch, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model_dir = resolve_base_model("smollm2-135m-instruct")
ids = torch.randint(100, 40000, (batch, seq))
mask = torch.ones_like(ids)
before = rss()
Path("/proc/self/clear_refs").write_text("5")  # loading may briefly double memory; count from here
model = METHODS[method].prepare(load_base(model_dir, METHODS[method]), MethodConfig(name=method))
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
loaded = rss()
Path("/proc/self/clear_refs").write_text("5")
for _ in range(2):
    plain_loss(model, ids, mask, ids).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
print(json.dumps({"method": method, "peak_bytes": max(hwm(), loaded) - before}))
"""


def measure(method: str, batch: int, seq: int) -> int:
    output = subprocess.run([sys.executable, "-c", MEASURE, method, str(batch), str(seq)], check=True,
                            capture_output=True, text=True, env=None).stdout
    return int(json.loads(output.strip().splitlines()[-1])["peak_bytes"])


def main() -> None:
    from tunewright.methods import METHODS
    from tunewright.modeling import resolve_base_model
    from tunewright.plan import ModelShape, plan_memory

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--methods", nargs="*", default=sorted(METHODS))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    shape = ModelShape.from_dir(resolve_base_model("smollm2-135m-instruct"))
    rows = []
    print(f"{'method':<14} {'measured GB':>12} {'planned GB':>11} {'ratio':>6}")
    for method in args.methods:
        measured = measure(method, args.batch, args.seq_len)
        planned = plan_memory(shape, method, args.seq_len, args.batch, "fp32").total
        rows.append({"method": method, "measured_bytes": measured, "planned_bytes": planned,
                     "ratio": planned / measured})
        print(f"{method:<14} {measured / 1e9:>12.3f} {planned / 1e9:>11.3f} {planned / measured:>6.2f}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"batch": args.batch, "seq_len": args.seq_len, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
