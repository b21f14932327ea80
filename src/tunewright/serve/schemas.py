"""Request bodies of the OpenAI-compatible API (plus feedback and admin), the model list, and the error
shape. Completion responses are built in completions.py, where one body serves both JSON and SSE.
Every OpenAI parameter this server acts on is a typed field here; any other parameter that is sent
with a value is refused with a 400 naming it (`unsupported`), never accepted and ignored."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _whole_characters(text: str) -> str:
    """JSON may carry lone UTF-16 surrogates ("\\ud800"), which no tokenizer, log or reply can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}) at character {exc.start}; "
                         "send whole Unicode characters") from None
    return text


Text = Annotated[str, AfterValidator(_whole_characters)]
Stop = Annotated[list[Annotated[Text, Field(min_length=1)]], Field(max_length=4)]


class Open(BaseModel):
    """Extra keys are kept (not rejected as a 422) so `unsupported` can name them in a 400."""

    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = Field(False, strict=True, description="Send a last chunk, with empty `choices`, "
                                                                "carrying the usage of the whole request.")


class Request(Open):
    model: Text = Field(description="The base model's name or an adapter's name.")
    max_tokens: int | None = Field(None, gt=0, strict=True,
                                   description="Token budget; defaults to, and may not exceed, the server's limit.")
    stream: bool = Field(False, strict=True, description="Reply as server-sent events ending in `data: [DONE]`.")
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2, description="0 (the default here) decodes greedily.")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling; applies when temperature > 0.")
    top_k: int | None = Field(None, ge=0, strict=True,
                              description="Extension: sample among the k likeliest tokens (0: all).")
    seed: int | None = Field(None, strict=True, description="The same request with the same seed gets the same "
                                                            "answer.")
    stop: Text | Stop | None = Field(None, description="Up to 4 strings; the reply ends before the first one.")
    n: int = Field(1, ge=1, le=8, strict=True, description="How many choices to generate.")
    presence_penalty: float = Field(0, ge=-2, le=2, description="Subtracted from the logit of every token "
                                                                "already generated.")
    frequency_penalty: float = Field(0, ge=-2, le=2, description="Subtracted once per earlier occurrence.")
    logit_bias: dict[str, Annotated[float, Field(ge=-100, le=100)]] | None = Field(
        None, description="Token id (as a string) -> bias added to its logit.")
    user: Text | None = Field(None, description="Your end user's id; logged with the exchange.")


class TextPart(Open):
    type: Text
    text: Text | None = None


class ChatMessage(Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: Text | list[TextPart] | None = None
    name: Text | None = None


class ChatCompletionRequest(Request):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0, strict=True, description="The same as max_tokens.")
    logprobs: bool = Field(False, strict=True, description="Return each token's log probability.")
    top_logprobs: int | None = Field(None, ge=0, le=20, strict=True,
                                     description="With logprobs: the likeliest alternatives at each token.")
    response_format: Any = Field(None, description='{"type": "text"}, {"type": "json_object"} or '
                                                   '{"type": "json_schema", "json_schema": {"name", "schema"}}: '
                                                   'the answer decodes under that grammar.')


class CompletionRequest(Request):
    prompt: Text = Field(description="Raw text to continue; no chat template is applied.")
    logprobs: int | None = Field(None, ge=0, le=5, strict=True,
                                 description="Return each token's log probability and this many alternatives.")


def unsupported(body: Open, prefix: str = "") -> list[str]:
    """Dotted names of the parameters sent with a value that no field above takes; a null value asks for
    nothing and passes."""
    names = [prefix + key for key, value in (body.model_extra or {}).items() if value is not None]
    if isinstance(body, ChatCompletionRequest):
        for index, message in enumerate(body.messages):
            names += unsupported(message, f"messages[{index}].")
            for part_index, part in enumerate(message.content if isinstance(message.content, list) else []):
                names += unsupported(part, f"messages[{index}].content[{part_index}].")
    return names


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tunewright"
    parent: str | None = None
    metadata: dict[str, Any] | None = None  # the adapter's manifest: method, task, eval summary


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    response_id: Text = Field(description="The `id` of a completion this server returned.")
    rating: int = Field(ge=-1, le=5, strict=True, description="-1 (bad) .. 5 (excellent); 0 is neutral.")
    correction: Text | None = Field(None, min_length=1, description="The answer the model should have given.")


class RegisterAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(description="Model name clients will use.")
    path: Text = Field(description="A run directory or adapter directory on the server's disk.")


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}
