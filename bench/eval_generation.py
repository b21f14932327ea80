"""Evaluation generation throughput: batched greedy generation (left padding, shared-prefix KV cache,
stop on end-of-turn) against one prompt at a time, on the packaged model and the fintech example's
prompts, in one process. Counts useful completion tokens (up to each reply's end-of-turn) per second
and checks the batched replies equal the one-at-a-time ones.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/eval_generation.py --json bench/results/eval_generation.json
    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/eval_generation.py --quick   # a smoke run, ~1 minute
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from tunewright.chat import with_system_prompt
from tunewright.config import load_config
from tunewright.data.formats import read_examples
from tunewright.evaluate.generate import Reply, generate_replies
from tunewright.modeling import load_model, load_tokenizer, resolve_base_model

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fintech-support"


def timed(model: Any, tokenizer: Any, chats: list[list[dict[str, str]]], max_new_tokens: int,
          batch_size: int) -> tuple[list[Reply], float]:
    started = time.perf_counter()
    replies = generate_replies(model, tokenizer, chats, max_new_tokens, batch_size)
    return replies, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--quick", action="store_true", help="8 prompts, 24 new tokens: a smoke run")
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    args = parser.parse_args()
    prompts, batch_size, max_new = (8, 8, 24) if args.quick else (args.prompts, args.batch_size, args.max_new_tokens)

    config = load_config(EXAMPLE / "tunewright.yaml")
    examples, _ = read_examples(config.data.path, config.task.label_regex)
    chats = [with_system_prompt(example.prompt, config.task.system_prompt) for example in examples[:prompts]]
    model_dir = resolve_base_model(config.model.base)
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir)
    model.eval()
    timed(model, tokenizer, chats[:2], 4, 2)  # warm-up: first-call allocations are not generation

    batched, batched_seconds = timed(model, tokenizer, chats, max_new, batch_size)
    single, single_seconds = timed(model, tokenizer, chats, max_new, 1)
    tokens_batched = sum(reply.completion_tokens for reply in batched)
    tokens_single = sum(reply.completion_tokens for reply in single)
    same = sum(a.text == b.text for a, b in zip(batched, single, strict=True))
    result = {
        "model": config.model.base,
        "prompts": prompts,
        "max_new_tokens": max_new,
        "batch_size": batch_size,
        "batched": {"seconds": batched_seconds, "completion_tokens": tokens_batched,
                    "tokens_per_second": tokens_batched / batched_seconds},
        "single": {"seconds": single_seconds, "completion_tokens": tokens_single,
                   "tokens_per_second": tokens_single / single_seconds},
        "ratio_batched_vs_single": (tokens_batched / batched_seconds) / (tokens_single / single_seconds),
        "identical_replies": same,
        "torch_threads": torch.get_num_threads(),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()},
        "quick": args.quick,
    }
    print(f"{'mode':<10}{'seconds':>10}{'tokens':>10}{'tokens/s':>12}")
    for mode in ("batched", "single"):
        row = result[mode]
        print(f"{mode:<10}{row['seconds']:>10.1f}{row['completion_tokens']:>10}{row['tokens_per_second']:>12.1f}")
    print(f"ratio batched vs single: {result['ratio_batched_vs_single']:.2f}x (goal >= 6x); "
          f"identical replies {same}/{prompts}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
