"""Token lengths of examples after the model's chat template, fast enough for 100k rows: the template is
rendered by substitution, text between special tokens is tokenized once per distinct piece in one batch."""

from __future__ import annotations

import os
import re
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tunewright.chat import prompt_ids, with_system_prompt
from tunewright.chat_content import chat_ids
from tunewright.data.readers import Finding
from tunewright.data.textscan import offsets, texts_containing
from tunewright.records import Example, Message

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# GPT-2's pre-tokenizer pattern in Python `re` terms, exact on `_plain` text: \\p{L} is [^\\W\\d_], \\p{N} is \\d.
_GPT2_PRETOKEN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+")
_PLAIN_ASCII = re.compile(r"[\t\n\r\x20-\x7e]*")
_SENTINEL = "\ue000TW{}\ue001"  # private-use characters: no template or tokenizer treats them specially
_SLOT = re.compile("\ue000TW(\\d+)\ue001")


def token_lengths(examples: list[Example], tokenizer: PreTrainedTokenizerBase, system_prompt: str) -> list[int]:
    """Tokens of each whole conversation as training renders it (`apply_chat_template`, answer included).

    Same result as tokenizing every rendered row, which `_verified` checks on a spread of rows: a fast
    tokenizer splits text at special tokens first and tokenizes the pieces between them independently.
    So the template is rendered once per sequence of roles with placeholders, pieces without content (the
    shared system turn, headers) are counted once, and each distinct piece with content is counted once.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return [_exact_length(tokenizer, with_system_prompt(e.messages, system_prompt)) for e in examples]
    system = (Message("system", system_prompt),) if system_prompt else ()
    turns = [e.messages if not system or e.messages[0].role == "system" else system + e.messages for e in examples]
    specials = sorted((t.content for t in tokenizer.added_tokens_decoder.values()), key=len, reverse=True)
    splitter = re.compile("(" + "|".join(re.escape(token) for token in specials) + ")") if specials else None
    # Content holding a special token is split there by the tokenizer too: those rows are counted exactly.
    first_turn = offsets(len(row) for row in turns)
    slow = {bisect_right(first_turn, turn) - 1
            for turn in texts_containing([m.content for row in turns for m in row], specials)}
    row_pieces: list[list[str]] = [[] for _ in turns]
    fixed = [0] * len(turns)
    constants: dict[tuple[str, ...], list[str]] = {}
    by_roles: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, row in enumerate(turns):
        by_roles[tuple(m.role for m in row)].append(index)
    for roles, indices in by_roles.items():
        parts = _skeleton_parts(tokenizer, roles, splitter)
        sample = with_system_prompt(turns[indices[0]], "")
        if parts is None or not _substitution_exact(tokenizer, sample, parts):
            slow.update(indices)
            continue
        constants[roles] = [part for part in parts if _SLOT.search(part) is None]
        variable = [_SLOT.split(part) for part in parts if _SLOT.search(part) is not None]
        for index in indices:
            row_pieces[index] = [_fill(split, turns[index]) for split in variable]
    pieces = {piece for rows in (row_pieces, constants.values()) for row in rows for piece in row}
    counts = _piece_counts(backend, [piece for piece in pieces if piece and piece not in specials])
    counts.update(dict.fromkeys(specials, 1))
    counts[""] = 0
    get = counts.__getitem__
    for roles, indices in by_roles.items():
        constant = sum(map(get, constants.get(roles, [])))
        for index in indices:
            fixed[index] = constant
    lengths = [fixed[index] + sum(map(get, pieces)) for index, pieces in enumerate(row_pieces)]
    for index in slow:
        lengths[index] = _exact_length(tokenizer, with_system_prompt(turns[index], ""))
    return _verified(tokenizer, turns, lengths)


def _fill(split: list[str], turns: tuple[Message, ...]) -> str:
    """A skeleton part split at its placeholders ([text, index, text, ...]) with the turns' contents in."""
    if len(split) == 3:
        return split[0] + turns[int(split[1])].content + split[2]
    return "".join(turns[int(piece)].content if odd else piece for odd, piece in
                   ((position % 2 == 1, piece) for position, piece in enumerate(split)))


