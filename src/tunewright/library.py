"""The adapter library: a folder of registered adapters, each a safetensors copy of a run's adapter with
its manifest (base-model fingerprint, method, task, eval summary). Names are validated so no entry can
point outside the folder. Never imports torch."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewright.errors import ModelError
from tunewright.run_summary import RunSummary
from tunewright.runs import ADAPTER_MANIFEST, NEIGHBOUR_POOL, AdapterManifest, atomic_dir, read_json, write_json

ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
WEIGHTS = "adapter_model.safetensors"
PICKLED = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
# Only these files are copied into the library: weights, configs, tokenizer and chat template.
COPIED = (WEIGHTS, "adapter_config.json", ADAPTER_MANIFEST, "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json", "chat_template.jinja", "generation_config.json", NEIGHBOUR_POOL)
# Config keys that differ between saves of the same weights (library versions, load-time choices).
VOLATILE_CONFIG_KEYS = {"transformers_version", "_name_or_path", "dtype", "torch_dtype", "use_cache"}
FINGERPRINT_SAMPLE_BYTES = 1 << 20
PROMPT_LEARNING = {"PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING"}
# Fully trained layers (modules_to_save) that peft can still select per row: linear and embedding ones.
PER_ROW_MODULES = ("lm_head", "embed_tokens", "embed_out", "wte", "score", "classifier")


@dataclass(frozen=True)
class AdapterEntry:
    """One adapter as the server and exporters see it: where it is and what it needs."""

    name: str
    path: Path
    peft_type: str  # from adapter_config.json: LORA, IA3, PROMPT_TUNING, PREFIX_TUNING, ...
    method: str
    task: str
    base_model: str
    base_fingerprint: str | None
    system_prompt: str = ""
    stop_token_ids: tuple[int, ...] = ()
    output_schema: dict[str, Any] | None = None  # the task's answer schema: answers constrained by default
    copied_fields: tuple[str, ...] = ()  # answer fields decoded as spans of the request's input
    use_dora: bool = False
    rank: int | None = None
    target_modules: tuple[str, ...] = ()
    extra_modules: tuple[str, ...] = ()  # modules_to_save: whole layers trained besides the adapter
    eval_summary: dict[str, Any] = field(default_factory=dict)
    weights_stamp: tuple[int, int] = (0, 0)  # (mtime_ns, size) of the weights: a replaced file differs
    labels: tuple[str, ...] = ()  # a labelled task's label set; served chat answers are constrained to it
    label_format: dict[str, Any] | None = None  # where the label sits in an answer (LabelFormat.to_json())
    neighbours: int = 0  # prompts show this many training examples retrieved from NEIGHBOUR_POOL

    @property
    def mixable(self) -> bool:
        """Plain LoRA rows can share one batch with other LoRA adapters and the base (peft's per-row
        adapter selection); every other kind (DoRA, IA3, prompt and prefix tuning, a trained norm layer)
        runs in batches of its own."""
        return (self.peft_type == "LORA" and not self.use_dora
                and all(module.endswith(PER_ROW_MODULES) for module in self.extra_modules))

    def card(self) -> dict[str, Any]:
        return {"name": self.name, "method": self.method, "peft_type": self.peft_type, "task": self.task,
                "base_model": self.base_model, "base_fingerprint": self.base_fingerprint,
                "rank": self.rank, "eval": self.eval_summary, "output_schema": self.output_schema}


def validate_adapter_name(name: str) -> str:
    if not ADAPTER_NAME.fullmatch(name) or ".." in name:
        raise ModelError(f"adapter name {name!r}: use letters, digits, '.', '_' or '-' (max 64, no '..'), "
                         "starting with a letter or digit")
    return name


def base_fingerprint(model_dir: Path) -> str:
    """A short hash that tells base models apart: the architecture config, every weight file's tensor
    names, shapes and dtypes, and the first MiB of weight bytes. Cheap even for large models."""
    digest = hashlib.sha256()
    config = read_json(model_dir / "config.json")
    stable = {key: value for key, value in config.items() if key not in VOLATILE_CONFIG_KEYS}
    digest.update(json.dumps(stable, sort_keys=True).encode())
    weight_files = sorted(model_dir.glob("*.safetensors"))
    if not weight_files:
        raise ModelError(f"{model_dir}: no *.safetensors weights; only safetensors models are served")
    for weights in weight_files:
        with weights.open("rb") as handle:
            (header_size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(header_size))
            header.pop("__metadata__", None)
            digest.update(json.dumps(header, sort_keys=True).encode())
            digest.update(handle.read(FINGERPRINT_SAMPLE_BYTES))
    return digest.hexdigest()[:16]


def read_adapter_dir(path: Path, name: str) -> AdapterEntry:
    """An adapter directory (or a run directory holding `adapter/`); safetensors weights only."""
    validate_adapter_name(name)
    if (path / "adapter").is_dir():
        path = path / "adapter"
    if not (path / WEIGHTS).is_file():
        pickled = [file for file in PICKLED if (path / file).is_file()]
        why = f"only pickle weights ({pickled[0]}), which are never loaded" if pickled else f"no {WEIGHTS}"
        raise ModelError(f"{path}: {why}; save the adapter with safe_serialization=True")
    if not (path / "adapter_config.json").is_file():
        raise ModelError(f"{path}: no adapter_config.json; not a PEFT adapter directory")
    peft_config: dict[str, Any] = read_json(path / "adapter_config.json")
    manifest = AdapterManifest.read(path)
    if manifest.neighbours and not (path / NEIGHBOUR_POOL).is_file():
        raise ModelError(f"{path}: trained with task.neighbours={manifest.neighbours} but {NEIGHBOUR_POOL} (the "
                         "examples its prompts retrieve) is missing; copy the whole adapter directory")
    peft_type = str(peft_config.get("peft_type", "")).upper()
    targets = peft_config.get("target_modules") or ()
    weights = (path / WEIGHTS).stat()
    return AdapterEntry(
        name=name, path=path.resolve(), peft_type=peft_type,
        method=manifest.method or peft_type.lower(),
        task=manifest.task,
        base_model=manifest.base_model or str(peft_config.get("base_model_name_or_path") or ""),
        base_fingerprint=manifest.base_fingerprint,
        system_prompt=manifest.system_prompt,
        stop_token_ids=manifest.stop_token_ids,
        output_schema=manifest.output_schema, copied_fields=manifest.copied_fields,
        use_dora=bool(peft_config.get("use_dora", False)),
        rank=int(peft_config["r"]) if isinstance(peft_config.get("r"), int) else None,
        target_modules=(targets,) if isinstance(targets, str) else tuple(targets),
        extra_modules=tuple(peft_config.get("modules_to_save") or ()),
        eval_summary=dict(manifest.eval_summary),
        weights_stamp=(weights.st_mtime_ns, weights.st_size),
        labels=manifest.labels, label_format=manifest.label_format, neighbours=manifest.neighbours,
    )


class AdapterLibrary:
    """`root/<name>/` per adapter. Lookups resolve the path and refuse anything outside `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        """Registered names: folders inside the library (a symlink leading out of it does not count)."""
        if not self.root.is_dir():
            return []
        return sorted(entry.name for entry in self.root.iterdir() if not entry.name.startswith(".")
                      and entry.name in self)

    def entries(self) -> list[AdapterEntry]:
        """Every adapter that can be read; `problems` names the rest."""
        return [entry for entry in map(self._try_get, self.names()) if isinstance(entry, AdapterEntry)]

    def problems(self) -> list[str]:
        return [entry for entry in map(self._try_get, self.names()) if isinstance(entry, str)]

    def _try_get(self, name: str) -> AdapterEntry | str:
        try:
            return self.get(name)
        except ModelError as exc:
            return str(exc)

    def get(self, name: str) -> AdapterEntry:
        return read_adapter_dir(self._inside(name), name)

    def __contains__(self, name: str) -> bool:
        try:
            return self._inside(name).is_dir()
        except ModelError:
            return False

    def add(self, source: Path, name: str, fingerprint: str, replace: bool = False,
            verify: Callable[[Path], None] | None = None) -> AdapterEntry:
        """Copy the adapter at `source` (a run or adapter directory) in as `name`, with its manifest
        completed: its base model's `fingerprint` and, from a run's summary.json, its eval summary.
        `verify` sees the copied folder before it becomes an entry."""
        entry = read_adapter_dir(source, name)
        check_source_files(entry.path, COPIED)
        target = self._inside(name)
        if target.exists() and not replace:
            raise ModelError(f"adapter {name!r} is already in {self.root}; remove it first or pick another name")
        manifest = dataclasses.replace(
            AdapterManifest.read(entry.path), method=entry.method, peft_type=entry.peft_type,
            base_model=entry.base_model, base_fingerprint=fingerprint,
            eval_summary=eval_summary(entry.path.parent / "summary.json") or entry.eval_summary)
        with atomic_dir(target) as tmp:
            for file in COPIED:
                if (entry.path / file).is_file() and file != ADAPTER_MANIFEST:
                    shutil.copyfile(entry.path / file, tmp / file)
            write_json(tmp / ADAPTER_MANIFEST, manifest.to_json())
            if verify is not None:
                verify(tmp)  # on the copy, which nothing can change any more; raising leaves no entry
        return self.get(name)

    def remove(self, name: str) -> None:
        target = self._inside(name)
        if not target.is_dir():
            raise ModelError(f"adapter {name!r} is not in {self.root}; `tunewright adapters list` shows them")
        shutil.rmtree(target)

    def _inside(self, name: str) -> Path:
        validate_adapter_name(name)
        root = self.root.resolve()
        path = (root / name).resolve()
        if path.parent != root:
            raise ModelError(f"adapter {name!r} resolves outside the library {root} (a symlink?); refused")
        return path


def check_source_files(source: Path, names: tuple[str, ...]) -> None:
    """Each of `names` present in `source` must be a regular file inside `source`: a symlink leading out
    of it (to /etc/shadow, say), a FIFO or a device is refused before anything is copied."""
    root = source.resolve()
    for name in names:
        path = source / name
        if not os.path.lexists(path):
            continue
        resolved = path.resolve()
        if root not in resolved.parents:
            raise ModelError(f"{path}: a symlink to {resolved}, outside the adapter folder; copy the real "
                             "file into the folder instead")
        if not resolved.is_file():
            raise ModelError(f"{path}: not a regular file; an adapter folder holds plain files only")


def eval_summary(summary_file: Path) -> dict[str, Any]:
    """The decision, test-row count and each candidate's metrics from a run's summary.json."""
    if not summary_file.is_file():
        return {}
    try:
        summary = RunSummary.read(summary_file)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{summary_file}: not a run summary tunewright wrote ({type(exc).__name__}: {exc}); "
                         "run `tunewright eval` on the run again, or add the adapter folder itself") from None
    return {"decision": summary.decision, "test_rows": summary.evaluation.test_rows,
            "candidates": summary.evaluation.candidates}
