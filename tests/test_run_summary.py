"""summary.json and training_result.json as typed records: they round-trip, and a file written by a
newer version (with keys this one does not know) still reads."""

from __future__ import annotations

from pathlib import Path

from tunewright.run_summary import RunSummary, TrainingResult
from tunewright.runs import write_json

TRAINING = {"steps": 6, "planned_steps": 10, "best_val_loss": None, "best_step": None, "stopped_early": True,
            "overfitting_alert": False, "train_tokens": 1200, "train_tokens_per_second": 300.0, "seconds": 75.0,
            "precision": "fp32", "trainable_parameters": 1000, "total_parameters": 100000}
SUMMARY = {"decision": "no-go", "decision_reasons": ["too few rows"], "task": "triage", "base_model": "tiny",
           "method": "lora", "data": {"train": 20, "val": 4, "test": 3}, "training": TRAINING,
           "eval": {"test_rows": 3, "best_baseline": "few_shot", "gate": {"metric": "label_accuracy"},
                    "candidates": {"finetuned": {"rows": 3, "label_accuracy": 0.5}}},
           "artifacts": {"adapter": "adapter"}, "timings": {"total_seconds": 12.5}}


def test_summary_round_trips_through_its_file(tmp_path: Path) -> None:
    summary = RunSummary.from_json(SUMMARY)
    assert summary.evaluation.candidates["finetuned"]["label_accuracy"] == 0.5
    assert summary.training.best_val_loss is None and summary.training.method == "lora"
    write_json(tmp_path / "summary.json", summary.to_json())
    again = RunSummary.read(tmp_path / "summary.json")
    assert again == summary and again.to_json()["eval"]["best_baseline"] == "few_shot"


def test_unknown_keys_from_a_newer_version_are_ignored() -> None:
    newer = {**SUMMARY, "new_section": {"x": 1}, "training": {**TRAINING, "new_counter": 3}}
    summary = RunSummary.from_json(newer)
    assert summary.training == TrainingResult.from_json(TRAINING)
    assert "new_section" not in summary.to_json()
