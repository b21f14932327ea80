"""Baseline replies reused across runs: the base model's greedy answers depend only on its weights,
the exact prompt tokens, the label, schema and copy-span constraints, the decoding settings and the
code and library versions that decode, so a rerun with all of these identical reads the replies
instead of decoding them again (the prompting baselines are most of a quickstart rerun's time). The
key is a content hash of every one of these; anything that changes, down to one prompt token or one
weight byte, misses."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import tunewright
from tunewright import copy_spans, grammar
from tunewright.chat import prompt_ids
from tunewright.evaluate import constrained, generate
from tunewright.evaluate.constrained import LabelTrie
from tunewright.modeling import cache_dir

CHUNK = 1 << 22


def reply_key(model_dir: Path, tokenizer: Any, chats: list[generate.Chat], max_new_tokens: int,
              batch_size: int, constraint: LabelTrie | None, schema: dict[str, Any] | None = None,
              copied: Sequence[str] = ()) -> str:
    """The content hash of everything a batch of greedy replies depends on; `schema`: the output schema
    the replies decode under (None: not schema-constrained); `copied`: the copied-field patterns decoded
    as spans of each input (empty: copies free)."""
    import torch
    import transformers

    digest = hashlib.sha256()
    parts: list[Any] = [
        model_digest(str(model_dir), _signature(model_dir)),
        [prompt_ids(tokenizer, chat) for chat in chats],
        max_new_tokens,
        batch_size,  # batch composition changes padding, which can change a greedy tie
        constraint.root if constraint is not None else None,
        schema,
        list(copied),
        tunewright.__version__, _source_digest(), torch.__version__, transformers.__version__,
        grammar.LIBRARY_VERSION,
        torch.get_num_threads(),
    ]
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def cached_replies(key: str, produce: Callable[[], list[str]]) -> tuple[list[str], bool]:
    """The replies stored under `key`, or `produce()`'s, stored; and whether they came from the cache."""
    path = cache_dir() / "replies" / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        if stored["key"] == key:
            return list(stored["replies"]), True
    except (OSError, ValueError, KeyError):
        pass
    replies = produce()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"key": key, "replies": replies}))
    tmp.replace(path)
    return replies, False


def _signature(model_dir: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes: a file rewritten in place gets hashed again, not read from memory."""
    return tuple((str(path), path.stat().st_size, path.stat().st_mtime_ns)
                 for path in sorted(model_dir.rglob("*")) if path.is_file())


@lru_cache(maxsize=8)
def model_digest(model_dir: str, signature: tuple[tuple[str, int, int], ...]) -> str:
    """sha256 over every file of the model directory (weights, config, tokenizer), names included;
    `signature` only keys the in-process memo."""
    digest = hashlib.sha256()
    for path in sorted(Path(model_dir).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(model_dir)).encode() + b"\0")
            with path.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def _source_digest() -> str:
    """The decoding code itself (label and schema constraints included), so a change to it is never
    answered from an old run's replies."""
    digest = hashlib.sha256()
    for module in (generate, constrained, grammar, copy_spans):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()
