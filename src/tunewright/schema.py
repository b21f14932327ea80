"""The task's output schema (task.output_schema, a JSON Schema for answers that are one JSON object):
checked against its metaschema, answers parsed and validated with JSON paths, and answers flattened
into (field, value) pairs for field-level scoring. Never imports torch."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators

Field = tuple[str, str]  # (field path such as "slots.city", the value as canonical JSON text)


@dataclass(frozen=True)
class Violation:
    path: str  # JSON path into the answer: "$", "$.slots.city", "$.items[2]"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class ParsedAnswer:
    """An answer read as JSON: `value` is None when it is not JSON (then `json_error` says why)."""

    value: Any
    json_error: str | None
    violations: tuple[Violation, ...]

    @property
    def valid_json(self) -> bool:
        return self.json_error is None

    @property
    def valid_schema(self) -> bool:
        return self.json_error is None and not self.violations


def load_schema(value: dict[str, Any] | str) -> dict[str, Any]:
    """An inline schema as it is, or the JSON file a string names; checked against its metaschema and
    required to describe an object. Raises ValueError with one line saying what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(Path(value).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"schema file {value} not found") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"schema file {value} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("task.output_schema must be a JSON Schema object (a mapping) or a path to one")
    try:
        validators.validator_for(value).check_schema(value)
    except schema_errors.SchemaError as exc:
        raise ValueError(f"task.output_schema is not a valid JSON Schema: {_json_path(exc.path)}: "
                         f"{exc.message}") from None
    if value.get("type") != "object":
        raise ValueError('task.output_schema must describe a JSON object (top-level "type": "object")')
    return value


def parse_answer(text: str, schema: dict[str, Any]) -> ParsedAnswer:
    """Parse an answer as JSON and validate it; every violation with its JSON path, in path order."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return ParsedAnswer(None, f"not valid JSON: {exc.msg} at character {exc.pos}", ())
    validator = validators.validator_for(schema)(schema)
    found = sorted(validator.iter_errors(value), key=lambda error: [str(part) for part in error.absolute_path])
    return ParsedAnswer(value, None, tuple(Violation(_json_path(e.absolute_path), e.message) for e in found))


def answer_fields(value: Any, prefix: str = "") -> Counter[Field]:
    """The answer's leaves as (field path, value) pairs, a multiset: nested objects join keys with '.',
    list items share their list's path with '[]' (order does not matter), a scalar's value is its
    canonical JSON. A non-object answer has no fields."""
    fields: Counter[Field] = Counter()
    if isinstance(value, dict):
        for key, item in value.items():
            fields.update(answer_fields(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list):
        for item in value:
            fields.update(answer_fields(item, f"{prefix}[]"))
    elif prefix:
        fields[(prefix, json.dumps(value, ensure_ascii=False, sort_keys=True))] += 1
    return fields


def copied_values(value: Any, patterns: list[str]) -> list[tuple[str, str]]:
    """(field path, text) of every string leaf whose path matches one of `patterns` (fnmatch, e.g.
    'slots.*'): the values the task says are copied from the input."""
    return [(path, json.loads(text)) for (path, text) in answer_fields(value)
            if any(fnmatchcase(path, pattern) for pattern in patterns) and text.startswith('"')]


def wrong_fields(gold: Counter[Field], predicted: Counter[Field]) -> list[str]:
    """Fields of one row whose values differ between gold and answer, for highlighting in the report."""
    gold_by, predicted_by = by_field(gold), by_field(predicted)
    return sorted(name for name in gold_by.keys() | predicted_by.keys()
                  if gold_by.get(name, Counter()) != predicted_by.get(name, Counter()))


def by_field(pairs: Counter[Field]) -> dict[str, Counter[str]]:
    """The values of each field path."""
    grouped: dict[str, Counter[str]] = {}
    for (name, value), count in pairs.items():
        grouped.setdefault(name, Counter())[value] += count
    return grouped


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
