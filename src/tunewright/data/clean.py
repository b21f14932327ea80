"""`data clean`: unicode and whitespace normalisation, label-variant mapping, personal-data redaction and
exact-duplicate removal. Writes a new JSONL file and a change log; never touches the input. Idempotent."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunewright.config import TaskConfig
from tunewright.data.formats import detect_format, to_example
from tunewright.data.labels import canonical_labels, normalise_label
from tunewright.data.pii import redact
from tunewright.data.preferences import is_preference_row, rows_to_preferences
from tunewright.data.readers import read_rows
from tunewright.errors import DataError
from tunewright.runs import write_jsonl

_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile("[\u00a0\u2000-\u200a\u202f\u205f\u3000]")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)


@dataclass(frozen=True)
class CleanResult:
    rows_in: int
    rows_out: int
    changes: list[dict[str, Any]]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change["action"]] = counts.get(change["action"], 0) + 1
        return counts


def clean_dataset(path: Path, out: Path, task: TaskConfig, redact_pii: bool = False,
                  map_labels: bool = False) -> CleanResult:
    """Write the cleaned rows of `path` to `out` and every change to `out`.changes.jsonl."""
    if out.resolve() == path.resolve():
        raise DataError(f"{out}: clean never overwrites its input; give another -o path")
    rows, _ = read_rows(path)
    canonical = canonical_labels(task.labels) if map_labels else {}
    changes: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for raw in rows:
        row = raw.value
        fmt = detect_format(row) if isinstance(row, dict) and not is_preference_row(row) else None
        usable = to_example(fmt, row, raw.source, task.label_regex)[0] if fmt else \
            is_preference_row(row) and bool(rows_to_preferences([raw])[0])
        if not usable:
            changes.append({"source": raw.source, "action": "drop-unusable",
                            "detail": "row cannot be read; see `data check`"})
            continue
        row = _clean_row(row, raw.source, changes, redact_pii)
        if canonical and fmt:  # preference rows carry no task label
            row = _map_labels(row, fmt or "", raw.source, task.label_regex, canonical, changes)
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key in seen:
            changes.append({"source": raw.source, "action": "drop-duplicate", "detail": f"same as {seen[key]}"})
            continue
        seen[key] = raw.source
        kept.append(row)
    write_jsonl(out, kept)
    write_jsonl(out.with_name(out.name + ".changes.jsonl"), changes)
    return CleanResult(len(rows), len(kept), changes)


def normalise_content(text: str) -> str:
    """NFC, invisible and control characters removed, odd spaces made plain, CRLF to LF, trailing
    spaces on each line and blank edges stripped. Indentation and inner spacing are kept."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", _INVISIBLE.sub("", text))
    return _TRAILING.sub("", text).strip()


def _clean_row(row: dict[str, Any], source: str, changes: list[dict[str, Any]], redact_pii: bool) -> dict[str, Any]:
    cleaned = dict(row)
    for field, value, setter in _content_fields(cleaned):
        new = normalise_content(value)
        if new != value:
            changes.append({"source": source, "action": "normalise", "field": field})
        if redact_pii:
            new, kinds = redact(new)
            if kinds:
                changes.append({"source": source, "action": "redact", "field": field, "detail": ", ".join(kinds)})
        setter(new)
    return cleaned


def _map_labels(row: dict[str, Any], fmt: str, source: str, label_regex: str | None, canonical: dict[str, str],
                changes: list[dict[str, Any]]) -> dict[str, Any]:
    if isinstance(row.get("label"), str) and row["label"] not in canonical.values():
        target = canonical.get(normalise_label(row["label"]))
        if target is not None:
            changes.append({"source": source, "action": "map-label", "field": "label",
                            "detail": f"{row['label']!r} -> {target!r}"})
            row["label"] = target
    answer_field = {"alpaca": "output", "prompt_completion": "completion"}.get(fmt)
    answer = row["messages"][-1]["content"] if fmt == "chat" else row[answer_field or ""]
    match = re.search(label_regex, answer) if label_regex else None
    if match is None or match.group("label").strip() in canonical.values():
        return row
    target = canonical.get(normalise_label(match.group("label")))
    if target is None:
        return row
    start, end = match.span("label")
    mapped = answer[:start] + target + answer[end:]
    if fmt == "chat":
        row["messages"] = [*row["messages"][:-1], {**row["messages"][-1], "content": mapped}]
    else:
        row[answer_field or ""] = mapped
    changes.append({"source": source, "action": "map-label", "field": answer_field or "messages",
                    "detail": f"{match.group('label')!r} -> {target!r}"})
    return row


def _content_fields(row: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """(field name, text, setter) for every text a model would read in `row`."""
    fields: list[tuple[str, str, Any]] = []
    for key in ("instruction", "input", "output", "prompt", "completion", "chosen", "rejected"):
        if isinstance(row.get(key), str):
            fields.append((key, row[key], lambda value, key=key: row.__setitem__(key, value)))
    if isinstance(row.get("messages"), list):
        row["messages"] = [dict(m) for m in row["messages"]]
        for index, message in enumerate(row["messages"]):
            fields.append((f"messages[{index}]", message["content"],
                           lambda value, message=message: message.__setitem__("content", value)))
    return fields
