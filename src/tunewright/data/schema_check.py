"""Answers against task.output_schema: every output parsed as JSON and validated (errors, each with
its JSON path), values of task.copied_fields that the input does not contain (invented spans,
warnings), and how often each field is present (`data stats`)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tunewright.data.readers import Finding
from tunewright.records import Example
from tunewright.schema import answer_fields, copied_values, parse_answer


def check_outputs(examples: list[Example], schema: dict[str, Any], copied: list[str]) -> list[Finding]:
    """One error per answer that is not JSON, one per schema violation, one warning per invented span."""
    findings = []
    for example in examples:
        field = f"messages[{len(example.messages) - 1}]"
        parsed = parse_answer(example.reference, schema)
        if not parsed.valid_json:
            findings.append(Finding("error", "output-not-json", f"the answer is {parsed.json_error}; the task's "
                                    "output_schema expects one JSON object", example.source, field))
            continue
        findings.extend(Finding("error", "schema-violation", str(violation), example.source, field)
                        for violation in parsed.violations)
        source_text = "\n".join(m.content for m in example.prompt if m.role == "user").casefold()
        for path, value in copied_values(parsed.value, copied):
            if value.casefold() not in source_text:
                findings.append(Finding("warning", "invented-span", f"$.{path}: {value!r} does not occur in the "
                                        "input, though task.copied_fields says it is copied from it",
                                        example.source, field))
    return findings


def field_coverage(examples: list[Example], schema: dict[str, Any]) -> dict[str, int]:
    """Answers in which each field is present, by field path (lists counted once per answer)."""
    counts: Counter[str] = Counter()
    for example in examples:
        parsed = parse_answer(example.reference, schema)
        if parsed.valid_json:
            counts.update({path for path, _ in answer_fields(parsed.value)})
    return dict(sorted(counts.items()))
