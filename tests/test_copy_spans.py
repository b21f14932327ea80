"""Copy-span constrained decoding: the per-input schema offers exactly the input's word-aligned spans for
copied fields (JSON-escaped as the answer writes them) and leaves the rest of the schema alone; the
grammar rejects a value the input does not contain; answers the tiny model decodes under it are valid
JSON whose copied values occur in their own input; the config flag, the reply-cache key and the served
format follow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import LogitsProcessorList

from tunewright.chat import prompt_ids, stop_token_ids
from tunewright.config import Config, validate_config
from tunewright.copy_spans import copy_schema, copy_source, input_spans
from tunewright.evaluate.generate import generate_replies
from tunewright.evaluate.task_decoding import constrained_copies, schema_constraints
from tunewright.grammar import RowsProcessor, copy_span_factories
from tunewright.library import AdapterEntry
from tunewright.modeling import load_model, load_tokenizer
from tunewright.records import Message
from tunewright.runs import AdapterManifest
from tunewright.schema import copied_values, parse_answer
from tunewright.serve.response_format import ResponseFormat, copy_span_format

SLOTS = {"type": "object", "additionalProperties": False, "required": ["intent", "slots"],
         "properties": {"intent": {"enum": ["GetWeather", "PlayMusic"]},
                        "slots": {"type": "object", "additionalProperties": False,
                                  "properties": {"artist": {"type": "string", "minLength": 1},
                                                 "city": {"type": "string", "minLength": 1}}}}}
# City required: every answer must copy at least one value, so the generation tests cannot pass vacuously.
CITY = {**SLOTS, "properties": {**SLOTS["properties"], "slots": {**SLOTS["properties"]["slots"],
                                                                  "required": ["city"]}}}
TRICKY = 'Play "Don\'t Stop" by C:\\Band\tin Zürich, tomorrow?'


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> tuple[Any, Any]:
    return load_tokenizer(tiny_model_dir), load_model(tiny_model_dir).eval()


def test_spans_are_runs_of_whole_words_and_marks_as_written() -> None:
    spans = input_spans("Book Le Petit's  at 7pm, tomorrow?")
    assert {"Le Petit's", "Petit's  at", "tomorrow", "tomorrow?", "7pm", ",", "Book Le Petit's  at 7pm, tomorrow?"} \
        <= set(spans)
    assert not {"ook", "Petit's at", "7", "pm", " tomorrow", "tomorrow? "} & set(spans)
    assert len(spans) == len(set(spans)) and spans == sorted(spans)
    assert max(len(span.split()) for span in input_spans(" ".join(map(str, range(50))), max_words=5)) == 5
    assert input_spans("   ") == []


def test_the_source_is_the_turns_the_answer_replies_to() -> None:
    few_shot = [("system", "Extract."), ("user", "rain in Oslo"), ("assistant", "{}"), ("user", "play jazz"),
                ("user", "by Miles")]
    assert copy_source(few_shot) == "play jazz\nby Miles"
    assert copy_source([("user", "only this")]) == "only this"


@pytest.mark.parametrize(("schema", "patterns", "expected"), [
    # the copied field becomes the enum of spans its own constraints allow; the rest stays as it was
    ({"type": "object", "properties": {"a": {"type": "string", "maxLength": 2}, "b": {"type": "string"}}}, ["a"],
     {"type": "object", "properties": {"a": {"$ref": "#/$defs/tunewright_copy_0"}, "b": {"type": "string"}},
      "$defs": {"tunewright_copy_0": {"enum": ["ab", "x"]}}}),
    # additionalProperties keys are '*'; list items are '[]'; a nullable string keeps its null
    ({"type": "object", "properties": {"s": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
                                       "l": {"type": "array", "items": {"type": "string"}}}}, ["s.*", "l[]"],
     {"type": "object", "properties": {
         "s": {"type": "object", "additionalProperties": {"anyOf": [{"$ref": "#/$defs/tunewright_copy_0"},
                                                                    {"type": ["null"]}]}},
         "l": {"type": "array", "items": {"$ref": "#/$defs/tunewright_copy_0"}}},
      "$defs": {"tunewright_copy_0": {"enum": ["ab", "ab x", "x"]}}}),
    # a local $ref on the way is inlined; a field no span fits cannot be written
    ({"type": "object", "properties": {"r": {"$ref": "#/$defs/name"}, "n": {"type": "string", "minLength": 9}},
      "$defs": {"name": {"type": "string", "pattern": "^x$"}}}, ["*"],
     {"type": "object", "properties": {"r": {"$ref": "#/$defs/tunewright_copy_0"}, "n": False},
      "$defs": {"name": {"type": "string", "pattern": "^x$"}, "tunewright_copy_0": {"enum": ["x"]}}}),
    # a non-string field, or one the patterns do not name, is left alone
    ({"type": "object", "properties": {"n": {"type": "integer"}, "c": {"type": "string"}}}, ["n", "city"],
     {"type": "object", "properties": {"n": {"type": "integer"}, "c": {"type": "string"}}}),
])
def test_copy_schema_restricts_only_the_copied_string_fields(schema: dict[str, Any], patterns: list[str],
                                                            expected: dict[str, Any]) -> None:
    assert copy_schema(schema, patterns, "ab x") == expected


def accepts(factory: Any, tokenizer: Any, answer: str) -> bool:
    """Whether the grammar lets the whole answer through and may end after it."""
    matcher = factory().matcher
    ids = tokenizer.encode(answer, add_special_tokens=False)
    return matcher.validate_tokens(ids) == len(ids) and matcher.consume_tokens(ids) and matcher.is_accepting()


def answer(city: str) -> str:
    return json.dumps({"intent": "GetWeather", "slots": {"city": city}}, ensure_ascii=False)


def test_the_grammar_accepts_exactly_the_spans_of_its_input(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    oslo, tricky = copy_span_factories(tokenizer, SLOTS, ["slots.*"], ["rain in Oslo", TRICKY],
                                       stop_token_ids(tokenizer), model.config.vocab_size)
    for span in input_spans(TRICKY):  # quotes, a backslash, a tab and a non-ASCII letter, JSON-escaped
        assert accepts(tricky, tokenizer, answer(span)), answer(span)
    for invented in ("Zurich", "zürich", "Don't  Stop", "Stop by", "Band tin", "Oslo", " tomorrow", "", "C:\\\\Band"):
        assert not accepts(tricky, tokenizer, answer(invented)), invented
    assert accepts(oslo, tokenizer, answer("Oslo")) and accepts(oslo, tokenizer, answer("in Oslo"))
    assert not accepts(oslo, tokenizer, answer("Zürich")) and not accepts(oslo, tokenizer, answer("Osl"))
    # the rest of the schema is as it was: the intent from its enum, no other keys
    assert accepts(oslo, tokenizer, json.dumps({"intent": "PlayMusic", "slots": {}}))
    assert not accepts(oslo, tokenizer, json.dumps({"intent": "Weather", "slots": {"city": "Oslo"}}))


def test_sampled_answers_copy_only_from_their_own_input(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    stops = stop_token_ids(tokenizer)
    inputs = ["rain in Oslo", TRICKY, "is it windy in Lima tomorrow morning"]
    factories = copy_span_factories(tokenizer, CITY, ["slots.*"], inputs, stops, model.config.vocab_size)
    chats = [prompt_ids(tokenizer, [{"role": "user", "content": text}]) for text in inputs]
    width = max(len(ids) for ids in chats)
    ids = torch.tensor([[stops[0]] * (width - len(row)) + row for row in chats])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in chats])
    for seed in range(4):
        torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=120, do_sample=True,
                                 temperature=1.5, eos_token_id=stops, pad_token_id=stops[0],
                                 logits_processor=LogitsProcessorList([RowsProcessor([f() for f in factories])]))
        for text, row in zip(inputs, out[:, width:].tolist(), strict=True):
            assert stops[0] in row, "the answer never reached the stop token"
            reply = tokenizer.decode(row[: row.index(stops[0])], skip_special_tokens=True)
            parsed = parse_answer(reply, CITY)
            assert parsed.valid_schema, (reply, parsed.json_error, parsed.violations)
            values = copied_values(parsed.value, ["slots.*"])
            assert values and all(value in input_spans(text) for _, value in values), (text, reply)


def config_with(**eval_settings: Any) -> Config:
    return validate_config({"task": {"name": "t", "system_prompt": "Extract.", "output_schema": CITY,
                                     "copied_fields": ["slots.*"]},
                            "data": {"path": "data.jsonl"}, "eval": eval_settings}, source="test")


def test_evaluation_decodes_each_chat_under_its_own_input(tiny: tuple[Any, Any]) -> None:
    tokenizer, model = tiny
    inputs = ["rain in Oslo", "is it windy in Lima tomorrow morning", "play jazz by Miles"]
    # few-shot chats: the demonstration's words are not this input's
    chats = [[{"role": "system", "content": "Extract."}, {"role": "user", "content": "sun in Zürich"},
              {"role": "assistant", "content": answer("Zürich")}, {"role": "user", "content": text}]
             for text in inputs]
    factories = schema_constraints(config_with(), model, tokenizer, chats)
    assert factories is not None and len(factories) == len(chats)
    replies = generate_replies(model, tokenizer, chats, 120, batch_size=2, row_schemas=factories)
    for text, reply in zip(inputs, replies, strict=True):
        parsed = parse_answer(reply.text, CITY)
        assert reply.stopped and parsed.valid_schema, reply
        assert all(value in input_spans(text) for _, value in copied_values(parsed.value, ["slots.*"])), reply
    assert not accepts(factories[0], tokenizer, answer("Zürich")) and accepts(factories[0], tokenizer, answer("Oslo"))


def test_the_config_flag_and_the_task_decide_whether_copies_are_constrained() -> None:
    assert constrained_copies(config_with()) == ["slots.*"]
    assert constrained_copies(config_with(constrain_copies=False)) == []
    assert constrained_copies(config_with(constrain_schema=False)) == []
    no_copies = validate_config({"task": {"name": "t", "system_prompt": "", "output_schema": CITY},
                                 "data": {"path": "data.jsonl"}}, source="test")
    assert constrained_copies(no_copies) == []


def test_an_adapter_with_copied_fields_is_served_spans_of_the_user_message(tmp_path: Path) -> None:
    manifest = AdapterManifest.from_json(AdapterManifest(output_schema=SLOTS, copied_fields=("slots.*",)).to_json())
    assert manifest.copied_fields == ("slots.*",)
    entry = AdapterEntry("slots", tmp_path, "LORA", "lora", "t", "base", None, output_schema=SLOTS,
                         copied_fields=manifest.copied_fields)
    messages = [Message("user", "rain in Oslo"), Message("assistant", "{}"), Message("user", "and Lima?")]
    found = copy_span_format(None, entry, messages)
    assert found is not None and found.json_schema is not None
    assert found.json_schema.schema_ == copy_schema(SLOTS, ["slots.*"], "and Lima?")
    asked = ResponseFormat(type="text")
    assert copy_span_format(asked, entry, messages) is asked  # what the request asks for wins
    plain = AdapterEntry("plain", tmp_path, "LORA", "lora", "t", "base", None, output_schema=SLOTS)
    assert copy_span_format(None, plain, messages) is None  # no copied fields: the adapter's schema as it is
