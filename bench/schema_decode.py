"""What schema-constrained decoding costs in tunewright's own generation loop (evaluate/generate.py:
batched greedy decoding, KV cache, one grammar processor per row): the packaged SmolLM2-135M answers
SNIPS validate queries unconstrained, under grammar.py (llguidance), and under an xgrammar processor
with the same per-row interface, the modes taking turns batch by batch so machine load falls on each
alike.

Per mode: answer tokens per CPU second (tokens up to the stop token / the process's CPU time), CPU
milliseconds per row-step (every row of every forward pass, the prefill and each decode step, padding rows
included: the same work basis whatever the answers' lengths), the share of CPU time outside the
model's forward passes, and the share of answers that parse and validate. CPU time, not wall time:
on a shared machine a process waits for the CPU, or is paused, for reasons of its own; the time it
computes is what the mode costs (wall seconds are recorded beside it). Needs
examples/snips-slots/prepare.py run first, and xgrammar on the path for its row:

    .venv/bin/pip install --target /tmp/grammars --no-deps xgrammar apache-tvm-ffi
    PYTHONPATH=/tmp/grammars OMP_NUM_THREADS=1 nice -n 15 .venv/bin/python bench/schema_decode.py \\
        --json bench/results/schema_decode.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor

from tunewright.chat import stop_token_ids
from tunewright.evaluate.generate import generate_replies
from tunewright.grammar import schema_processor_factory
from tunewright.modeling import load_model, load_tokenizer, resolve_base_model
from tunewright.schema import parse_answer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "snips-slots"
SYSTEM = ("Read the voice-assistant query. Answer with one JSON object: the intent, and the slots as "
          "{slot name: the words of the query}.")


class XgrammarProcessor(LogitsProcessor):
    """grammar.SchemaProcessor's contract (one row; feed the tokens added since the last call, then
    mask; leave the row alone once the grammar has ended) over an xgrammar matcher."""

    def __init__(self, matcher: Any, bitmask: torch.Tensor, apply: Callable[..., None]) -> None:
        self.matcher, self.bitmask, self.apply = matcher, bitmask, apply
        self.seen: int | None = None
        self.done = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.seen is not None and not self.done:
            for token in input_ids[0, self.seen:].tolist():
                if self.matcher.is_terminated() or not self.matcher.accept_token(token):
                    self.done = True
                    break
        self.seen = input_ids.shape[1]
        if self.done or self.matcher.is_terminated():
            self.done = True
            return scores
        self.matcher.fill_next_token_bitmask(self.bitmask)
        self.apply(scores, self.bitmask)
        return scores


def xgrammar_factory(tokenizer: Any, schema: dict[str, Any], stops: list[int], vocab: int) -> Callable[[], Any]:
    import xgrammar as xgr

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab, stop_token_ids=stops)
    compiled = xgr.GrammarCompiler(info).compile_json_schema(
        json.dumps(schema), any_whitespace=False, separators=(", ", ": "))
    return lambda: XgrammarProcessor(xgr.GrammarMatcher(compiled), xgr.allocate_token_bitmask(1, vocab),
                                     xgr.apply_token_bitmask_inplace)


class ForwardClock:
    """Counts the rows of every forward pass (prefill and decode steps) and the CPU seconds spent
    inside forward."""

    def __init__(self, model: Any) -> None:
        self.row_steps, self.forward_s, self._start = 0, 0.0, 0.0
        model.register_forward_pre_hook(self._before)
        model.register_forward_hook(self._after)

    def _before(self, _module: Any, _args: Any) -> None:
        self._start = time.process_time()

    def _after(self, _module: Any, _args: Any, output: Any) -> None:
        self.forward_s += time.process_time() - self._start
        self.row_steps += output.logits.shape[0]


def run_mode(model: Any, tokenizer: Any, clock: ForwardClock, chats: list[Any], schema: dict[str, Any],
             factory: Callable[[], Any] | None, batch: int, max_new_tokens: int) -> dict[str, float]:
    steps, forward = clock.row_steps, clock.forward_s
    start, cpu = time.perf_counter(), time.process_time()
    replies = generate_replies(model, tokenizer, chats, max_new_tokens, batch, schema=factory)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    parsed = [parse_answer(reply.text, schema) for reply in replies]
    return {"wall_s": wall, "cpu_s": cpu, "tokens": sum(r.completion_tokens for r in replies), "answers": len(replies),
            "row_steps": clock.row_steps - steps, "forward_s": clock.forward_s - forward,
            "valid_json": sum(p.valid_json for p in parsed), "valid_schema": sum(p.valid_schema for p in parsed)}


def summarize(parts: list[dict[str, float]]) -> dict[str, float]:
    total = {key: sum(part[key] for part in parts) for key in parts[0]}
    return {**total, "tokens_per_cpu_s": total["tokens"] / total["cpu_s"],
            "tokens_per_wall_s": total["tokens"] / total["wall_s"],
            "cpu_ms_per_row_step": 1e3 * total["cpu_s"] / total["row_steps"],
            "outside_forward": 1 - total["forward_s"] / total["cpu_s"],
            "valid_json_rate": total["valid_json"] / total["answers"],
            "valid_schema_rate": total["valid_schema"] / total["answers"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=32, help="validate queries, spread over the intents")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 1])
    parser.add_argument("--batch-one-queries", type=int, default=8, help="queries for batch size 1")
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()
    rows = [json.loads(line) for line in (EXAMPLE / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[:: max(1, len(rows) // args.queries)][: args.queries]
    schema = json.loads((EXAMPLE / "data" / "schema.json").read_text(encoding="utf-8"))
    model_dir = resolve_base_model("smollm2-135m-instruct")
    tokenizer, model = load_tokenizer(model_dir), load_model(model_dir).eval()
    stops, vocab = stop_token_ids(tokenizer), model.config.vocab_size
    factories: dict[str, Callable[[], Any] | None] = {"unconstrained": None}
    setup: dict[str, float] = {}
    for name, make in (("llguidance (grammar.py)", schema_processor_factory), ("xgrammar", xgrammar_factory)):
        start = time.perf_counter()
        factories[name] = make(tokenizer, schema, stops, vocab)
        setup[name] = time.perf_counter() - start
    clock = ForwardClock(model)
    results: dict[str, Any] = {}
    for batch in args.batch_sizes:
        chosen = rows if batch > 1 else rows[:: max(1, len(rows) // args.batch_one_queries)][: args.batch_one_queries]
        parts: dict[str, list[dict[str, float]]] = {name: [] for name in factories}
        for turn, first in enumerate(range(0, len(chosen), batch)):
            chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["prompt"]}]
                     for row in chosen[first:first + batch]]
            names = list(factories)
            for name in names[turn % len(names):] + names[: turn % len(names)]:  # rotate who goes first
                parts[name].append(run_mode(model, tokenizer, clock, chats, schema, factories[name], batch,
                                            args.max_new_tokens))
        results[f"batch {batch}"] = {name: summarize(found) for name, found in parts.items()}
    print_table(results, setup)
    if args.json:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
                "cpu": next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                             if line.startswith("model name")), platform.processor()),
                "cpu_flags": sorted({flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
                                     if f" {flag}" in cpuinfo}),
                "load_average_start": load_start,
                "torch_threads": torch.get_num_threads(), "load_average_end": os.getloadavg(),
                "queries": len(rows), "max_new_tokens": args.max_new_tokens, "setup_s": setup}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict[str, Any], setup: dict[str, float]) -> None:
    print(f"{'batch / mode':<34}{'tok/CPU s':>10}{'vs free':>9}{'CPU ms/row-step':>16}{'vs free':>9}"
          f"{'outside fwd':>13}{'JSON':>7}{'schema':>8}{'tok/wall s':>11}")
    for batch, modes in results.items():
        free = modes["unconstrained"]
        for name, found in modes.items():
            print(f"{batch + ' / ' + name:<34}{found['tokens_per_cpu_s']:>10.1f}"
                  f"{found['tokens_per_cpu_s'] / free['tokens_per_cpu_s'] - 1:>+9.1%}"
                  f"{found['cpu_ms_per_row_step']:>16.2f}"
                  f"{found['cpu_ms_per_row_step'] / free['cpu_ms_per_row_step'] - 1:>+9.1%}"
                  f"{found['outside_forward']:>13.1%}{found['valid_json_rate']:>7.0%}{found['valid_schema_rate']:>8.0%}"
                  f"{found['tokens_per_wall_s']:>11.1f}")
    print("setup (compile) s: " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in setup.items()))


if __name__ == "__main__":
    main()
