"""Do exported artifacts answer like tunewright? A trained run is merged and exported as GGUF (f32 and
f16) and, in an adapter library, as a vLLM launch line; each artifact is loaded in its own runtime
(stock transformers; llama-cpp-python and vLLM from their own environments when --llama-python and
--vllm-python are given) and sent the first N test prompts as a client that read the model card sends
them (the user's message only; for vLLM, the client card's system prompt first), and the greedy
answers are compared with tunewright's own (adapter on the base, fp32, one request at a time). The
"before" rows reproduce the exports before issue 14, side by side: the merged model with the base's
chat template (no task system prompt as its default), the GGUF with `tokenizer.ggml.pre = default`,
vLLM asked without the system prompt, and vLLM started without `--dtype float32`.

    OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 nice -n 15 .venv/bin/python bench/export_parity.py RUN \\
        --prompts 20 --llama-python /work/rt/llama/bin/python --vllm-python /work/rt/vllm/bin/python \\
        --json bench/results/export_parity.json
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

from tunewright.config import Config, load_config
from tunewright.export import export_vllm, gguf_tokenizer
from tunewright.export.gguf import write_gguf
from tunewright.export.verify import (
    Reference,
    compare,
    llama_cpp_answers,
    merged_answers,
    reference_answers,
    transformers_answers,
)
from tunewright.export.vllm_runtime import chat_answer, client_messages, get_json, vllm_server
from tunewright.library import AdapterLibrary, base_fingerprint
from tunewright.merge import merge_adapter
from tunewright.modeling import load_tokenizer, resolve_base_model
from tunewright.runs import RunPaths, existing_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--llama-python", type=Path, help="python of an environment with llama-cpp-python")
    parser.add_argument("--vllm-python", type=Path, help="python of an environment with vLLM (vllm-cpu)")
    parser.add_argument("--artifacts", default="merged,gguf,vllm", help="which rows: merged, gguf, vllm")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run = existing_run(args.run)
    config = load_config(run.config)
    tokens = config.eval.max_new_tokens
    started = time.perf_counter()
    reference = reference_answers(config, run, args.prompts)
    rows: list[dict[str, Any]] = []

    def add(artifact: str, precision: str, client: str, runtime: str, answers: list[str], seconds: float,
            shown_precision: str | None = None) -> None:
        parity = compare(artifact, runtime, precision, reference, answers)
        rows.append({**parity.to_json(), "precision": shown_precision or precision, "client": client,
                     "seconds": round(seconds, 1)})
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
        if "vllm" in args.artifacts and args.vllm_python is not None:
            _vllm_rows(config, run, Path(scratch), reference, args.vllm_python, add)
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


def _vllm_rows(config: Config, run: RunPaths, scratch: Path, reference: Reference, python: Path, add: Any) -> None:
    """One server from the exported line, asked as the client card says and as before (user message
    only); then a server started from the same line without `--dtype float32`."""
    library = AdapterLibrary(scratch / "library")
    entry = library.add(run.root, "adapter", base_fingerprint(resolve_base_model(config.model.base)))
    argv = json.loads(export_vllm(library.root, library.root / "vllm.json").path.read_text())["argv"][1:]
    tokens = config.eval.max_new_tokens
    clock = time.perf_counter()
    with vllm_server(argv, python) as url:
        runtime = f"vllm {get_json(f'{url}/version')['version']}"
        print(f"  vllm up ({time.perf_counter() - clock:.0f} s)", flush=True)
        for label, client, with_system in (("vllm", "system prompt + user message (client card)", True),
                                           ("vllm, no system prompt (before)", "user message only", False)):
            clock = time.perf_counter()
            answers = [chat_answer(url, entry.name, client_messages(entry.system_prompt if with_system else "", chat),
                                   tokens) for chat in reference.chats]
            add(label, "f32", client, runtime, answers, time.perf_counter() - clock)
    dtype = argv.index("--dtype")
    with vllm_server(argv[:dtype] + argv[dtype + 2:], python) as url:
        clock = time.perf_counter()
        answers = [chat_answer(url, entry.name, client_messages(entry.system_prompt, chat), tokens)
                   for chat in reference.chats]
        add("vllm, no --dtype (before)", "f32", "system prompt + user message (client card)", runtime, answers,
            time.perf_counter() - clock, shown_precision="vLLM's default (auto)")


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
            "llama_cpp_python": str(args.llama_python) if args.llama_python else None,
            "vllm_python": str(args.vllm_python) if args.vllm_python else None, "rows": rows}


if __name__ == "__main__":
    main()
