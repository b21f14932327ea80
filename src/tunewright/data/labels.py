"""Label checks against the task card: answers without a label, labels outside the set, and variants
of a known label that differ only by case, punctuation, spacing or unicode form."""

from __future__ import annotations

import string
import unicodedata
from collections import Counter, defaultdict

from tunewright.data.readers import Finding
from tunewright.records import Example

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise_label(label: str) -> str:
    """Case, punctuation, spacing and unicode form folded away: 'Fraud report.' == 'fraud  Report'."""
    folded = unicodedata.normalize("NFKC", label).casefold().translate(_PUNCTUATION)
    return " ".join(folded.split())


def canonical_labels(labels: list[str]) -> dict[str, str]:
    """Normalised form -> the label as the task card spells it."""
    return {normalise_label(label): label for label in labels}


def check_labels(examples: list[Example], labels: list[str]) -> list[Finding]:
    known = canonical_labels(labels)
    allowed = set(labels)
    findings = []
    counts = Counter(example.label for example in examples)
    variants: dict[tuple[str, str], list[Example]] = defaultdict(list)
    for example in examples:
        if example.label in allowed:
            continue
        if example.label is None:
            findings.append(Finding("error", "no-label", "the answer carries no label the task regex finds",
                                    example.source, "output"))
            continue
        canonical = known.get(normalise_label(example.label))
        if canonical is None:
            findings.append(Finding("error", "unknown-label", f"label {example.label!r} is not in "
                                    f"task.labels {labels}", example.source, "output"))
        else:
            variants[(example.label, canonical)].append(example)
    for (variant, canonical), rows in variants.items():
        findings.append(Finding("error", "label-variant", f"{variant!r} x{len(rows)} is a variant of "
                                f"{canonical!r} x{counts[canonical]}; map it with `data clean --map-labels`",
                                rows[0].source, "output"))
    return findings
