"""Request bodies of the OpenAI-compatible API (plus feedback and admin), the model list, and the error
shape. Completion responses are built in completions.py, where one body serves both JSON and SSE."""

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


class Request(BaseModel):
    # OpenAI clients send fields we do not act on (temperature, top_p, user, ...); accept them.
    model_config = ConfigDict(extra="allow")

    model: Text = Field(description="The base model's name or an adapter's name.")
    max_tokens: int | None = Field(None, gt=0, strict=True,
                                   description="Token budget; defaults to, and may not exceed, the server's limit.")
    stream: bool = Field(False, strict=True, description="Reply as server-sent events ending in `data: [DONE]`.")


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatCompletionRequest(Request):
    messages: list[ChatMessage] = Field(min_length=1)


class CompletionRequest(Request):
    prompt: Text = Field(description="Raw text to continue; no chat template is applied.")


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
