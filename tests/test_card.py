"""The task's system prompt as a chat template's default: any prompt text (quotes, braces, newlines,
emoji) comes out verbatim, a conversation with its own system message is untouched, and the model card
states what a client needs."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tunewright.card import ModelCard, template_with_default_system

CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
PROMPTS = ["Label it.", 'Say "hi" and {{ not this }} {% raw %}', "Line one\nline two\ttab \\ backslash",
           "Émoji 🚀 and 中文 and \u200d joiner", "It's [Intent: X]"]


def render(template: str, messages: list[dict[str, str]]) -> str:
    """As transformers and llama-cpp-python render chat templates: a sandboxed Jinja environment."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(messages=messages, add_generation_prompt=True)


@pytest.mark.parametrize("system_prompt", PROMPTS)
def test_default_system_prompt_renders_verbatim(system_prompt: str) -> None:
    template = template_with_default_system(CHATML, system_prompt)
    user = [{"role": "user", "content": "hello"}]
    assert render(template, user) == render(CHATML, [{"role": "system", "content": system_prompt}, *user])
    own = [{"role": "system", "content": "Be brief."}, *user]
    assert render(template, own) == render(CHATML, own)


def test_no_system_prompt_leaves_the_template_alone() -> None:
    assert template_with_default_system(CHATML, "") == CHATML


def test_card_states_prompt_stops_and_evaluation() -> None:
    card = ModelCard(title="support (merged)", base_model="HuggingFaceTB/SmolLM2-135M-Instruct", task="support",
                     description="Triage.", method="lora", system_prompt="Label it.\nThen reply.",
                     stop_tokens=("<|im_end|>",), labels=("Fraud", "Other"),
                     evaluation={"decision": "go", "test_rows": 40,
                                 "candidates": {"finetuned": {"label_accuracy": 0.925}, "zero_shot": {}}},
                     usage="call it").render()
    assert "    Label it.\n    Then reply." in card and "`<|im_end|>`" in card and "Labels: Fraud, Other." in card
    assert "**go** on 40" in card and "| finetuned | 0.925 | — | — | — |" in card and "| zero_shot | — |" in card
    assert card.index("## How to call it") > card.index("## Evaluation")
