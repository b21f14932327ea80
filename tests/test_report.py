"""The reports: both files carry the decision, every candidate and its numbers; the HTML is self-contained
and escapes user text; the loss curve is a whole PNG; changed examples are shown."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from tunewright.records import Example, Message, Prediction
from tunewright.report import write_reports
from tunewright.run_summary import RunSummary
from tunewright.runs import RunPaths, write_jsonl

CANDIDATES = ("finetuned", "zero_shot", "few_shot")
# (example id, user input, gold label, few_shot label, finetuned label)
ROWS = [
    ("ex-improved", "Refund <script>alert(1)</script> please", "refund", "other", "refund"),
    ("ex-regressed", "Where is my parcel?", "shipping", "shipping", "other"),
    ("ex-same", "Hello there", "other", "other", "other"),
]


def _metrics(accuracy: float, rubric: float) -> dict[str, Any]:
    return {"rows": 3, "label_accuracy": accuracy, "macro_f1": accuracy - 0.1, "rubric_pass_rate": rubric,
            "rubric": {"short": rubric}, "no_label_rate": None}


def _summary() -> dict[str, Any]:
    return {
        "decision": "go",
        "decision_reasons": ["label_accuracy: finetuned 0.667 vs best baseline few_shot 0.333"],
        "task": "support-triage",
        "base_model": "tiny-llama",
        "method": "lora",
        "data": {"train": 20, "val": 4, "test": 3},
        "training": {
            "steps": 6, "planned_steps": 10, "best_val_loss": 1.2345, "best_step": 4, "stopped_early": True,
            "overfitting_alert": True, "train_tokens": 1200, "train_tokens_per_second": 300.0,
            "seconds": 75.0, "precision": "fp32", "trainable_parameters": 1000, "total_parameters": 100000,
        },
        "eval": {
            "test_rows": 3,
            "best_baseline": "few_shot",
            "gate": {"metric": "label_accuracy", "beat_by": 0.05, "max_rubric_regression": 0.02},
            "candidates": {"finetuned": _metrics(0.667, 1.0), "zero_shot": _metrics(0.25, 0.5),
                           "few_shot": _metrics(0.333, 0.75)},
        },
        "artifacts": {},
        "timings": {},
    }


def _write_run(run: RunPaths) -> None:
    write_jsonl(run.metrics, [
        {"step": step, "epoch": step / 10, "train_loss": 2.0 - step * 0.2, "val_loss": None, "lr": 1e-4,
         "grad_norm": 1.0, "tokens_seen": step * 200, "elapsed": step * 1.0} for step in range(1, 7)
    ] + [
        {"step": step, "epoch": step / 10, "train_loss": None, "val_loss": loss, "lr": None,
         "grad_norm": None, "tokens_seen": step * 200, "elapsed": step * 1.0}
        for step, loss in ((2, 1.5), (4, 1.2345), (6, 1.3))
    ])
    write_jsonl(run.split_file("test"), [
        Example(id=row_id, label=gold, messages=(
            Message("system", "Triage the ticket."),
            Message("user", text),
            Message("assistant", f"label: {gold}"),
        )).to_json()
        for row_id, text, gold, _, _ in ROWS
    ])
    for candidate, column in (("finetuned", 4), ("zero_shot", 3), ("few_shot", 3)):
        write_jsonl(run.predictions(candidate), [
            asdict(Prediction(example_id=row[0], candidate=candidate, output=f"label: {row[column]}",
                              reference=f"label: {row[2]}", label=row[2], predicted_label=str(row[column]),
                              rubric={"short": True}))
            for row in ROWS
        ])


@pytest.fixture
def reported_run(tmp_path: Path) -> RunPaths:
    run = RunPaths(tmp_path / "run")
    _write_run(run)
    write_reports(run, RunSummary.from_json(_summary()))
    return run


def test_both_reports_carry_decision_candidates_and_numbers(reported_run: RunPaths) -> None:
    for path in (reported_run.report_md, reported_run.report_html):
        text = path.read_text(encoding="utf-8")
        assert "GO" in text and "label_accuracy: finetuned 0.667" in text
        for candidate in CANDIDATES:
            assert candidate in text
        for number in ("66.7%", "25.0%", "33.3%", "56.7%"):
            assert number in text
        assert "no-label rate" not in text  # a metric no candidate has is left out
        assert "stopped early at step 6" in text and "Overfitting alert" in text


def test_loss_curve_is_a_png_embedded_in_html_and_linked_from_markdown(reported_run: RunPaths) -> None:
    assert reported_run.loss_plot.read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in reported_run.report_html.read_text(encoding="utf-8")
    assert "![loss curve](loss_curve.png)" in reported_run.report_md.read_text(encoding="utf-8")


def test_html_escapes_user_text(reported_run: RunPaths) -> None:
    html = reported_run.report_html.read_text(encoding="utf-8")
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_changed_examples_come_first(reported_run: RunPaths) -> None:
    for path in (reported_run.report_md, reported_run.report_html):
        text = path.read_text(encoding="utf-8")
        assert "1 improved, 1 regressed" in text
        assert text.index("ex-improved") < text.index("ex-regressed") < text.index("ex-same")
        assert "improved" in text[text.index("ex-improved") - 80: text.index("ex-improved") + 80]


def _evidence(summary: dict[str, Any]) -> dict[str, Any]:
    evaluation = summary["eval"]
    evaluation["candidates"]["finetuned"]["confusion"] = {"refund": {"refund": 1}, "shipping": {"other": 1},
                                                          "other": {"other": 1}}
    evaluation["comparisons"] = [
        {"metric": "label_accuracy", "candidate": "finetuned", "baseline": "few_shot", "difference": 0.334,
         "ci95": [0.05, 0.6]},
        {"metric": "rubric_pass_rate", "candidate": "finetuned", "baseline": "few_shot", "difference": 0.25,
         "ci95": [-0.1, 0.5]},
    ]
    evaluation["bootstrap_resamples"] = 1000
    evaluation["probes"] = {
        "memorisation": {"span_tokens": 12, "rows": 3, "copied": 1, "rate": 1 / 3,
                         "examples": [{"example_id": "ex-same", "output": "o", "span": "a long copied span",
                                       "training_example": "train-7"}]},
        "forgetting": {"probes": 24, "base_pass_rate": 0.5, "finetuned_pass_rate": 0.25, "drop": 0.25,
                       "by_kind": {"fact": {"base": 0.5, "finetuned": 0.25}},
                       "lost": [{"prompt": "What is the capital of France?", "base": "Paris", "finetuned": "refund"}]},
        "fairness": {"pairs": 4, "flipped": 1, "flip_rate": 0.25,
                     "examples": [{"input": "James lost his card", "swapped_input": "Mary lost her card",
                                   "label": "lost", "swapped_label": "other", "swapped_output": "other"}]},
    }
    return summary


def test_reports_show_intervals_confusion_and_probes(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    _write_run(run)
    write_reports(run, RunSummary.from_json(_evidence(_summary())))
    for path in (run.report_md, run.report_html):
        text = path.read_text(encoding="utf-8")
        assert "[+5.0, +60.0]" in text and "better" in text and "not distinguishable" in text
        assert "Confusion matrix" in text and "reference" in text
        assert "a long copied span" in text and "1 of 3 fine-tuned test answers" in text
        assert "fact 50.0% to 25.0%" in text and "capital of France" in text
        assert "Forgetting: on fact questions the base model passes 50.0%" in text  # in the alerts at the top
        assert text.index("Forgetting: on fact") < text.index("Metrics on the test split")
        assert "changed its label on 1 (25.0%)" in text and "Mary lost her card" in text


def test_report_compares_two_rounds(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    _write_run(run)
    older = _summary()
    older["decision"] = "no-go"
    older["eval"]["candidates"]["finetuned"] = _metrics(0.333, 0.5)
    write_reports(run, RunSummary.from_json(_summary()), ("round-1", RunSummary.from_json(older)))
    for path in (run.report_md, run.report_html):
        text = path.read_text(encoding="utf-8")
        assert "Compared with round-1" in text and "+33.4" in text and "no-go" in text


def test_report_says_first_when_an_embedding_classifier_is_enough(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    _write_run(run)
    summary = _summary()
    summary["eval"]["label_without_llm"] = {
        "candidate": "embedding_classifier", "metric": "label_accuracy", "value": 0.9, "best_prompting": 0.333,
        "finetuned": 0.667, "finetune_needed": False,
        "finetune_adds": {"rubric_pass_rate": {"finetuned": 1.0, "embedding_classifier": 0.0}}}
    write_reports(run, RunSummary.from_json(summary))
    for path in (run.report_md, run.report_html):
        text = path.read_text(encoding="utf-8")
        lead = text.index("An LLM fine-tune is not needed for the label")
        assert lead < text.index("clears the quality gate") and "rubric pass rate 100.0% vs 0.0%" in text
