"""Batched greedy generation: left padding, KV cache, stop on the end-of-turn token; optionally with
the answer's label constrained to the task's label set (evaluate/constrained.py), or the whole answer
to the task's output schema (one fresh grammar processor per row, grammar.py; per input when copied
fields are spans of it)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessorList

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.evaluate.constrained import LabelConstraint, LabelTrie
from tunewright.grammar import ProcessorFactory, RowsProcessor
from tunewright.modeling import left_pad

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
    constraint: LabelTrie | None = None,
    row_constraints: list[LabelTrie] | None = None,
    schema: ProcessorFactory | None = None,
    row_schemas: list[ProcessorFactory] | None = None,
) -> list[Reply]:
    """The assistant's reply to each chat, in input order. Prompts of similar length share a batch.
    With `constraint` (or one trie per chat in `row_constraints`) the label comes from the trie; with
    `schema` (or one factory per chat in `row_schemas`) every answer is decoded under a fresh processor
    of that factory."""
    encoded = [prompt_ids(tokenizer, chat) for chat in chats]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    replies: list[Reply | None] = [None] * len(encoded)
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        rows = [encoded[i] for i in batch]
        tries = [row_constraints[i] for i in batch] if row_constraints is not None else None
        factories = [row_schemas[i] for i in batch] if row_schemas is not None else \
            [schema] * len(batch) if schema is not None else None
        output, prompt_width = _generate_batch(model, rows, max_new_tokens, stops, pad_id, constraint, tries,
                                               factories)
        for row, index in enumerate(batch):
            new_tokens = output[row, prompt_width:].tolist()
            ends = [position for position, token in enumerate(new_tokens) if token in stops]
            completion = new_tokens[: ends[0] + 1] if ends else new_tokens
            text = str(tokenizer.decode(completion, skip_special_tokens=True)).strip()
            replies[index] = Reply(text, len(encoded[index]), len(completion), bool(ends))
        if on_batch is not None:
            on_batch(len(batch))
    return [reply for reply in replies if reply is not None]


def _generate_batch(
    model: CausalLM, rows: list[list[int]], max_new_tokens: int, stops: list[int], pad_id: int,
    constraint: LabelTrie | None = None, row_constraints: list[LabelTrie] | None = None,
    schemas: list[ProcessorFactory] | None = None,
) -> tuple[torch.Tensor, int]:
    """Greedy continuations of `rows`. The prefix all rows share (system prompt, few-shot examples)
    is encoded once and its cache copied to every row; each row's own part is left-padded after it,
    so the padding sits between the shared prefix and the row's tokens, masked out."""
    shared = _shared_length(rows)
    suffixes = [ids[shared:] for ids in rows]
    padded, padded_mask = left_pad(suffixes, pad_id)
    width = padded.shape[1]
    input_ids = torch.cat([torch.tensor([rows[0][:shared]] * len(rows), dtype=torch.long).view(len(rows), shared),
                           padded], dim=1)
    attention_mask = torch.cat([torch.ones((len(rows), shared), dtype=torch.long), padded_mask], dim=1)
    extra: dict[str, object] = {}
    if shared > 0:
        cache = model(input_ids=input_ids[:1, :shared].to(model.device), use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(len(rows))
        extra["cache"] = cache
    if constraint is not None or row_constraints is not None:
        processor = LabelConstraint(constraint, shared + width, row_constraints)
        extra["logits_processor"] = LogitsProcessorList([processor])
    if schemas is not None:
        extra["logits_processor"] = LogitsProcessorList([RowsProcessor([fresh() for fresh in schemas])])
    output = model.generate(
        input_ids=input_ids.to(model.device),
        attention_mask=attention_mask.to(model.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=stops,
        pad_token_id=pad_id,
        **extra,
    )
    return output, shared + width


def _shared_length(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving at least one token of each row to feed the generator."""
    shortest = min(len(ids) for ids in rows) - 1
    length = 0
    while length < shortest and all(ids[length] == rows[0][length] for ids in rows):
        length += 1
    return length
