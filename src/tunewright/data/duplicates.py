"""Duplicate findings: exact duplicate rows, near-duplicate inputs (MinHash, with the similarity), and the
same or near-same input with a conflicting label or answer."""

from __future__ import annotations

from tunewright.data.readers import Finding
from tunewright.data.similarity import NearDuplicates, near_duplicates
from tunewright.records import Example


def prompt_text(example: Example) -> str:
    """The text near-duplicate checks compare: every turn before the answer, system turns excluded."""
    return "\n".join(m.content for m in example.prompt if m.role != "system")


def input_clusters(examples: list[Example]) -> NearDuplicates:
    return near_duplicates([prompt_text(example) for example in examples])


def check_duplicates(examples: list[Example], clusters: NearDuplicates, labelled: bool) -> list[Finding]:
    """Exact duplicates (warning), conflicting labels for the same input (error) or a near-same one
    (warning), near-duplicate inputs (warning); for free-form tasks, one input with different answers."""
    findings = []
    seen: dict[tuple[str, ...], Example] = {}
    by_input: dict[str, Example] = {}
    for row, example in enumerate(examples):
        key = tuple(m.content for m in example.messages)
        first = seen.setdefault(key, example)
        if first is not example:
            findings.append(Finding("warning", "duplicate", f"same as {first.source}", example.source))
            continue
        earlier = by_input.setdefault(clusters.normalised[row], example)
        if earlier is example:
            continue
        if labelled and earlier.label != example.label:
            findings.append(Finding("error", "conflicting-labels", f"same input as {earlier.source} but label "
                                    f"{example.label!r} vs {earlier.label!r}; keep one", example.source))
        elif not labelled and earlier.reference.strip() != example.reference.strip():
            findings.append(Finding("warning", "conflicting-outputs", f"same input as {earlier.source} with a "
                                    "different answer; the model learns a mix of both", example.source))
    exact = {id(example) for example in seen.values()}
    inputs = {id(example) for example in by_input.values()}
    for row, first_row, similarity in clusters.pairs():
        example, anchor = examples[row], examples[first_row]
        if id(example) not in exact or id(example) not in inputs:
            continue  # already reported as an exact duplicate or same-input row
        if labelled and example.label != anchor.label:
            findings.append(Finding("warning", "near-conflicting-labels", f"input {similarity:.0%} similar to "
                                    f"{anchor.source} but label {example.label!r} vs {anchor.label!r}",
                                    example.source))
        else:
            findings.append(Finding("warning", "near-duplicate", f"input {similarity:.0%} similar to "
                                    f"{anchor.source}", example.source))
    return findings
