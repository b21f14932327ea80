"""The table-driven suite: one small file per defect under tests/data/cases/, each checked end to end
(tiny model's chat template included) for exactly the findings expected, by code, line and field.

Size warnings (too-few-examples, rare-label) are left out of the comparison: every file here is tiny."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tunewright.config import TaskConfig
from tunewright.data.check import check_dataset

CASES = Path(__file__).parent / "cases"
TASK = TaskConfig(name="triage", system_prompt="Label it.", labels=["Fraud Report", "General Inquiry"],
                  label_regex=r"^\[Intent: (?P<label>[^\]]+)\]")
SCHEMA_TASK = TaskConfig(
    name="slots", system_prompt="Extract the intent and slots as JSON.", copied_fields=["slots.*"],
    output_schema={"type": "object", "required": ["intent", "slots"], "additionalProperties": False,
                   "properties": {"intent": {"enum": ["AddToPlaylist", "GetWeather", "PlayMusic", "RateBook",
                                                      "SearchCreativeWork"]},
                                  "slots": {"type": "object", "additionalProperties": {"type": "string"}}}})
MAX_SEQ_LEN = 96
SIZE_CODES = {"too-few-examples", "rare-label"}

# (file, [(severity, code, line, field), ...]); line is what follows "FILE:" in the finding's source.
TABLE = [
    ("invalid_json.jsonl", [("error", "invalid-json", "3", None)]),
    ("not_an_object.jsonl", [("error", "not-an-object", "2", None)]),
    ("unknown_format.jsonl", [("error", "unknown-format", "4", None)]),
    ("mixed_formats.jsonl", [("error", "mixed-formats", "3", None)]),
    ("wrong_type.jsonl", [("error", "wrong-type", "7", "output")]),
    ("missing_field.jsonl", [("error", "missing-field", "7", "output")]),
    ("unknown_field.jsonl", [("warning", "unknown-field", "5", "notes")]),
    ("unknown_role.jsonl", [("error", "unknown-role", "7", "messages[0].role")]),
    ("no_assistant_turn.jsonl", [("error", "no-assistant-turn", "2", "messages")]),
    ("last_turn_not_assistant.jsonl", [("error", "last-turn-not-assistant", "7", "messages")]),
    ("empty_content.jsonl", [("error", "empty-content", "6", "output")]),
    ("whitespace_content.jsonl", [("error", "empty-content", "7", "instruction")]),
    ("bad_utf8.jsonl", [("error", "bad-utf8", "4", None)]),
    ("bom.jsonl", [("warning", "bom", "1", None)]),
    ("nul_byte.jsonl", [("error", "nul-byte", "3", None)]),
    ("nul_escaped.jsonl", [("error", "nul-byte", "7", "input")]),
    ("long_line.jsonl", [("warning", "long-line", "2", None), ("error", "prompt-too-long", "2", "messages[1]")]),
    ("no_label.jsonl", [("error", "no-label", "7", "output")]),
    ("unknown_label.jsonl", [("error", "unknown-label", "4", "output")]),
    ("label_variant.jsonl", [("error", "label-variant", "7", "output")]),
    ("exact_duplicate.jsonl", [("warning", "duplicate", "7", None)]),
    ("near_duplicate.jsonl", [("warning", "near-duplicate", "7", None)]),
    ("conflicting_labels.jsonl", [("error", "conflicting-labels", "7", None)]),
    ("near_conflicting_labels.jsonl", [("warning", "near-conflicting-labels", "7", None)]),
    ("pii_email.jsonl", [("warning", "pii", "7", "messages[0]")]),
    ("pii_card.jsonl", [("warning", "pii", "3", "messages[0]")]),
    ("pii_iban.jsonl", [("warning", "pii", "7", "messages[0]")]),
    ("pii_phone.jsonl", [("warning", "pii", "7", "messages[0]")]),
    ("pii_national_id.jsonl", [("warning", "pii", "7", "messages[0]")]),
    ("refusal.jsonl", [("warning", "refusal", "7", "messages[1]")]),
    ("special_token.jsonl", [("error", "special-token", "5", "messages[0]")]),
    ("too_long.jsonl", [("warning", "too-long", "7", "messages[1]")]),
    ("prompt_too_long.jsonl", [("error", "prompt-too-long", "7", "messages[1]")]),
    ("array_invalid.json", [("error", "invalid-json", "5", None)]),
    ("array_not_object.json", [("error", "not-an-object", "item3", None)]),
    ("csv_extra_cell.csv", [("error", "wrong-column-count", "8", None)]),
    ("csv_empty_output.csv", [("error", "empty-content", "8", "output")]),
    ("parquet_missing_output.parquet", [("error", "wrong-type", "row3", "output")]),
    ("empty.jsonl", [("error", "empty", "", None)]),
    ("too_deep.jsonl", [("error", "too-deep", "2", None)]),
]

# Answers checked against SCHEMA_TASK's output_schema: (file, [(severity, code, line, field, message start)]).
SCHEMA_TABLE = [
    ("schema_not_json.jsonl", [("error", "output-not-json", "3", "messages[1]", "the answer is not valid JSON")]),
    ("schema_wrong_type.jsonl", [("error", "schema-violation", "5", "messages[1]",
                                  "$.slots.object_type: 5 is not of type 'string'")]),
    ("schema_missing_field.jsonl", [("error", "schema-violation", "4", "messages[1]",
                                     "$: 'intent' is a required property")]),
    ("schema_not_in_enum.jsonl", [("error", "schema-violation", "7", "messages[1]",
                                   "$.intent: 'AddSong' is not one of")]),
    ("schema_invented_span.jsonl", [("warning", "invented-span", "6", "messages[1]", "$.slots.city: 'Porto'")]),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> object:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_every_case_file_is_in_the_table() -> None:
    assert sorted(path.name for path in CASES.iterdir()) == sorted(name for name, _ in TABLE + SCHEMA_TABLE)
    assert len(TABLE) >= 30


@pytest.mark.parametrize(("name", "expected"), TABLE, ids=[name for name, _ in TABLE])
def test_each_case_gives_exactly_its_findings(name: str, expected: list[tuple[str, str, str, str | None]],
                                              tokenizer: object) -> None:
    path = CASES / name
    report = check_dataset(path, TASK, tokenizer, MAX_SEQ_LEN)  # type: ignore[arg-type]
    found = [(f.severity, f.code, f.source.removeprefix(str(path)).removeprefix(":"), f.field)
             for f in report.findings if f.code not in SIZE_CODES]
    assert sorted(found, key=str) == sorted(expected, key=str)
    for finding in report.findings:
        assert finding.line().startswith(f"{path}") and f" {finding.severity} {finding.code}: " in finding.line()


@pytest.mark.parametrize(("name", "expected"), SCHEMA_TABLE, ids=[name for name, _ in SCHEMA_TABLE])
def test_each_schema_case_gives_exactly_its_findings(name: str, expected: list[tuple[str, ...]],
                                                     tokenizer: object) -> None:
    path = CASES / name
    report = check_dataset(path, SCHEMA_TASK, tokenizer, 4 * MAX_SEQ_LEN)  # type: ignore[arg-type]
    found = [f for f in report.findings if f.code not in SIZE_CODES]
    assert [(f.severity, f.code, f.source.removeprefix(f"{path}:"), f.field) for f in found] == \
        [row[:4] for row in expected]
    for finding, row in zip(found, expected, strict=True):
        assert finding.message.startswith(row[4]), finding.message
