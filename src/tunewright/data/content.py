"""Suspicious content inside otherwise valid rows: refusal boilerplate in answers and chat-template
special tokens pasted into any turn. One regex pass over all texts for each."""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable

from tunewright.data.readers import Finding
from tunewright.data.textscan import offsets, texts_containing
from tunewright.records import Example

REFUSAL = re.compile(
    r"(?i)\bas an ai(?: language)? model\b|\bas an ai assistant,? i\b|\bi(?:'m| am) (?:sorry|afraid),? but i "
    r"(?:can(?:no|')t|am (?:not able|unable))\b|\bi cannot (?:fulfil|fulfill|comply with) (?:that|this|your) request"
)
# Lower-case literals every REFUSAL match contains: rows without one are skipped without a regex.
REFUSAL_HINTS = ["as an ai", "sorry, but i", "sorry but i", "afraid, but i", "afraid but i", "i cannot"]
# Control tokens of the common chat templates: pasted into content they fake or break turn boundaries.
TEMPLATE_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|begin_of_text|>",
                   "<|start_header_id|>", "<|end_header_id|>", "<start_of_turn>", "<end_of_turn>", "[INST]",
                   "[/INST]", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "</s>")


def check_content(examples: list[Example], extra_tokens: Iterable[str] = ()) -> list[Finding]:
    """Refusal boilerplate in answers (warning) and template special tokens in any turn (error)."""
    tokens = sorted({*TEMPLATE_TOKENS, *(t for t in extra_tokens if len(t) > 2)}, key=len, reverse=True)
    special = re.compile("|".join(re.escape(token) for token in tokens))
    findings: list[Finding] = []
    answers = [example.reference for example in examples]
    for row in texts_containing(answers, REFUSAL_HINTS, casefold=True):
        example = examples[row]
        match = REFUSAL.search(example.reference)
        if match:
            findings.append(Finding("warning", "refusal", f"answer contains refusal boilerplate {match.group()!r}; "
                                    "the model would learn to refuse", example.source,
                                    f"messages[{len(example.messages) - 1}]"))
    contents = [message.content for example in examples for message in example.messages]
    first_turn = offsets(len(example.messages) for example in examples)
    flagged: set[int] = set()
    for turn in texts_containing(contents, tokens):
        row = bisect_right(first_turn, turn) - 1
        example, index = examples[row], turn - first_turn[row]
        match = special.search(example.messages[index].content)
        if match and row not in flagged:
            flagged.add(row)
            findings.append(Finding("error", "special-token", f"{example.messages[index].role} turn contains the "
                                    f"chat-template token {match.group()!r}; remove it (the template adds its "
                                    "own)", example.source, f"messages[{index}]"))
    return sorted(findings, key=lambda finding: finding.code)
