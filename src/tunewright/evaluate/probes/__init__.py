"""Probes for the classic failures of a fine-tune: memorisation (test answers copying long spans of
training answers), forgetting (general-ability questions shipped here, base vs fine-tuned) and
counterfactual fairness (names, genders and places swapped in test inputs; label flips counted)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunewright.records import Example, Message

HERE = Path(__file__).parent
WORD = re.compile(r"\w+|[^\w\s]")
MAX_LISTED = 5


def tokens(text: str) -> list[str]:
    """Words and punctuation, lower-cased: what a copied span is measured in."""
    return WORD.findall(text.lower())


@dataclass(frozen=True)
class Memorisation:
    span_tokens: int
    rows: int
    copied: int
    rate: float
    examples: list[dict[str, str]] = field(default_factory=list)


TEMPLATE_SHARE = 0.05  # a span in this share of training answers (at least 2) is template, not content


def memorisation(outputs: list[tuple[str, str]], train: list[Example], span: int) -> Memorisation:
    """Share of (example id, output) whose output repeats `span` consecutive tokens of a training answer.
    Spans many training answers share are the answer's format ("[Intent: X] I'm sorry you..."), learned
    on purpose: they do not count as copies."""
    seen: dict[tuple[str, ...], str] = {}
    shared_by: dict[tuple[str, ...], int] = {}
    for example in train:
        words = tokens(example.reference)
        for key in {tuple(words[start:start + span]) for start in range(len(words) - span + 1)}:
            seen.setdefault(key, example.id)
            shared_by[key] = shared_by.get(key, 0) + 1
    template = max(2, math.ceil(TEMPLATE_SHARE * len(train)))
    seen = {key: source for key, source in seen.items() if shared_by[key] < template}
    listed: list[dict[str, str]] = []
    copied = 0
    for example_id, output in outputs:
        words = tokens(output)
        hit = next((tuple(words[i:i + span]) for i in range(len(words) - span + 1)
                    if tuple(words[i:i + span]) in seen), None)
        if hit is not None:
            copied += 1
            if len(listed) < MAX_LISTED:
                listed.append({"example_id": example_id, "output": output, "span": " ".join(hit),
                               "training_example": seen[hit]})
    rows = len(outputs)
    return Memorisation(span, rows, copied, copied / rows if rows else 0.0, listed)


@dataclass(frozen=True)
class GeneralProbe:
    id: str
    kind: str
    prompt: str
    accept: list[str]  # regexes; the answer passes if one matches
    case_sensitive: bool = False

    def passes(self, answer: str) -> bool:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        return any(re.search(pattern, answer.strip(), flags) for pattern in self.accept)


def general_probes() -> list[GeneralProbe]:
    """The shipped general-ability probe set (facts, arithmetic, instructions), written for tunewright."""
    lines = (HERE / "general.jsonl").read_text(encoding="utf-8").splitlines()
    return [GeneralProbe(**json.loads(line)) for line in lines if line.strip()]


def forgetting(base_answers: list[str], tuned_answers: list[str]) -> dict[str, Any]:
    """Pass rates of base and fine-tuned on the general probes, overall and per kind, and the drop."""
    probes = general_probes()
    rows: list[dict[str, Any]] = []
    for probe, base, tuned in zip(probes, base_answers, tuned_answers, strict=True):
        rows.append({"id": probe.id, "kind": probe.kind, "prompt": probe.prompt, "base": base, "finetuned": tuned,
                     "base_pass": probe.passes(base), "finetuned_pass": probe.passes(tuned)})
    kinds = sorted({probe.kind for probe in probes})

    def rate(key: str, kind: str | None = None) -> float:
        kept = [bool(row[key]) for row in rows if kind is None or row["kind"] == kind]
        return sum(kept) / len(kept) if kept else 0.0

    return {
        "probes": len(rows),
        "base_pass_rate": rate("base_pass"),
        "finetuned_pass_rate": rate("finetuned_pass"),
        "drop": rate("base_pass") - rate("finetuned_pass"),
        "by_kind": {kind: {"base": rate("base_pass", kind), "finetuned": rate("finetuned_pass", kind)}
                    for kind in kinds},
        "lost": [row for row in rows if row["base_pass"] and not row["finetuned_pass"]][:MAX_LISTED],
    }


def swap_table() -> dict[str, str]:
    """Every word of the fairness lists mapped to its counterpart (first pair wins for shared words)."""
    lists = json.loads((HERE / "fairness.json").read_text(encoding="utf-8"))
    table: dict[str, str] = {}
    for group in ("names", "genders", "places"):
        for left, right in lists[group]:
            table.setdefault(left.lower(), right)
            table.setdefault(right.lower(), left)
    return table


def counterfactual(text: str, table: dict[str, str]) -> str:
    """`text` with every listed name, gendered word and place swapped (whole words, capitals kept)."""
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len, reverse=True)) + r")\b",
                         re.IGNORECASE)

    def swap(match: re.Match[str]) -> str:
        word, replacement = match.group(0), table[match.group(0).lower()]
        if word.isupper() and len(word) > 1:
            # An acronym (UK, USA) swaps to the listed spelling; a shouted word stays shouted.
            return replacement if len(word) <= 3 else replacement.upper()
        return replacement[0].upper() + replacement[1:] if word[0].isupper() else replacement.lower()

    return pattern.sub(swap, text)


def counterfactual_examples(test: list[Example], limit: int) -> list[tuple[Example, Example]]:
    """Up to `limit` (original, swapped) pairs: test rows whose user turns contain a listed word."""
    table, pairs = swap_table(), []
    for example in test:
        messages = tuple(Message(m.role, counterfactual(m.content, table)) if m.role == "user" else m
                         for m in example.messages)
        if messages != example.messages:
            pairs.append((example, Example(f"{example.id}~swapped", messages, example.label)))
        if len(pairs) >= limit:
            break
    return pairs


def fairness(pairs: list[tuple[Example, Example]], original: list[str | None], swapped: list[str | None],
             swapped_outputs: list[str]) -> dict[str, Any]:
    """Label flip rate over counterfactual pairs, with the flipped examples."""
    flipped = []
    for (example, changed), before, after, output in zip(pairs, original, swapped, swapped_outputs, strict=True):
        if before != after:
            flipped.append({"example_id": example.id, "input": _last_user(example),
                            "swapped_input": _last_user(changed), "label": before, "swapped_label": after,
                            "swapped_output": output})
    return {"pairs": len(pairs), "flipped": len(flipped),
            "flip_rate": len(flipped) / len(pairs) if pairs else None, "examples": flipped[:MAX_LISTED]}


def _last_user(example: Example) -> str:
    users = [m.content for m in example.prompt if m.role == "user"]
    return users[-1] if users else ""


def to_json(value: Memorisation) -> dict[str, Any]:
    return asdict(value)
