"""Schema-constrained decoding: a JSON Schema compiled once per (tokenizer, schema) by llguidance, and a
fresh transformers LogitsProcessor per request that lets through only the tokens that keep the answer
a valid instance of the schema, then only the stop token; with task.copied_fields, one schema per input
whose copied fields are spans of it (copy_spans.py). Evaluation (every candidate) and serving
(response_format, adapters whose task has an output schema) decode through it; bench/json_grammars.py
is why llguidance (README, Dependencies)."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

import llguidance
import llguidance.hf
import numpy as np
import torch
from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask
from transformers import LogitsProcessor

from tunewright.copy_spans import copy_schema

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Answers are JSON as Python's json.dumps writes it (", " and ": ", no other whitespace): the way
# training answers are usually written, and a small model given free whitespace can pad with newlines
# until its budget runs out.
GRAMMAR_DEFAULTS: Any = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

# Part of the baseline reply cache's key (evaluate/reply_cache.py): another version may mask differently.
LIBRARY_VERSION = f"llguidance {version('llguidance')}"

_TOKENIZERS: weakref.WeakKeyDictionary[Any, dict[tuple[int, tuple[int, ...]], Any]] = weakref.WeakKeyDictionary()

ProcessorFactory = Callable[[], "SchemaProcessor"]


class SchemaError(ValueError):
    """The schema uses something llguidance cannot turn into a grammar; the message says what."""


class SchemaProcessor(LogitsProcessor):
    """One request's constraint, for generate(logits_processor=[...]) or a decode loop that calls it with
    that row's input_ids [1, t] and scores [1, V]. The first call marks where the answer starts; each
    later call first feeds the tokens added since. After the answer is complete only a stop token is
    allowed; a row that keeps going after that (padding in a batch) is left alone."""

    def __init__(self, matcher: Any, vocab_size: int) -> None:
        self.matcher, self.vocab_size = matcher, vocab_size
        self.bitmask = allocate_token_bitmask(1, vocab_size)
        self.seen: int | None = None
        self.done = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != 1 or scores.shape[0] != 1:
            raise ValueError("a SchemaProcessor constrains one row; use one per row (rows_processor)")
        if self.seen is not None and not self.done:
            for token in input_ids[0, self.seen:].tolist():
                if self.matcher.is_stopped() or not self.matcher.consume_token(token):
                    self.done = True  # finished (or a token it never allowed): nothing more to constrain
                    break
        self.seen = input_ids.shape[1]
        if self.done:
            return scores
        fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        allowed = np.unpackbits(self.bitmask.numpy().view(np.uint8), bitorder="little")[: scores.shape[1]]
        scores[0, torch.from_numpy(allowed == 0).to(scores.device)] = float("-inf")
        return scores


class RowsProcessor(LogitsProcessor):
    """Batched generation: row r goes to processors[r] (None: unconstrained)."""

    def __init__(self, processors: Sequence[LogitsProcessor | None]) -> None:
        self.processors = list(processors)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for row, processor in enumerate(self.processors):
            if processor is not None:
                scores[row:row + 1] = processor(input_ids[row:row + 1], scores[row:row + 1])
        return scores


def schema_processor_factory(tokenizer: PreTrainedTokenizerBase, schema: dict[str, Any] | None,
                             stop_ids: Sequence[int], vocab_size: int | None = None) -> ProcessorFactory:
    """Compile `schema` (None: any JSON object) for `tokenizer` once; each call of the result is a fresh
    processor for one request. `stop_ids` end the answer; `vocab_size` is the model's logits width
    (at least the tokenizer's). Raises SchemaError for a schema llguidance cannot compile."""
    width = max(vocab_size or 0, len(tokenizer))
    template = _compiled(_ll_tokenizer(tokenizer, width, tuple(stop_ids)),
                         json.dumps(schema if schema is not None else {"type": "object"}))

    def fresh() -> SchemaProcessor:
        # A copy of the compiled matcher: building one from the grammar text costs milliseconds or more.
        return SchemaProcessor(template.deep_copy(), width)
    return fresh


def copy_span_factories(tokenizer: PreTrainedTokenizerBase, schema: dict[str, Any], copied: Sequence[str],
                        sources: Sequence[str], stop_ids: Sequence[int],
                        vocab_size: int | None = None) -> list[ProcessorFactory]:
    """One factory per input: `schema` with the fields matching `copied` (task.copied_fields) restricted
    to spans of that input (copy_spans.py). Compiled grammars are kept (_compiled), so the candidates of
    one evaluation, which see the same inputs, compile each input once."""
    return [schema_processor_factory(tokenizer, copy_schema(schema, copied, source), stop_ids, vocab_size)
            for source in sources]


@lru_cache(maxsize=1024)
def _compiled(ll_tokenizer: Any, schema: str) -> Any:
    """The compiled matcher of a schema (JSON text, property order kept: it is the answer's key order)
    for one llguidance tokenizer. A SNIPS row's copy-span schema compiles in about 4 ms and its matcher
    holds about 140 KB, so the last 1,024 are kept."""
    grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=GRAMMAR_DEFAULTS)
    failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar, ll_tokenizer)
    if failed:
        raise SchemaError(f"the schema cannot be used for constrained decoding: {messages[0]}")
    template = llguidance.LLMatcher(ll_tokenizer, grammar)
    if template.is_error():
        raise SchemaError(f"the schema cannot be used for constrained decoding: {template.get_error()}")
    return template


def _ll_tokenizer(tokenizer: PreTrainedTokenizerBase, width: int, stop_ids: tuple[int, ...]) -> Any:
    """llguidance's view of the tokenizer, built once (about a second for a 49k vocabulary) and kept as
    long as the tokenizer lives."""
    built = _TOKENIZERS.setdefault(tokenizer, {})
    key = (width, stop_ids)
    if key not in built:
        built[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=width,  # type: ignore[arg-type]
                                                  eos_token=list(stop_ids))
    return built[key]


def schema_text(schema: dict[str, Any]) -> str:
    """The schema as compact JSON, for manifests and prompts."""
    return json.dumps(schema, separators=(",", ":"), sort_keys=True)
