"""Serving throughput on the packaged model with 8 LoRA adapters and concurrent clients, three ways in one
process: (a) the base model only, (b) mixed-adapter batching (tunewright's scheduler: rows for different
adapters share one forward pass), (c) serial adapter switching (batch 1, set_adapter per request: the
naive way). Every request generates exactly max_tokens (no early stop), so the modes do equal work.

    TUNEWRIGHT_CACHE=/tmp/twcache nice -n 10 .venv/bin/python bench/serve_throughput.py \\
        --json bench/results/serve_throughput.json
    (--no-prefix-cache: every prompt pass runs on the whole prompt, template opening included)
    (--quick: 8 clients, 8 tokens, 1 request each; a smoke run in well under a minute)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model

from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.modeling import PACKAGED_MODEL, load_model, resolve_base_model
from tunewright.records import Message
from tunewright.runs import ADAPTER_MANIFEST, write_json
from tunewright.serve.engine import Engine
from tunewright.serve.prefix_cache import DEFAULT_BUDGET_BYTES
from tunewright.serve.scheduler import Scheduler

QUESTIONS = ["I cannot log in to the app since yesterday.", "Someone used my card in another country.",
             "I was charged twice for one coffee.", "What are your branch opening hours?",
             "My transfer to my landlord has not arrived.", "How do I raise my card limit?",
             "The app says my account is locked.", "I do not recognise a payment from last week."]
MODES = {"base": "(a) base only", "mixed": "(b) mixed-adapter batching", "serial": "(c) serial switching"}


def make_library(base_dir: Path, root: Path, count: int, rank: int) -> AdapterLibrary:
    """`count` LoRA adapters (all linear layers, random A and B, so each changes the output) registered
    in a library exactly as `tunewright adapters add` would."""
    torch.manual_seed(0)
    model = get_peft_model(load_model(base_dir), LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear",
                                                            init_lora_weights=False), adapter_name="a0")
    for index in range(1, count):
        model.add_adapter(f"a{index}", LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear",
                                                  init_lora_weights=False))
    model.save_pretrained(root / "trained", safe_serialization=True)
    library = AdapterLibrary(root / "library")
    fingerprint = base_fingerprint(base_dir)
    for index in range(count):
        source = root / "trained" / f"a{index}"  # peft saves each named adapter in its own folder
        write_json(source / ADAPTER_MANIFEST, {"base_model": str(base_dir), "method": "lora", "task": "bench"})
        library.add(source, f"adapter-{index}", fingerprint)
    return library


async def run_mode(engine: Engine, mode: str, clients: int, per_client: int, max_tokens: int) -> dict[str, Any]:
    names = engine.library.names()
    scheduler = Scheduler(engine, max_batch=1 if mode == "serial" else clients, gather_ms=5,
                          max_queue=10 * clients, mixed=mode != "serial")
    scheduler.start()
    prompts = []
    for index in range(clients * per_client):
        model = engine.base_name if mode == "base" else names[index % len(names)]
        question = [Message("user", QUESTIONS[index % len(QUESTIONS)])]
        prompt = engine.prompt(model, question, max_tokens)
        prompts.append(replace(prompt, stop_ids=frozenset()))  # no early stop; its shared opening kept
    latencies: list[float] = []
    tokens = 0

    async def client(number: int) -> None:
        nonlocal tokens
        for request in range(per_client):
            started = time.perf_counter()
            job = scheduler.submit([prompts[number * per_client + request]])[0]
            while not (event := await job.events.get()).last:
                tokens += 1
            if event.error:
                raise RuntimeError(event.error)
            tokens += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    seconds = time.perf_counter() - started
    await scheduler.stop()
    batches = scheduler.batches
    latencies.sort()
    return {"requests": len(latencies), "seconds": seconds, "requests_per_second": len(latencies) / seconds,
            "tokens": tokens, "tokens_per_second": tokens / seconds, "batches": batches,
            "p50_latency_s": statistics.median(latencies),
            "p95_latency_s": latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--adapters", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests-per-client", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--base", default=PACKAGED_MODEL, help="Base model name or local directory.")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (on a busy machine 1 avoids threads spinning against each other)")
    parser.add_argument("--no-prefix-cache", action="store_true",
                        help="prompt passes run on whole prompts (the server's default caches the shared opening)")
    parser.add_argument("--quick", action="store_true", help="8 clients, 1 request each, 8 tokens")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests_per_client, args.max_tokens = 8, 1, 8
    if args.threads:
        torch.set_num_threads(args.threads)
    base_dir = resolve_base_model(args.base)
    with tempfile.TemporaryDirectory() as scratch:
        library = make_library(base_dir, Path(scratch), args.adapters, args.rank)
        engine = Engine(args.base, base_dir, library, max_loaded=args.adapters, device=args.device,
                        prefix_cache_bytes=0 if args.no_prefix_cache else DEFAULT_BUDGET_BYTES)
        # load every adapter and warm up (the prefix cache too: each model's opening), so no mode pays for firsts
        asyncio.run(run_mode(engine, "mixed", args.adapters, 1, 2))
        asyncio.run(run_mode(engine, "base", 1, 1, 2))
        results = {}
        for mode, label in MODES.items():
            results[mode] = asyncio.run(run_mode(engine, mode, args.clients, args.requests_per_client,
                                                 args.max_tokens))
            print(f"done: {label} in {results[mode]['seconds']:.1f} s", flush=True)
    print(f"{'mode':30} {'req/s':>8} {'tokens/s':>9} {'p50 s':>8} {'p95 s':>8} {'batches':>8}")
    for mode, label in MODES.items():
        row = results[mode]
        print(f"{label:30} {row['requests_per_second']:8.2f} {row['tokens_per_second']:9.1f} "
              f"{row['p50_latency_s']:8.2f} {row['p95_latency_s']:8.2f} {row['batches']:8d}")
    summary = {
        "ratio_mixed_vs_serial": results["mixed"]["tokens_per_second"] / results["serial"]["tokens_per_second"],
        "ratio_mixed_vs_base": results["mixed"]["tokens_per_second"] / results["base"]["tokens_per_second"],
        "modes": results,
        "settings": {"model": args.base, "adapters": args.adapters, "rank": args.rank, "clients": args.clients,
                     "requests_per_client": args.requests_per_client, "max_tokens": args.max_tokens,
                     "device": args.device, "prefix_cache": not args.no_prefix_cache,
                     "torch_threads": torch.get_num_threads(), "quick": args.quick},
    }
    print(f"mixed / serial: {summary['ratio_mixed_vs_serial']:.2f}x (goal >= 4); "
          f"mixed / base: {summary['ratio_mixed_vs_base']:.2f} (goal >= 0.8)")
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
