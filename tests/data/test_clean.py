"""data clean: normalisation, label mapping, redaction and duplicate removal, with a change log; the input
is never touched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunewright.config import TaskConfig
from tunewright.data.clean import clean_dataset, normalise_content
from tunewright.errors import DataError

TASK = TaskConfig(name="t", system_prompt="", labels=["Fraud Report", "General Inquiry"],
                  label_regex=r"^\[Intent: (?P<label>[^\]]+)\]")


def write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_normalise_content() -> None:
    assert normalise_content("  Caf\u0065\u0301\u00a0bill \u200b\r\nline two\t \n") == "Caf\u00e9 bill\nline two"
    assert normalise_content("    indented\n        code") == "indented\n        code"


def test_clean_writes_output_and_change_log_and_keeps_input(tmp_path: Path) -> None:
    rows: list[object] = [
        {"instruction": "Triage.", "input": "card stolen,  mail me at ann@example.com ",
         "output": "[Intent: fraud report.] Ok"},
        {"instruction": "Triage.", "input": "card stolen,  mail me at ann@example.com",
         "output": "[Intent: Fraud Report] Ok"},
        {"instruction": "Triage.", "input": "pay with 4111 1111 1111 1111?", "output": "[Intent: General Inquiry] No"},
        "{broken",
    ]
    source = write(tmp_path / "in.jsonl", rows)
    before = source.read_bytes()
    out = tmp_path / "out.jsonl"
    result = clean_dataset(source, out, TASK, redact_pii=True, map_labels=True)
    assert source.read_bytes() == before
    cleaned = read(out)
    assert len(cleaned) == 2 and result.rows_in == 3 and result.rows_out == 2
    assert cleaned[0]["input"] == "card stolen,  mail me at <EMAIL>"
    assert cleaned[0]["output"] == "[Intent: Fraud Report] Ok"
    assert cleaned[1]["input"] == "pay with <CARD>?"
    changes = read(tmp_path / "out.jsonl.changes.jsonl")
    actions = {(Path(str(c["source"])).name, c["action"]) for c in changes}
    assert ("in.jsonl:1", "normalise") in actions and ("in.jsonl:1", "map-label") in actions
    assert ("in.jsonl:1", "redact") in actions and ("in.jsonl:2", "drop-duplicate") in actions
    assert ("in.jsonl:3", "redact") in actions
    assert "ann@example.com" not in (tmp_path / "out.jsonl.changes.jsonl").read_text()  # the log leaks nothing


def test_chat_rows_and_explicit_label_field(tmp_path: Path) -> None:
    row = {"messages": [{"role": "user", "content": "hi\u00a0there"},
                        {"role": "assistant", "content": "[Intent: GENERAL INQUIRY] hello"}],
           "label": "general inquiry"}
    out = tmp_path / "out.jsonl"
    clean_dataset(write(tmp_path / "in.jsonl", [row]), out, TASK, map_labels=True)
    (cleaned,) = read(out)
    assert cleaned["label"] == "General Inquiry"
    assert cleaned["messages"][0]["content"] == "hi there"  # type: ignore[index]
    assert cleaned["messages"][1]["content"] == "[Intent: General Inquiry] hello"  # type: ignore[index]


def test_clean_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    source = write(tmp_path / "in.jsonl", [{"prompt": "a", "completion": "b"}])
    with pytest.raises(DataError, match="never overwrites"):
        clean_dataset(source, source, TASK)
