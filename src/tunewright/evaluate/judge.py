"""LLM-as-judge through an OpenAI-compatible endpoint: the judge reads the task's rubric, the input,
the reference and the answer, writes its reasoning, then a last line `VERDICT: PASS` or `FAIL`.
Answers without a readable verdict are counted as parse failures, never dropped silently."""

from __future__ import annotations

import re

from tunewright.config import JudgeConfig
from tunewright.evaluate.endpoint import api_key, chat_completion

VERDICT = re.compile(r"VERDICT:\s*\**\s*(PASS|FAIL)\b", re.IGNORECASE)

INSTRUCTIONS = """You grade one answer of an assistant against a rubric.
Rubric: {rubric}

First explain your reasoning in a few sentences. Then end with exactly one line:
VERDICT: PASS
or
VERDICT: FAIL"""


def judge_prompt(rubric: str, question: str, reference: str, answer: str) -> list[dict[str, str]]:
    user = f"Input:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}"
    return [{"role": "system", "content": INSTRUCTIONS.format(rubric=rubric)}, {"role": "user", "content": user}]


def parse_verdict(text: str) -> bool | None:
    """True for PASS, False for FAIL, None when the judge gave no readable verdict (the last one wins)."""
    found = VERDICT.findall(text)
    return None if not found else found[-1].upper() == "PASS"


def judge_answers(config: JudgeConfig, rows: list[tuple[str, str, str]]) -> tuple[list[bool | None], int]:
    """One verdict per (input, reference, answer) for the first config.max_rows rows (None after them
    and where unreadable), and how many judged answers had no readable verdict."""
    key = api_key(config.api_key_env)
    verdicts: list[bool | None] = [None] * len(rows)
    failures = 0
    for index, (question, reference, answer) in enumerate(rows[: config.max_rows]):
        reply = chat_completion(config.base_url, config.model, key,
                                judge_prompt(config.rubric, question, reference, answer), max_tokens=400)
        verdicts[index] = parse_verdict(reply)
        failures += verdicts[index] is None
    return verdicts, failures
