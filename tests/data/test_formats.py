"""Reading dataset files: three formats detected in JSONL or a JSON array, and every defect reported
as a finding with its code, file:line and field."""

import json
from pathlib import Path
from typing import Any

import pytest

from tunewright.data.formats import read_examples
from tunewright.records import Message, content_hash

REGEX = r"^\[Intent: (?P<label>[^\]]+)\]"
ALPACA = {"instruction": "Triage this.", "input": "card stolen", "output": "[Intent: Fraud Report] Sorry."}
CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "card stolen"},
                     {"role": "assistant", "content": "[Intent: Fraud Report] Sorry."}]}
PROMPT_COMPLETION = {"prompt": "card stolen", "completion": "[Intent: Fraud Report] Sorry."}


def jsonl(*rows: Any) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


def chat(*turns: tuple[Any, Any]) -> dict[str, Any]:
    return {"messages": [{"role": role, "content": content} for role, content in turns]}


def write(tmp_path: Path, content: str | bytes, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "fmt_messages"),
    [
        (ALPACA, [("user", "Triage this.\n\ncard stolen"), ("assistant", "[Intent: Fraud Report] Sorry.")]),
        ({**ALPACA, "input": " "}, [("user", "Triage this."), ("assistant", "[Intent: Fraud Report] Sorry.")]),
        (CHAT, [("system", "Be brief."), ("user", "card stolen"), ("assistant", "[Intent: Fraud Report] Sorry.")]),
        (PROMPT_COMPLETION, [("user", "card stolen"), ("assistant", "[Intent: Fraud Report] Sorry.")]),
    ],
    ids=["alpaca", "alpaca-blank-input", "chat", "prompt-completion"],
)
@pytest.mark.parametrize("container", ["jsonl", "json-array"])
def test_each_format_is_read_from_jsonl_and_json_array(
    tmp_path: Path, rows: dict[str, Any], fmt_messages: list[tuple[str, str]], container: str
) -> None:
    second = {**rows, "label": "General Inquiry", "group": "customer-7", "id": "row-2"}
    if container == "jsonl":
        path = write(tmp_path, jsonl(rows, second))
        sources = [f"{path}:1", f"{path}:2"]
    else:
        path = write(tmp_path, json.dumps([rows, second], indent=2), name="data.json")
        sources = [f"{path}:item1", f"{path}:item2"]
    examples, findings = read_examples(path, REGEX)
    assert findings == []
    assert len(examples) == 2
    first, other = examples
    expected = tuple(Message(role, content) for role, content in fmt_messages)  # type: ignore[arg-type]
    assert first.messages == expected
    assert first.label == "Fraud Report"  # found by the task regex in the answer
    assert first.id == content_hash(expected)[:16]
    assert first.group is None
    assert [first.source, other.source] == sources
    assert other.label == "General Inquiry"  # an explicit label wins over the regex
    assert (other.id, other.group) == ("row-2", "customer-7")


def test_same_conversation_gets_the_same_id(tmp_path: Path) -> None:
    examples, _ = read_examples(write(tmp_path, jsonl(PROMPT_COMPLETION, PROMPT_COMPLETION)))
    assert examples[0].id == examples[1].id


def test_without_regex_no_label_is_extracted(tmp_path: Path) -> None:
    examples, _ = read_examples(write(tmp_path, jsonl(ALPACA)))
    assert examples[0].label is None


