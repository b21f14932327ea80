"""`response_format` on /v1/chat/completions, OpenAI's shape: {"type": "text"} (free), {"type":
"json_object"} (any JSON object) or {"type": "json_schema", "json_schema": {"name": ..., "schema":
{...}, "strict": ...}}; without one, an adapter whose task has an output schema (its manifest's
output_schema) answers under that schema, its copied fields (copied_fields) spans of the user's message
as in evaluation. Parsed here into one row's grammar processor (grammar.py), fresh per request, which
the decode loop applies to that row's logits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import LogitsProcessor

from tunewright.copy_spans import copy_schema, copy_source
from tunewright.grammar import SchemaError, schema_processor_factory
from tunewright.library import AdapterEntry
from tunewright.records import Message

PARAM = "response_format"


class ResponseFormatError(ValueError):
    """A response_format the server cannot honour: a 400 naming `param`."""

    def __init__(self, message: str, param: str = PARAM) -> None:
        super().__init__(message)
        self.param = param


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: bool | None = None  # every answer is held to the schema whatever this says


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


def parse_response_format(raw: Any) -> ResponseFormat | None:
    """The request's response_format (None when absent); ResponseFormatError for anything else."""
    if raw is None:
        return None
    try:
        found = ResponseFormat.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([PARAM, *(str(part) for part in first["loc"])])
        raise ResponseFormatError(f"{where}: {first['msg']}", where) from None
    if found.type == "json_schema":
        if found.json_schema is None:
            raise ResponseFormatError("response_format.json_schema is required with type json_schema",
                                      f"{PARAM}.json_schema")
        schema = found.json_schema.schema_
        try:
            validators.validator_for(schema).check_schema(schema)
        except schema_errors.SchemaError as exc:
            raise ResponseFormatError(f"response_format.json_schema.schema is not a valid JSON Schema: "
                                      f"{exc.message}", f"{PARAM}.json_schema.schema") from None
    elif found.json_schema is not None:
        raise ResponseFormatError(f"response_format.json_schema is only allowed with type json_schema, not "
                                  f"{found.type}", f"{PARAM}.json_schema")
    return found


def copy_span_format(found: ResponseFormat | None, entry: AdapterEntry | None,
                     messages: Iterable[Message]) -> ResponseFormat | None:
    """The format asked for; without one, for an adapter whose task has copied fields, its output schema
    with those fields restricted to spans of the user's message (copy_spans.py), as evaluation decodes."""
    if found is not None or entry is None or entry.output_schema is None or not entry.copied_fields:
        return found
    source = copy_source((message.role, message.content) for message in messages)
    schema = copy_schema(entry.output_schema, entry.copied_fields, source)
    return ResponseFormat(type="json_schema", json_schema=JsonSchemaFormat(name="copy_spans", schema_=schema))


def row_processor(found: ResponseFormat | None, entry: AdapterEntry | None, tokenizer: Any,
                  stop_ids: Sequence[int], vocab_size: int) -> LogitsProcessor | None:
    """This request's constraint: the format it asked for, else its adapter's output schema, else none.
    {"type": "text"} turns an adapter's default off."""
    if found is None:
        schema = entry.output_schema if entry is not None else None
        if schema is None:
            return None
    elif found.type == "text":
        return None
    else:
        schema = found.json_schema.schema_ if found.json_schema is not None else None  # None: any object
    try:
        return schema_processor_factory(tokenizer, schema, stop_ids, vocab_size)()
    except SchemaError as exc:
        raise ResponseFormatError(str(exc), f"{PARAM}.json_schema.schema") from None
