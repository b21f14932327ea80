"""Batched greedy generation: left padding, KV cache, stop on the end-of-turn token."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tunewright.chat import prompt_ids, stop_token_ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from tunewright.modeling import CausalLM

Chat = list[dict[str, str]]


@dataclass(frozen=True)
class Reply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    stopped: bool  # ended on an end-of-turn token, not on the token budget


@torch.inference_mode()
def generate_replies(
    model: CausalLM,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[Chat],
    max_new_tokens: int,
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> list[Reply]:
    """The assistant's reply to each chat, in input order. Prompts of similar length share a batch."""
    encoded = [prompt_ids(tokenizer, chat) for chat in chats]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    replies: list[Reply | None] = [None] * len(encoded)
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, index in enumerate(batch):
            ids = encoded[index]
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention_mask[row, width - len(ids):] = 1
        output = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        for row, index in enumerate(batch):
            new_tokens = output[row, width:].tolist()
            ends = [position for position, token in enumerate(new_tokens) if token in stops]
            completion = new_tokens[: ends[0] + 1] if ends else new_tokens
            text = str(tokenizer.decode(completion, skip_special_tokens=True)).strip()
            replies[index] = Reply(text, len(encoded[index]), len(completion), bool(ends))
        if on_batch is not None:
            on_batch(len(batch))
    return [reply for reply in replies if reply is not None]