GOOD = jsonl(ALPACA)
DEFECTS = [
    # (file content, code, line, field, severity)
    pytest.param(jsonl(ALPACA, '{"instruction": "x", "output":'), "invalid-json", 2, None, "error",
                 id="invalid-json"),
    pytest.param(jsonl(ALPACA, "", "", "{not json}"), "invalid-json", 4, None, "error",
                 id="invalid-json-after-blank-lines"),
    pytest.param('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": }\n]\n', "invalid-json", 3, None,
                 "error", id="invalid-json-array"),
    pytest.param(jsonl(ALPACA, '"just a string"'), "not-an-object", 2, None, "error", id="not-an-object"),
    pytest.param(jsonl(ALPACA, "[1, 2]"), "not-an-object", 2, None, "error", id="list-row"),
    pytest.param(json.dumps([ALPACA, 7]), "not-an-object", "item2", None, "error", id="not-an-object-array"),
    pytest.param(jsonl({"question": "q", "answer": "a"}), "unknown-format", 1, None, "error", id="unknown-format"),
    pytest.param(jsonl(ALPACA, PROMPT_COMPLETION), "mixed-formats", 2, None, "error", id="mixed-formats"),
    pytest.param(jsonl(CHAT, CHAT, ALPACA), "mixed-formats", 3, None, "error", id="mixed-formats-chat-first"),
    pytest.param(jsonl({**ALPACA, "output": 3}), "wrong-type", 1, "output", "error", id="wrong-type-output"),
    pytest.param(jsonl({**ALPACA, "label": 1}), "wrong-type", 1, "label", "error", id="wrong-type-label"),
    pytest.param(jsonl({**PROMPT_COMPLETION, "prompt": ["a"]}), "wrong-type", 1, "prompt", "error",
                 id="wrong-type-prompt"),
    pytest.param(jsonl({"messages": "hello"}), "wrong-type", 1, "messages", "error", id="wrong-type-messages"),
    pytest.param(jsonl({"messages": []}), "wrong-type", 1, "messages", "error", id="empty-messages"),
    pytest.param(jsonl(chat(("user", "hi"), ("assistant", 5))), "wrong-type", 1, "messages[1].content",
                 "error", id="wrong-type-content"),
    pytest.param(jsonl(chat(("bot", "hi"), ("assistant", "ok"))), "unknown-role", 1, "messages[0].role",
                 "error", id="unknown-role"),
    pytest.param(jsonl(CHAT, chat(("user", "hi"), ("human", "ok"))), "unknown-role", 2, "messages[1].role",
                 "error", id="unknown-role-second-row"),
    pytest.param(jsonl(chat(("user", "hi"), ("assistant", "ok"), ("user", "thanks"))), "last-turn-not-assistant",
                 1, "messages", "error", id="last-turn-not-assistant"),
    pytest.param(jsonl(chat(("system", "be nice"), ("user", "hi"))), "no-assistant-turn", 1, "messages", "error",
                 id="no-assistant-turn"),
    pytest.param(jsonl(chat(("user", "hi"), ("assistant", "  "))), "empty-content", 1, "messages[1]", "error",
                 id="empty-content-chat"),
    pytest.param(jsonl(ALPACA, {**ALPACA, "output": ""}), "empty-content", 2, "output", "error",
                 id="empty-content-alpaca-output"),
    pytest.param(jsonl({"instruction": " ", "output": "ok"}), "empty-content", 1, "instruction", "error",
                 id="empty-content-alpaca-instruction"),
    pytest.param(jsonl({**PROMPT_COMPLETION, "completion": "\n"}), "empty-content", 1, "completion", "error",
                 id="empty-content-completion"),
    pytest.param(jsonl({**PROMPT_COMPLETION, "prompt": ""}), "empty-content", 1, "prompt", "error",
                 id="empty-content-prompt"),
    pytest.param(GOOD.encode() + b'{"instruction": "caf\xe9", "output": "x"}\n', "bad-utf8", 2, None, "error",
                 id="bad-utf8"),
    pytest.param(jsonl(ALPACA, {**ALPACA, "notes": "x"}), "unknown-field", 2, "notes", "warning",
                 id="unknown-field"),
]


@pytest.mark.parametrize(("content", "code", "line", "field", "severity"), DEFECTS)
def test_each_defect_is_one_finding_located_by_file_line_and_field(
    tmp_path: Path, content: str | bytes, code: str, line: int | str, field: str | None, severity: str
) -> None:
    path = write(tmp_path, content)
    examples, findings = read_examples(path, REGEX)
    assert [(f.code, f.source, f.field, f.severity) for f in findings] == [(code, f"{path}:{line}", field, severity)]
    assert findings[0].message
    rendered = findings[0].line()
    assert rendered.startswith(f"{path}:{line}") and f"{severity} {code}: " in rendered
    if field is not None:
        assert f":{line}:{field}:" in rendered
    bad_rows_kept = [e for e in examples if e.source == f"{path}:{line}"]
    # Errors drop the row; a warning keeps it.
    assert len(bad_rows_kept) == (1 if severity == "warning" else 0)


def test_good_rows_survive_next_to_bad_ones(tmp_path: Path) -> None:
    path = write(tmp_path, jsonl(ALPACA, "{broken", {**ALPACA, "output": 1}, {**ALPACA, "input": "other"}))
    examples, findings = read_examples(path, REGEX)
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:4"]
    assert [(f.code, f.source) for f in findings] == [("invalid-json", f"{path}:2"), ("wrong-type", f"{path}:3")]


def test_missing_file_is_one_unreadable_finding(tmp_path: Path) -> None:
    examples, findings = read_examples(tmp_path / "absent.jsonl")
    assert examples == []
    assert [f.code for f in findings] == ["unreadable"]
