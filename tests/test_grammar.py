"""Schema-constrained decoding on the tiny random model: whatever the schema (of a few shapes) and
whatever the sampled tokens, every answer parses, validates against the schema and ends with the stop
token; one processor per row, fresh per request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessorList

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.grammar import RowsProcessor, SchemaProcessor, schema_processor_factory
from tunewright.modeling import load_model, load_tokenizer
from tunewright.schema import parse_answer

NAMES = st.sampled_from(["city", "date", "name", "count", "ok", "kind", "tags", "when"])
STRING = st.integers(1, 8).map(lambda n: {"type": "string", "maxLength": n})
INTEGER = st.just({"type": "integer", "minimum": 0, "maximum": 999})
BOOLEAN = st.just({"type": "boolean"})
ENUM = st.lists(st.sampled_from(["red", "green", "blue", "other"]), min_size=1, max_size=4, unique=True).map(
    lambda values: {"enum": values})
LEAF = st.one_of(STRING, INTEGER, BOOLEAN, ENUM)
ARRAY = st.tuples(st.one_of(ENUM, STRING), st.integers(0, 3)).map(
    lambda pair: {"type": "array", "items": pair[0], "maxItems": pair[1]})


def objects(values: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """An object schema over 1-4 properties, a random subset required, no other keys."""
    def build(props: dict[str, dict[str, Any]], required: list[bool]) -> dict[str, Any]:
        names = sorted(props)
        return {"type": "object", "additionalProperties": False, "properties": props,
                "required": [n for n, r in zip(names, required, strict=False) if r]}
    return st.builds(build, st.dictionaries(NAMES, values, min_size=1, max_size=4), st.lists(st.booleans(), min_size=4,
                                                                                             max_size=4))


SCHEMAS = st.one_of(objects(LEAF), objects(st.one_of(LEAF, ARRAY)), objects(st.one_of(LEAF, objects(LEAF))))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return load_tokenizer(tiny_model_dir), load_model(tiny_model_dir).eval()


def generate(model: Any, tokenizer: Any, processors: list[Any], seed: int, max_new_tokens: int = 200,
             must_stop: bool = True) -> list[str]:
    stops = stop_token_ids(tokenizer)
    ids = torch.tensor([prompt_ids(tokenizer, [{"role": "user", "content": "Fill in the form."}])] * len(processors))
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=True, temperature=1.5, eos_token_id=stops, pad_token_id=stops[0],
                             logits_processor=LogitsProcessorList([RowsProcessor(processors)]))
    texts = []
    for row in out[:, ids.shape[1]:].tolist():
        assert stops[0] in row or not must_stop, "the answer never reached the stop token"
        texts.append(tokenizer.decode(row[: row.index(stops[0])] if stops[0] in row else row, skip_special_tokens=True))
    return texts


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=SCHEMAS, seed=st.integers(0, 2**16))
def test_constrained_sampling_always_parses_and_validates(tiny: tuple[Any, Any], schema: dict[str, Any],
                                                          seed: int) -> None:
    tokenizer, model = tiny
    fresh = schema_processor_factory(tokenizer, schema, stop_token_ids(tokenizer), model.config.vocab_size)
    for text in generate(model, tokenizer, [fresh(), fresh()], seed):
        parsed = parse_answer(text, schema)
        assert parsed.valid_schema, (text, parsed.json_error, parsed.violations)


def test_each_row_gets_its_own_schema_and_none_is_free(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    stops = stop_token_ids(tokenizer)
    colour = {"type": "object", "properties": {"colour": {"enum": ["red", "blue"]}}, "required": ["colour"],
              "additionalProperties": False}
    count = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1, "maximum": 9}},
             "required": ["n"], "additionalProperties": False}
    rows = [schema_processor_factory(tokenizer, colour, stops)(), schema_processor_factory(tokenizer, count, stops)()]
    first, second = generate(model, tokenizer, rows, seed=3)
    assert json.loads(first)["colour"] in {"red", "blue"}
    assert 1 <= json.loads(second)["n"] <= 9
    # No schema (response_format json_object): any object, so no bound on its length; it starts as one.
    any_object = schema_processor_factory(tokenizer, None, stops)()
    assert generate(model, tokenizer, [any_object], seed=4, max_new_tokens=8, must_stop=False)[0].startswith("{")


def test_a_processor_constrains_one_row() -> None:
    with pytest.raises(ValueError, match="one row"):
        SchemaProcessor(None, 8)(torch.zeros((2, 3), dtype=torch.long), torch.zeros((2, 8)))  # type: ignore[arg-type]


def test_batched_evaluation_decodes_every_row_under_the_schema(tiny: tuple[Any, Any]) -> None:
    from tunewright.evaluate.generate import generate_replies

    tokenizer, model = tiny
    schema = {"type": "object", "additionalProperties": False, "required": ["intent", "slots"],
              "properties": {"intent": {"enum": ["GetWeather", "PlayMusic"]},
                             "slots": {"type": "object", "additionalProperties": False,
                                       "properties": {"city": {"type": "string", "maxLength": 6}}}}}
    fresh = schema_processor_factory(tokenizer, schema, stop_token_ids(tokenizer), model.config.vocab_size)
    chats = [[{"role": "system", "content": "Extract."}, {"role": "user", "content": text}]
             for text in ("rain in Oslo?", "play jazz", "is it windy in Lima tomorrow morning")]
    replies = generate_replies(model, tokenizer, chats, 120, batch_size=2, schema=fresh)
    assert all(reply.stopped and parse_answer(reply.text, schema).valid_schema for reply in replies), replies
