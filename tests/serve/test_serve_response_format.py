"""`response_format` on the real server through the official openai client: json_schema answers parse
and validate (JSON and streamed), json_object answers are objects, an adapter whose task has an output
schema answers under it by default ({"type": "text"} turns that off), one whose task has copied fields
copies them from the user's message, and a bad response_format is a 400 naming the parameter."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tunewright.copy_spans import input_spans
from tunewright.library import AdapterLibrary
from tunewright.runs import ADAPTER_MANIFEST
from tunewright.schema import parse_answer
from tunewright.serve.app import create_app
from tunewright.serve.completions import Limits
from tunewright.serve.engine import Engine

KEY = "test-key"
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["intent", "urgent"],
          "properties": {"intent": {"enum": ["Fraud Report", "General Inquiry"]}, "urgent": {"type": "boolean"}}}
MESSAGES = [{"role": "user", "content": "Someone used my card abroad"}]
COPIED = {"type": "object", "additionalProperties": False, "required": ["intent", "where"],
          "properties": {"intent": {"enum": ["Fraud Report", "General Inquiry"]}, "where": {"type": "string"}}}
Running = Callable[[object], AbstractContextManager[str]]


@pytest.fixture(scope="module")
def url(tiny_model_dir: Path, adapter_library: Path, serve_app: Running,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    library = tmp_path_factory.mktemp("schema-served") / "library"
    shutil.copytree(adapter_library, library)
    shutil.copytree(library / "fraud", library / "extract")  # the fraud adapter, with a task schema
    manifest = json.loads((library / "extract" / ADAPTER_MANIFEST).read_text())
    (library / "extract" / ADAPTER_MANIFEST).write_text(json.dumps({**manifest, "output_schema": SCHEMA}))
    shutil.copytree(library / "fraud", library / "spans")  # and one whose task copies a field from the input
    (library / "spans" / ADAPTER_MANIFEST).write_text(json.dumps({**manifest, "output_schema": COPIED,
                                                                  "copied_fields": ["where"]}))
    engine = Engine("base", tiny_model_dir, AdapterLibrary(library), max_loaded=2)
    with serve_app(create_app(engine, {KEY}, Limits(max_tokens=64))) as served:
        yield served


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)


def schema_format(schema: dict[str, Any]) -> Any:
    return {"type": "json_schema", "json_schema": {"name": "triage", "schema": schema, "strict": True}}


@pytest.mark.parametrize("model", ["base", "fraud"])
def test_json_schema_answers_parse_and_validate(url: str, model: str) -> None:
    response = client(url).chat.completions.create(model=model, messages=MESSAGES, max_tokens=64,  # type: ignore[arg-type]
                                                   response_format=schema_format(SCHEMA))
    content = response.choices[0].message.content or ""
    assert parse_answer(content, SCHEMA).valid_schema, content
    assert response.choices[0].finish_reason == "stop"
    stream = client(url).chat.completions.create(model=model, messages=MESSAGES, max_tokens=64, stream=True,  # type: ignore[arg-type]
                                                 response_format=schema_format(SCHEMA))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == content


def test_json_object_answers_are_objects(url: str) -> None:
    response = client(url).chat.completions.create(model="base", messages=MESSAGES, max_tokens=8,  # type: ignore[arg-type]
                                                   response_format={"type": "json_object"})
    assert (response.choices[0].message.content or "").startswith("{")


def test_an_adapter_with_an_output_schema_is_constrained_by_default(url: str) -> None:
    models = {m.id: m for m in client(url).models.list().data}
    assert models["extract"].metadata["output_schema"] == SCHEMA  # type: ignore[attr-defined]
    answer = client(url).chat.completions.create(model="extract", messages=MESSAGES, max_tokens=64)  # type: ignore[arg-type]
    assert parse_answer(answer.choices[0].message.content or "", SCHEMA).valid_schema
    free = client(url).chat.completions.create(model="extract", messages=MESSAGES, max_tokens=64,  # type: ignore[arg-type]
                                               response_format={"type": "text"})
    assert free.choices[0].message.content == "[Intent: Fraud Report]"  # what the adapter learned


@pytest.mark.parametrize("text", ["Someone used my card abroad", 'My "card" was used in C:\\Zürich'])
def test_an_adapter_with_copied_fields_copies_them_from_the_user_message(url: str, text: str) -> None:
    messages = [{"role": "user", "content": "I was charged twice"}, {"role": "assistant", "content": "{}"},
                {"role": "user", "content": text}]
    answer = client(url).chat.completions.create(model="spans", messages=messages, max_tokens=64)  # type: ignore[arg-type]
    parsed = parse_answer(answer.choices[0].message.content or "", COPIED)
    assert parsed.valid_schema and parsed.value["where"] in input_spans(text), answer.choices[0].message.content


@pytest.mark.parametrize(("response_format", "param"), [
    ({"type": "xml"}, "response_format.type"),
    ({"type": "json_schema"}, "response_format.json_schema"),
    ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "strin"}}},
     "response_format.json_schema.schema"),
    ({"type": "json_object", "json_schema": {"name": "x"}}, "response_format.json_schema"),
    ("json", "response_format"),
])
def test_a_bad_response_format_is_a_400_naming_it(url: str, response_format: Any, param: str) -> None:
    reply = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=30,
                       json={"model": "base", "messages": MESSAGES, "response_format": response_format})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
