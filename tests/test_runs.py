"""Run-directory records: the adapter manifest round-trips through JSON and tolerates what it does not
know (older manifests, keys other tools add)."""

from __future__ import annotations

from pathlib import Path

from tunewright.runs import ADAPTER_MANIFEST, AdapterManifest, write_json


def test_adapter_manifest_round_trips_and_ignores_unknown_keys(tmp_path: Path) -> None:
    manifest = AdapterManifest(base_model="HuggingFaceTB/SmolLM2-135M-Instruct", method="qlora",
                               quantized_base="nf4", task="triage", system_prompt="Label it.",
                               stop_token_ids=(2, 7), best_val_loss=0.25, eval_summary={"decision": "go"})
    assert AdapterManifest.from_json(manifest.to_json()) == manifest
    write_json(tmp_path / ADAPTER_MANIFEST, {**manifest.to_json(), "final_loss": 0.1, "peft_type": None})
    assert AdapterManifest.read(tmp_path) == manifest
    assert AdapterManifest.read(tmp_path / "missing") == AdapterManifest()
