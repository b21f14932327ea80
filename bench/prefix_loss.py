"""Training step time: the plain forward (full logits, every row runs the shared prompt prefix) vs
tunewright's shared-prefix loss, on the packaged model and the fintech example, side by side.

    .venv/bin/python bench/prefix_loss.py --json bench/results/prefix_loss.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from tunewright.chat import encode_example
from tunewright.config import MethodConfig, load_config
from tunewright.data.formats import read_examples
from tunewright.methods import prepare_model
from tunewright.modeling import load_model, load_tokenizer, resolve_base_model
from tunewright.train import PadCollator
from tunewright.train.loss import shared_prefix_loss

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fintech-support" / "tunewright.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    config = load_config(EXAMPLE)
    model_dir = resolve_base_model(config.model.base)
    tokenizer = load_tokenizer(model_dir)
    model = prepare_model(load_model(model_dir), MethodConfig())
    model.train()
    examples, _ = read_examples(config.data.path, config.task.label_regex)
    encoded = [encode_example(tokenizer, e, config.task.system_prompt, config.training.max_seq_len)
               for e in examples[: args.batches * args.batch_size]]
    collate = PadCollator(tokenizer.pad_token_id)
    batches = [collate([{"input_ids": r.input_ids, "labels": r.labels} for r in encoded[i:i + args.batch_size]])
               for i in range(0, len(encoded), args.batch_size)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    def plain(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss

    def shared(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return shared_prefix_loss(model, batch["input_ids"], batch["attention_mask"], batch["labels"])

    results = {}
    for name, step in (("plain forward", plain), ("shared-prefix loss", shared)):
        step(batches[0]).backward()  # warm-up
        model.zero_grad()
        seconds = []
        for batch in batches:
            started = time.perf_counter()
            step(batch).backward()
            model.zero_grad()
            seconds.append(time.perf_counter() - started)
        results[name] = {"seconds_per_step": statistics.mean(seconds), "tokens_per_second": tokens / sum(seconds)}
    speedup = results["plain forward"]["seconds_per_step"] / results["shared-prefix loss"]["seconds_per_step"]
    print(f"{'loss':<22}{'s/step':>10}{'tokens/s':>12}   ({args.batches} batches x {args.batch_size}, "
          f"{tokens} real tokens, LoRA r16 all-linear, fp32, {torch.get_num_threads()} threads)")
    for name, row in results.items():
        print(f"{name:<22}{row['seconds_per_step']:>10.2f}{row['tokens_per_second']:>12.0f}")
    print(f"speed-up: {speedup:.2f}x")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"results": results, "speedup": speedup, "tokens": tokens,
                                         "batch_size": args.batch_size, "batches": args.batches}, indent=2))


if __name__ == "__main__":
    main()
