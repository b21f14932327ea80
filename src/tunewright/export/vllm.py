"""Export for vLLM: an adapter library as a `vllm serve --enable-lora` launch line plus JSON, with a
warning for every adapter vLLM would refuse (rank above its limit, DoRA, extra trained modules)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from tunewright.errors import ModelError
from tunewright.library import AdapterLibrary
from tunewright.modeling import resolve_base_model
from tunewright.runs import write_json, write_text

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's accepted --max-lora-rank values


@dataclass
class VllmPlan:
    path: Path
    command: str
    max_lora_rank: int
    served: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def export_vllm(library_dir: Path, out: Path, base: str | None = None) -> VllmPlan:
    """The `vllm serve` line for every adapter vLLM can load from the library, and why the rest cannot."""
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
        reason = None
        if entry.peft_type != "LORA":
            reason = f"vLLM serves LoRA adapters only; this is {entry.peft_type}"
        elif entry.use_dora:
            reason = "vLLM does not load DoRA adapters; merge it with `tunewright merge` and serve the model"
        elif entry.extra_modules:
            reason = f"it trains whole modules besides LoRA ({', '.join(entry.extra_modules)}), which vLLM refuses"
        elif (entry.rank or 0) > VLLM_LORA_RANKS[-1]:
            reason = f"rank {entry.rank} is above vLLM's largest max_lora_rank {VLLM_LORA_RANKS[-1]}"
        if reason:
            warnings.append(f"adapter {entry.name!r} left out: {reason}")
            continue
        served.append(entry)
        modules.append({"name": entry.name, "path": str(entry.path), "rank": entry.rank})
    base_model = base or str(resolve_base_model(entries[0].base_model))
    top_rank = max((entry.rank or 1 for entry in served), default=8)
    max_rank = next(rank for rank in VLLM_LORA_RANKS if rank >= top_rank) if top_rank <= 512 else 512
    argv = ["vllm", "serve", base_model, "--enable-lora", "--max-lora-rank", str(max_rank),
            "--max-loras", str(max(1, len(served))),
            *(["--lora-modules", *(f"{m['name']}={m['path']}" for m in modules)] if modules else [])]
    command = shlex.join(argv)
    write_json(out, {"base_model": base_model, "max_lora_rank": max_rank, "lora_modules": modules,
                     "argv": argv, "command": command, "warnings": warnings})
    write_text(out.with_suffix(".sh"), f"#!/bin/sh\n# written by tunewright export --format vllm\nexec {command}\n")
    return VllmPlan(out, command, max_rank, [entry.name for entry in served], warnings)
