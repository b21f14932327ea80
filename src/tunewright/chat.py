"""Turn examples into chat messages and token ids with the model's own chat template.

Training, evaluation and serving all build prompts here, so the template and system prompt a model
was trained with are exactly the ones it is asked with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunewright.records import Example, Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


@dataclass(frozen=True)
class EncodedExample:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX everywhere but the assistant answer and its end-of-turn token
    truncated: bool


def with_system_prompt(messages: Sequence[Message], system_prompt: str) -> list[dict[str, str]]:
    """Chat dicts for the template; the task's system prompt is added unless one is already there."""
    chat = [{"role": m.role, "content": m.content} for m in messages]
    if system_prompt and (not chat or chat[0]["role"] != "system"):
        chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


def prompt_ids(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]]) -> list[int]:
    """Token ids of a conversation up to and including the assistant header."""
    return _ids(tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True))


def encode_example(
    tokenizer: PreTrainedTokenizerBase, example: Example, system_prompt: str, max_seq_len: int
) -> EncodedExample:
    """Input ids and labels with loss only on the final assistant answer (end-of-turn included)."""
    prompt_chat = with_system_prompt(example.prompt, system_prompt)
    full_chat = [*prompt_chat, {"role": "assistant", "content": example.reference}]
    prompt = prompt_ids(tokenizer, prompt_chat)
    full = _ids(tokenizer.apply_chat_template(full_chat, tokenize=True))
    if full[: len(prompt)] != prompt:
        raise ValueError("the chat template renders the prompt differently inside the full conversation")
    labels = [IGNORE_INDEX] * len(prompt) + full[len(prompt):]
    truncated = len(full) > max_seq_len
    return EncodedExample(full[:max_seq_len], labels[:max_seq_len], truncated)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """End-of-turn ids: the eos token and, for ChatML-style templates, `<|im_end|>`/`<|eot_id|>`."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
            ids.add(token_id)
    return sorted(i for i in ids if i is not None)


def _ids(rendered: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding from apply_chat_template(tokenize=True)
    if hasattr(rendered, "keys") and "input_ids" in rendered:
        rendered = rendered["input_ids"]
    return [int(i) for i in rendered]
