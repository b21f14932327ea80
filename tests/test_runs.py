"""Run-directory records: the adapter manifest round-trips through JSON and tolerates what it does not
know (older manifests, keys other tools add); written files are readable and scripts executable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tunewright.runs import ADAPTER_MANIFEST, SCRIPT_MODE, AdapterManifest, atomic_dir, write_json, write_text


def test_adapter_manifest_round_trips_and_ignores_unknown_keys(tmp_path: Path) -> None:
    manifest = AdapterManifest(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", method="qlora",
                               quantized_base="nf4", task="triage", system_prompt="Label it.",
                               stop_token_ids=(2, 7), best_val_loss=0.25, eval_summary={"decision": "go"})
    assert AdapterManifest.from_json(manifest.to_json()) == manifest
    write_json(tmp_path / ADAPTER_MANIFEST, {**manifest.to_json(), "final_loss": 0.1, "peft_type": None})
    assert AdapterManifest.read(tmp_path) == manifest
    assert AdapterManifest.read(tmp_path / "missing") == AdapterManifest()


@pytest.fixture()
def private_umask() -> Iterator[None]:
    """Files created now start private (0600 / 0700), as temp files always do."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_written_files_are_readable_and_scripts_executable(tmp_path: Path, private_umask: None) -> None:
    write_json(tmp_path / "summary.json", {"ok": True})
    write_text(tmp_path / "serve.sh", "#!/bin/sh\necho hi\n", SCRIPT_MODE)
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "weights.safetensors").write_bytes(b"x")
        (tmp / "nested").mkdir()
        (tmp / "nested" / "run.sh").write_text("#!/bin/sh\n")
        (tmp / "nested" / "run.sh").chmod(0o700)
    modes = {path.relative_to(tmp_path).as_posix(): stat.S_IMODE(path.stat().st_mode)
             for path in tmp_path.rglob("*")}
    assert modes == {"summary.json": 0o644, "serve.sh": 0o755, "model": 0o755, "model/weights.safetensors": 0o644,
                     "model/nested": 0o755, "model/nested/run.sh": 0o755}
