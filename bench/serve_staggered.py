"""Serving under staggered arrivals: Poisson arrivals of short (8-token) and long (128-token) requests
over 8 LoRA adapters and the base, on the packaged model, three ways in one process with the same arrival
schedule: (a) static batching (a batch is gathered, then runs to its end while new requests wait),
(b) continuous batching (waiting requests join the running batch between decode steps and finished
rows leave) and (c) continuous batching with the prefix cache (each model's shared system prompt is
encoded once, from an empty cache, and later prompt passes start from its key/value states). Every
request opens with the same support-bot system prompt (~90 tokens with the chat template) and generates
exactly its budget (no early stop), so all three do equal work.

    TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/serve_staggered.py \\
        --json bench/results/serve_staggered.json
    (--quick: 16 requests, long ones 32 tokens; a smoke run)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from serve_throughput import QUESTIONS, make_library

from tunewright.modeling import PACKAGED_MODEL, resolve_base_model
from tunewright.records import Message
from tunewright.runs import write_json
from tunewright.serve.engine import Engine
from tunewright.serve.prefix_cache import PrefixCache
from tunewright.serve.scheduler import Scheduler

MODES = {"static": "(a) static batching", "continuous": "(b) continuous batching",
         "prefix": "(c) continuous + prefix cache"}
SYSTEM = ("You are Aria, the support assistant of Northwind Bank. Answer in two or three short, friendly "
          "sentences. Never ask for a card number, PIN, password or one-time code. If a card is lost, stolen "
          "or used by someone else, say it can be frozen in the app (Cards, then Freeze) and that the fraud "
          "team answers day and night on the number on the back of the card.")


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
        messages = [Message("system", SYSTEM), Message("user", QUESTIONS[index % len(QUESTIONS)])]
        prompt = engine.prompt(model, messages, budget)
        sent = time.perf_counter()
        job = scheduler.submit([replace(prompt, stop_ids=frozenset())])[0]
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
    prefixes = engine.prefix_stats()
    result: dict[str, Any] = {"seconds": seconds, "tokens": tokens, "tokens_per_second": tokens / seconds,
                              "batches": scheduler.batches, "joined": scheduler.joined,
                              "prefix_hits": prefixes.hits, "prefix_misses": prefixes.misses}
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
        warm = [(0.0, name, 2) for name in models]  # loads every adapter, so no mode pays for first loads
        engine.prefixes = None
        asyncio.run(run_mode(engine, True, warm, args.max_batch))
        results = {}
        for mode, label in MODES.items():
            engine.prefixes = PrefixCache() if mode == "prefix" else None  # (c) starts from an empty cache
            results[mode] = asyncio.run(run_mode(engine, mode != "static", arrivals, args.max_batch))
            print(f"done: {label} in {results[mode]['seconds']:.1f} s", flush=True)
    short, long = f"latency_{args.short_tokens}", f"latency_{args.long_tokens}"
    print(f"{'mode':30} {'tokens/s':>9} {'short p50':>10} {'short p95':>10} {'long p50':>9} {'long p95':>9} "
          f"{'batches':>8} {'joined':>7} {'prefix hits':>11}")
    for mode, label in MODES.items():
        row = results[mode]
        print(f"{label:30} {row['tokens_per_second']:9.1f} {row[short]['p50_s']:10.2f} {row[short]['p95_s']:10.2f} "
              f"{row[long]['p50_s']:9.2f} {row[long]['p95_s']:9.2f} {row['batches']:8d} {row['joined']:7d} "
              f"{row['prefix_hits']:11d}")
    static, continuous, prefix = results["static"], results["continuous"], results["prefix"]
    summary = {
        "throughput_continuous_vs_static": continuous["tokens_per_second"] / static["tokens_per_second"],
        "short_p95_continuous_vs_static": continuous[short]["p95_s"] / static[short]["p95_s"],
        "throughput_prefix_vs_static": prefix["tokens_per_second"] / static["tokens_per_second"],
        "short_p95_prefix_vs_static": prefix[short]["p95_s"] / static[short]["p95_s"],
        "modes": results,
        "settings": {**{key: value for key, value in vars(args).items() if key != "json"},
                     "torch_threads": torch.get_num_threads(), "long_requests": sum(
                         1 for _, _, budget in arrivals if budget == args.long_tokens)},
    }
    print(f"throughput continuous / static: {summary['throughput_continuous_vs_static']:.2f}x (goal >= 1.5); "
          f"short p95 continuous / static: {summary['short_p95_continuous_vs_static']:.2f} (goal <= 0.5)")
    print(f"with the prefix cache: throughput / static {summary['throughput_prefix_vs_static']:.2f}x, "
          f"short p95 / static {summary['short_p95_prefix_vs_static']:.2f}")
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
