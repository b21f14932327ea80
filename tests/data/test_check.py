"""Dataset checks against the task card: labels, variants, duplicates, conflicts, size and balance."""

import json
from pathlib import Path

import pytest

from tunewright.config import TaskConfig, load_config
from tunewright.data.check import MIN_EXAMPLES_LORA, MIN_PER_LABEL, check_dataset, normalise_label
from tunewright.data.formats import Finding

REPO = Path(__file__).resolve().parents[2]
LABELS = ["Fraud Report", "General Inquiry"]
TASK = TaskConfig(name="triage", system_prompt="Label it.", labels=LABELS,
                  label_regex=r"^\[Intent: (?P<label>[^\]]+)\]")


def row(text: str, label: str | None) -> dict[str, str]:
    output = f"[Intent: {label}] Thanks." if label is not None else "Thanks, we will look."
    return {"instruction": "Triage.", "input": text, "output": output}


def balanced(n: int) -> list[dict[str, str]]:
    """n distinct, well-formed rows alternating between the two labels."""
    return [row(f"message number {i}", LABELS[i % 2]) for i in range(n)]


def write(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def test_clean_dataset_has_no_findings(tmp_path: Path) -> None:
    report = check_dataset(write(tmp_path, balanced(MIN_EXAMPLES_LORA)), TASK)
    assert report.findings == []
    assert len(report.examples) == MIN_EXAMPLES_LORA
    summary = report.to_json()
    assert summary["errors"] == summary["warnings"] == 0
    assert summary["labels"] == {"Fraud Report": 50, "General Inquiry": 50}


@pytest.mark.parametrize(
    ("bad_row", "code", "field"),
    [
        (row("no label here", None), "no-label", "output"),
        (row("a loan question", "Loan Request"), "unknown-label", "output"),
    ],
)
def test_label_errors_point_at_the_row(tmp_path: Path, bad_row: dict[str, str], code: str, field: str) -> None:
    path = write(tmp_path, [*balanced(MIN_EXAMPLES_LORA), bad_row])
    report = check_dataset(path, TASK)
    assert codes(report.findings) == [code]
    finding = report.errors[0]
    assert (finding.source, finding.field) == (f"{path}:{MIN_EXAMPLES_LORA + 1}", field)


def test_unknown_label_message_lists_the_known_labels(tmp_path: Path) -> None:
    report = check_dataset(write(tmp_path, [*balanced(MIN_EXAMPLES_LORA), row("x", "Loan Request")]), TASK)
    assert "'Loan Request'" in report.errors[0].message
    assert all(label in report.errors[0].message for label in LABELS)


def test_label_variants_are_grouped_with_count_and_canonical_name(tmp_path: Path) -> None:
    variants = [row(f"variant {i}", "fraud report.") for i in range(3)]
    path = write(tmp_path, [*balanced(MIN_EXAMPLES_LORA), *variants, row("spaced", "General  inquiry")])
    report = check_dataset(path, TASK)
    found = [f for f in report.findings if f.code == "label-variant"]
    assert len(found) == 2
    fraud = next(f for f in found if "fraud report." in f.message)
    assert "x3" in fraud.message and "'Fraud Report'" in fraud.message
    assert fraud.source == f"{path}:{MIN_EXAMPLES_LORA + 1}"  # the first occurrence
    general = next(f for f in found if "General  inquiry" in f.message)
    assert "x1" in general.message and "'General Inquiry'" in general.message
    assert all(f.severity == "error" for f in found)


@pytest.mark.parametrize(
    ("variant", "canonical"),
    [("fraud report.", "fraud report"), ("Fraud-Report", "fraudreport"), (" GENERAL\tInquiry! ", "general inquiry"),
     ("Ｆraud Report", "fraud report")],
)
def test_normalise_label_folds_case_punctuation_spacing_and_width(variant: str, canonical: str) -> None:
    assert normalise_label(variant) == canonical


def test_exact_duplicate_is_a_warning_naming_the_first_row(tmp_path: Path) -> None:
    rows = balanced(MIN_EXAMPLES_LORA)
    path = write(tmp_path, [*rows, rows[0]])
    report = check_dataset(path, TASK)
    assert codes(report.findings) == ["duplicate"]
    finding = report.findings[0]
    assert finding.severity == "warning"
    assert finding.source == f"{path}:{MIN_EXAMPLES_LORA + 1}"
    assert f"{path}:1" in finding.message


def test_same_input_with_different_labels_conflicts(tmp_path: Path) -> None:
    rows = balanced(MIN_EXAMPLES_LORA)
    conflicting = row("  MESSAGE number 0 ", "General Inquiry")  # same input up to case and spacing
    path = write(tmp_path, [*rows, conflicting])
    report = check_dataset(path, TASK)
    assert codes(report.findings) == ["conflicting-labels"]
    finding = report.errors[0]
    assert finding.source == f"{path}:{MIN_EXAMPLES_LORA + 1}"
    assert f"{path}:1" in finding.message
    assert "'General Inquiry'" in finding.message and "'Fraud Report'" in finding.message


def test_same_input_with_same_label_and_different_reply_is_fine(tmp_path: Path) -> None:
    rows = balanced(MIN_EXAMPLES_LORA)
    rephrased = {**rows[0], "output": "[Intent: Fraud Report] Sorry to hear that."}
    assert check_dataset(write(tmp_path, [*rows, rephrased]), TASK).findings == []


def test_small_dataset_warns_too_few_examples(tmp_path: Path) -> None:
    path = write(tmp_path, balanced(MIN_EXAMPLES_LORA - 1))
    report = check_dataset(path, TASK)
    assert codes(report.findings) == ["too-few-examples"]
    assert report.findings[0].severity == "warning"
    assert str(MIN_EXAMPLES_LORA - 1) in report.findings[0].message
    assert report.findings[0].source == str(path)


def test_rare_label_warns_with_its_count(tmp_path: Path) -> None:
    rows = [row(f"fraud {i}", "Fraud Report") for i in range(MIN_EXAMPLES_LORA)]
    rows += [row(f"question {i}", "General Inquiry") for i in range(MIN_PER_LABEL - 1)]
    report = check_dataset(write(tmp_path, rows), TASK)
    assert codes(report.findings) == ["rare-label"]
    assert "'General Inquiry'" in report.findings[0].message
    assert f"has {MIN_PER_LABEL - 1} examples" in report.findings[0].message


def test_absent_label_is_rare_with_zero(tmp_path: Path) -> None:
    rows = [row(f"fraud {i}", "Fraud Report") for i in range(MIN_EXAMPLES_LORA)]
    report = check_dataset(write(tmp_path, rows), TASK)
    assert codes(report.findings) == ["rare-label"]
    assert "has 0 examples" in report.findings[0].message


def test_free_form_task_skips_label_checks(tmp_path: Path) -> None:
    task = TaskConfig(name="style", system_prompt="Rewrite it.")
    rows = [row(f"text {i}", None) for i in range(MIN_EXAMPLES_LORA)]
    assert check_dataset(write(tmp_path, rows), task).findings == []


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    report = check_dataset(write(tmp_path, []), TASK)
    assert codes(report.errors) == ["empty"]


def test_unreadable_rows_are_reported_alongside_checks(tmp_path: Path) -> None:
    path = write(tmp_path, balanced(MIN_EXAMPLES_LORA))
    with path.open("a", encoding="utf-8") as handle:
        handle.write("{broken\n")
    report = check_dataset(path, TASK)
    assert codes(report.findings) == ["invalid-json"]
    assert len(report.examples) == MIN_EXAMPLES_LORA


def test_shipped_example_passes_against_its_own_task_card() -> None:
    config = load_config(REPO / "examples" / "fintech-support" / "tunewright.yaml")
    report = check_dataset(config.data.path, config.task)
    assert report.errors == []
    assert len(report.examples) >= MIN_EXAMPLES_LORA
    labels = report.to_json()["labels"]
    assert set(labels) == set(config.task.labels)
    assert min(labels.values()) >= MIN_PER_LABEL
