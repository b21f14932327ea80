"""Where every artifact of a run lives, and how files are written so none is ever half-written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunewright.errors import TunewrightError
from tunewright.records import Example, Preference

# Written inside every saved adapter directory: base model, task, system prompt, stop tokens.
ADAPTER_MANIFEST = "tunewright-adapter.json"
NEIGHBOUR_POOL = "neighbours.jsonl"  # task.neighbours: the training inputs and labels served prompts retrieve from
# Modes of what tunewright writes: readable by the account that serves it (a temp file is created
# 0600 and a temp directory 0700, and a rename keeps that mode), scripts executable.
ARTIFACT_MODE = 0o644
SCRIPT_MODE = 0o755


@dataclass(frozen=True)
class RunPaths:
    """The layout of `runs/<name>/`. Stages find each other's outputs only through these paths."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def split_file(self, split: str) -> Path:
        return self.data_dir / f"{split}.jsonl"

    def load_split(self, split: str) -> list[Example]:
        return [Example.from_json(row) for row in read_jsonl(self.split_file(split))]

    def load_preference_split(self, split: str) -> list[Preference]:
        """A split of a preference run (dpo, kto, orpo), as `prepare_run` wrote it."""
        return [Preference.from_json(row) for row in read_jsonl(self.split_file(split))]

    @property
    def split_manifest(self) -> Path:
        return self.data_dir / "manifest.json"

    @property
    def data_report(self) -> Path:
        return self.root / "data_check.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def model(self) -> Path:
        """A full fine-tune's weights (safetensors), in place of `adapter`."""
        return self.root / "model"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step}"

    @property
    def training_result(self) -> Path:
        return self.root / "training.json"

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def predictions(self, candidate: str) -> Path:
        return self.eval_dir / f"predictions-{candidate}.jsonl"

    @property
    def eval_result(self) -> Path:
        return self.eval_dir / "results.json"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss_curve.png"

    @property
    def report_md(self) -> Path:
        return self.root / "report.md"

    @property
    def report_html(self) -> Path:
        return self.root / "report.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def sweep(self) -> Path:
        """The table of trials of `tunewright sweep`: in a sweep directory, and copied into a run of the
        config it chose."""
        return self.root / "sweep.json"


@dataclass(frozen=True)
class AdapterManifest:
    """tunewright-adapter.json beside a trained artifact: what made it (written by training) and, once
    in an adapter library, which base it runs on and how it scored (completed by the library)."""

    base_model: str = ""  # model.base as the user gave it
    method: str = ""
    artifact: str = "adapter"  # "adapter" (PEFT layout) or "model" (every weight)
    quantized_base: str | None = None  # "nf4" for qlora
    task: str = ""
    system_prompt: str = ""
    stop_token_ids: tuple[int, ...] = ()
    output_schema: dict[str, Any] | None = None  # task.output_schema: served answers are constrained to it
    copied_fields: tuple[str, ...] = ()  # task.copied_fields served as spans of the request (eval.constrain_copies)
    best_val_loss: float | None = None
    peft_type: str | None = None
    base_fingerprint: str | None = None
    eval_summary: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()  # a labelled task's label set, which serving constrains answers to
    label_format: dict[str, Any] | None = None  # LabelFormat.to_json(): where the label sits in an answer
    neighbours: int = 0  # task.neighbours: prompts show this many retrieved examples (NEIGHBOUR_POOL)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "stop_token_ids": list(self.stop_token_ids), "labels": list(self.labels),
                "copied_fields": list(self.copied_fields)}

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> AdapterManifest:
        """Known fields only (a manifest may carry more); missing ones keep their defaults."""
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in payload.items() if key in known and value is not None}
        if "stop_token_ids" in values:
            values["stop_token_ids"] = tuple(int(i) for i in values["stop_token_ids"])
        for key in ("labels", "copied_fields"):
            if key in values:
                values[key] = tuple(str(item) for item in values[key])
        return cls(**values)

    @classmethod
    def read(cls, artifact_dir: Path) -> AdapterManifest:
        """The manifest in `artifact_dir`; an empty one for a plain PEFT adapter that has none."""
        path = artifact_dir / ADAPTER_MANIFEST
        return cls.from_json(read_json(path)) if path.is_file() else cls()


def new_run_dir(out: Path | None, task_name: str, base: Path = Path("runs")) -> RunPaths:
    """A fresh run directory: `out` if given (must be empty or absent), else runs/<task>-<time>."""
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        out = base / f"{task_name}-{stamp}"
    if out.exists() and any(out.iterdir()):
        raise TunewrightError(f"{out}: run directory is not empty; pass another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    return RunPaths(out)


def existing_run(path: Path) -> RunPaths:
    run = RunPaths(path)
    if not run.config.is_file():
        raise TunewrightError(f"{path}: not a run directory (no config.yaml); create one with `tunewright train`")
    return run


def write_text(path: Path, text: str, mode: int = ARTIFACT_MODE) -> None:
    write_bytes(path, text.encode("utf-8"), mode)


def write_bytes(path: Path, payload: bytes, mode: int = ARTIFACT_MODE) -> None:
    """Write a file atomically: a temp file in the same directory, given `mode`, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp directory beside `path`; it replaces `path` only if the block finishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        publish_modes(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def publish_modes(root: Path) -> None:
    """Directories under `root` (itself included) 0755, files 0644, files with an execute bit 0755."""
    root.chmod(SCRIPT_MODE)
    for item in root.rglob("*"):
        if item.is_symlink():
            continue
        executable = item.is_dir() or item.stat().st_mode & 0o111
        item.chmod(SCRIPT_MODE if executable else ARTIFACT_MODE)
