"""Turn raw rows into `Example` records: alpaca, chat or prompt/completion, detected per file, with a
finding (file:line:field) for every row that cannot be used as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunewright.data.readers import Finding, RawRow, read_rows
from tunewright.records import ROLES, Example, Message, content_hash, extract_label

__all__ = ["FORMATS", "Finding", "read_examples", "rows_to_examples"]

FORMATS: dict[str, set[str]] = {
    "alpaca": {"instruction", "output"},
    "chat": {"messages"},
    "prompt_completion": {"prompt", "completion"},
}
# The field each turn of a two-turn format is read from, to point content findings at it.
CONTENT_FIELDS: dict[str, dict[str, str]] = {
    "alpaca": {"user": "instruction", "assistant": "output"},
    "prompt_completion": {"user": "prompt", "assistant": "completion"},
}
OPTIONAL_FIELDS: dict[str, set[str]] = {
    "alpaca": {"input", "label", "group", "id"},
    "chat": {"label", "group", "id", "source"},
    "prompt_completion": {"label", "group", "id"},
}

ALLOWED_FIELDS = {fmt: FORMATS[fmt] | OPTIONAL_FIELDS[fmt] for fmt in FORMATS}
STRING_FIELDS = {fmt: ALLOWED_FIELDS[fmt] - {"messages"} for fmt in FORMATS}


def read_examples(path: Path, label_regex: str | None = None) -> tuple[list[Example], list[Finding]]:
    """Every usable example of `path`, and a finding for every row that could not be used."""
    rows, findings = read_rows(path)
    examples, more = rows_to_examples(rows, label_regex)
    return examples, findings + more


def rows_to_examples(rows: list[RawRow], label_regex: str | None) -> tuple[list[Example], list[Finding]]:
    examples: list[Example] = []
    findings: list[Finding] = []
    detected: str | None = None
    for raw in rows:
        if not isinstance(raw.value, dict):
            findings.append(Finding("error", "not-an-object", "each row must be a JSON object", raw.source))
            continue
        fmt = detect_format(raw.value)
        if fmt is None:
            findings.append(Finding("error", "unknown-format", "expected instruction/output, messages, or "
                                    f"prompt/completion fields; got {sorted(raw.value)}", raw.source))
            continue
        if detected is None:
            detected = fmt
        elif fmt != detected:
            findings.append(Finding("error", "mixed-formats", f"row is {fmt} but the file started as "
                                    f"{detected}; use one format per file", raw.source))
            continue
        example, row_findings = to_example(fmt, raw.value, raw.source, label_regex)
        findings.extend(row_findings)
        if example is not None:
            examples.append(example)
    return examples, findings


def detect_format(row: dict[str, Any]) -> str | None:
    """The format whose required fields the row has, else the one it has some fields of."""
    for fmt, required in FORMATS.items():
        if required <= row.keys():
            return fmt
    for fmt, required in FORMATS.items():
        if required & row.keys():
            return fmt
    return None


def to_example(
    fmt: str, row: dict[str, Any], source: str, label_regex: str | None
) -> tuple[Example | None, list[Finding]]:
    findings = _field_findings(fmt, row, source)
    if any(f.severity == "error" for f in findings):
        return None, findings
    if fmt == "alpaca":
        extra = row.get("input") or ""
        user = row["instruction"] + (f"\n\n{extra}" if extra and not extra.isspace() else "")
        messages: tuple[Message, ...] = (Message("user", user), Message("assistant", row["output"]))
    elif fmt == "prompt_completion":
        messages = (Message("user", row["prompt"]), Message("assistant", row["completion"]))
    else:
        parsed = _chat_messages(row["messages"], source)
        if isinstance(parsed, Finding):
            return None, [*findings, parsed]
        messages = parsed
    findings += _content_findings(fmt, row, messages, source)
    if any(f.severity == "error" for f in findings):
        return None, findings
    label = row.get("label") or extract_label(messages[-1].content, label_regex)
    example_id = row.get("id") or content_hash(messages)[:16]
    return Example(example_id, messages, label, row.get("group") or None, source), findings


def _field_findings(fmt: str, row: dict[str, Any], source: str) -> list[Finding]:
    """Missing required fields, ignored unknown ones, and fields that must be strings but are not."""
    keys = row.keys()
    if not FORMATS[fmt] <= keys:
        missing = sorted(FORMATS[fmt] - keys)[0]
        return [Finding("error", "missing-field", f"{fmt} rows need {sorted(FORMATS[fmt])}; "
                        f"{missing!r} is missing", source, missing)]
    findings = [] if keys <= ALLOWED_FIELDS[fmt] else [
        Finding("warning", "unknown-field", f"ignored field {key!r}", source, key)
        for key in sorted(keys - ALLOWED_FIELDS[fmt])]
    optional = OPTIONAL_FIELDS[fmt]
    for key, value in row.items():
        if type(value) is not str and key in STRING_FIELDS[fmt] and not (value is None and key in optional):
            findings.append(Finding("error", "wrong-type", f"expected a string, got {type(value).__name__}",
                                    source, key))
    return findings


def _content_findings(fmt: str, row: dict[str, Any], messages: tuple[Message, ...], source: str) -> list[Finding]:
    """Empty turns and NUL characters, named by the field they came from."""
    findings = []
    for index, message in enumerate(messages):
        field = f"messages[{index}]" if fmt == "chat" else CONTENT_FIELDS[fmt][message.role]
        if not message.content or message.content.isspace():
            findings.append(Finding("error", "empty-content", f"{message.role} turn {index} is empty",
                                    source, field))
        elif "\x00" in message.content:
            if fmt == "alpaca" and message.role == "user" and "\x00" in (row.get("input") or ""):
                field = "input"
            findings.append(Finding("error", "nul-byte", f"{message.role} turn {index} contains a NUL "
                                    "character (\\u0000); remove it", source, field))
    return findings


def _chat_messages(value: Any, source: str) -> tuple[Message, ...] | Finding:
    if not isinstance(value, list) or not value:
        return Finding("error", "wrong-type", "messages must be a non-empty list", source, "messages")
    messages = []
    for index, item in enumerate(value):
        field = f"messages[{index}]"
        if not isinstance(item, dict) or "content" not in item:
            return Finding("error", "missing-field", "each message needs 'role' and 'content'", source, field)
        if not isinstance(item["content"], str):
            return Finding("error", "wrong-type", f"content must be a string, got {type(item['content']).__name__}",
                           source, f"{field}.content")
        if item.get("role") not in ROLES:
            return Finding("error", "unknown-role", f"role {item.get('role')!r} is not one of {ROLES}",
                           source, f"{field}.role")
        messages.append(Message(item["role"], item["content"]))
    if not any(m.role == "assistant" for m in messages):
        return Finding("error", "no-assistant-turn", "no assistant turn: there is no answer to learn",
                       source, "messages")
    if messages[-1].role != "assistant":
        return Finding("error", "last-turn-not-assistant", "the last message must be the assistant's answer",
                       source, "messages")
    return tuple(messages)
