"""Token lengths of examples after the model's chat template, fast enough for 100k rows: the template is
rendered by substitution, text between special tokens is tokenized once per distinct piece in one batch."""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tunewright.chat import prompt_ids, with_system_prompt
from tunewright.data.readers import Finding
from tunewright.records import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

_SENTINEL = "\ue000TW{}\ue001"  # private-use characters: no template or tokenizer treats them specially


def token_lengths(examples: list[Example], tokenizer: PreTrainedTokenizerBase, system_prompt: str) -> list[int]:
    """Tokens of each whole conversation as training renders it (`apply_chat_template`, answer included).

    Same result as tokenizing every rendered row, which is what `_verified` checks on a sample: a fast
    tokenizer splits text at special tokens first and tokenizes the pieces between them independently,
    so each distinct piece (the system turn every row shares, above all) is tokenized once.
    """
    chats = [with_system_prompt(example.messages, system_prompt) for example in examples]
    texts = _render(tokenizer, chats)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    specials = sorted((t.content for t in tokenizer.added_tokens_decoder.values()), key=len, reverse=True)
    splitter = re.compile("(" + "|".join(re.escape(token) for token in specials) + ")") if specials else None
    split_rows = [splitter.split(text) if splitter else [text] for text in texts]
    pieces = {piece for row in split_rows for piece in row[::2] if piece}
    counts = dict.fromkeys(specials, 1)
    with _parallel_tokenizers():
        encoded = backend.encode_batch(list(pieces), add_special_tokens=False)
    counts.update(zip(pieces, (len(encoding.ids) for encoding in encoded), strict=True))
    counts[""] = 0
    get = counts.__getitem__
    lengths = [sum(map(get, row)) for row in split_rows]
    return _verified(tokenizer, chats, lengths)


def check_lengths(examples: list[Example], lengths: list[int], tokenizer: PreTrainedTokenizerBase,
                  system_prompt: str, max_seq_len: int) -> list[Finding]:
    """Rows longer than `max_seq_len`: a warning when the answer is cut, an error when not one answer
    token fits (the row would train on nothing)."""
    findings = []
    for example, length in zip(examples, lengths, strict=True):
        if length <= max_seq_len:
            continue
        prompt = len(prompt_ids(tokenizer, with_system_prompt(example.prompt, system_prompt)))
        where = f"messages[{len(example.messages) - 1}]"
        if prompt >= max_seq_len:
            findings.append(Finding("error", "prompt-too-long", f"the prompt alone is {prompt} tokens, "
                                    f"training.max_seq_len is {max_seq_len}: no answer token is learned; "
                                    "shorten the input or raise max_seq_len", example.source, where))
        else:
            findings.append(Finding("warning", "too-long", f"{length} tokens > training.max_seq_len="
                                    f"{max_seq_len}: the answer is cut after {max_seq_len - prompt} of its "
                                    f"{length - prompt} tokens and its end-of-turn is never learned",
                                    example.source, where))
    return findings


def _render(tokenizer: PreTrainedTokenizerBase, chats: list[list[dict[str, str]]]) -> list[str]:
    """Each chat rendered by the template. The template runs once per sequence of roles, on sentinels,
    and real contents are substituted, unless the template changes contents (then it runs per row)."""
    by_roles: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, chat in enumerate(chats):
        by_roles[tuple(m["role"] for m in chat)].append(index)
    texts = [""] * len(chats)
    for roles, indices in by_roles.items():
        skeleton = [{"role": role, "content": _SENTINEL.format(i)} for i, role in enumerate(roles)]
        rendered = str(tokenizer.apply_chat_template(skeleton, tokenize=False))
        parts = re.split("\ue000TW\\d+\ue001", rendered)
        order = [int(n) for n in re.findall("\ue000TW(\\d+)\ue001", rendered)]
        for index in indices:
            contents = [chats[index][n]["content"] for n in order]
            texts[index] = parts[0] + "".join(c + p for c, p in zip(contents, parts[1:], strict=True))
        sample = chats[indices[0]]
        if str(tokenizer.apply_chat_template(sample, tokenize=False)) != texts[indices[0]]:
            for index in indices:
                texts[index] = str(tokenizer.apply_chat_template(chats[index], tokenize=False))
    return texts


def _verified(tokenizer: PreTrainedTokenizerBase, chats: list[list[dict[str, str]]], lengths: list[int]) -> list[int]:
    """The fast lengths if they match the template's own tokenization on a spread of rows, else the slow
    exact lengths of every row (a tokenizer whose special tokens strip neighbouring spaces, say)."""
    step = max(1, len(chats) // 16)
    if all(_exact_length(tokenizer, chats[i]) == lengths[i] for i in range(0, len(chats), step)):
        return lengths
    return [_exact_length(tokenizer, chat) for chat in chats]


def _exact_length(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]]) -> int:
    rendered = tokenizer.apply_chat_template(chat, tokenize=True)
    return len(rendered["input_ids"] if hasattr(rendered, "keys") else rendered)


@contextmanager
def _parallel_tokenizers() -> Iterator[None]:
    # The CLI turns tokenizers' thread pool off for training's sake (it must not be live across forks);
    # counting tokens happens before any fork, and both cores halve its time.
    previous = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TOKENIZERS_PARALLELISM"]
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = previous