def _skeleton_parts(tokenizer: PreTrainedTokenizerBase, roles: tuple[str, ...],
                    splitter: re.Pattern[str] | None) -> list[str] | None:
    """The template rendered on placeholder contents, split at special tokens (kept as their own parts).
    None when a placeholder goes missing or appears twice (a template that drops or repeats content)."""
    skeleton = [{"role": role, "content": _SENTINEL.format(i)} for i, role in enumerate(roles)]
    rendered = str(tokenizer.apply_chat_template(skeleton, tokenize=False))
    if sorted(int(n) for n in _SLOT.findall(rendered)) != list(range(len(roles))):
        return None
    return splitter.split(rendered) if splitter else [rendered]


def _substitution_exact(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]], parts: list[str]) -> bool:
    """Whether substituting contents into the skeleton renders what the template renders (a template
    that trims or escapes content does not)."""
    turns = tuple(Message(m["role"], m["content"]) for m in chat)  # type: ignore[arg-type]
    substituted = "".join(_fill(_SLOT.split(part), turns) for part in parts)
    return substituted == str(tokenizer.apply_chat_template(chat, tokenize=False))


def _piece_counts(backend: Any, pieces: list[str]) -> dict[str, int]:
    """Tokens of each piece of text between special tokens. For GPT-2-style byte-level BPE (SmolLM2,
    GPT-2, StarCoder, ...) the pre-tokenizer's regex is re-run here and each distinct word is tokenized once
    (a sentence costs dict look-ups, ~10x faster than the tokenizer here); other pieces go to the tokenizer."""
    counts: dict[str, int] = {}
    rest = pieces
    if _gpt2_byte_level(backend):
        words = _WordTokens(backend)
        get, split = words.__getitem__, _GPT2_PRETOKEN.findall
        rest = []
        for piece in pieces:
            if _plain(piece):
                counts[piece] = sum(map(get, split(piece)))
            else:
                rest.append(piece)
    with _parallel_tokenizers():
        encoded = backend.encode_batch(rest, add_special_tokens=False)
    counts.update(zip(rest, (len(encoding.ids) for encoding in encoded), strict=True))
    return counts


class _WordTokens(dict[str, int]):
    """word -> its token count, tokenized on first sight (one call per distinct word measured faster
    here than collecting new words for a batch)."""

    def __init__(self, backend: Any) -> None:
        super().__init__()
        self.backend = backend

    def __missing__(self, word: str) -> int:
        count = self[word] = len(self.backend.encode(word, add_special_tokens=False).ids)
        return count


def _gpt2_byte_level(backend: Any) -> bool:
    pre = backend.pre_tokenizer
    return (backend.normalizer is None and type(pre).__name__ == "ByteLevel" and bool(pre.use_regex)
            and not pre.add_prefix_space and type(backend.model).__name__ == "BPE")


def _plain(piece: str) -> bool:
    """Python's `re` classes agree with the GPT-2 regex's \\p{L}, \\p{N}, \\s on this piece: printable ASCII,
    tab and newlines, and non-ASCII letters, punctuation and symbols (no other digits, marks or spaces)."""
    if _PLAIN_ASCII.fullmatch(piece):
        return True
    return all(_plain_char(c) for c in set(piece) if not ("\x20" <= c <= "\x7e" or c in "\t\n\r"))


@lru_cache(maxsize=4096)
def _plain_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "LPS"


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


def _verified(tokenizer: PreTrainedTokenizerBase, turns: list[tuple[Message, ...]], lengths: list[int]) -> list[int]:
    """The fast lengths if a spread of rows matches the template's own tokenization, else the slow exact
    length of every row (for a tokenizer whose special tokens strip neighbouring spaces, say)."""
    sample = range(0, len(turns), max(1, len(turns) // 16))
    if all(_exact_length(tokenizer, with_system_prompt(turns[i], "")) == lengths[i] for i in sample):
        return lengths
    return [_exact_length(tokenizer, with_system_prompt(row, "")) for row in turns]


def _exact_length(tokenizer: PreTrainedTokenizerBase, chat: list[dict[str, str]]) -> int:
    return len(chat_ids(tokenizer, chat, add_generation_prompt=False))


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
