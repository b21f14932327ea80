"""Batched generation with a shared prompt prefix gives exactly what one-by-one generation gives."""

from __future__ import annotations

from pathlib import Path

import torch

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.evaluate.generate import _shared_length, generate_replies
from tunewright.modeling import load_model, load_tokenizer

SHOTS = [{"role": "user", "content": "card stolen"}, {"role": "assistant", "content": "[Intent: Fraud Report] Sorry."}]
INPUTS = ["I can't log in", "why was I charged twice for one coffee at the station this morning", "fees?",
          "someone used my card in Spain while I was at home"]


def test_batched_replies_equal_one_by_one_generation(tiny_model_dir: Path) -> None:
    tokenizer, model = load_tokenizer(tiny_model_dir), load_model(tiny_model_dir)
    model.eval()
    chats = [[{"role": "system", "content": "Label and reply."}, *SHOTS, {"role": "user", "content": text}]
             for text in INPUTS]
    replies = generate_replies(model, tokenizer, chats, max_new_tokens=10, batch_size=3)
    stops = stop_token_ids(tokenizer)
    for chat, reply in zip(chats, replies, strict=True):
        ids = torch.tensor([prompt_ids(tokenizer, chat)])
        with torch.inference_mode():
            plain = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10,
                                   do_sample=False, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id)
        new_tokens = plain[0, ids.shape[1]:].tolist()
        ends = [i for i, token in enumerate(new_tokens) if token in stops]
        expected = new_tokens[: ends[0] + 1] if ends else new_tokens
        assert reply.text == tokenizer.decode(expected, skip_special_tokens=True).strip()
        assert reply.completion_tokens == len(expected)
        assert reply.prompt_tokens == ids.shape[1]
        assert reply.stopped == bool(ends)


def test_shared_length_leaves_every_row_a_token() -> None:
    assert _shared_length([[1, 2, 3], [1, 2, 4]]) == 2
    assert _shared_length([[1, 2], [1, 2, 3]]) == 1
    assert _shared_length([[5, 2], [1, 2]]) == 0
