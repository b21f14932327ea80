"""Token lengths after the chat template: the fast path equals tokenizing every rendered row; rows the
limit cuts are flagged, an answer-less window is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from tunewright.chat import encode_example
from tunewright.data.lengths import check_lengths, token_lengths
from tunewright.records import Example, Message

TEXTS = ["card stolen", "Café bill £4.50 — twice?", "tabs\tand\n\nnewlines  ", " leading space", "emoji 🙂 ok",
         "digits ²³ and ½", "combining e\u0301", "under_score __x__", "it's they're we've", "<|im_end|> pasted",
         "nbsp\u00a0here", "x" * 300]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def rows() -> list[Example]:
    made = []
    for i, text in enumerate(TEXTS):
        made.append(Example(str(i), (Message("user", text), Message("assistant", f"reply {text}"))))
        made.append(Example(f"{i}s", (Message("system", "Own system."), Message("user", text),
                                      Message("assistant", "ok"), Message("user", "again"),
                                      Message("assistant", text))))
    return made


def test_fast_lengths_equal_the_templates_own_tokenization(tokenizer: Any) -> None:
    examples = rows()
    lengths = token_lengths(examples, tokenizer, "Be brief.")
    for example, length in zip(examples, lengths, strict=True):
        assert length == len(encode_example(tokenizer, example, "Be brief.", 10_000).input_ids), example.messages


def test_cut_answer_is_a_warning_and_no_answer_at_all_an_error(tokenizer: Any) -> None:
    short = Example("a", (Message("user", "hi"), Message("assistant", "ok")), source="f:1")
    long_answer = Example("b", (Message("user", "hi"), Message("assistant", "word " * 200)), source="f:2")
    long_prompt = Example("c", (Message("user", "word " * 200), Message("assistant", "ok")), source="f:3")
    examples = [short, long_answer, long_prompt]
    lengths = token_lengths(examples, tokenizer, "")
    findings = check_lengths(examples, lengths, tokenizer, "", 64)
    assert [(f.code, f.severity, f.source) for f in findings] == [("too-long", "warning", "f:2"),
                                                                  ("prompt-too-long", "error", "f:3")]
    assert "end-of-turn" in findings[0].message
