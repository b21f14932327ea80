"""What travels with an exported model so it answers as tunewright does: the task's system prompt as
the chat template's default, and a model card (README.md) saying what the model is and how to call it.
Never imports torch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

CARD_METRICS = ("label_accuracy", "macro_f1", "rubric_pass_rate", "rouge_l")


def template_with_default_system(template: str, system_prompt: str) -> str:
    """`template` with `system_prompt` put first whenever a conversation does not start with a system
    message, so a client that sends only the user's message gets the prompt the model was trained with.
    The prompt is a JSON string literal, which Jinja reads with the same escapes."""
    if not system_prompt:
        return template
    literal = json.dumps(system_prompt, ensure_ascii=False)
    return ("{%- if not messages or messages[0]['role'] != 'system' %}"
            f"{{%- set messages = [{{'role': 'system', 'content': {literal}}}] + messages %}}"
            "{%- endif %}" + template)


@dataclass(frozen=True)
class ModelCard:
    """The facts a model card states; `render` writes them as Markdown."""

    title: str
    base_model: str
    task: str
    description: str
    method: str
    system_prompt: str
    stop_tokens: tuple[str, ...]
    labels: tuple[str, ...] = ()
    evaluation: dict[str, Any] = field(default_factory=dict)
    usage: str = ""  # Markdown: how to load and call this artifact

    def render(self) -> str:
        lines = [f"# {self.title}", "",
                 f"`{self.base_model}` fine-tuned with tunewright ({self.method}) for the task **{self.task}**"
                 + (f": {self.description}" if self.description else "."), ""]
        if self.labels:
            lines += [f"Labels: {', '.join(self.labels)}.", ""]
        lines += ["## System prompt", "",
                  "The model was trained and evaluated with this system prompt. The chat template puts it first "
                  "whenever a conversation has no system message, so a client may send only the user's message; "
                  "a client that sends its own system message replaces it, and the answers are then not the "
                  "ones tunewright evaluated.", "", *(f"    {line}" for line in self.system_prompt.splitlines()), "",
                  f"Stop tokens: {', '.join(f'`{token}`' for token in self.stop_tokens)} (greedy decoding "
                  "reproduces tunewright's answers).", ""]
        lines += _evaluation_lines(self.evaluation)
        if self.usage:
            lines += ["## How to call it", "", self.usage.strip(), ""]
        return "\n".join(lines)


def _evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    candidates = evaluation.get("candidates") or {}
    if not candidates:
        return ["## Evaluation", "", "Not evaluated yet (`tunewright eval RUN`).", ""]
    lines = ["## Evaluation", "",
             f"Decision: **{evaluation.get('decision') or '—'}** on {evaluation.get('test_rows') or '?'} "
             "held-out test rows.", "",
             "| candidate | " + " | ".join(CARD_METRICS) + " |", "|---" * (len(CARD_METRICS) + 1) + "|"]
    for name, metrics in candidates.items():
        cells = [_cell(metrics.get(metric)) for metric in CARD_METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "—"
