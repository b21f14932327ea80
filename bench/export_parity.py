"""Do exported artifacts answer like tunewright? A trained run is merged and exported as GGUF (f32 and
f16), each artifact is loaded in its own runtime (stock transformers; llama-cpp-python from its own
environment when --llama-python is given) and sent the first N test prompts as a client that read the
model card sends them (the user's message only), and the greedy answers are compared with
tunewright's own (adapter on the base, fp32, one request at a time). Two rows reproduce the exports
before issue 14, side by side: the merged model with the base's chat template (no task system prompt
as its default) and the GGUF with `tokenizer.ggml.pre = default`.

    nice -n 10 .venv/bin/python bench/export_parity.py RUN --prompts 20 \\
        --llama-python /work/rt/llama/bin/python --json bench/results/export_parity.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunewright.config import load_config
from tunewright.export import gguf_tokenizer
from tunewright.export.gguf import write_gguf
from tunewright.export.verify import (
    Reference,
    compare,
    llama_cpp_answers,
    merged_answers,
    reference_answers,
    transformers_answers,
)
from tunewright.merge import merge_adapter
from tunewright.modeling import load_tokenizer
from tunewright.runs import existing_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--llama-python", type=Path, help="python of an environment with llama-cpp-python")
    parser.add_argument("--artifacts", default="merged,gguf", help="which rows: merged, gguf or both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = existing_run(args.run)
    config = load_config(run.config)
    tokens = config.eval.max_new_tokens
    started = time.perf_counter()
    reference = reference_answers(config, run, args.prompts)
    rows: list[dict[str, Any]] = []

    def add(artifact: str, precision: str, client: str, runtime: str, answers: list[str], seconds: float) -> None:
        parity = compare(artifact, runtime, precision, reference, answers)
        rows.append({**parity.to_json(), "client": client, "seconds": round(seconds, 1)})
        print(f"  {artifact}: {parity.identical}/{parity.total} identical ({seconds:.0f} s)", flush=True)

    print(f"tunewright's answers: {time.perf_counter() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        merged = merge_adapter(config, run, Path(scratch) / "merged").path
        if "merged" in args.artifacts:
            clock = time.perf_counter()
            runtime, answers = merged_answers(merged, reference.chats, tokens)
            add("merged", "f32", "user message only", runtime, answers, time.perf_counter() - clock)
            clock = time.perf_counter()
            add("merged, base's template (before)", "f32", "user message only", runtime,
                _with_base_template(merged, run.adapter, reference, tokens), time.perf_counter() - clock)
        if "gguf" in args.artifacts and args.llama_python is not None:
            _gguf_rows(merged, Path(scratch), config.task.name, reference, tokens, args.llama_python, add)
    _print_table(rows)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_payload(args, rows), indent=2) + "\n")


def _with_base_template(merged: Path, adapter: Path, reference: Reference, tokens: int) -> list[str]:
    tokenizer = AutoTokenizer.from_pretrained(merged)
    tokenizer.chat_template = load_tokenizer(adapter).chat_template
    model = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)
    return transformers_answers(model, tokenizer, reference.chats, tokens)


def _gguf_rows(merged: Path, scratch: Path, name: str, reference: Reference, tokens: int, python: Path,
               add: Any) -> None:
    for label, half, pre in (("gguf", False, None), ("gguf", True, None), ("gguf, pre = default (before)", False,
                                                                            "default")):
        out = scratch / f"{'f16' if half else 'f32'}-{pre or 'auto'}.gguf"
        if pre == "default":  # what the export wrote before issue 14, whatever the tokenizer
            chosen, gguf_tokenizer.pre_tokenizer = gguf_tokenizer.pre_tokenizer, lambda *_: "default"  # type: ignore[assignment]
            try:
                write_gguf(merged, out, name, half)
            finally:
                gguf_tokenizer.pre_tokenizer = chosen  # type: ignore[assignment]
        else:
            write_gguf(merged, out, name, half)
        clock = time.perf_counter()
        runtime, answers = llama_cpp_answers(out, reference.chats, tokens, python)
        add(label, "f16" if half else "f32", "user message only", runtime, answers, time.perf_counter() - clock)


def _print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| artifact | precision | runtime | client sends | identical to tunewright | same as base | ok |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['artifact']} | {row['precision']} | {row['runtime']} | {row['client']} | "
              f"{row['identical']}/{row['total']} | {row['same_as_base']}/{row['total']} | "
              f"{'yes' if row['ok'] else 'no'} |")


def _payload(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0] if Path("/proc/cpuinfo").exists() else ""
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": str(args.run),
            "prompts": args.prompts, "machine": {"platform": platform.platform(),
                                                  "avx512_bf16": "avx512_bf16" in flags},
            "versions": {name: version(name) for name in ("torch", "transformers", "peft", "gguf")},
            "llama_cpp_python": str(args.llama_python) if args.llama_python else None, "rows": rows}


if __name__ == "__main__":
    main()
