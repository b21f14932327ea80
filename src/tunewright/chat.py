"""Turn examples into chat messages and token ids with the model's own chat template.

Training, evaluation and serving all build prompts here, so the template and system prompt a model
was trained with are exactly the ones it is asked with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunewright.chat_content import chat_ids
from tunewright.records import Example, Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX everywhere but the assistant answer and its end-of-turn token
    truncated: bool
    label_span: tuple[int, int] | None = None  # token positions of the task label inside the answer


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[dict[str, str]]:
    """Chat dicts for the template; the task's system prompt is added unless one is already there."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if system_prompt and (not chat or chat[0]["role"] != "system"):
        chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


def prompt_ids(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation up to and including the assistant header; control-token text inside
    a message's content is encoded as plain text."""
    return chat_ids(tokenizer, chat, add_generation_prompt=True)


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    example: Example,
    system_prompt: str,
    max_seq_len: int,
    label_regex: str | None = None,
) -> EncodedExample:
    """Input ids and labels with loss only on the final assistant answer (end-of-turn included);
    with `label_regex`, also where the label sits among the answer's tokens."""
    prompt_chat = with_system_prompt(example.prompt, system_prompt)
    full_chat = [*prompt_chat, {"role": "assistant", "content": example.reference}]
    prompt = prompt_ids(tokenizer, prompt_chat)
    full = chat_ids(tokenizer, full_chat, add_generation_prompt=False)
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently inside the full conversation")
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt):]
    truncated = len(full) > max_seq_len
    span = label_token_span(tokenizer, full[len(prompt):], example.reference, label_regex)
    if span is not None:
        span = (span[0] + len(prompt), span[1] + len(prompt))
        if span[1] > max_seq_len:
            span = None
    return EncodedExample(full[:max_seq_len], labels[:max_seq_len], truncated, span)


def label_token_span(
    tokenizer: PreTrainedTokenizerBase, answer_ids: list[int], answer: str, label_regex: str | None
) -> tuple[int, int] | None:
    """The answer tokens [start, end) that spell the label the task regex finds in `answer`."""
    if label_regex is None:
        return None
    stripped = answer.strip()
    match = re.search(label_regex, stripped)
    if match is None:
        return None
    lead = len(answer) - len(answer.lstrip())
    first_char, last_char = match.start("label") + lead, match.end("label") + lead
    start = None
    for count in range(1, len(answer_ids) + 1):
        decoded = len(tokenizer.decode(answer_ids[:count]))
        if start is None and decoded > first_char:
            start = count - 1
        if decoded >= last_char:
            return (start if start is not None else count - 1, count)
    return None


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn ids: the eos token and, for ChatML-style templates, `<|im_end|>`/`<|eot_id|>`."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)


def answer_stop_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The one stop token a constrained answer ends with: eos where it ends a turn, else the first stop."""
    stops = stop_token_ids(tokenizer)
    return int(tokenizer.eos_token_id) if tokenizer.eos_token_id in stops else stops[0]
