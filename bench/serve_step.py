"""What one decode step of the server's engine costs: a batch of ROWS requests (each opening with the
support-bot system prompt) to the base alone and spread over 8 LoRA adapters and the base (stacked LoRA),
in one process on the packaged model, under variants that alternate repeat by repeat:
- `growing`: today's engine (the cache written into spare room, serve/kv_cache.py; grouped LoRA);
- `plain`: the cache as transformers makes it (DynamicLayer: concatenated on every step, as before);
- `stacked@REF` (with --stacked-from REF): mixed batches through serve/stacked.py as it was at commit REF
  (e.g. the masked all-adapter matmuls before grouping), loaded from `git show`.
The prompt pass is the time to the first tokens, a step the time between the first and the last token
over the steps between them; each figure the median of --repeats.

    TUNEWRIGHT_CACHE=/tmp/twcache .venv/bin/python bench/serve_step.py --stacked-from 3a3d479 \\
        --json bench/results/serve_step.json
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from serve_staggered import SYSTEM
from serve_throughput import QUESTIONS, make_library

import tunewright.serve.decode as decode
import tunewright.serve.engine as engine_module
from tunewright.modeling import PACKAGED_MODEL, resolve_base_model
from tunewright.records import Message
from tunewright.runs import write_json
from tunewright.serve.engine import Engine


def stacked_at(ref: str) -> Any:
    """StackedLora as serve/stacked.py defined it at commit `ref`."""
    source = subprocess.run(["git", "show", f"{ref}:src/tunewright/serve/stacked.py"], check=True,
                            capture_output=True, text=True, cwd=Path(__file__).parent).stdout
    module = types.ModuleType(f"stacked_{ref}")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{ref}:stacked.py", "exec"), module.__dict__)  # our own file, from our own history
    return module.StackedLora


@contextmanager
def variant(engine: Engine, name: str, classes: dict[str, Any]) -> Iterator[None]:
    kept_growing, kept_stacked = decode.growing, engine_module.StackedLora
    if name == "plain":
        decode.growing = lambda cache: cache  # type: ignore[assignment]
    engine_module.StackedLora = classes.get(name, kept_stacked)  # type: ignore[misc]
    engine._stacked = None  # rebuilt by the class in force
    try:
        yield
    finally:
        decode.growing, engine_module.StackedLora = kept_growing, kept_stacked  # type: ignore[misc]
        engine._stacked = None


def timed(engine: Engine, models: list[str], tokens: int, system: str = SYSTEM) -> tuple[float, float]:
    """(seconds to the first tokens: the prompt pass; seconds per decode step after it)."""
    prompts = [replace(engine.prompt(model, [Message("system", system), Message("user", QUESTIONS[i % len(QUESTIONS)])],
                                     tokens), stop_ids=frozenset()) for i, model in enumerate(models)]
    marks: list[float] = []

    def on_token(key: int, token: object, last: bool) -> bool:
        if key == 0:
            marks.append(time.perf_counter())
        return True

    started = time.perf_counter()
    engine.run(prompts, on_token)
    return marks[0] - started, (marks[-1] - marks[0]) / max(1, len(marks) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--steps", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--system-repeat", type=int, default=1,
                        help="the system prompt this many times over (longer prompts: a larger cache per step)")
    parser.add_argument("--stacked-from", default=None, help="also run mixed batches with stacked.py of this commit")
    parser.add_argument("--base", default=PACKAGED_MODEL)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    classes = {f"stacked@{args.stacked_from}": stacked_at(args.stacked_from)} if args.stacked_from else {}
    base_dir = resolve_base_model(args.base)
    system = " ".join([SYSTEM] * args.system_repeat)
    runs: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        library = make_library(base_dir, Path(scratch), 8, 16)
        engine = Engine(args.base, base_dir, library, max_loaded=8, prefix_cache_bytes=0)
        everyone = [engine.base_name, *library.names()]
        batches = {"base": [engine.base_name] * args.rows,
                   "mixed": [everyone[i % len(everyone)] for i in range(args.rows)]}
        timed(engine, batches["mixed"], 2)  # loads the adapters
        for repeat in range(args.repeats):  # variants alternate, so drift in the machine hits all alike
            for batch, models in batches.items():
                for name in ["growing", "plain", *(classes if batch == "mixed" else [])]:
                    with variant(engine, name, classes):
                        runs.setdefault(f"{batch}/{name}", []).append(timed(engine, models, 1 + args.steps, system))
            print(f"done: repeat {repeat + 1}", flush=True)
    results = {key: {"prompt_pass_s": statistics.median(first for first, _ in values),
                     "step_ms": 1000 * statistics.median(step for _, step in values),
                     "step_ms_each": [1000 * step for _, step in values]} for key, values in runs.items()}
    print(f"{'batch':8} {'variant':22} {'prompt pass s':>14} {'step ms':>8}")
    for key, row in results.items():
        batch, name = key.split("/")
        print(f"{batch:8} {name:22} {row['prompt_pass_s']:14.2f} {row['step_ms']:8.1f}")
    step = {key: row["step_ms"] for key, row in results.items()}
    summary = {"step_growing_vs_plain_base": step["base/growing"] / step["base/plain"],
               "step_growing_vs_plain_mixed": step["mixed/growing"] / step["mixed/plain"],
               "step_base_vs_mixed": step["base/growing"] / step["mixed/growing"],
               **{f"step_mixed_vs_{name}": step["mixed/growing"] / step[f"mixed/{name}"] for name in classes},
               "results": results,
               "settings": {**{k: v for k, v in vars(args).items() if k != "json"},
                            "torch_threads": torch.get_num_threads(), "prompt_tokens_row0": len(engine.prompt(
                                engine.base_name, [Message("system", system), Message("user", QUESTIONS[0])], 1)
                                .prompt_ids)}}
    print(", ".join(f"{key} {value:.2f}" for key, value in summary.items() if key.startswith("step_")))
    if args.json:
        write_json(args.json, summary)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
