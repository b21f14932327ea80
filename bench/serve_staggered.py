"""Serving under staggered arrivals: Poisson arrivals of short (8-token) and long (128-token) requests
over 8 LoRA adapters and the base, on the packaged model, two ways in one process with the same arrival
schedule: (a) static batching (a batch is gathered, then runs to its end while new requests wait) and
(b) continuous batching (waiting requests join the running batch between decode steps and finished
rows leave). Every request generates exactly its budget (no early stop), so both do equal work.

    TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/serve_staggered.py \\
        --json bench/results/serve_staggered.json
    (--quick: 16 requests, 4 long tokens 32; a smoke run)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from serve_throughput import QUESTIONS, make_library

from tunewright.modeling import PACKAGED_MODEL, resolve_base_model
from tunewright.records import Message
from tunewright.runs import write_json
from tunewright.serve.engine import Engine, Prompt
from tunewright.serve.scheduler import Scheduler

MODES = {"static": "(a) static batching", "continuous": "(b) continuous batching"}


def schedule(count: int, rate: float, long_share: float, short: int, long: int, models: list[str],
             seed: int) -> list[tuple[float, str, int]]:
    """(arrival second, model, budget) for each request: exponential gaps (a Poisson process)."""
    rng = random.Random(seed)
    at, rows = 0.0, []
    for index in range(count):
        at += rng.expovariate(rate)
        rows.append((at, models[index % len(models)], long if rng.random() < long_share else short))
    return rows


async def run_mode(engine: Engine, continuous: bool, arrivals: list[tuple[float, str, int]],
                   max_batch: int) -> dict[str, Any]:
    scheduler = Scheduler(engine, max_batch=max_batch, gather_ms=5, max_queue=10 * len(arrivals),
                          continuous=continuous)
    scheduler.start()
    latencies: dict[int, list[float]] = {}
    tokens = 0

    async def request(index: int, at: float, model: str, budget: int) -> None:
        nonlocal tokens
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - started)))
        prompt = engine.prompt(model, [Message("user", QUESTIONS[index % len(QUESTIONS)])], budget)
        sent = time.perf_counter()
        job = scheduler.submit([Prompt(prompt.model, prompt.entry, prompt.prompt_ids, budget, frozenset())])[0]
        while not (event := await job.events.get()).last:
            tokens += 1
        if event.error:
            raise RuntimeError(event.error)
        tokens += 1
        latencies.setdefault(budget, []).append(time.perf_counter() - sent)

    started = time.perf_counter()
    await asyncio.gather(*(request(index, *row) for index, row in enumerate(arrivals)))
    seconds = time.perf_counter() - started
    await scheduler.stop()
    result: dict[str, Any] = {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds,
                              "batches": scheduler.batches, "joined": scheduler.joined}
    for budget, values in sorted(latencies.items()):
        values.sort()
        result[f"latency_{budget}"] = {"requests": len(values), "p50_s": statistics.median(values),
                                       "p95_s": values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--rate", type=float, default=2.0, help="mean arrivals per second")
    parser.add_argument("--long-share", type=float, default=0.25)
    parser.add_argument("--short-tokens", type=int, default=8)
    parser.add_argument("--long-tokens", type=int, default=128)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base", default=PACKAGED_MODEL, help="Base model name or local directory.")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="16 requests, long ones 32 tokens")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.requests, args.long_tokens = 16, 32
    if args.threads:
        torch.set_num_threads(args.threads)
    base_dir = resolve_base_model(args.base)
    with tempfile.TemporaryDirectory() as scratch:
        library = make_library(base_dir, Path(scratch), args.adapters, args.rank)
        engine = Engine(args.base, base_dir, library, max_loaded=args.adapters, device=args.device)
        models = [engine.base_name, *library.names()]
        arrivals = schedule(args.requests, args.rate, args.long_share, args.short_tokens, args.long_tokens,
                            models, args.seed)
        warm = [(0.0, name, 2) for name in models]  # loads every adapter, so neither mode pays for first loads
        asyncio.run(run_mode(engine, True, warm, args.max_batch))
        results = {}
        for mode, label in MODES.items():
            results[mode] = asyncio.run(run_mode(engine, mode == "continuous", arrivals, args.max_batch))
            print(f"done: {label} in {results[mode]['seconds']:.1f} s", flush=True)
    short, long = f"latency_{args.short_tokens}", f"latency_{args.long_tokens}"
    print(f"{'mode':26} {'tokens/s':>9} {'short p50':>10} {'short p95':>10} {'long p50':>9} {'long p95':>9} "
          f"{'batches':>8} {'joined':>7}")
    for mode, label in MODES.items():
        row = results[mode]
        print(f"{label:26} {row['tokens_per_second']:9.1f} {row[short]['p50_s']:10.2f} {row[short]['p95_s']:10.2f} "
              f"{row[long]['p50_s']:9.2f} {row[long]['p95_s']:9.2f} {row['batches']:8d} {row['joined']:7d}")
    static, continuous = results["static"], results["continuous"]
    summary = {
        "throughput_continuous_vs_static": continuous["tokens_per_second"] / static["tokens_per_second"],
        "short_p95_continuous_vs_static": continuous[short]["p95_s"] / static[short]["p95_s"],
        "modes": results,
        "settings": {**{key: value for key, value in vars(args).items() if key != "json"},
                     "torch_threads": torch.get_num_threads(), "long_requests": sum(
                         1 for _, _, budget in arrivals if budget == args.long_tokens)},
    }
    print(f"throughput continuous / static: {summary['throughput_continuous_vs_static']:.2f}x (goal >= 1.5); "
          f"short p95 continuous / static: {summary['short_p95_continuous_vs_static']:.2f} (goal <= 0.5)")
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
