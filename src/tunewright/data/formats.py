"""Read dataset files into `Example` records: JSONL or a JSON array, in alpaca, chat or
prompt/completion form, detected per file. Problems become findings with file:line:field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.records import ROLES, Example, Message, content_hash, extract_label

FORMATS: dict[str, set[str]] = {
    "alpaca": {"instruction", "output"},
    "chat": {"messages"},
    "prompt_completion": {"prompt", "completion"},
}
# The field each turn of a two-turn format is read from, to point empty-content findings at it.
CONTENT_FIELDS: dict[str, dict[str, str]] = {
    "alpaca": {"user": "instruction", "assistant": "output"},
    "prompt_completion": {"user": "prompt", "assistant": "completion"},
}
OPTIONAL_FIELDS: dict[str, set[str]] = {
    "alpaca": {"input", "label", "group", "id"},
    "chat": {"label", "group", "id"},
    "prompt_completion": {"label", "group", "id"},
}


@dataclass(frozen=True)
class Finding:
    """One problem in a dataset, located as precisely as we can."""

    severity: str  # "error" | "warning"
    code: str
    message: str
    source: str  # "file:line" or "file"
    field: str | None = None

    def line(self) -> str:
        where = f"{self.source}:{self.field}" if self.field else self.source
        return f"{where}: {self.severity} {self.code}: {self.message}"


def read_examples(path: Path, label_regex: str | None = None) -> tuple[list[Example], list[Finding]]:
    """Every readable example of `path`, and a finding for every row that could not be used."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return [], [Finding("error", "unreadable", str(exc), str(path))]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return [], [Finding("error", "bad-utf8", f"not UTF-8 at byte {exc.start}; re-save as UTF-8",
                            f"{path}:{line}")]
    rows, findings = _parse_rows(path, text)
    examples: list[Example] = []
    detected: str | None = None
    for source, row in rows:
        fmt = _detect(row)
        if fmt is None:
            findings.append(Finding("error", "unknown-format", "expected instruction/output, messages, or "
                                    f"prompt/completion fields; got {sorted(row)}", source))
            continue
        if detected is None:
            detected = fmt
        elif fmt != detected:
            findings.append(Finding("error", "mixed-formats", f"row is {fmt} but the file started as "
                                    f"{detected}; use one format per file", source))
            continue
        example, row_findings = _to_example(fmt, row, source, label_regex)
        findings.extend(row_findings)
        if example is not None:
            examples.append(example)
    return examples, findings


def _parse_rows(path: Path, text: str) -> tuple[list[tuple[str, dict[str, Any]]], list[Finding]]:
    rows: list[tuple[str, dict[str, Any]]] = []
    findings: list[Finding] = []
    if text.lstrip().startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            return [], [Finding("error", "invalid-json", exc.msg, f"{path}:{exc.lineno}")]
        items = list(enumerate(parsed, start=1))
        label = "item"
    else:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                findings.append(Finding("error", "invalid-json", f"{exc.msg} (column {exc.colno})",
                                        f"{path}:{number}"))
        label = ""
    for number, item in items:
        source = f"{path}:{label}{number}"
        if isinstance(item, dict):
            rows.append((source, item))
        else:
            findings.append(Finding("error", "not-an-object", "each row must be a JSON object", source))
    return rows, findings


def _detect(row: dict[str, Any]) -> str | None:
    for fmt, required in FORMATS.items():
        if required <= row.keys():
            return fmt
    return None


def _to_example(
    fmt: str, row: dict[str, Any], source: str, label_regex: str | None
) -> tuple[Example | None, list[Finding]]:
    findings = [Finding("warning", "unknown-field", f"ignored field {key!r}", source, key)
                for key in sorted(row.keys() - FORMATS[fmt] - OPTIONAL_FIELDS[fmt])]
    for key in sorted((FORMATS[fmt] | OPTIONAL_FIELDS[fmt]) & row.keys() - {"messages"}):
        if not isinstance(row[key], str):
            findings.append(Finding("error", "wrong-type", f"expected a string, got {type(row[key]).__name__}",
                                    source, key))
    if any(f.severity == "error" for f in findings):
        return None, findings
    if fmt == "alpaca":
        user = row["instruction"] + (f"\n\n{row['input']}" if row.get("input", "").strip() else "")
        messages: tuple[Message, ...] = (Message("user", user), Message("assistant", row["output"]))
    elif fmt == "prompt_completion":
        messages = (Message("user", row["prompt"]), Message("assistant", row["completion"]))
    else:
        parsed = _chat_messages(row["messages"], source)
        if isinstance(parsed, Finding):
            return None, [*findings, parsed]
        messages = parsed
    for index, message in enumerate(messages):
        if not message.content.strip():
            field = f"messages[{index}]" if fmt == "chat" else CONTENT_FIELDS[fmt][message.role]
            findings.append(Finding("error", "empty-content", f"{message.role} turn {index} is empty",
                                    source, field))
    if any(f.severity == "error" for f in findings):
        return None, findings
    label = row.get("label") or extract_label(messages[-1].content, label_regex)
    example_id = row.get("id") or content_hash(messages)[:16]
    return Example(example_id, messages, label, row.get("group"), source), findings


def _chat_messages(value: Any, source: str) -> tuple[Message, ...] | Finding:
    if not isinstance(value, list) or not value:
        return Finding("error", "wrong-type", "messages must be a non-empty list", source, "messages")
    messages = []
    for index, item in enumerate(value):
        field = f"messages[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            return Finding("error", "wrong-type", "each message needs a string 'content'", source, field)
        if item.get("role") not in ROLES:
            return Finding("error", "unknown-role", f"role {item.get('role')!r} is not one of {ROLES}",
                           source, field)
        messages.append(Message(item["role"], item["content"]))
    if messages[-1].role != "assistant":
        return Finding("error", "no-assistant-turn", "the last message must be the assistant's answer",
                       source, "messages")
    return tuple(messages)
