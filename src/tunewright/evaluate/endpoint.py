"""OpenAI-compatible chat completions over plain HTTP (standard library only): the `endpoint`
candidates and the LLM judge both talk to any server that speaks /v1/chat/completions."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Any

from tunewright.errors import TunewrightError


class EndpointError(TunewrightError):
    """An endpoint could not be reached or answered with an error."""


def api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise EndpointError(f"environment variable {variable} is not set; export the endpoint's API key there")
    return key


def chat_completion(base_url: str, model: str, key: str | None, messages: list[dict[str, str]],
                    max_tokens: int, timeout: float = 120.0) -> str:
    """The reply text of one greedy (temperature 0) chat completion."""
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens,
                       "temperature": 0}).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = base_url.rstrip("/") + "/chat/completions"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # the URL comes from the config
            payload: Any = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise EndpointError(f"{url}: HTTP {exc.code} ({exc.read()[:200]!r}); check the URL, model and key") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise EndpointError(f"{url}: cannot connect ({exc}); check eval.endpoints[].base_url") from None
    try:
        return str(payload["choices"][0]["message"]["content"] or "").strip()
    except (KeyError, IndexError, TypeError):
        raise EndpointError(f"{url}: the answer is not an OpenAI chat completion") from None
